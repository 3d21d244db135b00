//! Parquet inputs: the footer read and the schema checked once per file, before any row
//! is read, then streamed in slices of row groups that workers take independently.
//!
//! Only the needed columns are decoded (projection), strings come back as `Utf8View`
//! (no copy of the string bytes into offset buffers), lists of few distinct strings that
//! the file holds dictionary encoded come back as lists of dictionary keys (the gate asks
//! for that, see [`ParquetInput::read_as_dictionary_lists`]), and a row group that is larger
//! than its share of the work is split into row ranges: pages of flat columns before the
//! range are skipped without being decompressed. Free text and lists of dictionary
//! strings laid out as [`crate::text_pages`] and [`crate::list_pages`] read are read
//! there instead, straight from their pages ([`ParquetInput::text_leaf`],
//! [`ParquetInput::list_leaf`]).

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_schema::{DataType, Field, FieldRef, Schema, SchemaRef};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader,
    ParquetRecordBatchReaderBuilder, RowSelection, RowSelector,
};
use parquet::arrow::ProjectionMask;
use parquet::basic::{Encoding, Type as PhysicalType};
use parquet::file::metadata::RowGroupMetaData;
use parquet::schema::types::ColumnDescPtr;

use crate::columns::{is_id_type, is_text_type, ID_TYPES, JURISDICTION_TYPES};
use crate::error::GateError;
use crate::input::InputFile;
use crate::list_pages::{self, ListPages};
use crate::output::DistinctColumn;
use crate::text_pages::{self, TextPages};

/// An opened Parquet input: its metadata (with the `Utf8View` read schema) and where the
/// needed columns are.
pub struct ParquetInput {
    pub file: InputFile,
    pub metadata: ArrowReaderMetadata,
    /// Top-level column indices to decode, ascending.
    pub roots: Vec<usize>,
    /// Rows in each row group.
    pub row_group_rows: Vec<usize>,
}

/// The columns a reader needs: the id, optionally the jurisdiction, and the fields.
pub struct NeededColumns<'a> {
    pub id: &'a str,
    /// `None`: not needed. `Some((name, required))`: read it when present; a missing
    /// column is an error only when required.
    pub jurisdiction: Option<(&'a str, bool)>,
    pub fields: &'a [String],
}

impl ParquetInput {
    pub fn open(file: &InputFile, needed: &NeededColumns<'_>) -> Result<Self, GateError> {
        let path = file.path.as_path();
        let reader = File::open(path).map_err(|error| GateError::Unreadable {
            path: path.to_path_buf(),
            error,
        })?;
        let plain = ArrowReaderMetadata::load(&reader, ArrowReaderOptions::new())
            .map_err(|error| GateError::corrupt_parquet(path, error))?;
        let schema = Arc::clone(plain.schema());
        let roots = needed_roots(path, &schema, needed)?;
        // Strings as views where the reader supports it; a file it cannot hint keeps
        // its own types.
        let hinted = view_schema(&schema);
        let metadata = if hinted == schema {
            plain
        } else {
            ArrowReaderMetadata::try_new(
                Arc::clone(plain.metadata()),
                ArrowReaderOptions::new().with_schema(Arc::clone(&hinted)),
            )
            .unwrap_or(plain)
        };
        let row_group_rows = metadata
            .metadata()
            .row_groups()
            .iter()
            .map(|group| usize::try_from(group.num_rows()).unwrap_or(0))
            .collect();
        Ok(ParquetInput {
            file: file.clone(),
            metadata,
            roots,
            row_group_rows,
        })
    }

    pub fn rows(&self) -> u64 {
        self.row_group_rows.iter().map(|rows| *rows as u64).sum()
    }

    /// The read schema (after the view hint) of a top-level column.
    pub fn field(&self, name: &str) -> Option<FieldRef> {
        self.metadata
            .schema()
            .fields()
            .iter()
            .find(|field| field.name() == name)
            .cloned()
    }

    pub fn column_names(&self) -> Vec<String> {
        self.metadata
            .schema()
            .fields()
            .iter()
            .map(|field| field.name().clone())
            .collect()
    }

    /// Leaf columns under the top-level columns `names` whose writer gave up on the
    /// dictionary in some row group: they have a dictionary page but also data pages
    /// encoded another way, the mark of a column with too many distinct values (free text,
    /// unique ids). Unknown when the footer has no page encoding statistics.
    pub fn dictionary_abandoned(&self, names: &[&str]) -> Vec<DistinctColumn> {
        let mut found: Vec<DistinctColumn> = Vec::new();
        for group in self.metadata.metadata().row_groups() {
            for column in group.columns() {
                let path = column.column_path();
                let wanted = path
                    .parts()
                    .first()
                    .is_some_and(|root| names.contains(&root.as_str()));
                let abandoned = column.dictionary_page_offset().is_some()
                    && column.page_encoding_stats_mask().is_some_and(|mask| {
                        mask.encodings().any(|encoding| {
                            !matches!(
                                encoding,
                                Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY
                            )
                        })
                    });
                if wanted && abandoned && !found.iter().any(|known| &known.path == path) {
                    found.push(DistinctColumn {
                        path: path.clone(),
                        byte_array: column.column_type() == PhysicalType::BYTE_ARRAY,
                    });
                }
            }
        }
        found
    }

    /// Top-level columns among `names` that are lists of strings whose leaf is dictionary
    /// encoded in every row group, its dictionary never abandoned (`distinct`): few
    /// distinct values repeated, such as tags or skills.
    pub fn dictionary_string_lists(
        &self,
        names: &[&str],
        distinct: &[DistinctColumn],
    ) -> Vec<String> {
        let groups = self.metadata.metadata().row_groups();
        names
            .iter()
            .filter(|name| {
                self.field(name)
                    .is_some_and(|field| match field.data_type() {
                        DataType::List(item) => is_string(item.data_type()),
                        _ => false,
                    })
            })
            .filter(|name| {
                let mut leaves = groups.iter().flat_map(|group| {
                    group.columns().iter().filter(|column| {
                        column
                            .column_path()
                            .parts()
                            .first()
                            .is_some_and(|root| root == *name)
                    })
                });
                let mut any = false;
                let all = leaves.all(|column| {
                    any = true;
                    column.dictionary_page_offset().is_some()
                        && !distinct
                            .iter()
                            .any(|known| &known.path == column.column_path())
                });
                any && all
            })
            .map(|name| (*name).to_string())
            .collect()
    }

    /// Reads the lists of strings `names` as lists of dictionary-encoded strings
    /// (`List<Dictionary<Int32, Utf8>>`): the reader then hands over the page's dictionary
    /// and each item's key, instead of a view per item, and the filter moves 4-byte keys
    /// instead of 16-byte views. For columns from [`ParquetInput::dictionary_string_lists`];
    /// the writer interns the values either way.
    pub fn read_as_dictionary_lists(&mut self, names: &[String]) {
        if names.is_empty() {
            return;
        }
        let schema = self.metadata.schema();
        let fields: Vec<FieldRef> = schema
            .fields()
            .iter()
            .map(|field| match field.data_type() {
                DataType::List(item) if names.contains(field.name()) => {
                    let item = Field::new(
                        item.name(),
                        DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                        item.is_nullable(),
                    )
                    .with_metadata(item.metadata().clone());
                    Arc::new(
                        Field::new(
                            field.name(),
                            DataType::List(Arc::new(item)),
                            field.is_nullable(),
                        )
                        .with_metadata(field.metadata().clone()),
                    )
                }
                _ => Arc::clone(field),
            })
            .collect();
        let hinted = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
        if let Ok(metadata) = ArrowReaderMetadata::try_new(
            Arc::clone(self.metadata.metadata()),
            ArrowReaderOptions::new().with_schema(hinted),
        ) {
            self.metadata = metadata;
        }
    }

    /// Asks the kernel to bring the needed column chunks of `row_group` into the page
    /// cache in the background ([`crate::read_ahead`]): the digest read them at the
    /// start, but the host may have paged them out since.
    pub fn prefetch(&self, row_group: usize) {
        let metadata = self.metadata.metadata();
        let (Some(group), Ok(file)) = (
            metadata.row_groups().get(row_group),
            File::open(&self.file.path),
        ) else {
            return;
        };
        let schema = metadata.file_metadata().schema_descr();
        for (leaf, column) in group.columns().iter().enumerate() {
            if self.roots.contains(&schema.get_column_root_idx(leaf)) {
                let (start, length) = column.byte_range();
                crate::read_ahead::will_need(&file, start, length);
            }
        }
    }

    /// The error for `error`, which a reader of rows `skip..skip + rows` of `row_group`
    /// (of the needed columns but those in `read_elsewhere`) gave: it names the file and,
    /// as parquet's message rarely does, the column.
    pub(crate) fn read_error(
        &self,
        row_group: usize,
        skip: usize,
        rows: usize,
        read_elsewhere: &[usize],
        error: impl std::fmt::Display,
    ) -> GateError {
        let reason = match self.failing_column(row_group, skip, rows, read_elsewhere) {
            Some(column) => format!("column {column}: {error}"),
            None => error.to_string(),
        };
        GateError::corrupt_parquet(&self.file.path, reason)
    }

    /// The first needed top-level column (but those in `read_elsewhere`) that its own
    /// reader fails to read in rows `skip..skip + rows` of `row_group`: asked after a
    /// reader of all of them failed, to name the column in the error.
    fn failing_column(
        &self,
        row_group: usize,
        skip: usize,
        rows: usize,
        read_elsewhere: &[usize],
    ) -> Option<String> {
        let fields = self.metadata.schema().fields();
        self.roots
            .iter()
            .filter(|root| !read_elsewhere.contains(root))
            .find(|&&root| {
                let others: Vec<usize> = self
                    .roots
                    .iter()
                    .copied()
                    .filter(|&other| other != root)
                    .collect();
                match self.reader(row_group, skip, rows, crate::gate::BATCH_ROWS, &others) {
                    Ok(mut reader) => reader.any(|batch| batch.is_err()),
                    Err(_) => true,
                }
            })
            .and_then(|&root| fields.get(root))
            .map(|field| field.name().clone())
    }

    /// The one leaf of top-level column `root`, when it has only one.
    fn only_leaf(&self, root: usize) -> Option<usize> {
        let schema = self.metadata.metadata().file_metadata().schema_descr();
        let mut leaves =
            (0..schema.num_columns()).filter(|&leaf| schema.get_column_root_idx(leaf) == root);
        match (leaves.next(), leaves.next()) {
            (Some(leaf), None) => Some(leaf),
            _ => None,
        }
    }

    /// The top-level column `name` and its one leaf, when it is free text that can be
    /// read straight from its pages ([`crate::text_pages`]): a string column every chunk
    /// of which is laid out as that module reads.
    pub(crate) fn text_leaf(&self, name: &str) -> Option<(usize, usize)> {
        let root = self
            .metadata
            .schema()
            .fields()
            .iter()
            .position(|field| field.name() == name && is_string(field.data_type()))?;
        let leaf = self.only_leaf(root)?;
        let metadata = self.metadata.metadata();
        let schema = metadata.file_metadata().schema_descr();
        text_pages::readable(&schema.column(leaf), metadata.row_groups(), leaf)
            .then_some((root, leaf))
    }

    /// The strings of leaf `leaf` of row group `row_group` from row `skip` on.
    pub(crate) fn text_pages(
        &self,
        row_group: usize,
        leaf: usize,
        skip: usize,
    ) -> Result<TextPages, GateError> {
        let (group, descriptor) = self.chunk(row_group, leaf)?;
        let path = self.file.path.as_path();
        TextPages::open(path, group, &descriptor, leaf, skip)
            .map_err(|problem| GateError::corrupt_parquet(path, problem))
    }

    /// The top-level column `name`, its one leaf and whether the list itself may be null,
    /// when it is a list of dictionary-encoded strings that can be read straight from its
    /// pages ([`crate::list_pages`]): a column read as `List<Dictionary<Int32, Utf8>>`
    /// (see [`ParquetInput::read_as_dictionary_lists`]) every chunk of which is laid out
    /// as that module reads.
    pub(crate) fn list_leaf(&self, name: &str) -> Option<(usize, usize, bool)> {
        let (root, field) = self
            .metadata
            .schema()
            .fields()
            .iter()
            .enumerate()
            .find(|(_, field)| field.name() == name)?;
        let DataType::List(item) = field.data_type() else {
            return None;
        };
        if !matches!(item.data_type(), DataType::Dictionary(key, value)
            if **key == DataType::Int32 && **value == DataType::Utf8)
        {
            return None;
        }
        let leaf = self.only_leaf(root)?;
        let metadata = self.metadata.metadata();
        let schema = metadata.file_metadata().schema_descr();
        let descriptor = schema.column(leaf);
        let list_nullable = field.is_nullable();
        let levels = list_pages::ListLevels::of(&descriptor, list_nullable)?;
        (levels.item_nullable == item.is_nullable()
            && list_pages::readable(&descriptor, metadata.row_groups(), leaf))
        .then_some((root, leaf, list_nullable))
    }

    /// The lists of leaf `leaf` of row group `row_group` from row `skip` on.
    pub(crate) fn list_pages(
        &self,
        row_group: usize,
        leaf: usize,
        list_nullable: bool,
        skip: usize,
    ) -> Result<ListPages, GateError> {
        let (group, descriptor) = self.chunk(row_group, leaf)?;
        let path = self.file.path.as_path();
        ListPages::open(path, group, &descriptor, leaf, list_nullable, skip)
            .map_err(|problem| GateError::corrupt_parquet(path, problem))
    }

    /// Row group `row_group`'s metadata and the descriptor of its leaf column `leaf`.
    fn chunk(
        &self,
        row_group: usize,
        leaf: usize,
    ) -> Result<(&RowGroupMetaData, ColumnDescPtr), GateError> {
        let metadata = self.metadata.metadata();
        let group = metadata.row_groups().get(row_group).ok_or_else(|| {
            let path = self.file.path.display();
            GateError::Internal(format!("no row group {row_group} in {path}"))
        })?;
        Ok((group, metadata.file_metadata().schema_descr().column(leaf)))
    }

    /// A reader of `rows` rows from row `skip` of row group `row_group`, of the needed
    /// top-level columns but those in `read_elsewhere`.
    pub fn reader(
        &self,
        row_group: usize,
        skip: usize,
        rows: usize,
        batch_rows: usize,
        read_elsewhere: &[usize],
    ) -> Result<ParquetRecordBatchReader, GateError> {
        let path = self.file.path.as_path();
        let file = File::open(path).map_err(|error| GateError::Unreadable {
            path: path.to_path_buf(),
            error,
        })?;
        let projection = ProjectionMask::roots(
            self.metadata.metadata().file_metadata().schema_descr(),
            self.roots
                .iter()
                .copied()
                .filter(|root| !read_elsewhere.contains(root)),
        );
        let mut builder =
            ParquetRecordBatchReaderBuilder::new_with_metadata(file, self.metadata.clone())
                .with_projection(projection)
                .with_row_groups(vec![row_group])
                .with_batch_size(batch_rows);
        let whole = self.row_group_rows.get(row_group).copied().unwrap_or(0);
        if skip > 0 || rows < whole {
            let mut selectors = Vec::with_capacity(2);
            if skip > 0 {
                selectors.push(RowSelector::skip(skip));
            }
            selectors.push(RowSelector::select(rows));
            builder = builder.with_row_selection(RowSelection::from(selectors));
        }
        builder
            .build()
            .map_err(|error| GateError::corrupt_parquet(path, error))
    }
}

/// Checks each needed column: present once, with a usable type.
fn needed_roots(
    path: &Path,
    schema: &Schema,
    needed: &NeededColumns<'_>,
) -> Result<Vec<usize>, GateError> {
    let find = |name: &str| -> Result<Option<(usize, &FieldRef)>, GateError> {
        let mut matches = schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, field)| field.name() == name);
        let found = matches.next();
        if matches.next().is_some() {
            return Err(GateError::schema(path, name, "appears more than once"));
        }
        Ok(found)
    };
    let present = |name: &str| -> Result<(usize, &FieldRef), GateError> {
        find(name)?.ok_or_else(|| {
            let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            GateError::schema(
                path,
                name,
                format!("is missing (the file has {})", names.join(", ")),
            )
        })
    };
    let mut roots = Vec::new();
    let (id_root, id_field) = present(needed.id)?;
    if !is_id_type(id_field.data_type()) {
        return Err(GateError::schema(
            path,
            needed.id,
            format!("has type {}, expected {ID_TYPES}", id_field.data_type()),
        ));
    }
    roots.push(id_root);
    if let Some((name, required)) = needed.jurisdiction {
        let found = if required {
            Some(present(name)?)
        } else {
            find(name)?
        };
        if let Some((root, field)) = found {
            if !is_text_type(field.data_type()) {
                return Err(GateError::schema(
                    path,
                    name,
                    format!(
                        "has type {}, expected {JURISDICTION_TYPES}",
                        field.data_type()
                    ),
                ));
            }
            roots.push(root);
        }
    }
    for name in needed.fields {
        let (root, _) = present(name)?;
        roots.push(root);
    }
    roots.sort_unstable();
    roots.dedup();
    Ok(roots)
}

fn is_string(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

/// The schema with every string (also inside lists) read as `Utf8View`.
fn view_schema(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<FieldRef> = schema.fields().iter().map(view_field).collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

fn view_field(field: &FieldRef) -> FieldRef {
    let data_type = match field.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 => DataType::Utf8View,
        DataType::List(item) => DataType::List(view_field(item)),
        DataType::LargeList(item) => DataType::LargeList(view_field(item)),
        _ => return Arc::clone(field),
    };
    Arc::new(
        Field::new(field.name(), data_type, field.is_nullable())
            .with_metadata(field.metadata().clone()),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use arrow_array::builder::{ListBuilder, StringBuilder};
    use arrow_array::{ArrayRef, RecordBatch, StringArray, UInt64Array};
    use parquet::schema::types::ColumnPath;

    /// Writes `columns` with 1 KiB dictionary and data pages (so a dictionary with many
    /// distinct values is abandoned) and describes the file as an input.
    fn write_small_pages(path: &Path, columns: Vec<(&str, ArrayRef)>) -> InputFile {
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let properties = parquet::file::properties::WriterProperties::builder()
            .set_dictionary_page_size_limit(1024)
            .set_data_page_size_limit(1024)
            .build();
        let file = File::create(path).unwrap();
        let mut writer =
            parquet::arrow::ArrowWriter::try_new(file, batch.schema(), Some(properties)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        InputFile {
            path: path.to_path_buf(),
            format: crate::input::FileFormat::Parquet,
            bytes: 0,
        }
    }

    // Proves strings, also inside lists, are read as Utf8View (the hint is accepted).
    #[test]
    fn strings_are_read_as_views() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("p.parquet");
        let mut skills = ListBuilder::new(StringBuilder::new());
        skills.values().append_value("rust");
        skills.append(true);
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("member_id", Arc::new(UInt64Array::from(vec![1u64]))),
            ("country", Arc::new(StringArray::from(vec!["US"]))),
            ("skills", Arc::new(skills.finish())),
        ];
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let file = File::create(&path).unwrap();
        let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let input = InputFile {
            path: path.clone(),
            format: crate::input::FileFormat::Parquet,
            bytes: 0,
        };
        let fields = vec!["skills".to_string()];
        let needed = NeededColumns {
            id: "member_id",
            jurisdiction: Some(("country", true)),
            fields: &fields,
        };
        let input = ParquetInput::open(&input, &needed).unwrap();
        assert_eq!(
            input.field("country").unwrap().data_type(),
            &DataType::Utf8View
        );
        let DataType::List(item) = input.field("skills").unwrap().data_type().clone() else {
            panic!("skills is not a list");
        };
        assert_eq!(item.data_type(), &DataType::Utf8View);
        let batch = input
            .reader(0, 0, 1, 16, &[])
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(batch.num_columns(), 3);
    }

    // Proves a list of few distinct strings, dictionary encoded, is read as a list of
    // dictionary-encoded strings once asked, with its values intact, and a list whose
    // dictionary was abandoned is not chosen.
    #[test]
    fn dictionary_encoded_string_lists_are_read_as_dictionaries() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("p.parquet");
        let rows = 4096usize;
        let mut skills = ListBuilder::new(StringBuilder::new());
        let mut notes = ListBuilder::new(StringBuilder::new());
        for row in 0..rows {
            skills.values().append_value(["rust", "sql", "go"][row % 3]);
            skills.values().append_value("spark");
            skills.append(true);
            notes
                .values()
                .append_value(format!("note number {row} on a long road"));
            notes.append(true);
        }
        let columns: Vec<(&str, ArrayRef)> = vec![
            (
                "member_id",
                Arc::new(UInt64Array::from_iter_values(0..rows as u64)),
            ),
            ("skills", Arc::new(skills.finish())),
            ("notes", Arc::new(notes.finish())),
        ];
        let input = write_small_pages(&path, columns);
        let fields = vec!["skills".to_string(), "notes".to_string()];
        let needed = NeededColumns {
            id: "member_id",
            jurisdiction: None,
            fields: &fields,
        };
        let mut input = ParquetInput::open(&input, &needed).unwrap();
        let names = ["skills", "notes"];
        let distinct = input.dictionary_abandoned(&names);
        assert_eq!(distinct.len(), 1);
        let lists = input.dictionary_string_lists(&names, &distinct);
        assert_eq!(lists, vec!["skills".to_string()]);
        input.read_as_dictionary_lists(&lists);
        let DataType::List(item) = input.field("skills").unwrap().data_type().clone() else {
            panic!("skills is not a list");
        };
        assert_eq!(
            item.data_type(),
            &DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
        );
        let batch = input
            .reader(0, 5, 1, 16, &[])
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        let skills = batch.column_by_name("skills").unwrap();
        let row = arrow_cast_list_strings(skills.as_ref());
        assert_eq!(row, vec!["go".to_string(), "spark".to_string()]);
    }

    fn arrow_cast_list_strings(list: &dyn arrow_array::Array) -> Vec<String> {
        use arrow_array::cast::AsArray;
        let list = list.as_list::<i32>();
        let items = list.value(0);
        let dictionary = items.as_dictionary::<arrow_array::types::Int32Type>();
        let values = dictionary.values().as_string::<i32>();
        dictionary
            .keys()
            .values()
            .iter()
            .map(|key| values.value(usize::try_from(*key).unwrap()).to_string())
            .collect()
    }

    // Proves a column whose writer abandoned its dictionary (too many distinct values for
    // the dictionary page) is found, with its physical type, and a repetitive one is not.
    #[test]
    fn columns_with_an_abandoned_dictionary_are_found() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("p.parquet");
        let rows = 4096u64;
        let columns: Vec<(&str, ArrayRef)> = vec![
            (
                "member_id",
                Arc::new(UInt64Array::from_iter_values(0..rows)),
            ),
            (
                "country",
                Arc::new(StringArray::from_iter_values((0..rows).map(|row| {
                    if row % 2 == 0 {
                        "US"
                    } else {
                        "DE"
                    }
                }))),
            ),
            (
                "experience",
                Arc::new(StringArray::from_iter_values(
                    (0..rows).map(|row| format!("worked on project {row} for years")),
                )),
            ),
        ];
        let input = write_small_pages(&path, columns);
        let fields = vec!["experience".to_string()];
        let needed = NeededColumns {
            id: "member_id",
            jurisdiction: Some(("country", true)),
            fields: &fields,
        };
        let input = ParquetInput::open(&input, &needed).unwrap();
        let found = input.dictionary_abandoned(&["experience", "country"]);
        assert_eq!(
            found,
            vec![DistinctColumn {
                path: ColumnPath::from("experience"),
                byte_array: true,
            }]
        );
        assert!(input.dictionary_abandoned(&["country"]).is_empty());
    }
}
