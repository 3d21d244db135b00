//! The columns of an import file and the checks every value must pass, shared by the
//! Parquet, CSV and JSON Lines readers so that a value means the same in each format
//! and the same mistake gets the same message.

use std::collections::BTreeSet;

use optout_core::{MemberId, Purpose, Source, Timestamp};

/// Longest excerpt of an offending value quoted in a message, in characters.
const QUOTED_CHARS_MAX: usize = 64;
/// Most known purposes listed when a purpose is unknown.
const LISTED_PURPOSES_MAX: usize = 10;

/// A column an import reads; any other column in the file is ignored.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Column {
    MemberId,
    Purpose,
    Allowed,
    At,
    /// Optional: absent, null or empty means [`Source::Import`].
    Source,
}

impl Column {
    /// In the order values are checked, which decides the column an invalid row names.
    pub(crate) const ALL: [Column; 5] = [
        Column::MemberId,
        Column::Purpose,
        Column::Allowed,
        Column::At,
        Column::Source,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Column::MemberId => "member_id",
            Column::Purpose => "purpose",
            Column::Allowed => "allowed",
            Column::At => "at",
            Column::Source => "source",
        }
    }

    pub(crate) fn is_required(self) -> bool {
        self != Column::Source
    }
}

/// Why one row is invalid; becomes an [`InvalidRow`](crate::InvalidRow) once the
/// file and row number are attached.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) struct RowError {
    pub(crate) column: Option<Column>,
    pub(crate) reason: String,
}

impl RowError {
    /// The row as a whole is unreadable, before any column can be looked at.
    pub(crate) fn whole_row(reason: String) -> Self {
        RowError {
            column: None,
            reason,
        }
    }
}

/// Attaches the column to a value check's message.
pub(crate) trait InColumn<T> {
    fn in_column(self, column: Column) -> Result<T, RowError>;
}

impl<T> InColumn<T> for Result<T, String> {
    fn in_column(self, column: Column) -> Result<T, RowError> {
        self.map_err(|reason| RowError {
            column: Some(column),
            reason,
        })
    }
}

/// The message for a null or empty required value.
pub(crate) fn missing() -> String {
    "missing (null or empty)".to_string()
}

/// `text` in quotes, shortened so that a huge bad value cannot flood the report.
pub(crate) fn quoted(text: &str) -> String {
    if text.chars().count() <= QUOTED_CHARS_MAX {
        format!("{text:?}")
    } else {
        let excerpt: String = text.chars().take(QUOTED_CHARS_MAX).collect();
        format!("{excerpt:?}…")
    }
}

/// A member id written as decimal digits, up to `u64::MAX`.
pub(crate) fn member_id_from_text(text: &str) -> Result<MemberId, String> {
    if text.is_empty() {
        return Err(missing());
    }
    let is_digits = |digits: &str| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
    if text.strip_prefix('-').is_some_and(is_digits) {
        return Err(format!("negative member id {text}"));
    }
    if !is_digits(text) {
        return Err(format!(
            "expected a member id of decimal digits, found {}",
            quoted(text)
        ));
    }
    text.parse::<u64>()
        .map(MemberId)
        .map_err(|_| format!("member id {text} is larger than {}", u64::MAX))
}

/// A member id from a signed integer column.
pub(crate) fn member_id_from_signed(value: i64) -> Result<MemberId, String> {
    u64::try_from(value)
        .map(MemberId)
        .map_err(|_| format!("negative member id {value}"))
}

/// `true`/`false`, `1`/`0` or `yes`/`no`, in any case.
pub(crate) fn allowed_from_text(text: &str) -> Result<bool, String> {
    const TRUE: [&str; 3] = ["true", "1", "yes"];
    const FALSE: [&str; 3] = ["false", "0", "no"];
    if text.is_empty() {
        return Err(missing());
    }
    if TRUE.iter().any(|word| word.eq_ignore_ascii_case(text)) {
        Ok(true)
    } else if FALSE.iter().any(|word| word.eq_ignore_ascii_case(text)) {
        Ok(false)
    } else {
        Err(format!(
            "expected true/false, 1/0 or yes/no, found {}",
            quoted(text)
        ))
    }
}

/// An RFC 3339 time, e.g. `2025-06-30T12:00:00.123456Z`.
pub(crate) fn time_from_text(text: &str) -> Result<Timestamp, String> {
    if text.is_empty() {
        return Err(missing());
    }
    Timestamp::parse_rfc3339(text).map_err(|_| {
        format!(
            "invalid time {}: expected RFC 3339 to the microsecond, e.g. 2025-06-30T00:00:00Z",
            quoted(text)
        )
    })
}

/// A source name (`web`, `mobile`, `api`, `gpc`, `admin`, `import`, in any case);
/// null or empty means [`Source::Import`].
pub(crate) fn source_from_text(text: Option<&str>) -> Result<Source, String> {
    let text = text.unwrap_or_default();
    if text.trim().is_empty() {
        return Ok(Source::Import);
    }
    // The exact lowercase name is by far the common case; only fall back to the
    // allocating, case-insensitive parse when it is not.
    match Source::ALL
        .into_iter()
        .find(|source| source.as_str() == text)
    {
        Some(source) => Ok(source),
        None => text.parse::<Source>().map_err(|_| {
            format!(
                "unknown source {}: expected web, mobile, api, gpc, admin or import",
                quoted(text)
            )
        }),
    }
}

/// The purposes the caller accepts, sorted by name. There are a handful, so a binary
/// search over them is cheaper per row than hashing the name.
pub(crate) struct PurposeCatalog<'a> {
    sorted: Vec<&'a Purpose>,
    known: &'a BTreeSet<Purpose>,
}

impl<'a> PurposeCatalog<'a> {
    pub(crate) fn new(known: &'a BTreeSet<Purpose>) -> Self {
        let mut sorted: Vec<&Purpose> = known.iter().collect();
        sorted.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
        PurposeCatalog { sorted, known }
    }

    /// The known purpose named `text`; an invalid name or one not known is an error.
    pub(crate) fn resolve(&self, text: &str) -> Result<Purpose, String> {
        let found = self
            .sorted
            .binary_search_by(|purpose| purpose.as_str().cmp(text))
            .ok()
            .and_then(|index| self.sorted.get(index));
        if let Some(purpose) = found {
            return Ok((*purpose).clone());
        }
        if text.is_empty() {
            return Err(missing());
        }
        if Purpose::new(text).is_err() {
            return Err(format!(
                "invalid purpose name {}: expected 1-64 characters a-z, 0-9 and _, starting with a letter",
                quoted(text)
            ));
        }
        Err(format!(
            "unknown purpose {}: known purposes are {}",
            quoted(text),
            self.listed()
        ))
    }

    fn listed(&self) -> String {
        if self.known.is_empty() {
            return "none".to_string();
        }
        let mut names: Vec<&str> = self
            .known
            .iter()
            .take(LISTED_PURPOSES_MAX)
            .map(Purpose::as_str)
            .collect();
        if self.known.len() > LISTED_PURPOSES_MAX {
            names.push("…");
        }
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_ids_are_decimal_up_to_u64_max() {
        assert_eq!(member_id_from_text("0"), Ok(MemberId(0)));
        assert_eq!(
            member_id_from_text("18446744073709551615"),
            Ok(MemberId(u64::MAX))
        );
        let overflow = member_id_from_text("18446744073709551616").unwrap_err();
        assert!(overflow.contains("larger than"), "{overflow}");
        assert!(member_id_from_text("-5").unwrap_err().contains("negative"));
        for bad in ["+5", "1.0", "1e3", "0x10", "12a", "-", " 1"] {
            assert!(
                member_id_from_text(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
        assert_eq!(member_id_from_text(""), Err(missing()));
        assert_eq!(
            member_id_from_signed(-1),
            Err("negative member id -1".to_string())
        );
        assert_eq!(
            member_id_from_signed(i64::MAX),
            Ok(MemberId(i64::MAX as u64))
        );
    }

    #[test]
    fn allowed_accepts_three_spellings_in_any_case() {
        for yes in ["true", "TRUE", "True", "1", "yes", "YES"] {
            assert_eq!(allowed_from_text(yes), Ok(true), "{yes}");
        }
        for no in ["false", "False", "0", "no", "No"] {
            assert_eq!(allowed_from_text(no), Ok(false), "{no}");
        }
        for bad in ["y", "n", "2", "on", "truee"] {
            assert!(
                allowed_from_text(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn source_defaults_to_import_and_ignores_case() {
        assert_eq!(source_from_text(None), Ok(Source::Import));
        assert_eq!(source_from_text(Some("")), Ok(Source::Import));
        assert_eq!(source_from_text(Some("gpc")), Ok(Source::Gpc));
        assert_eq!(source_from_text(Some("Mobile")), Ok(Source::Mobile));
        assert!(source_from_text(Some("fax"))
            .unwrap_err()
            .contains("\"fax\""));
    }

    #[test]
    fn purposes_must_be_valid_and_known() {
        let known: BTreeSet<Purpose> = [Purpose::new("ai_training").unwrap()].into();
        let catalog = PurposeCatalog::new(&known);
        assert_eq!(
            catalog.resolve("ai_training").unwrap().as_str(),
            "ai_training"
        );
        let unknown = catalog.resolve("ai_ads").unwrap_err();
        assert!(unknown.contains("unknown purpose \"ai_ads\""), "{unknown}");
        assert!(unknown.contains("ai_training"), "{unknown}");
        assert!(catalog
            .resolve("AI")
            .unwrap_err()
            .contains("invalid purpose name"));
        assert_eq!(catalog.resolve(""), Err(missing()));
    }

    #[test]
    fn long_values_are_shortened_in_messages() {
        let long = "x".repeat(1000);
        let message = quoted(&long);
        assert!(message.len() < 80, "{message}");
        assert!(message.ends_with('…'));
    }
}
