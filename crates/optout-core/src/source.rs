//! Where a choice came from. Recorded with every choice so a regulator can see how
//! consent was given or withdrawn.

use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Source {
    Web,
    Mobile,
    Api,
    /// The browser sent `Sec-GPC: 1` (Global Privacy Control).
    Gpc,
    Admin,
    Import,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid source {input:?}: expected one of web, mobile, api, gpc, admin, import")]
pub struct SourceError {
    pub input: String,
}

impl Source {
    pub const ALL: [Source; 6] = [
        Source::Web,
        Source::Mobile,
        Source::Api,
        Source::Gpc,
        Source::Admin,
        Source::Import,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Web => "web",
            Source::Mobile => "mobile",
            Source::Api => "api",
            Source::Gpc => "gpc",
            Source::Admin => "admin",
            Source::Import => "import",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Source {
    type Err = SourceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase();
        Source::ALL
            .into_iter()
            .find(|source| source.as_str() == wanted)
            .ok_or_else(|| SourceError {
                input: s.to_string(),
            })
    }
}

impl serde::Serialize for Source {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Source {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}
