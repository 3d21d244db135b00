//! `MemberId`: the only thing the ledger knows about a person (data minimisation).

use std::fmt;
use std::str::FromStr;

#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct MemberId(pub u64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid member id {input:?}: expected an unsigned 64-bit integer")]
pub struct MemberIdError {
    pub input: String,
}

impl MemberId {
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for MemberId {
    type Err = MemberIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim()
            .parse::<u64>()
            .map(MemberId)
            .map_err(|_| MemberIdError {
                input: s.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ids_up_to_u64_max() {
        assert_eq!(
            "18446744073709551615".parse::<MemberId>().unwrap().get(),
            u64::MAX
        );
        assert_eq!(" 4294967296 ".parse::<MemberId>().unwrap().get(), 1 << 32);
        assert!("-1".parse::<MemberId>().is_err());
        assert!("18446744073709551616".parse::<MemberId>().is_err());
        assert!("12a".parse::<MemberId>().is_err());
    }
}
