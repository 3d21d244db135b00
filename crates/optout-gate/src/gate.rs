//! The gate run: plan, then stream every input row through the consent filter into
//! output parts, on every core.
//!
//! `GatePlan::new` does everything that can fail on bad input before any output exists:
//! it expands the inputs, reads each Parquet footer and checks the id, jurisdiction and
//! field columns, and splits the work into units (a row group, or a slice of one when
//! there are fewer row groups than workers need or when it is among the last, so the
//! cores finish together; a JSON Lines file; a file to digest).
//! `GatePlan::run` hands the units to one worker thread per core; each worker decodes its
//! unit, decides every row through the `ConsentFilter`, writes the kept rows' id and
//! fields to its own part, and counts the rest by reason. Parts are renamed into place
//! only when every worker finished cleanly; on any failure everything written is removed.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_buffer::BooleanBuffer;
use arrow_schema::{Field, Schema, SchemaRef};
use parquet::file::properties::WriterProperties;
use roaring::RoaringTreemap;
use serde_json::Value;

use crate::column_chunk::FieldPages;
use crate::columns::{for_each_id, JurisdictionColumn};
use crate::consent_filter::{slot_of_text, ConsentFilter, MISSING_JURISDICTION};
use crate::error::GateError;
use crate::input::{expand_inputs, FileDigest, FileFormat, InputFile};
use crate::json_lines::{json_id, json_supported, read_rows, JsonRow};
use crate::manifest::InputRecord;
use crate::member_set::MemberSet;
use crate::outcome::{RowCounts, Verdict};
use crate::output::{writer_properties, PagedColumn, PartWriter, WrittenPart};
use crate::parquet_source::{NeededColumns, ParquetInput};

/// Rows per decoded batch.
pub const BATCH_ROWS: usize = 32 * 1024;
/// A row group is split only into slices of at least this many rows.
const UNIT_ROWS_MIN: usize = 64 * 1024;
/// Units per worker the planner aims for, so a slow unit does not leave a core idle.
const UNITS_PER_WORKER: usize = 2;
/// Slices each of the last row groups (one per worker) is cut into. The cores finish
/// about half a slice apart; a slice costs the decoding of the list pages before it
/// (0.2% of the samples at 10M with 4 slices, within the noise at 16). At 10M, the last
/// stretch with one core busy took 0.1-0.2 s with 4 slices, 40-100 ms with 8 and 20-60 ms
/// with 16; `UNIT_ROWS_MIN` stops the cutting there for row groups of a million rows.
const TAIL_SLICES: usize = 16;
/// Units past the one taken whose row groups a worker asks the kernel for: the next
/// one of each worker.
const PREFETCH_UNITS: usize = 2;
/// A row's code while its id is null or invalid (explicit states are 0 to 2).
const INVALID_ID_CODE: u8 = u8::MAX;

#[derive(Clone, Debug)]
pub struct GateRequest {
    pub inputs: Vec<PathBuf>,
    pub output_dir: PathBuf,
    /// Fields to keep besides the id (already checked against the allow-list).
    pub fields: Vec<String>,
    pub id_column: String,
    pub jurisdiction_column: String,
    /// Output format; default Parquet, or JSON Lines when every input is JSON Lines.
    pub format: Option<FileFormat>,
    /// Fail on a null or invalid id, a missing or unknown jurisdiction, or a duplicate
    /// member, instead of dropping and counting.
    pub strict: bool,
    pub threads: usize,
}

/// How rows are decided.
pub enum Enforcement<'f> {
    /// The consent rule, through the snapshot's filter.
    Consent(&'f ConsentFilter<'f>),
    /// Every row kept, nothing digested: our own plain copy, the lower bound the
    /// enforcement overhead is measured against.
    PlainCopy,
}

/// How far an input's digest has got.
#[derive(Default)]
enum InputDigest {
    #[default]
    NotStarted,
    Partial(FileDigest),
    Done(InputRecord),
}

#[derive(Clone, Copy, Debug)]
enum WorkUnit {
    ParquetRows {
        input: usize,
        row_group: usize,
        skip: usize,
        rows: usize,
        /// 0-based row of the file where the unit starts (for messages).
        first_row: u64,
    },
    JsonLines {
        input: usize,
    },
    Digest {
        input: usize,
    },
}

pub struct GatePlan {
    request: GateRequest,
    files: Vec<InputFile>,
    parquet: Vec<Option<ParquetInput>>,
    output_format: FileFormat,
    output_schema: SchemaRef,
    properties: WriterProperties,
    rows_total: Option<u64>,
    /// Each input's digest for the manifest, as far as it got: started beside the snapshot
    /// build ([`GatePlan::digest_inputs_until`]) and finished by the run's workers.
    input_digests: Vec<Mutex<InputDigest>>,
    /// Per input, the output fields that can be read straight from its pages (free text,
    /// lists of dictionary strings) when the part's encoder takes them.
    paged_fields: Vec<Vec<PagedField>>,
}

/// An output field read straight from an input's pages, and where it is in the input.
#[derive(Clone, Copy, Debug)]
struct PagedField {
    /// Index in the output schema.
    field: usize,
    /// Top-level column in the input.
    root: usize,
    /// Leaf column in the input.
    leaf: usize,
    kind: PagedKind,
}

/// How a [`PagedField`] is read.
#[derive(Clone, Copy, Debug)]
enum PagedKind {
    /// Free text ([`crate::text_pages`]).
    Text,
    /// A list of dictionary-encoded strings ([`crate::list_pages`]).
    Lists { list_nullable: bool },
}

impl GatePlan {
    pub fn new(request: GateRequest) -> Result<GatePlan, GateError> {
        check_output_dir(&request.output_dir)?;
        let files = expand_inputs(&request.inputs)?;
        let needed = NeededColumns {
            id: &request.id_column,
            jurisdiction: Some((&request.jurisdiction_column, true)),
            fields: &request.fields,
        };
        let mut parquet = Vec::with_capacity(files.len());
        for file in &files {
            parquet.push(match file.format {
                FileFormat::Parquet => Some(ParquetInput::open(file, &needed)?),
                FileFormat::JsonLines => None,
            });
        }
        let all_json = parquet.iter().all(Option::is_none);
        let output_format = request.format.unwrap_or(if all_json {
            FileFormat::JsonLines
        } else {
            FileFormat::Parquet
        });
        if output_format == FileFormat::Parquet && parquet.iter().any(Option::is_none) {
            return Err(GateError::Usage(
                "JSON Lines input can be written as JSON Lines only (--format jsonl)".into(),
            ));
        }
        let field_names: Vec<&str> = request.fields.iter().map(String::as_str).collect();
        let mut distinct = Vec::new();
        for input in parquet.iter().flatten() {
            for column in input.dictionary_abandoned(&field_names) {
                if !distinct.contains(&column) {
                    distinct.push(column);
                }
            }
        }
        if output_format == FileFormat::Parquet {
            // Lists of few distinct strings as dictionaries, in every input alike (the
            // output schema must be the same for all).
            let mut lists: Option<Vec<String>> = None;
            for input in parquet.iter().flatten() {
                let these = input.dictionary_string_lists(&field_names, &distinct);
                lists = Some(match lists {
                    None => these,
                    Some(known) => known
                        .into_iter()
                        .filter(|name| these.contains(name))
                        .collect(),
                });
            }
            let lists = lists.unwrap_or_default();
            for input in parquet.iter_mut().flatten() {
                input.read_as_dictionary_lists(&lists);
            }
        }
        let output_schema = output_schema(&request, &parquet, output_format)?;
        let rows_total = if all_json {
            None
        } else if parquet.iter().all(Option::is_some) {
            Some(parquet.iter().flatten().map(ParquetInput::rows).sum())
        } else {
            None
        };
        let properties = writer_properties(&request.id_column, &distinct)?;
        let input_digests = files.iter().map(|_| Mutex::default()).collect();
        let paged_fields = parquet
            .iter()
            .map(|input| match (input, output_format) {
                (Some(input), FileFormat::Parquet) => paged_fields(&request, input),
                _ => Vec::new(),
            })
            .collect();
        Ok(GatePlan {
            request,
            files,
            parquet,
            output_format,
            output_schema,
            properties,
            rows_total,
            input_digests,
            paged_fields,
        })
    }

    /// Rows to process, when every input is Parquet (known from the footers).
    pub fn rows_total(&self) -> Option<u64> {
        self.rows_total
    }

    pub fn files(&self) -> &[InputFile] {
        &self.files
    }

    pub fn output_format(&self) -> FileFormat {
        self.output_format
    }

    pub fn request(&self) -> &GateRequest {
        &self.request
    }

    /// Takes the size and SHA-256 of the inputs for the manifest, in order, on the calling
    /// thread, until `stop` is set (checked between chunks of 1 MiB). It is the one part of
    /// a run that needs no snapshot, so a caller runs it beside the snapshot build and
    /// stops it when the snapshot is ready; the run's workers finish what is left, from
    /// where it stopped, so no core waits and no byte is hashed twice. The kernel is asked
    /// for every input at once first ([`crate::read_ahead`]), so pages the host paged out
    /// come back from the disk while the first files are hashed.
    pub fn digest_inputs_until(&self, stop: &AtomicBool) -> Result<(), GateError> {
        for file in &self.files {
            crate::read_ahead::will_need_whole(&file.path);
        }
        for input in 0..self.files.len() {
            if !self.advance_digest(input, &|| stop.load(Ordering::Relaxed))? {
                break;
            }
        }
        Ok(())
    }

    /// Advances input `input`'s digest until it is complete (true) or `stop` (false).
    fn advance_digest(&self, input: usize, stop: &dyn Fn() -> bool) -> Result<bool, GateError> {
        let (Some(file), Some(slot)) = (self.files.get(input), self.input_digests.get(input))
        else {
            return Err(GateError::Internal(format!("no input number {input}")));
        };
        let unreadable = |error| GateError::Unreadable {
            path: file.path.clone(),
            error,
        };
        let mut digest = slot
            .lock()
            .map_err(|_| GateError::Internal("an input digest lock was poisoned".into()))?;
        if matches!(*digest, InputDigest::NotStarted) {
            *digest = InputDigest::Partial(FileDigest::open(&file.path).map_err(unreadable)?);
        }
        let InputDigest::Partial(partial) = &mut *digest else {
            return Ok(true);
        };
        let Some((bytes, sha256)) = partial.advance(stop).map_err(unreadable)? else {
            return Ok(false);
        };
        // Absolute, so the manifest still names the file when read from elsewhere.
        let path = fs::canonicalize(&file.path).unwrap_or_else(|_| file.path.clone());
        *digest = InputDigest::Done(InputRecord {
            path: path.display().to_string(),
            bytes,
            sha256,
        });
        Ok(true)
    }

    /// Every input's record, once all digests are complete.
    fn input_records(&self) -> Result<Vec<InputRecord>, GateError> {
        self.input_digests
            .iter()
            .map(|slot| match slot.lock().as_deref() {
                Ok(InputDigest::Done(record)) => Ok(record.clone()),
                _ => Err(GateError::Internal(
                    "an input digest did not complete".into(),
                )),
            })
            .collect()
    }

    fn digest_done(&self, input: usize) -> bool {
        self.input_digests
            .get(input)
            .and_then(|slot| slot.lock().ok())
            .is_some_and(|digest| matches!(*digest, InputDigest::Done(_)))
    }

    fn units(&self, workers: usize, digest_inputs: bool) -> Vec<WorkUnit> {
        // Digests not finished beside the snapshot go first: both workers take one, then
        // the rows, whose small last slices even out the end.
        let mut units: Vec<WorkUnit> = (0..self.files.len())
            .filter(|&input| digest_inputs && !self.digest_done(input))
            .map(|input| WorkUnit::Digest { input })
            .collect();
        let groups: usize = self
            .parquet
            .iter()
            .flatten()
            .map(|input| input.row_group_rows.len())
            .sum();
        let wanted = workers.max(1) * UNITS_PER_WORKER;
        let slices_per_group = if groups == 0 || groups >= wanted {
            1
        } else {
            wanted.div_ceil(groups)
        };
        let mut group_number = 0usize;
        for (index, input) in self.parquet.iter().enumerate() {
            let Some(input) = input else {
                units.push(WorkUnit::JsonLines { input: index });
                continue;
            };
            let mut first_row = 0u64;
            for (row_group, rows) in input.row_group_rows.iter().copied().enumerate() {
                // The last row groups go in slices, so no core is left alone with a
                // whole row group at the end while the other waits.
                let tail = group_number + workers.max(1) >= groups;
                group_number += 1;
                let slices = if tail {
                    slices_per_group.max(TAIL_SLICES)
                } else {
                    slices_per_group
                };
                let slice_rows = rows.div_ceil(slices).max(UNIT_ROWS_MIN).max(1);
                let mut skip = 0;
                while skip < rows {
                    let take = slice_rows.min(rows - skip);
                    units.push(WorkUnit::ParquetRows {
                        input: index,
                        row_group,
                        skip,
                        rows: take,
                        first_row: first_row + skip as u64,
                    });
                    skip += take;
                }
                first_row += rows as u64;
            }
        }
        units
    }

    /// Runs the plan. `progress` is called with the rows each batch processed.
    pub fn run(
        &self,
        enforcement: &Enforcement<'_>,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<BuiltDataset, GateError> {
        let mut output = OutputGuard::create(&self.request.output_dir)?;
        let enforced = matches!(enforcement, Enforcement::Consent(_));
        let workers = self.request.threads.max(1);
        let units = self.units(workers, enforced);
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let mut parts = Vec::with_capacity(workers);
        for index in 0..workers {
            let part = PartWriter::create(
                &self.request.output_dir,
                index,
                self.output_format,
                &self.output_schema,
                &self.properties,
            )?;
            output.temporaries.push(crate::output::temporary_path(
                &self.request.output_dir,
                &crate::output::part_name(index, self.output_format),
            ));
            parts.push(part);
        }
        let results: Vec<Result<WorkerResult, GateError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = parts
                .into_iter()
                .map(|part| {
                    let worker = Worker {
                        plan: self,
                        enforcement,
                        part,
                        counts: RowCounts::default(),
                        included: MemberSet::new(),
                        codes: Vec::with_capacity(BATCH_ROWS),
                    };
                    let (units, next, failed) = (&units, &next, &failed);
                    scope.spawn(move || {
                        let result = worker.run(units, next, failed, progress);
                        if result.is_err() {
                            failed.store(true, Ordering::Relaxed);
                        }
                        result
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|handle| handle.join().unwrap_or(Err(GateError::WorkerPanicked)))
                .collect()
        });
        let mut built = BuiltDataset {
            parts: Vec::new(),
            counts: RowCounts::default(),
            included: RoaringTreemap::new(),
            inputs: Vec::new(),
            output,
        };
        let mut included = MemberSet::new();
        let mut first_error = None;
        for result in results {
            match result {
                Ok(result) => {
                    built.counts.merge(&result.counts);
                    included.merge(result.included);
                    built.parts.push(result.part);
                }
                Err(GateError::Cancelled) => {}
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        if let Some(error) = first_error {
            return Err(error);
        }
        built.included = included.into_treemap();
        if self.request.strict && enforced {
            let duplicates = built.duplicate_rows_kept();
            if duplicates > 0 {
                return Err(GateError::Strict(format!(
                    "{duplicates} kept rows repeat a member already kept (duplicate ids)"
                )));
            }
        }
        if enforced {
            built.inputs = self.input_records()?;
        }
        built.parts.sort_by(|a, b| a.name.cmp(&b.name));
        for part in &built.parts {
            fs::rename(&part.temporary, &part.path).map_err(|error| GateError::Write {
                path: part.path.clone(),
                error,
            })?;
            built.output.finals.push(part.path.clone());
        }
        if let Ok(directory) = fs::File::open(&self.request.output_dir) {
            let _ = directory.sync_all();
        }
        Ok(built)
    }
}

/// The requested fields of `input` its pages can give straight (see
/// [`ParquetInput::text_leaf`] and [`ParquetInput::list_leaf`]); never the id or the
/// jurisdiction, which the consent pass reads from the batch.
fn paged_fields(request: &GateRequest, input: &ParquetInput) -> Vec<PagedField> {
    request
        .fields
        .iter()
        .enumerate()
        .filter(|(_, name)| **name != request.id_column && **name != request.jurisdiction_column)
        .filter_map(|(index, name)| {
            let (root, leaf, kind) = match input.text_leaf(name) {
                Some((root, leaf)) => (root, leaf, PagedKind::Text),
                None => {
                    let (root, leaf, list_nullable) = input.list_leaf(name)?;
                    (root, leaf, PagedKind::Lists { list_nullable })
                }
            };
            // The output schema is the id, then the fields in order.
            Some(PagedField {
                field: index + 1,
                root,
                leaf,
                kind,
            })
        })
        .collect()
}

/// The output directory must be new or empty, so nothing from another run can pass as
/// part of this dataset.
fn check_output_dir(directory: &Path) -> Result<(), GateError> {
    match fs::read_dir(directory) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(GateError::Usage(format!(
                    "output directory {} is not empty; choose a new or empty directory",
                    directory.display()
                )));
            }
            Ok(())
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(GateError::Unreadable {
            path: directory.to_path_buf(),
            error,
        }),
    }
}

/// The id field followed by the requested fields, typed as the first Parquet input
/// reads them; every other Parquet input must read them the same way.
fn output_schema(
    request: &GateRequest,
    parquet: &[Option<ParquetInput>],
    format: FileFormat,
) -> Result<SchemaRef, GateError> {
    let names: Vec<&str> = std::iter::once(request.id_column.as_str())
        .chain(request.fields.iter().map(String::as_str))
        .collect();
    let mut fields: Option<Vec<Field>> = None;
    for input in parquet.iter().flatten() {
        let mut these = Vec::with_capacity(names.len());
        for name in &names {
            let field = input
                .field(name)
                .ok_or_else(|| GateError::schema(&input.file.path, name, "is missing"))?;
            if format == FileFormat::JsonLines && !json_supported(field.data_type()) {
                return Err(GateError::schema(
                    &input.file.path,
                    name,
                    format!(
                        "has type {}, which JSON Lines output cannot carry; use --format parquet",
                        field.data_type()
                    ),
                ));
            }
            these.push(Field::new(*name, field.data_type().clone(), true));
        }
        match &fields {
            None => fields = Some(these),
            Some(first) => {
                for (mine, theirs) in these.iter().zip(first) {
                    if mine.data_type() != theirs.data_type() {
                        return Err(GateError::schema(
                            &input.file.path,
                            mine.name(),
                            format!(
                                "has type {} here but {} in the first input",
                                mine.data_type(),
                                theirs.data_type()
                            ),
                        ));
                    }
                }
            }
        }
    }
    let fields = fields.unwrap_or_else(|| {
        names
            .iter()
            .map(|name| Field::new(*name, arrow_schema::DataType::Null, true))
            .collect()
    });
    Ok(Arc::new(Schema::new(fields)))
}

/// What a run wrote. Dropping it without [`BuiltDataset::keep`] removes every file the
/// run created (and the directory, if the run created it).
pub struct BuiltDataset {
    pub parts: Vec<WrittenPart>,
    pub counts: RowCounts,
    pub included: RoaringTreemap,
    pub inputs: Vec<InputRecord>,
    output: OutputGuard,
}

impl BuiltDataset {
    pub fn duplicate_rows_kept(&self) -> u64 {
        self.counts.kept().saturating_sub(self.included.len())
    }

    pub fn rows_written(&self) -> u64 {
        self.parts.iter().map(|part| part.rows).sum()
    }

    /// Registers another file of the dataset (members file, manifest) for removal on failure.
    pub fn track(&mut self, path: PathBuf) {
        self.output.finals.push(path);
    }

    /// The dataset is complete: its files stay.
    pub fn keep(mut self) {
        self.output.armed = false;
    }
}

struct OutputGuard {
    directory: PathBuf,
    created: bool,
    temporaries: Vec<PathBuf>,
    finals: Vec<PathBuf>,
    armed: bool,
}

impl OutputGuard {
    fn create(directory: &Path) -> Result<Self, GateError> {
        let created = !directory.exists();
        fs::create_dir_all(directory).map_err(|error| GateError::Write {
            path: directory.to_path_buf(),
            error,
        })?;
        Ok(OutputGuard {
            directory: directory.to_path_buf(),
            created,
            temporaries: Vec::new(),
            finals: Vec::new(),
            armed: true,
        })
    }
}

impl Drop for OutputGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        for path in self.temporaries.iter().chain(&self.finals) {
            let _ = fs::remove_file(path);
        }
        if self.created {
            let _ = fs::remove_dir(&self.directory);
        }
    }
}

/// A batch's columns for the output.
enum Projected {
    /// Every output field.
    Batch(RecordBatch),
    /// The fields but those read straight from the input's pages, in schema order.
    WithPages(Vec<ArrayRef>),
}

struct WorkerResult {
    part: WrittenPart,
    counts: RowCounts,
    included: MemberSet,
}

struct Worker<'p, 'f> {
    plan: &'p GatePlan,
    enforcement: &'p Enforcement<'f>,
    part: PartWriter,
    counts: RowCounts,
    included: MemberSet,
    /// Per row of the batch at hand: the member's explicit state, then the verdict.
    codes: Vec<u8>,
}

impl Worker<'_, '_> {
    fn run(
        mut self,
        units: &[WorkUnit],
        next: &AtomicUsize,
        failed: &AtomicBool,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<WorkerResult, GateError> {
        loop {
            if failed.load(Ordering::Relaxed) {
                return Err(GateError::Cancelled);
            }
            let taken = next.fetch_add(1, Ordering::Relaxed);
            let Some(unit) = units.get(taken).copied() else {
                break;
            };
            self.prefetch_after(units, taken);
            match unit {
                WorkUnit::ParquetRows {
                    input,
                    row_group,
                    skip,
                    rows,
                    first_row,
                } => {
                    self.parquet_rows(input, row_group, skip, rows, first_row, failed, progress)?
                }
                WorkUnit::JsonLines { input } => self.json_lines(input, progress)?,
                WorkUnit::Digest { input } => self.digest(input)?,
            }
        }
        Ok(WorkerResult {
            part: self.part.finish()?,
            counts: self.counts,
            included: self.included,
        })
    }

    /// Asks for the row group of each unit the workers take after unit `taken` that is
    /// the first of its row group (see [`crate::parquet_source::ParquetInput::prefetch`]),
    /// so a row group cut in slices is asked for once per worker, not once per slice.
    fn prefetch_after(&self, units: &[WorkUnit], taken: usize) {
        let row_group_of = |index: usize| match units.get(index) {
            Some(&WorkUnit::ParquetRows {
                input, row_group, ..
            }) => Some((input, row_group)),
            _ => None,
        };
        for ahead in taken + 1..=taken + PREFETCH_UNITS {
            let Some((input, row_group)) = row_group_of(ahead) else {
                continue;
            };
            if row_group_of(ahead - 1) != Some((input, row_group)) {
                if let Some(Some(source)) = self.plan.parquet.get(input) {
                    source.prefetch(row_group);
                }
            }
        }
    }

    fn digest(&mut self, input: usize) -> Result<(), GateError> {
        self.plan.advance_digest(input, &|| false).map(|_| ())
    }

    #[allow(clippy::too_many_arguments)]
    fn parquet_rows(
        &mut self,
        input: usize,
        row_group: usize,
        skip: usize,
        rows: usize,
        first_row: u64,
        failed: &AtomicBool,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(), GateError> {
        let plan = self.plan;
        let Some(Some(source)) = plan.parquet.get(input) else {
            return Err(GateError::Internal(format!(
                "no Parquet input number {input}"
            )));
        };
        let path = source.file.path.as_path();
        let mut paged = Vec::new();
        let mut read_elsewhere = Vec::new();
        for field in plan.paged_fields.get(input).into_iter().flatten() {
            if self.part.takes_pages(field.field) {
                let pages = match field.kind {
                    PagedKind::Text => {
                        FieldPages::Text(Box::new(source.text_pages(row_group, field.leaf, skip)?))
                    }
                    PagedKind::Lists { list_nullable } => FieldPages::Lists(Box::new(
                        source.list_pages(row_group, field.leaf, list_nullable, skip)?,
                    )),
                };
                paged.push(PagedColumn {
                    field: field.field,
                    pages,
                });
                read_elsewhere.push(field.root);
            }
        }
        let reader = source.reader(row_group, skip, rows, BATCH_ROWS, &read_elsewhere)?;
        let mut row = first_row;
        for batch in reader {
            if failed.load(Ordering::Relaxed) {
                return Err(GateError::Cancelled);
            }
            let batch = batch.map_err(|error| {
                source.read_error(row_group, skip, rows, &read_elsewhere, error)
            })?;
            let count = batch.num_rows();
            self.parquet_batch(path, &batch, &mut paged, row)?;
            row += count as u64;
            progress(count as u64);
        }
        Ok(())
    }

    /// Filters and writes one batch; `paged` gives the fields the batch lacks (read
    /// straight from the input's pages), a row of each for every row of the batch.
    fn parquet_batch(
        &mut self,
        path: &Path,
        batch: &RecordBatch,
        paged: &mut [PagedColumn],
        first_row: u64,
    ) -> Result<(), GateError> {
        let request = &self.plan.request;
        let column = |name: &str| -> Result<&ArrayRef, GateError> {
            batch
                .column_by_name(name)
                .ok_or_else(|| GateError::schema(path, name, "is missing from a batch"))
        };
        let ids = column(&request.id_column)?;
        let mut projected: Vec<ArrayRef> = Vec::with_capacity(request.fields.len() + 1);
        projected.push(Arc::clone(ids));
        for (index, field) in request.fields.iter().enumerate() {
            if !paged.iter().any(|paged| paged.field == index + 1) {
                projected.push(Arc::clone(column(field)?));
            }
        }
        let projected = match paged.is_empty() {
            true => Projected::Batch(
                RecordBatch::try_new(Arc::clone(&self.plan.output_schema), projected).map_err(
                    |error| GateError::schema(path, &request.id_column, error.to_string()),
                )?,
            ),
            false => Projected::WithPages(projected),
        };
        let filter = match self.enforcement {
            Enforcement::PlainCopy => {
                self.counts.add(Verdict::Keep, batch.num_rows() as u64);
                return self.write_projected(path, &projected, batch.num_rows(), paged, None);
            }
            Enforcement::Consent(filter) => *filter,
        };
        let jurisdictions = JurisdictionColumn::new(column(&request.jurisdiction_column)?.as_ref())
            .ok_or_else(|| {
                GateError::schema(path, &request.jurisdiction_column, "is not a string column")
            })?;
        // Passes over the batch, each a tight loop whose iterations do not wait on each
        // other, so the cache misses of the random lookups (the explicit state of each
        // member, the included set's word) overlap instead of being paid one row at a time.
        let codes = &mut self.codes;
        codes.clear();
        let readable = for_each_id(ids.as_ref(), |_, id| {
            codes.push(id.map_or(INVALID_ID_CODE, |id| filter.explicit_state(id) as u8));
        });
        if !readable {
            return Err(GateError::schema(
                path,
                &request.id_column,
                format!("has type {}", ids.data_type()),
            ));
        }
        // The verdicts first, then the mask, the counts and the strict check from them,
        // each its own loop (the mask is packed 64 rows at a time).
        for (row, code) in codes.iter_mut().enumerate() {
            let verdict = if *code == INVALID_ID_CODE {
                Verdict::InvalidId
            } else {
                filter.verdict_for_state(jurisdictions.slot(row), usize::from(*code))
            };
            *code = verdict as u8;
        }
        let keep = BooleanBuffer::collect_bool(codes.len(), |row| {
            codes.get(row) == Some(&(Verdict::Keep as u8))
        });
        let mut counts = [0u64; crate::outcome::VERDICTS];
        for &code in codes.iter() {
            if let Some(count) = counts.get_mut(usize::from(code)) {
                *count += 1;
            }
        }
        let strict_violation = request
            .strict
            .then(|| {
                codes.iter().enumerate().find_map(|(row, &code)| {
                    let verdict = Verdict::from_code(code);
                    matches!(
                        verdict,
                        Verdict::InvalidId | Verdict::MissingOrUnknownJurisdiction
                    )
                    .then_some((row, verdict))
                })
            })
            .flatten();
        let included = &mut self.included;
        for_each_id(ids.as_ref(), |row, id| {
            if let (Some(id), Some(&code)) = (id, codes.get(row)) {
                if code == Verdict::Keep as u8 {
                    included.insert(id);
                }
            }
        });
        if let Some((row, verdict)) = strict_violation {
            let what = match verdict {
                Verdict::InvalidId => format!("null or invalid {}", request.id_column),
                _ => format!("missing or unknown {}", request.jurisdiction_column),
            };
            return Err(GateError::Strict(format!(
                "{}: row {}: {what}",
                path.display(),
                first_row + row as u64 + 1
            )));
        }
        for verdict in crate::outcome::Verdict::ALL {
            self.counts
                .add(verdict, counts.get(verdict as usize).copied().unwrap_or(0));
        }
        self.write_projected(path, &projected, batch.num_rows(), paged, Some(&keep))
    }

    /// Writes the rows of a batch `keep` keeps (all when `None`). An error in reading the
    /// values of `paged` is the input's: it names the input file.
    fn write_projected(
        &mut self,
        path: &Path,
        projected: &Projected,
        rows: usize,
        paged: &mut [PagedColumn],
        keep: Option<&BooleanBuffer>,
    ) -> Result<(), GateError> {
        let written = match projected {
            Projected::Batch(batch) => self.part.write_kept(batch, keep),
            Projected::WithPages(columns) => {
                self.part.write_kept_with_pages(columns, rows, paged, keep)
            }
        };
        written.map_err(
            |error| match paged.iter().find_map(|paged| paged.pages.failure()) {
                Some(problem) => GateError::corrupt_parquet(path, problem),
                None => error,
            },
        )
    }

    fn json_lines(
        &mut self,
        input: usize,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(), GateError> {
        let plan = self.plan;
        let file = plan
            .files
            .get(input)
            .ok_or_else(|| GateError::Internal(format!("no input number {input}")))?;
        let request = &plan.request;
        let enforcement = self.enforcement;
        read_rows(&file.path, |JsonRow { line, mut object }| {
            let id = json_id(object.get(&request.id_column));
            let verdict = match (enforcement, id) {
                (_, None) => Verdict::InvalidId,
                (Enforcement::PlainCopy, Some(_)) => Verdict::Keep,
                (Enforcement::Consent(filter), Some(id)) => {
                    let slot = match object.get(&request.jurisdiction_column) {
                        Some(Value::String(text)) => slot_of_text(text),
                        _ => MISSING_JURISDICTION,
                    };
                    filter.verdict(id, slot)
                }
            };
            if request.strict
                && matches!(
                    verdict,
                    Verdict::InvalidId | Verdict::MissingOrUnknownJurisdiction
                )
            {
                let column = if verdict == Verdict::InvalidId {
                    &request.id_column
                } else {
                    &request.jurisdiction_column
                };
                return Err(GateError::Strict(format!(
                    "{}: line {line}: null, missing or invalid {column}",
                    file.path.display()
                )));
            }
            self.counts.add(verdict, 1);
            progress(1);
            let (Verdict::Keep, Some(id)) = (verdict, id) else {
                return Ok(());
            };
            if matches!(enforcement, Enforcement::Consent(_)) {
                self.included.insert(id);
            }
            let fields = request
                .fields
                .iter()
                .map(|field| object.remove(field).unwrap_or(Value::Null));
            self.part
                .write_row(std::iter::once(Value::from(id)).chain(fields))
        })
    }
}
