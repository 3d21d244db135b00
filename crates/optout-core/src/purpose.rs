//! `Purpose`: a named use of member data, e.g. `ai_training`.

use std::fmt;
use std::str::FromStr;

pub const PURPOSE_NAME_BYTES_MAX: usize = 64;

#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Purpose(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid purpose name {input:?}: expected 1-64 characters a-z, 0-9 and _, starting with a letter")]
pub struct PurposeError {
    pub input: String,
}

impl Purpose {
    pub fn new(name: &str) -> Result<Self, PurposeError> {
        let mut chars = name.chars();
        let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_lowercase());
        let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if starts_with_letter && rest_ok && name.len() <= PURPOSE_NAME_BYTES_MAX {
            Ok(Purpose(name.to_string()))
        } else {
            Err(PurposeError {
                input: name.to_string(),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Purpose {
    type Err = PurposeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Purpose::new(s)
    }
}

impl serde::Serialize for Purpose {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Purpose {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Purpose::new(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_names() {
        assert!(Purpose::new("ai_training").is_ok());
        assert!(Purpose::new("a1").is_ok());
        for bad in [
            "",
            "AI",
            "1ai",
            "ai-training",
            "ai training",
            &"a".repeat(65),
        ] {
            assert!(Purpose::new(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
