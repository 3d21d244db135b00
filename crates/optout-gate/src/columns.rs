//! Reading the two columns consent depends on, the member id and the jurisdiction, from
//! Arrow arrays in whichever layout the file holds them, downcast once per batch so the
//! per-row loops only read values.
//!
//! Ids may be UInt64, Int64, UInt32 or Int32; a null or negative id is not a member id.
//! Jurisdictions may be any Arrow string layout or a dictionary of one; the Utf8View
//! path reads two-letter codes straight from the view, without touching the data buffers.

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, UInt32Type, UInt64Type};
use arrow_array::{Array, ArrowPrimitiveType, PrimitiveArray};
use arrow_schema::DataType;

use crate::consent_filter::{slot_of_letters, slot_of_text, MISSING_JURISDICTION};

pub const ID_TYPES: &str = "an integer (UInt64, Int64, UInt32 or Int32)";
pub const JURISDICTION_TYPES: &str = "a string (Utf8, LargeUtf8, Utf8View or a dictionary of them)";

pub fn is_id_type(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::UInt64 | DataType::Int64 | DataType::UInt32 | DataType::Int32
    )
}

pub fn is_text_type(data_type: &DataType) -> bool {
    match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, values) => is_text_type(values),
        _ => false,
    }
}

/// Calls `visit(row, id)` for every row of an id array (`None`: null or negative).
/// Returns false when the array's type is not an id type.
pub fn for_each_id(array: &dyn Array, mut visit: impl FnMut(usize, Option<u64>)) -> bool {
    fn each<T: ArrowPrimitiveType>(
        array: &PrimitiveArray<T>,
        convert: impl Fn(T::Native) -> Option<u64>,
        visit: &mut impl FnMut(usize, Option<u64>),
    ) {
        let values = array.values().iter();
        match array.nulls().filter(|nulls| nulls.null_count() > 0) {
            None => {
                for (row, value) in values.enumerate() {
                    visit(row, convert(*value));
                }
            }
            Some(nulls) => {
                for (row, (value, valid)) in values.zip(nulls.iter()).enumerate() {
                    visit(row, if valid { convert(*value) } else { None });
                }
            }
        }
    }
    match array.data_type() {
        DataType::UInt64 => match array.as_primitive_opt::<UInt64Type>() {
            Some(ids) => each(ids, Some, &mut visit),
            None => return false,
        },
        DataType::Int64 => match array.as_primitive_opt::<Int64Type>() {
            Some(ids) => each(ids, |id| u64::try_from(id).ok(), &mut visit),
            None => return false,
        },
        DataType::UInt32 => match array.as_primitive_opt::<UInt32Type>() {
            Some(ids) => each(ids, |id| Some(u64::from(id)), &mut visit),
            None => return false,
        },
        DataType::Int32 => match array.as_primitive_opt::<Int32Type>() {
            Some(ids) => each(ids, |id| u64::try_from(id).ok(), &mut visit),
            None => return false,
        },
        _ => return false,
    }
    true
}

/// A jurisdiction column of one batch, answering the decision-table slot of each row.
pub enum JurisdictionColumn<'b> {
    View(&'b arrow_array::StringViewArray),
    Utf8(&'b arrow_array::StringArray),
    LargeUtf8(&'b arrow_array::LargeStringArray),
    /// A dictionary: the slot of each row, resolved once per distinct value.
    Resolved(Vec<u16>),
}

impl<'b> JurisdictionColumn<'b> {
    pub fn new(array: &'b dyn Array) -> Option<Self> {
        match array.data_type() {
            DataType::Utf8View => array.as_string_view_opt().map(JurisdictionColumn::View),
            DataType::Utf8 => array.as_string_opt().map(JurisdictionColumn::Utf8),
            DataType::LargeUtf8 => array.as_string_opt().map(JurisdictionColumn::LargeUtf8),
            DataType::Dictionary(_, _) => {
                let dictionary = array.as_any_dictionary_opt()?;
                let values = JurisdictionColumn::new(dictionary.values().as_ref())?;
                let value_slots: Vec<u16> = (0..dictionary.values().len())
                    .map(|index| values.slot(index))
                    .collect();
                if value_slots.is_empty() {
                    return Some(JurisdictionColumn::Resolved(vec![
                        MISSING_JURISDICTION;
                        array.len()
                    ]));
                }
                let keys = dictionary.normalized_keys();
                let slots = keys
                    .iter()
                    .enumerate()
                    .map(|(row, key)| {
                        if array.is_null(row) {
                            MISSING_JURISDICTION
                        } else {
                            value_slots
                                .get(*key)
                                .copied()
                                .unwrap_or(MISSING_JURISDICTION)
                        }
                    })
                    .collect();
                Some(JurisdictionColumn::Resolved(slots))
            }
            _ => None,
        }
    }

    /// The slot of row `row`; null, malformed and out-of-range rows are missing.
    #[inline]
    pub fn slot(&self, row: usize) -> u16 {
        match self {
            JurisdictionColumn::View(array) => {
                if array.is_null(row) {
                    return MISSING_JURISDICTION;
                }
                let Some(view) = array.views().get(row).copied() else {
                    return MISSING_JURISDICTION;
                };
                // A view holds its length in the low 32 bits and, for strings of up to
                // 12 bytes, the bytes themselves right after it.
                if view as u32 == 2 {
                    slot_of_letters((view >> 32) as u8, (view >> 40) as u8)
                } else {
                    slot_of_text(array.value(row))
                }
            }
            JurisdictionColumn::Utf8(array) => {
                if array.is_null(row) || row >= array.len() {
                    MISSING_JURISDICTION
                } else {
                    slot_of_text(array.value(row))
                }
            }
            JurisdictionColumn::LargeUtf8(array) => {
                if array.is_null(row) || row >= array.len() {
                    MISSING_JURISDICTION
                } else {
                    slot_of_text(array.value(row))
                }
            }
            JurisdictionColumn::Resolved(slots) => {
                slots.get(row).copied().unwrap_or(MISSING_JURISDICTION)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use arrow_array::types::Int32Type as Key;
    use arrow_array::{DictionaryArray, Int64Array, StringViewArray, UInt64Array};

    #[test]
    fn ids_are_read_with_nulls_and_negatives_invalid() {
        let mut seen = Vec::new();
        let array = Int64Array::from(vec![Some(5), None, Some(-1), Some(i64::MAX)]);
        assert!(for_each_id(&array, |row, id| seen.push((row, id))));
        assert_eq!(
            seen,
            vec![
                (0, Some(5)),
                (1, None),
                (2, None),
                (3, Some(i64::MAX as u64))
            ]
        );
        let mut big = Vec::new();
        assert!(for_each_id(&UInt64Array::from(vec![u64::MAX]), |_, id| big.push(id)));
        assert_eq!(big, vec![Some(u64::MAX)]);
        assert!(!for_each_id(&StringViewArray::from(vec!["1"]), |_, _| {}));
    }

    #[test]
    fn every_string_layout_gives_the_same_slots() {
        let texts = vec![
            Some("DE"),
            None,
            Some("us"),
            Some("longer than twelve"),
            Some(" FR "),
        ];
        let view = StringViewArray::from(texts.clone());
        let utf8 = arrow_array::StringArray::from(texts.clone());
        let dictionary: DictionaryArray<Key> = texts.iter().copied().collect();
        let expected: Vec<u16> = texts
            .iter()
            .map(|text| text.map_or(MISSING_JURISDICTION, slot_of_text))
            .collect();
        for array in [&view as &dyn Array, &utf8, &dictionary] {
            let column = JurisdictionColumn::new(array).unwrap();
            let slots: Vec<u16> = (0..texts.len()).map(|row| column.slot(row)).collect();
            assert_eq!(slots, expected, "{}", array.data_type());
        }
    }
}
