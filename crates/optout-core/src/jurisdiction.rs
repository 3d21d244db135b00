//! `Jurisdiction`: an ISO 3166-1 alpha-2 country code, upper-cased on the way in.
//!
//! Parsing only checks the shape (two ASCII letters) so that a caller's code that is well
//! formed but not assigned ("XX") reaches the consent rule, which answers it with the
//! most protective result rather than an error; `is_assigned` tells the two apart.

use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Jurisdiction([u8; 2]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid jurisdiction {input:?}: expected an ISO 3166-1 alpha-2 code such as DE or US")]
pub struct JurisdictionError {
    pub input: String,
}

/// ISO 3166-1 alpha-2 officially assigned codes, plus XK (Kosovo), which identity
/// providers commonly emit. Sorted, so lookups are a binary search.
const ASSIGNED: [&str; 250] = [
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "XK", "YE", "YT", "ZA", "ZM", "ZW",
];

impl Jurisdiction {
    /// Accepts two ASCII letters in any case, surrounded by optional whitespace.
    pub fn parse(input: &str) -> Result<Self, JurisdictionError> {
        match input.trim().as_bytes() {
            [first, second] if first.is_ascii_alphabetic() && second.is_ascii_alphabetic() => {
                Ok(Jurisdiction([
                    first.to_ascii_uppercase(),
                    second.to_ascii_uppercase(),
                ]))
            }
            _ => Err(JurisdictionError {
                input: input.to_string(),
            }),
        }
    }

    /// Every assigned code (and XK), in order.
    pub fn assigned() -> impl Iterator<Item = Jurisdiction> {
        ASSIGNED
            .iter()
            .filter_map(|code| Jurisdiction::parse(code).ok())
    }

    /// Whether ISO 3166-1 assigns this code (or it is XK).
    pub fn is_assigned(self) -> bool {
        ASSIGNED.binary_search(&self.as_str()).is_ok()
    }

    pub fn as_str(&self) -> &str {
        // Both bytes are ASCII letters by construction.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }

    pub fn as_bytes(self) -> [u8; 2] {
        self.0
    }
}

impl fmt::Display for Jurisdiction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Jurisdiction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Jurisdiction({})", self.as_str())
    }
}

impl FromStr for Jurisdiction {
    type Err = JurisdictionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Jurisdiction::parse(s)
    }
}

impl serde::Serialize for Jurisdiction {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Jurisdiction {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Jurisdiction::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assigned_codes_are_sorted_and_unique() {
        assert!(ASSIGNED.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn normalises_case_and_checks_assignment() {
        let de = Jurisdiction::parse(" de ").unwrap();
        assert_eq!(de.as_str(), "DE");
        assert!(de.is_assigned());
        assert!(!Jurisdiction::parse("XX").unwrap().is_assigned());
        for bad in ["", "D", "DEU", "D1", "é1"] {
            assert!(Jurisdiction::parse(bad).is_err(), "{bad:?}");
        }
    }
}
