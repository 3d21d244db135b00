//! `optout gate` and `optout verify` end to end, driving the real binary on small Parquet
//! and JSON Lines inputs written here with arrow-rs.
//!
//! The kept rows are checked against the consent rule itself
//! (`optout_core::consent::decide_from_history` over the events the test imported), the
//! manifest's signature and digests against the data directory's key, the dataset event
//! against `ledger export`, and `verify` both ways (passing on the gate's output, failing
//! with exit 1 on datasets with an opted-out member or an extra column).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::{ArrayRef, RecordBatch, StringArray, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use common::{micros, path_str, Run, Scratch};
use optout_core::consent::decide_from_history;
use optout_core::{
    ExplicitChoice, Jurisdiction, LedgerPosition, PolicyDocument, PolicyHistory, Purpose, Timestamp,
};
use optout_gate::DatasetManifest;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use serde_json::{json, Value};

const PURPOSE: &str = "ai_training";
const CUTOFF: &str = "2025-06-30T00:00:00Z";
const FIELDS: &str = "headline,skills,experience";

// ---------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Profile {
    id: Option<u64>,
    country: Option<&'static str>,
}

fn profile(id: u64, country: &'static str) -> Profile {
    Profile {
        id: Some(id),
        country: Some(country),
    }
}

fn headline(id: Option<u64>) -> String {
    format!("Engineer {}", id.map_or("none".into(), |id| id.to_string()))
}

/// The id, the jurisdiction and the fields the gate is asked for.
fn profile_fields() -> Vec<Field> {
    vec![
        Field::new("member_id", DataType::UInt64, true),
        Field::new("country", DataType::Utf8, true),
        Field::new("headline", DataType::Utf8, true),
        Field::new(
            "skills",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            true,
        ),
        Field::new("experience", DataType::Utf8, true),
    ]
}

/// Writes profiles as Parquet with the benchmark's columns (private ones included), in
/// row groups of `row_group_rows`.
fn write_profiles(path: &Path, profiles: &[Profile], row_group_rows: usize) {
    let mut fields = profile_fields();
    fields.push(Field::new("email", DataType::Utf8, true));
    let schema = Arc::new(Schema::new(fields));
    let properties = WriterProperties::builder()
        .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
        .set_max_row_group_row_count(Some(row_group_rows))
        .build();
    let file = fs::File::create(path).unwrap();
    let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(properties)).unwrap();
    for chunk in profiles.chunks(10_000) {
        let mut skills = ListBuilder::new(StringBuilder::new());
        for row in chunk {
            skills.values().append_value("rust");
            skills
                .values()
                .append_value(format!("skill-{}", row.id.unwrap_or(0) % 7));
            skills.append(true);
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from(
                chunk.iter().map(|row| row.id).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                chunk.iter().map(|row| row.country).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                chunk.iter().map(|row| headline(row.id)).collect::<Vec<_>>(),
            )),
            Arc::new(skills.finish()),
            Arc::new(StringArray::from(
                chunk
                    .iter()
                    .map(|row| format!("Worked {} years", row.id.unwrap_or(0) % 40))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                chunk
                    .iter()
                    .map(|row| format!("m{}@example.com", row.id.unwrap_or(0)))
                    .collect::<Vec<_>>(),
            )),
        ];
        writer
            .write(&RecordBatch::try_new(schema.clone(), columns).unwrap())
            .unwrap();
    }
    writer.close().unwrap();
}

/// Writes any columns as Parquet (for datasets built "by another engine").
fn write_columns(path: &Path, columns: Vec<(&str, ArrayRef)>) {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(name, array)| Field::new(*name, array.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(
        schema.clone(),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .unwrap();
    let mut writer = ArrowWriter::try_new(fs::File::create(path).unwrap(), schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

/// Reads `member_id` of every Parquet file in a directory, and the column names seen.
fn read_dataset(directory: &Path) -> (Vec<u64>, Vec<String>) {
    let mut ids = Vec::new();
    let mut names = Vec::new();
    for path in parquet_files(directory) {
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(fs::File::open(&path).unwrap()).unwrap();
        names = builder
            .schema()
            .fields()
            .iter()
            .map(|field| field.name().clone())
            .collect();
        for column in builder
            .metadata()
            .row_groups()
            .iter()
            .flat_map(|g| g.columns())
        {
            assert!(
                matches!(column.compression(), parquet::basic::Compression::ZSTD(_)),
                "{path:?}: {:?}",
                column.compression()
            );
        }
        for batch in builder.build().unwrap() {
            let batch = batch.unwrap();
            let column = batch.column_by_name("member_id").unwrap();
            let column = column.as_any().downcast_ref::<UInt64Array>().unwrap();
            ids.extend(column.iter().map(|id| id.unwrap()));
        }
    }
    ids.sort_unstable();
    (ids, names)
}

/// Calls `visit` with each record batch of a directory's Parquet files and its ids.
fn for_each_batch(directory: &Path, mut visit: impl FnMut(&RecordBatch, &UInt64Array)) {
    for path in parquet_files(directory) {
        let reader = ParquetRecordBatchReaderBuilder::try_new(fs::File::open(&path).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let ids = batch.column_by_name("member_id").unwrap();
            let ids = ids.as_any().downcast_ref::<UInt64Array>().unwrap();
            visit(&batch, ids);
        }
    }
}

/// Every row's `member_id` and `skills` in a directory's Parquet files.
fn read_skills(directory: &Path) -> Vec<(u64, Vec<String>)> {
    let mut rows = Vec::new();
    for_each_batch(directory, |batch, ids| {
        let skills = batch.column_by_name("skills").unwrap();
        let skills = skills
            .as_any()
            .downcast_ref::<arrow_array::ListArray>()
            .unwrap();
        for (row, id) in ids.iter().enumerate() {
            let items = skills.value(row);
            let items = items.as_any().downcast_ref::<StringArray>().unwrap();
            let items = items.iter().map(|item| item.unwrap().to_string()).collect();
            rows.push((id.unwrap(), items));
        }
    });
    rows
}

/// Every row's `member_id` and `headline` in a directory's Parquet files.
fn read_headlines(directory: &Path) -> Vec<(u64, Option<String>)> {
    let mut rows = Vec::new();
    for_each_batch(directory, |batch, ids| {
        let headlines = batch.column_by_name("headline").unwrap();
        let headlines = headlines.as_any().downcast_ref::<StringArray>().unwrap();
        rows.extend(
            ids.iter()
                .zip(headlines.iter())
                .map(|(id, headline)| (id.unwrap(), headline.map(str::to_string))),
        );
    });
    rows
}

fn parquet_files(directory: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(directory)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    files
}

// ---------------------------------------------------------------------------------------
// Choices and the model
// ---------------------------------------------------------------------------------------

struct Event {
    member: u64,
    purpose: &'static str,
    allowed: bool,
    at_us: i64,
}

fn at(year: i64, month: i64, day: i64) -> i64 {
    micros(year, month, day, 0, 0, 0)
}

fn cutoff_us() -> i64 {
    micros(2025, 6, 30, 0, 0, 0)
}

fn import_events(scratch: &Scratch, events: &[Event]) {
    let mut text = String::new();
    for event in events {
        let at = Timestamp::from_micros(event.at_us).to_rfc3339();
        text.push_str(
            &json!({
                "member_id": event.member, "purpose": event.purpose,
                "allowed": event.allowed, "at": at, "source": "web"
            })
            .to_string(),
        );
        text.push('\n');
    }
    let path = scratch.write("choices.jsonl", &text);
    scratch.run(&["import", &path_str(&path)]).success();
}

/// The rule's answer for each profile row with a valid id.
fn model_kept(
    policies: &PolicyHistory,
    events: &[Event],
    profiles: &[Profile],
    cutoff: i64,
) -> Vec<u64> {
    let purpose = Purpose::new(PURPOSE).unwrap();
    let mut history: BTreeMap<u64, Vec<ExplicitChoice>> = BTreeMap::new();
    for (index, event) in events.iter().enumerate() {
        if event.purpose == PURPOSE {
            history
                .entry(event.member)
                .or_default()
                .push(ExplicitChoice {
                    allowed: event.allowed,
                    at: Timestamp::from_micros(event.at_us),
                    position: LedgerPosition(index as u64 + 2),
                });
        }
    }
    let mut kept: Vec<u64> = profiles
        .iter()
        .filter_map(|row| {
            let id = row.id?;
            let jurisdiction = row.country.and_then(|code| Jurisdiction::parse(code).ok());
            let choices = history.get(&id).map_or(&[][..], Vec::as_slice);
            decide_from_history(
                policies,
                &purpose,
                jurisdiction,
                Timestamp::from_micros(cutoff),
                choices,
            )
            .allowed
            .then_some(id)
        })
        .collect();
    kept.sort_unstable();
    kept
}

fn default_policies() -> PolicyHistory {
    PolicyHistory::from_versions([PolicyDocument::default_policy()]).unwrap()
}

const BIG: u64 = (1 << 32) + 7;
const HUGE: u64 = u64::MAX - 1;

/// The edge cases: choices exactly at and after the cutoff, flips, ids above 2^32, the
/// other purpose, defaults on both sides.
fn edge_events() -> Vec<Event> {
    let event = |member, allowed, at_us| Event {
        member,
        purpose: PURPOSE,
        allowed,
        at_us,
    };
    vec![
        event(3, true, at(2024, 1, 1)),
        event(4, false, cutoff_us()),
        event(5, false, cutoff_us() + 1),
        event(6, false, at(2024, 1, 1)),
        event(6, true, at(2024, 6, 1)),
        event(6, false, at(2025, 1, 1)),
        event(7, false, at(2024, 1, 1)),
        event(7, true, at(2025, 1, 1)),
        event(7, false, at(2025, 8, 1)),
        event(BIG, false, at(2024, 3, 1)),
        event(HUGE, true, at(2024, 3, 1)),
        Event {
            member: 13,
            purpose: "ai_personalization",
            allowed: false,
            at_us: at(2024, 1, 1),
        },
    ]
}

fn edge_profiles() -> Vec<Profile> {
    vec![
        profile(1, "US"),
        profile(2, "DE"),
        profile(3, "DE"),
        profile(4, "US"),
        profile(5, "US"),
        profile(6, "US"),
        profile(7, "US"),
        profile(BIG, "US"),
        profile((1 << 40) + 1, "BR"),
        profile(HUGE, "FR"),
        Profile {
            id: None,
            country: Some("US"),
        },
        Profile {
            id: Some(10),
            country: None,
        },
        profile(11, "XX"),
        profile(12, "us"),
        profile(13, "US"),
        profile(1, "US"),
    ]
}

fn gate(scratch: &Scratch, input: &Path, output: &Path, extra: &[&str]) -> Run {
    let mut args = vec![
        "gate",
        "--purpose",
        PURPOSE,
        "--cutoff",
        CUTOFF,
        "--fields",
        FIELDS,
    ];
    let input = path_str(input);
    let output = path_str(output);
    args.extend(["--input", &input, "--output", &output]);
    args.extend_from_slice(extra);
    scratch.run(&args)
}

fn verify(scratch: &Scratch, extra: &[&str]) -> Run {
    let mut args = vec!["verify", "--purpose", PURPOSE, "--cutoff", CUTOFF];
    args.extend_from_slice(extra);
    scratch.run(&args)
}

// ---------------------------------------------------------------------------------------
// Gate
// ---------------------------------------------------------------------------------------

// Proves the kept rows are exactly the rule's answer on every edge case, each drop is
// counted under its reason, only id + fields are written with ZSTD, the manifest is
// signed by the data directory's key, and the dataset event is in the ledger export.
#[test]
fn gate_keeps_exactly_the_members_the_rule_allows() {
    let scratch = Scratch::initialized();
    let events = edge_events();
    import_events(&scratch, &events);
    let profiles = edge_profiles();
    let input = scratch.file("profiles.parquet");
    write_profiles(&input, &profiles, 4);
    let output = scratch.file("dataset");

    let summary = gate(&scratch, &input, &output, &[]).success().json();

    let (ids, columns) = read_dataset(&output);
    let expected = model_kept(&default_policies(), &events, &profiles, cutoff_us());
    assert_eq!(ids, expected);
    assert_eq!(ids, vec![1, 1, 3, 5, 7, 12, 13, (1 << 40) + 1, HUGE]);
    assert_eq!(columns, ["member_id", "headline", "skills", "experience"]);
    let counts = &summary["counts"];
    assert_eq!(counts["rows_in"], 16);
    assert_eq!(counts["rows_kept"], 9);
    assert_eq!(counts["duplicate_rows_kept"], 1);
    let dropped = &counts["dropped"];
    assert_eq!(dropped["explicit_opt_out"], 3, "{summary}"); // 4 at the cutoff, 6, BIG
    assert_eq!(dropped["not_opted_in"], 1); // 2 (DE, no choice)
    assert_eq!(dropped["invalid_id"], 1);
    assert_eq!(dropped["missing_or_unknown_jurisdiction"], 2); // null, XX
    assert_eq!(summary["members_included"]["members"], 8);

    let (manifest, sha256) = DatasetManifest::read(&output.join("manifest.json")).unwrap();
    let key = fs::read_to_string(scratch.public_key_file()).unwrap();
    manifest
        .verify_signature(Some(&key.trim().parse().unwrap()))
        .unwrap();
    assert_eq!(manifest.fields, ["headline", "skills", "experience"]);
    assert_eq!(manifest.counts.rows_kept, 9);
    assert_eq!(manifest.inputs.len(), 1);
    assert_eq!(
        manifest.inputs[0].bytes,
        fs::metadata(&input).unwrap().len()
    );
    assert_eq!(manifest.snapshot.position.get(), events.len() as u64 + 1);
    let mut tampered = manifest.clone();
    tampered.counts.rows_kept += 1;
    assert!(tampered.verify_signature(None).is_err());

    let datasets: Vec<Value> = scratch
        .exported_lines()
        .into_iter()
        .filter(|line| line["event"]["kind"] == "dataset")
        .collect();
    assert_eq!(datasets.len(), 1, "{datasets:?}");
    let event = &datasets[0]["event"];
    assert_eq!(event["manifest_sha256"], sha256.as_str());
    assert_eq!(event["dataset_id"], manifest.dataset_id.as_str());
    assert_eq!(event["rows_written"], 9);
    assert_eq!(event["members_included"], 8);
    assert_eq!(summary["ledger_position"], datasets[0]["position"]);

    verify(
        &scratch,
        &["--manifest", &path_str(&output.join("manifest.json"))],
    )
    .success();
}

// Proves a row group larger than a worker's share is split into slices that together
// hold every row exactly once, over several files and row groups, on two threads.
#[test]
fn gate_splits_row_groups_across_workers_without_losing_or_repeating_rows() {
    let scratch = Scratch::initialized();
    let events: Vec<Event> = (0..3_000u64)
        .map(|member| Event {
            member: member * 97 + 1,
            purpose: PURPOSE,
            allowed: member % 3 == 0,
            at_us: at(2024, 2, 1) + member as i64,
        })
        .collect();
    import_events(&scratch, &events);
    let countries = ["US", "DE", "IN", "FR", "BR"];
    let all: Vec<Profile> = (1..=300_000u64)
        .map(|id| profile(id, countries[(id % 5) as usize]))
        .collect();
    let inputs = scratch.file("inputs");
    fs::create_dir(&inputs).unwrap();
    write_profiles(&inputs.join("a.parquet"), &all[..200_000], 200_000);
    write_profiles(&inputs.join("b.parquet"), &all[200_000..], 30_000);
    let output = scratch.file("dataset");
    gate(&scratch, &inputs, &output, &["--threads", "2"]).success();
    let (ids, _) = read_dataset(&output);
    assert_eq!(
        ids,
        model_kept(&default_policies(), &events, &all, cutoff_us())
    );
    // The headlines are all distinct (their dictionary abandoned), so they are read
    // straight from the pages of each slice: each still sits beside its own id.
    let rows = read_headlines(&output);
    assert_eq!(rows.len(), ids.len());
    for (id, text) in rows {
        assert_eq!(text, Some(headline(Some(id))), "member {id}");
    }
    // So are the skills (few distinct: a dictionary in every row group).
    let rows = read_skills(&output);
    assert_eq!(rows.len(), ids.len());
    for (id, skills) in rows {
        assert_eq!(
            skills,
            ["rust".to_string(), format!("skill-{}", id % 7)],
            "member {id}"
        );
    }
}

// Proves a jurisdiction excluded by a later policy version drops even members who opted
// in, counted as excluded_jurisdiction.
#[test]
fn gate_drops_excluded_jurisdiction_under_the_policy_in_force() {
    let scratch = Scratch::initialized();
    let policy = PolicyDocument::default_policy().text.replace(
        "version = 1\neffective_from = \"2023-10-16T00:00:00Z\"",
        "version = 2\neffective_from = \"2024-01-01T00:00:00Z\"",
    )
        + "\n[[purposes.ai_training.rules]]\njurisdictions = [\"CN\"]\nmode = \"excluded\"\n";
    let file = scratch.write("v2.toml", &policy);
    scratch.run(&["policy", "load", &path_str(&file)]).success();
    let events = vec![Event {
        member: 21,
        purpose: PURPOSE,
        allowed: true,
        at_us: at(2024, 3, 1),
    }];
    import_events(&scratch, &events);
    let profiles = vec![profile(21, "CN"), profile(22, "CN"), profile(23, "US")];
    let input = scratch.file("p.parquet");
    write_profiles(&input, &profiles, 10);
    let output = scratch.file("dataset");
    let summary = gate(&scratch, &input, &output, &[]).success().json();
    assert_eq!(read_dataset(&output).0, vec![23]);
    assert_eq!(summary["counts"]["dropped"]["excluded_jurisdiction"], 2);
    assert_eq!(summary["snapshot"]["policy_version"], 2);
}

// Proves a cutoff before the opt-out deadline keeps only explicit opt-ins there, counts
// the rest as before_deadline, and says so in the summary and on stderr.
#[test]
fn gate_before_the_deadline_keeps_only_opt_ins_and_says_so() {
    let scratch = Scratch::initialized();
    let events = vec![Event {
        member: 31,
        purpose: PURPOSE,
        allowed: true,
        at_us: micros(2023, 10, 18, 0, 0, 0),
    }];
    import_events(&scratch, &events);
    let profiles = vec![profile(31, "US"), profile(32, "US")];
    let input = scratch.file("p.parquet");
    write_profiles(&input, &profiles, 10);
    let output = scratch.file("dataset");
    let run = scratch.run(&[
        "gate",
        "--purpose",
        PURPOSE,
        "--cutoff",
        "2023-10-20T00:00:00Z",
        "--input",
        &path_str(&input),
        "--output",
        &path_str(&output),
    ]);
    let run = run.success();
    run.stderr_has("before the opt-out deadline");
    let summary = run.json();
    assert_eq!(read_dataset(&output).0, vec![31]);
    assert_eq!(summary["counts"]["dropped"]["before_deadline"], 1);
    assert_eq!(summary["before_deadline"][0]["jurisdictions"], "default");
}

#[test]
fn gate_writes_and_reads_json_lines() {
    let scratch = Scratch::initialized();
    let events = edge_events();
    import_events(&scratch, &events);
    let profiles = edge_profiles();
    let mut text = String::new();
    for row in &profiles {
        let line = json!({
            "member_id": row.id, "country": row.country,
            "headline": headline(row.id), "skills": ["rust"], "email": "private@example.com"
        });
        text.push_str(&format!("{line}\n"));
    }
    let input = scratch.write("profiles.jsonl", &text);
    let output = scratch.file("dataset");
    let summary = gate(&scratch, &input, &output, &[]).success().json();
    let mut ids = Vec::new();
    for entry in fs::read_dir(&output).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            for line in fs::read_to_string(&path).unwrap().lines() {
                let row: Value = serde_json::from_str(line).unwrap();
                let keys: Vec<&String> = row.as_object().unwrap().keys().collect();
                assert_eq!(keys, ["experience", "headline", "member_id", "skills"]);
                ids.push(row["member_id"].as_u64().unwrap());
            }
        }
    }
    ids.sort_unstable();
    assert_eq!(
        ids,
        model_kept(&default_policies(), &events, &profiles, cutoff_us())
    );
    assert_eq!(summary["counts"]["dropped"]["invalid_id"], 1);
    verify(
        &scratch,
        &["--manifest", &path_str(&output.join("manifest.json"))],
    )
    .success();
}

// ---------------------------------------------------------------------------------------
// Refusals: exit 2, no output that looks complete
// ---------------------------------------------------------------------------------------

#[track_caller]
fn assert_refused(run: Run, needles: &[&str], output: &Path) {
    let run = run.exits(2);
    for needle in needles {
        run.stderr_has(needle);
    }
    assert!(
        !output.join("manifest.json").exists(),
        "a refused run left a manifest"
    );
    if output.exists() {
        let left: Vec<_> = fs::read_dir(output).unwrap().collect();
        assert!(left.is_empty(), "a refused run left {left:?}");
    }
}

#[test]
fn gate_refuses_a_field_outside_the_allow_list_before_any_work() {
    let scratch = Scratch::initialized();
    let input = scratch.file("p.parquet");
    write_profiles(&input, &[profile(1, "US")], 10);
    let output = scratch.file("dataset");
    let run = scratch.run(&[
        "gate",
        "--purpose",
        PURPOSE,
        "--cutoff",
        CUTOFF,
        "--fields",
        "headline,email",
        "--input",
        &path_str(&input),
        "--output",
        &path_str(&output),
    ]);
    assert_refused(run, &["\"email\"", "not allowed"], &output);
    assert!(!output.exists());
}

#[test]
fn gate_refuses_a_cutoff_in_the_future_and_an_unknown_purpose() {
    let scratch = Scratch::initialized();
    let input = scratch.file("p.parquet");
    write_profiles(&input, &[profile(1, "US")], 10);
    let output = scratch.file("dataset");
    let future = scratch.run(&[
        "gate",
        "--purpose",
        PURPOSE,
        "--cutoff",
        "2999-01-01T00:00:00Z",
        "--input",
        &path_str(&input),
        "--output",
        &path_str(&output),
    ]);
    assert_refused(future, &["in the future"], &output);
    let unknown = scratch.run(&[
        "gate",
        "--purpose",
        "marketing",
        "--cutoff",
        CUTOFF,
        "--input",
        &path_str(&input),
        "--output",
        &path_str(&output),
    ]);
    assert_refused(unknown, &["unknown purpose"], &output);
}

// Proves each kind of bad Parquet input is refused with an error naming the file (and the
// column where there is one), exit 2, and no complete-looking output.
#[test]
fn gate_refuses_bad_parquet_naming_file_and_column() {
    let scratch = Scratch::initialized();
    let output = scratch.file("dataset");

    let no_id = scratch.file("no_id.parquet");
    write_columns(
        &no_id,
        vec![
            ("id", Arc::new(UInt64Array::from(vec![1u64])) as ArrayRef),
            ("country", Arc::new(StringArray::from(vec!["US"]))),
            ("headline", Arc::new(StringArray::from(vec!["h"]))),
        ],
    );
    let run = gate(&scratch, &no_id, &output, &["--fields", "headline"]);
    assert_refused(run, &["no_id.parquet", "\"member_id\"", "missing"], &output);

    let text_id = scratch.file("text_id.parquet");
    write_columns(
        &text_id,
        vec![
            (
                "member_id",
                Arc::new(StringArray::from(vec!["1"])) as ArrayRef,
            ),
            ("country", Arc::new(StringArray::from(vec!["US"]))),
            ("headline", Arc::new(StringArray::from(vec!["h"]))),
        ],
    );
    let run = gate(&scratch, &text_id, &output, &["--fields", "headline"]);
    assert_refused(
        run,
        &["text_id.parquet", "\"member_id\"", "has type"],
        &output,
    );

    let good = scratch.file("good.parquet");
    write_profiles(
        &good,
        &(1..2000).map(|id| profile(id, "US")).collect::<Vec<_>>(),
        500,
    );
    let bytes = fs::read(&good).unwrap();
    let truncated = scratch.file("truncated.parquet");
    fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let run = gate(&scratch, &truncated, &output, &[]);
    assert_refused(run, &["truncated.parquet", "corrupt or truncated"], &output);

    // Garbage in the middle of the column data, footer intact.
    let mut damaged = bytes.clone();
    for byte in &mut damaged[100..bytes.len() / 2] {
        *byte = 0xA5;
    }
    let corrupt = scratch.file("corrupt.parquet");
    fs::write(&corrupt, &damaged).unwrap();
    let run = gate(&scratch, &corrupt, &output, &[]);
    assert_refused(run, &["corrupt.parquet"], &output);

    let missing = scratch.file("nowhere.parquet");
    let run = gate(&scratch, &missing, &output, &[]);
    assert_refused(run, &["nowhere.parquet", "cannot read"], &output);

    // A string column (annotated UTF-8) holding bytes that are not UTF-8: the pages are
    // not compressed, so the bytes are patched in place.
    let marker = "valid-utf8-marker";
    let mut headlines = vec!["h".to_string(); 300];
    headlines[150] = format!("before {marker} after");
    let mut skills = ListBuilder::new(StringBuilder::new());
    for _ in 0..300 {
        skills.values().append_value("rust");
        skills.append(true);
    }
    let not_utf8 = scratch.file("not_utf8.parquet");
    write_columns(
        &not_utf8,
        vec![
            (
                "member_id",
                Arc::new(UInt64Array::from_iter_values(1..=300)) as ArrayRef,
            ),
            ("country", Arc::new(StringArray::from(vec!["US"; 300]))),
            ("headline", Arc::new(StringArray::from(headlines))),
            ("skills", Arc::new(skills.finish())),
            ("experience", Arc::new(StringArray::from(vec!["e"; 300]))),
        ],
    );
    let mut bytes = fs::read(&not_utf8).unwrap();
    let mut patched = 0;
    for start in 0..bytes.len() - marker.len() {
        if &bytes[start..start + marker.len()] == marker.as_bytes() {
            bytes[start + 5] = 0xFF;
            patched += 1;
        }
    }
    assert!(patched > 0);
    fs::write(&not_utf8, &bytes).unwrap();
    let run = gate(&scratch, &not_utf8, &output, &[]);
    assert_refused(
        run,
        &["not_utf8.parquet", "column headline", "UTF-8"],
        &output,
    );
}

// Proves free text read straight from the pages (distinct strings, so the dictionary is
// abandoned and the pages are PLAIN) is refused when not UTF-8, naming the file: bytes
// that are not UTF-8 at all, and a character cut between two strings, which together
// would be valid (each string is checked on its own, not only the page they fill).
#[test]
fn gate_refuses_free_text_that_is_not_utf8_read_from_pages() {
    let scratch = Scratch::initialized();
    let output = scratch.file("dataset");
    let rows = 3_000u64;
    let write = |path: &Path, headlines: Vec<String>| {
        let mut skills = ListBuilder::new(StringBuilder::new());
        for row in 0..rows {
            skills.values().append_value("rust");
            if row == 2_500 {
                skills.values().append_value("skill-marker");
            }
            skills.append(true);
        }
        let schema = Arc::new(Schema::new(profile_fields()));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from_iter_values(1..=rows)),
            Arc::new(StringArray::from(vec!["US"; rows as usize])),
            Arc::new(StringArray::from(headlines)),
            Arc::new(skills.finish()),
            Arc::new(StringArray::from(vec!["e"; rows as usize])),
        ];
        // Uncompressed, so the bytes can be patched in place; a small dictionary page, so
        // the distinct headlines abandon it for PLAIN pages.
        let properties = WriterProperties::builder()
            .set_dictionary_page_size_limit(256)
            .build();
        let mut writer = ArrowWriter::try_new(
            fs::File::create(path).unwrap(),
            schema.clone(),
            Some(properties),
        )
        .unwrap();
        writer
            .write(&RecordBatch::try_new(schema, columns).unwrap())
            .unwrap();
        writer.close().unwrap();
    };
    let patch = |path: &Path, marker: &str, offset: usize, byte: u8| {
        let mut bytes = fs::read(path).unwrap();
        let at = bytes
            .windows(marker.len())
            .position(|window| window == marker.as_bytes())
            .unwrap();
        bytes[at + offset] = byte;
        fs::write(path, &bytes).unwrap();
    };
    let mut headlines: Vec<String> = (0..rows).map(|row| format!("headline {row}")).collect();
    headlines[2_000] = "first-marker-X".into();
    headlines[2_001] = "Ysecond-marker".into();
    headlines[2_500] = "third-marker".into();

    // Clean, the file passes, every row kept, the headlines as written.
    let clean = scratch.file("clean.parquet");
    write(&clean, headlines.clone());
    gate(&scratch, &clean, &output, &[]).success();
    let kept = read_headlines(&output);
    assert_eq!(kept.len(), rows as usize);
    for (id, headline) in kept {
        assert_eq!(
            headline.as_deref(),
            Some(headlines[id as usize - 1].as_str())
        );
    }
    fs::remove_dir_all(&output).unwrap();

    let not_utf8 = scratch.file("not_utf8.parquet");
    write(&not_utf8, headlines.clone());
    patch(&not_utf8, "third-marker", 3, 0xFF);
    let run = gate(&scratch, &not_utf8, &output, &[]);
    assert_refused(run, &["not_utf8.parquet", "headline", "UTF-8"], &output);

    // "…\xC3" then "\xA9…": together "é", each alone not UTF-8.
    let cut = scratch.file("cut_character.parquet");
    write(&cut, headlines.clone());
    patch(&cut, "first-marker-X", 13, 0xC3);
    patch(&cut, "Ysecond-marker", 0, 0xA9);
    let run = gate(&scratch, &cut, &output, &[]);
    assert_refused(
        run,
        &["cut_character.parquet", "headline", "UTF-8"],
        &output,
    );

    // A list's string, in its dictionary page, read through the Arrow reader (whose own
    // message does not name the column): refused too, naming it.
    let skill = scratch.file("not_utf8_skill.parquet");
    write(&skill, headlines);
    patch(&skill, "skill-marker", 2, 0xFF);
    let run = gate(&scratch, &skill, &output, &[]);
    assert_refused(
        run,
        &["not_utf8_skill.parquet", "column skills", "UTF-8"],
        &output,
    );
}

// Proves a failure of the machine while reading (an I/O error, here EIO from reading
// /proc/self/mem through a `.jsonl` link) is a runtime error (exit 1), not the caller's
// bad input (exit 2), and leaves no output.
#[cfg(target_os = "linux")]
#[test]
fn gate_reports_an_io_error_as_a_runtime_failure() {
    let scratch = Scratch::initialized();
    let input = scratch.file("profiles.jsonl");
    std::os::unix::fs::symlink("/proc/self/mem", &input).unwrap();
    let output = scratch.file("dataset");
    let run = gate(&scratch, &input, &output, &[]).exits(1);
    run.stderr_has("cannot read");
    run.stderr_has("profiles.jsonl");
    assert!(!output.exists(), "a failed run left {output:?}");
}

#[test]
fn gate_strict_fails_on_a_null_id_and_a_duplicate_member() {
    let scratch = Scratch::initialized();
    let output = scratch.file("dataset");
    let null_id = scratch.file("null.parquet");
    write_profiles(
        &null_id,
        &[
            profile(1, "US"),
            Profile {
                id: None,
                country: Some("US"),
            },
        ],
        10,
    );
    let run = gate(&scratch, &null_id, &output, &["--strict"]);
    assert_refused(run, &["--strict", "null.parquet", "row 2"], &output);
    let duplicate = scratch.file("duplicate.parquet");
    write_profiles(&duplicate, &[profile(1, "US"), profile(1, "US")], 10);
    let run = gate(&scratch, &duplicate, &output, &["--strict"]);
    assert_refused(run, &["--strict", "duplicate"], &output);
    gate(&scratch, &duplicate, &output, &[]).success();
}

// ---------------------------------------------------------------------------------------
// Verify
// ---------------------------------------------------------------------------------------

// Proves verify fails (exit 1) on a dataset built elsewhere that holds an opted-out
// member, naming the count and the id, and on one with a column outside the allow-list;
// and that a dataset without jurisdictions needs --jurisdictions or --explicit-only.
#[test]
fn verify_fails_on_an_opted_out_member_and_on_an_extra_column() {
    let scratch = Scratch::initialized();
    let events = edge_events();
    import_events(&scratch, &events);
    let profiles = edge_profiles();
    let source = scratch.file("profiles.parquet");
    write_profiles(&source, &profiles, 100);
    let jurisdictions = path_str(&source);

    let clean = scratch.file("clean.parquet");
    write_columns(
        &clean,
        vec![
            (
                "member_id",
                Arc::new(UInt64Array::from(vec![1u64, 3, 5])) as ArrayRef,
            ),
            ("headline", Arc::new(StringArray::from(vec!["a", "b", "c"]))),
        ],
    );
    verify(
        &scratch,
        &["--jurisdictions", &jurisdictions, &path_str(&clean)],
    )
    .success();
    let unplaced = verify(&scratch, &[&path_str(&clean)]).exits(1);
    unplaced.stderr_has("jurisdiction is unknown");
    verify(&scratch, &["--explicit-only", &path_str(&clean)]).success();

    let leaked = scratch.file("leaked.parquet");
    write_columns(
        &leaked,
        vec![
            (
                "member_id",
                Arc::new(UInt64Array::from(vec![1u64, 6, 2])) as ArrayRef,
            ),
            ("headline", Arc::new(StringArray::from(vec!["a", "b", "c"]))),
        ],
    );
    let run = verify(
        &scratch,
        &["--jurisdictions", &jurisdictions, &path_str(&leaked)],
    )
    .exits(1);
    run.stderr_has("2 rows").stderr_has("6");
    let report = run.json();
    assert_eq!(report["violating_rows"], 2);
    assert_eq!(report["violations"]["explicit_opt_out"], 1);
    assert_eq!(report["violations"]["not_opted_in"], 1);
    // Without jurisdictions an explicit opt-out is still caught.
    let run = verify(&scratch, &["--explicit-only", &path_str(&leaked)]).exits(1);
    assert_eq!(run.json()["sample_ids"], json!(["6"]));

    let extra = scratch.file("extra.parquet");
    write_columns(
        &extra,
        vec![
            (
                "member_id",
                Arc::new(UInt64Array::from(vec![1u64])) as ArrayRef,
            ),
            ("email", Arc::new(StringArray::from(vec!["m1@example.com"]))),
        ],
    );
    let run = verify(
        &scratch,
        &["--jurisdictions", &jurisdictions, &path_str(&extra)],
    )
    .exits(1);
    run.stderr_has("email");
}

// Proves a changed output file or a foreign manifest fails verification, and that
// --since-cutoff lists exactly the included members who opted out after the cutoff.
#[test]
fn verify_checks_manifest_digests_and_lists_later_opt_outs() {
    let scratch = Scratch::initialized();
    let events = edge_events();
    import_events(&scratch, &events);
    let profiles = edge_profiles();
    let input = scratch.file("profiles.parquet");
    write_profiles(&input, &profiles, 100);
    let output = scratch.file("dataset");
    gate(&scratch, &input, &output, &[]).success();
    let manifest = path_str(&output.join("manifest.json"));

    scratch.choose("13", PURPOSE, false);
    let list = scratch.file("retract.txt");
    verify(
        &scratch,
        &["--manifest", &manifest, "--since-cutoff", &path_str(&list)],
    )
    .success();
    // 5 and 7 opted out after the cutoff in the imported history, 13 just now.
    assert_eq!(fs::read_to_string(&list).unwrap(), "5\n7\n13\n");

    // Another data directory's key did not sign this manifest.
    let other = Scratch::initialized();
    let run = verify(&other, &["--manifest", &manifest]);
    let _ = run.exits(1);

    let part = parquet_files(&output).remove(0);
    let mut bytes = fs::read(&part).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xFF;
    fs::write(&part, &bytes).unwrap();
    let run = verify(&scratch, &["--manifest", &manifest, &path_str(&output)]);
    run.exits(1).stderr_has("differs from the manifest");
}
