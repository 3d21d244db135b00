//! `docs/service.md` stays in step with the code: it names every problem type of the
//! mapping table and every configuration key with its environment variable.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use optout_server::config::{env_name, keys};
use optout_server::problem::problem_kinds;

fn service_doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/service.md");
    std::fs::read_to_string(path).expect("docs/service.md")
}

#[test]
fn every_problem_type_is_documented_with_its_status() {
    let doc = service_doc();
    for kind in problem_kinds() {
        let row = format!("| {} | `{}` |", kind.status.as_u16(), kind.slug);
        assert!(doc.contains(&row), "docs/service.md lacks the row {row:?}");
    }
}

#[test]
fn every_config_key_is_documented_with_its_variable() {
    let doc = service_doc();
    for key in keys() {
        let row = format!("| `{key}` | `{}` |", env_name(key));
        assert!(doc.contains(&row), "docs/service.md lacks the row {row:?}");
    }
}
