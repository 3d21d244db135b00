//! The demo's profile data: one Parquet file with a row per member, shaped like what a
//! training-data pipeline reads (the id, the country, public profile text, and a private
//! field that no purpose allows), for the gate to turn into a sample training dataset.

use std::fs::{self, File};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use arrow_array::builder::{StringBuilder, UInt64Builder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::population::{country_of, Sequence};
use crate::data_dir::{sync_parent, temporary_name};
use crate::exit::CliResult;
use crate::progress;

/// Rows per row group: several groups per file, so the gate's workers share the work.
const ROWS_PER_GROUP: u64 = 250_000;

/// One member in this many has no country on file (the gate drops and counts the row).
const MISSING_COUNTRY_ONE_IN: u64 = 500;

const TITLES: [&str; 12] = [
    "Software Engineer",
    "Data Scientist",
    "Product Manager",
    "Registered Nurse",
    "Teacher",
    "Sales Manager",
    "Accountant",
    "UX Designer",
    "Recruiter",
    "Mechanical Engineer",
    "Marketing Lead",
    "Operations Analyst",
];
const COMPANIES: [&str; 8] = [
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Vandelay Industries",
    "Stark Industries",
    "Soylent",
];
const SKILLS: [&str; 16] = [
    "Rust",
    "SQL",
    "Python",
    "Leadership",
    "Negotiation",
    "Figma",
    "Excel",
    "Kubernetes",
    "Patient care",
    "Curriculum design",
    "CAD",
    "Forecasting",
    "Spark",
    "Public speaking",
    "Recruiting",
    "Statistics",
];

/// Writes `path` (a temporary name first, renamed when complete) with `members` rows.
pub fn write_profiles(path: &Path, members: u64, quiet: bool) -> CliResult {
    let schema = Arc::new(Schema::new(vec![
        Field::new("member_id", DataType::UInt64, false),
        Field::new("country", DataType::Utf8, true),
        Field::new("headline", DataType::Utf8, false),
        Field::new("skills", DataType::Utf8, false),
        Field::new("experience", DataType::Utf8, false),
        Field::new("email", DataType::Utf8, false),
    ]));
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let temporary = temporary_name(path);
    let file = File::create(&temporary)
        .with_context(|| format!("cannot create {}", temporary.display()))?;
    let level = ZstdLevel::try_new(3).map_err(anyhow::Error::from)?;
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .set_max_row_group_row_count(Some(ROWS_PER_GROUP as usize))
        .build();
    let mut writer = ArrowWriter::try_new(file, Arc::clone(&schema), Some(properties))
        .map_err(anyhow::Error::from)?;
    let bar = progress::bar(Some(members), "profiles", quiet);
    bar.set_message("writing profiles");
    let mut first = 1u64;
    while first <= members {
        let last = members.min(first + ROWS_PER_GROUP - 1);
        let batch = profile_batch(&schema, first, last)?;
        writer.write(&batch).map_err(anyhow::Error::from)?;
        bar.set_position(last);
        first = last + 1;
    }
    let file = writer.into_inner().map_err(anyhow::Error::from)?;
    file.sync_all().map_err(anyhow::Error::from)?;
    drop(file);
    bar.finish_and_clear();
    fs::rename(&temporary, path).with_context(|| format!("cannot rename to {}", path.display()))?;
    sync_parent(path);
    Ok(())
}

/// Members `first..=last`, each with a profile that depends only on their id.
fn profile_batch(schema: &Arc<Schema>, first: u64, last: u64) -> CliResult<RecordBatch> {
    let rows = (last - first + 1) as usize;
    let mut ids = UInt64Builder::with_capacity(rows);
    let mut countries = StringBuilder::with_capacity(rows, rows * 2);
    let mut headlines = StringBuilder::with_capacity(rows, rows * 32);
    let mut skills = StringBuilder::with_capacity(rows, rows * 32);
    let mut experience = StringBuilder::with_capacity(rows, rows * 40);
    let mut emails = StringBuilder::with_capacity(rows, rows * 28);
    for member in first..=last {
        let mut random = Sequence(member.wrapping_mul(0x2545_F491_4F6C_DD1D));
        ids.append_value(member);
        if random.below(MISSING_COUNTRY_ONE_IN) == 0 {
            countries.append_null();
        } else {
            countries.append_value(country_of(member).as_str());
        }
        let title = pick(&TITLES, &mut random);
        let company = pick(&COMPANIES, &mut random);
        headlines.append_value(format!("{title} at {company}"));
        skills.append_value(format!(
            "{}, {}, {}",
            pick(&SKILLS, &mut random),
            pick(&SKILLS, &mut random),
            pick(&SKILLS, &mut random)
        ));
        experience.append_value(format!(
            "{} years as {title}; previously at {}",
            1 + random.below(25),
            pick(&COMPANIES, &mut random)
        ));
        emails.append_value(format!("member{member}@example.com"));
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(ids.finish()),
        Arc::new(countries.finish()),
        Arc::new(headlines.finish()),
        Arc::new(skills.finish()),
        Arc::new(experience.finish()),
        Arc::new(emails.finish()),
    ];
    Ok(RecordBatch::try_new(Arc::clone(schema), columns).map_err(anyhow::Error::from)?)
}

fn pick<'a>(choices: &[&'a str], random: &mut Sequence) -> &'a str {
    let index = random.below(choices.len() as u64) as usize;
    choices.get(index).copied().unwrap_or_default()
}
