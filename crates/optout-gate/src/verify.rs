//! Verifying a dataset, whoever built it (the gate, Spark, DuckDB, a hand-written job):
//! every row's member must be allowed as of the cutoff, and no column may be outside the
//! purpose's allow-list besides the id.
//!
//! A training dataset usually carries no jurisdiction, so each member's comes from the
//! dataset's own jurisdiction column when it has one, else from a jurisdiction table
//! (`--jurisdictions`: Parquet, CSV or JSON Lines with the id and jurisdiction columns,
//! e.g. the gate's own input). A row that cannot be placed is still checked for what can
//! be checked without a jurisdiction (an explicit opt-out is a violation anywhere) and is
//! counted as unplaced. With a manifest, the manifest's signature and the digests of the
//! files it lists are checked too.

use std::path::{Path, PathBuf};

use arrow_array::{RecordBatch, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use roaring::RoaringTreemap;
use serde_json::Value;

use crate::columns::{for_each_id, JurisdictionColumn};
use crate::consent_filter::{slot_of_text, ConsentFilter, MISSING_JURISDICTION};
use crate::error::GateError;
use crate::gate::BATCH_ROWS;
use crate::input::{digest_file, expand_inputs, FileFormat, InputFile};
use crate::json_lines::{json_id, read_rows};
use crate::manifest::DatasetManifest;
use crate::member_set::MemberSet;
use crate::outcome::{RowCounts, Verdict};
use crate::parquet_source::{NeededColumns, ParquetInput};

/// Ids of violating rows shown in a report.
pub const SAMPLE_IDS_MAX: usize = 10;

#[derive(Clone, Debug)]
pub struct VerifyRequest {
    pub paths: Vec<PathBuf>,
    pub id_column: String,
    pub jurisdiction_column: String,
    pub jurisdictions: Vec<PathBuf>,
    /// The purpose's allowed fields at the cutoff.
    pub allowed_fields: Vec<String>,
}

#[derive(Debug, Default)]
pub struct VerifyReport {
    pub files: Vec<String>,
    pub rows: u64,
    /// Violating rows by verdict (`Verdict::Keep` stays zero).
    pub violations: RowCounts,
    /// Rows without a jurisdiction and without an explicit opt-out: not fully checkable.
    pub unplaced_rows: u64,
    /// `file: column` for each column outside the allow-list.
    pub columns_outside_allow_list: Vec<String>,
    /// Ids of the first violating rows (`null` for a missing id).
    pub sample_ids: Vec<String>,
    /// Every valid member id in the dataset.
    pub members: RoaringTreemap,
    /// `members` while the run is collecting them.
    seen: MemberSet,
}

impl VerifyReport {
    pub fn violating_rows(&self) -> u64 {
        self.violations.rows_in()
    }

    fn violation(&mut self, verdict: Verdict, id: Option<u64>) {
        self.violations.add(verdict, 1);
        if self.sample_ids.len() < SAMPLE_IDS_MAX {
            self.sample_ids
                .push(id.map_or_else(|| "null".to_string(), |id| id.to_string()));
        }
    }
}

/// Member → jurisdiction slot, sorted by member for binary search.
#[derive(Default)]
pub struct JurisdictionTable {
    entries: Vec<(u64, u16)>,
}

impl JurisdictionTable {
    pub fn load(
        paths: &[PathBuf],
        id_column: &str,
        jurisdiction_column: &str,
    ) -> Result<JurisdictionTable, GateError> {
        let mut entries = Vec::new();
        for path in paths {
            let is_csv = path
                .extension()
                .and_then(|extension| extension.to_str())
                .is_some_and(|extension| extension.eq_ignore_ascii_case("csv"));
            if is_csv {
                load_csv(path, id_column, jurisdiction_column, &mut entries)?;
                continue;
            }
            for file in expand_inputs(std::slice::from_ref(path))? {
                match file.format {
                    FileFormat::Parquet => {
                        load_parquet(&file, id_column, jurisdiction_column, &mut entries)?
                    }
                    FileFormat::JsonLines => {
                        read_rows(&file.path, |row| {
                            let id = json_id(row.object.get(id_column));
                            if let (Some(id), Some(Value::String(text))) =
                                (id, row.object.get(jurisdiction_column))
                            {
                                entries.push((id, slot_of_text(text)));
                            }
                            Ok(())
                        })?;
                    }
                }
            }
        }
        // An unusable code places nobody; of several usable codes for one member, the first
        // one read wins (a stable sort keeps file order among equal ids).
        entries.retain(|(_, slot)| *slot != MISSING_JURISDICTION);
        entries.sort_by_key(|(id, _)| *id);
        entries.dedup_by_key(|(id, _)| *id);
        Ok(JurisdictionTable { entries })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, id: u64) -> Option<u16> {
        self.entries
            .binary_search_by_key(&id, |(member, _)| *member)
            .ok()
            .and_then(|index| self.entries.get(index))
            .map(|(_, slot)| *slot)
            .filter(|slot| *slot != MISSING_JURISDICTION)
    }
}

fn load_parquet(
    file: &InputFile,
    id_column: &str,
    jurisdiction_column: &str,
    entries: &mut Vec<(u64, u16)>,
) -> Result<(), GateError> {
    let needed = NeededColumns {
        id: id_column,
        jurisdiction: Some((jurisdiction_column, true)),
        fields: &[],
    };
    let input = ParquetInput::open(file, &needed)?;
    for (row_group, rows) in input.row_group_rows.iter().copied().enumerate() {
        for batch in input.reader(row_group, 0, rows, BATCH_ROWS, &[])? {
            let batch = batch.map_err(|error| input.read_error(row_group, 0, rows, &[], error))?;
            let ids = batch.column_by_name(id_column).ok_or_else(|| {
                GateError::schema(&file.path, id_column, "is missing from a batch")
            })?;
            let codes = batch.column_by_name(jurisdiction_column).ok_or_else(|| {
                GateError::schema(&file.path, jurisdiction_column, "is missing from a batch")
            })?;
            let codes = JurisdictionColumn::new(codes.as_ref()).ok_or_else(|| {
                GateError::schema(&file.path, jurisdiction_column, "is not a string column")
            })?;
            for_each_id(ids.as_ref(), |row, id| {
                if let Some(id) = id {
                    entries.push((id, codes.slot(row)));
                }
            });
        }
    }
    Ok(())
}

fn load_csv(
    path: &Path,
    id_column: &str,
    jurisdiction_column: &str,
    entries: &mut Vec<(u64, u16)>,
) -> Result<(), GateError> {
    let corrupt = |reason: String| GateError::Corrupt {
        path: path.to_path_buf(),
        format: "CSV",
        reason,
    };
    let mut reader = csv::Reader::from_path(path).map_err(|error| corrupt(error.to_string()))?;
    let headers = reader
        .headers()
        .map_err(|error| corrupt(error.to_string()))?
        .clone();
    let position = |name: &str| {
        headers
            .iter()
            .position(|header| header == name)
            .ok_or_else(|| GateError::schema(path, name, "is missing from the CSV header"))
    };
    let (id_at, jurisdiction_at) = (position(id_column)?, position(jurisdiction_column)?);
    for record in reader.records() {
        let record = record.map_err(|error| corrupt(error.to_string()))?;
        let id = record
            .get(id_at)
            .and_then(|text| text.trim().parse::<u64>().ok());
        if let (Some(id), Some(code)) = (id, record.get(jurisdiction_at)) {
            entries.push((id, slot_of_text(code)));
        }
    }
    Ok(())
}

/// Checks every row of the dataset at `request.paths`.
pub fn verify_dataset(
    filter: &ConsentFilter<'_>,
    table: &JurisdictionTable,
    request: &VerifyRequest,
    progress: &dyn Fn(u64),
) -> Result<VerifyReport, GateError> {
    let files = expand_inputs(&request.paths)?;
    let mut report = VerifyReport::default();
    for file in &files {
        report.files.push(file.path.display().to_string());
        match file.format {
            FileFormat::Parquet => {
                verify_parquet(filter, table, request, file, &mut report, progress)?
            }
            FileFormat::JsonLines => {
                verify_json_lines(filter, table, request, file, &mut report, progress)?
            }
        }
    }
    report.columns_outside_allow_list.dedup();
    report.members = std::mem::take(&mut report.seen).into_treemap();
    Ok(report)
}

fn allowed_column(request: &VerifyRequest, name: &str) -> bool {
    name == request.id_column || request.allowed_fields.iter().any(|field| field == name)
}

/// The check of one row, given its id and its jurisdiction slot in the dataset (if any).
fn check_row(
    filter: &ConsentFilter<'_>,
    table: &JurisdictionTable,
    report: &mut VerifyReport,
    id: Option<u64>,
    dataset_slot: u16,
) {
    report.rows += 1;
    let Some(id) = id else {
        report.violation(Verdict::InvalidId, None);
        return;
    };
    report.seen.insert(id);
    let state = filter.explicit_state(id);
    let slot = if dataset_slot != MISSING_JURISDICTION {
        Some(dataset_slot)
    } else {
        table.get(id)
    };
    match slot {
        Some(slot) => {
            let verdict = filter.verdict_for_state(slot, state);
            if verdict != Verdict::Keep {
                report.violation(verdict, Some(id));
            }
        }
        // ExplicitState::Denied: an opt-out is a violation in every jurisdiction.
        None if state == 2 => report.violation(Verdict::ExplicitOptOut, Some(id)),
        None => report.unplaced_rows += 1,
    }
}

fn verify_parquet(
    filter: &ConsentFilter<'_>,
    table: &JurisdictionTable,
    request: &VerifyRequest,
    file: &InputFile,
    report: &mut VerifyReport,
    progress: &dyn Fn(u64),
) -> Result<(), GateError> {
    let needed = NeededColumns {
        id: &request.id_column,
        jurisdiction: Some((&request.jurisdiction_column, false)),
        fields: &[],
    };
    let input = ParquetInput::open(file, &needed)?;
    for name in input.column_names() {
        if !allowed_column(request, &name) {
            report
                .columns_outside_allow_list
                .push(format!("{}: {name}", file.path.display()));
        }
    }
    for (row_group, rows) in input.row_group_rows.iter().copied().enumerate() {
        for batch in input.reader(row_group, 0, rows, BATCH_ROWS, &[])? {
            let batch = batch.map_err(|error| input.read_error(row_group, 0, rows, &[], error))?;
            let ids = batch.column_by_name(&request.id_column).ok_or_else(|| {
                GateError::schema(&file.path, &request.id_column, "is missing from a batch")
            })?;
            let jurisdictions = match batch.column_by_name(&request.jurisdiction_column) {
                Some(column) => {
                    Some(JurisdictionColumn::new(column.as_ref()).ok_or_else(|| {
                        GateError::schema(
                            &file.path,
                            &request.jurisdiction_column,
                            "is not a string column",
                        )
                    })?)
                }
                None => None,
            };
            for_each_id(ids.as_ref(), |row, id| {
                let slot = jurisdictions
                    .as_ref()
                    .map_or(MISSING_JURISDICTION, |column| column.slot(row));
                check_row(filter, table, report, id, slot);
            });
            progress(batch.num_rows() as u64);
        }
    }
    Ok(())
}

fn verify_json_lines(
    filter: &ConsentFilter<'_>,
    table: &JurisdictionTable,
    request: &VerifyRequest,
    file: &InputFile,
    report: &mut VerifyReport,
    progress: &dyn Fn(u64),
) -> Result<(), GateError> {
    let mut outside = std::collections::BTreeSet::new();
    read_rows(&file.path, |row| {
        for key in row.object.keys() {
            if !allowed_column(request, key) && !outside.contains(key) {
                outside.insert(key.clone());
            }
        }
        let id = json_id(row.object.get(&request.id_column));
        let slot = match row.object.get(&request.jurisdiction_column) {
            Some(Value::String(text)) => slot_of_text(text),
            _ => MISSING_JURISDICTION,
        };
        check_row(filter, table, report, id, slot);
        progress(1);
        Ok(())
    })?;
    for key in outside {
        report
            .columns_outside_allow_list
            .push(format!("{}: {key}", file.path.display()));
    }
    Ok(())
}

/// Problems found checking a manifest against the files beside it.
pub fn check_manifest_files(manifest: &DatasetManifest, directory: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let mut expect = |name: &str, sha256: &str| match digest_file(&directory.join(name)) {
        Ok((_, actual)) if actual == sha256 => {}
        Ok((_, actual)) => problems.push(format!(
            "{name}: SHA-256 {actual} differs from the manifest's {sha256}"
        )),
        Err(error) => problems.push(format!("{name}: cannot read: {error}")),
    };
    for output in &manifest.outputs {
        expect(&output.name, &output.sha256);
    }
    expect(&manifest.members.name, &manifest.members.sha256);
    problems
}

/// Writes member ids as Parquet (one UInt64 `member_id` column, ZSTD, as the index's
/// snapshot export writes them) when the path ends in `.parquet`, else as text, one id a
/// line. The list is written under a temporary name beside `path` and renamed over it
/// only when complete and synced, so a half-written list never looks complete.
pub fn write_member_list(path: &Path, members: &RoaringTreemap) -> Result<(), GateError> {
    let name = path
        .file_name()
        .ok_or_else(|| GateError::Usage(format!("{} names no file", path.display())))?;
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let temporary = crate::output::temporary_path(directory, &name.to_string_lossy());
    let parquet = FileFormat::from_path(path) == Some(FileFormat::Parquet);
    let written = write_member_file(&temporary, members, parquet).and_then(|()| {
        std::fs::rename(&temporary, path).map_err(|error| GateError::Write {
            path: path.to_path_buf(),
            error,
        })
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

fn write_member_file(
    path: &Path,
    members: &RoaringTreemap,
    parquet: bool,
) -> Result<(), GateError> {
    let io = |error| GateError::Write {
        path: path.to_path_buf(),
        error,
    };
    let file = std::fs::File::create(path).map_err(io)?;
    let file = if parquet {
        write_member_parquet(file, members).map_err(|reason| GateError::WriteParquet {
            path: path.to_path_buf(),
            reason,
        })?
    } else {
        use std::io::Write;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        for id in members.iter() {
            writeln!(out, "{id}").map_err(io)?;
        }
        out.into_inner().map_err(|error| io(error.into_error()))?
    };
    file.sync_all().map_err(io)
}

fn write_member_parquet(
    file: std::fs::File,
    members: &RoaringTreemap,
) -> Result<std::fs::File, String> {
    const CHUNK_IDS: usize = 1 << 20;
    let schema = std::sync::Arc::new(Schema::new(vec![Field::new(
        "member_id",
        DataType::UInt64,
        false,
    )]));
    let properties =
        crate::output::writer_properties("member_id", &[]).map_err(|error| error.to_string())?;
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema.clone(), Some(properties))
        .map_err(|error| error.to_string())?;
    let mut ids = members.iter().peekable();
    while ids.peek().is_some() {
        let chunk: Vec<u64> = ids.by_ref().take(CHUNK_IDS).collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![std::sync::Arc::new(UInt64Array::from(chunk))],
        )
        .map_err(|error| error.to_string())?;
        writer.write(&batch).map_err(|error| error.to_string())?;
    }
    writer.into_inner().map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    // A member listed with an unusable code and then a valid one is placed by the valid
    // one; of two valid codes, the first in file order wins.
    #[test]
    fn jurisdiction_table_keeps_the_first_usable_code() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("places.csv");
        std::fs::write(&path, "member_id,country\n7,??\n7,DE\n8,US\n8,FR\n").unwrap();
        let table = JurisdictionTable::load(&[path], "member_id", "country").unwrap();
        assert_eq!(table.len(), 2);
        assert_eq!(table.get(7), Some(slot_of_text("DE")));
        assert_eq!(table.get(8), Some(slot_of_text("US")));
    }

    // The retraction list appears under its name only complete: the text and Parquet
    // forms hold every id, and nothing else (no temporary) is left beside them.
    #[test]
    fn member_list_is_renamed_into_place_when_complete() {
        let dir = tempfile::tempdir().unwrap();
        let members: RoaringTreemap = [3u64, 1 << 40, 9].into_iter().collect();
        let text = dir.path().join("since.txt");
        write_member_list(&text, &members).unwrap();
        assert_eq!(
            std::fs::read_to_string(&text).unwrap(),
            "3\n9\n1099511627776\n"
        );
        let parquet = dir.path().join("since.parquet");
        write_member_list(&parquet, &members).unwrap();
        let file = std::fs::File::open(&parquet).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        let mut ids = Vec::new();
        for batch in reader {
            let batch = batch.unwrap();
            let column = batch
                .column(0)
                .as_any()
                .downcast_ref::<UInt64Array>()
                .unwrap();
            ids.extend(column.values().iter().copied());
        }
        assert_eq!(ids, vec![3, 9, 1 << 40]);
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, vec!["since.parquet", "since.txt"]);
        let missing = dir.path().join("no-such-dir").join("since.txt");
        assert!(write_member_list(&missing, &members).is_err());
        assert!(!missing.exists());
    }
}
