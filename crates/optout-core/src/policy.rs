//! The versioned policy: for each purpose, who is asked how (per jurisdiction), what the
//! member is told, and which fields a dataset may keep.
//!
//! A policy version is a TOML document with an `effective_from` time. Versions follow each
//! other in time; the consent rule uses the version in force at the moment asked about.
//! Every loaded version is appended to the ledger verbatim, so "what was the default on
//! date D" is provable later. Errors name the origin (file), line, column and reason.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Deserialize;
use toml::Spanned;

use crate::jurisdiction::Jurisdiction;
use crate::purpose::Purpose;
use crate::time::Timestamp;

/// The policy shipped with optout: `ai_training` opt-out everywhere but the EU/EEA,
/// Switzerland and the UK, where it is opt-in.
pub const DEFAULT_POLICY_TOML: &str = include_str!("../policies/default.toml");

#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct PolicyVersion(pub u32);

impl fmt::Display for PolicyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// How a jurisdiction is treated for a purpose.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Allowed unless the member said no (legitimate interest with a right to object).
    OptOut,
    /// Not allowed unless the member said yes (consent).
    OptIn,
    /// Never used, whatever the member chose; the setting is not offered.
    Excluded,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::OptOut => "opt_out",
            Mode::OptIn => "opt_in",
            Mode::Excluded => "excluded",
        }
    }
}

/// A jurisdiction's rule for one purpose.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Rule {
    OptOut {
        notified_at: Timestamp,
        /// The deadline: before it the default does not count (not allowed).
        default_effective_from: Timestamp,
    },
    OptIn,
    Excluded,
}

impl Rule {
    pub fn mode(&self) -> Mode {
        match self {
            Rule::OptOut { .. } => Mode::OptOut,
            Rule::OptIn => Mode::OptIn,
            Rule::Excluded => Mode::Excluded,
        }
    }
}

/// The text shown to members when they are asked.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Notice {
    pub text: String,
    pub version: String,
    pub language: String,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PurposePolicy {
    pub purpose: Purpose,
    pub title: String,
    pub notice: Notice,
    pub allowed_fields: Vec<String>,
    /// Whether a `Sec-GPC: 1` signal counts as an opt-out for this purpose.
    pub gpc_opt_out: bool,
    /// The rule for every jurisdiction not named in `rules`.
    pub default_rule: Rule,
    pub rules: BTreeMap<Jurisdiction, Rule>,
}

impl PurposePolicy {
    pub fn rule_for(&self, jurisdiction: Jurisdiction) -> Rule {
        self.rules
            .get(&jurisdiction)
            .copied()
            .unwrap_or(self.default_rule)
    }
}

/// One parsed policy version, with the text it was parsed from.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PolicyDocument {
    pub version: PolicyVersion,
    pub effective_from: Timestamp,
    pub purposes: BTreeMap<Purpose, PurposePolicy>,
    pub text: String,
}

/// A policy that could not be accepted, with where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}:{line}:{column}: {reason}")]
pub struct PolicyError {
    pub origin: String,
    pub line: usize,
    pub column: usize,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyOrderError {
    #[error("policy version {new} must be greater than the latest loaded version {latest}")]
    VersionNotIncreasing {
        new: PolicyVersion,
        latest: PolicyVersion,
    },
    #[error("policy version {new} takes effect at {new_from}, not after version {latest} ({latest_from}); versions must follow each other in time")]
    EffectiveFromNotIncreasing {
        new: PolicyVersion,
        new_from: Timestamp,
        latest: PolicyVersion,
        latest_from: Timestamp,
    },
}

impl PolicyDocument {
    /// Parses and validates a policy document; `origin` names it in errors (a path).
    pub fn parse(text: &str, origin: &str) -> Result<Self, PolicyError> {
        let locate = Locator { text, origin };
        let raw: RawPolicy = toml::from_str(text).map_err(|error| {
            let offset = error.span().map(|span| span.start).unwrap_or(0);
            locate.error(offset, error.message().trim().to_string())
        })?;
        raw.validate(&locate, text)
    }

    pub fn default_policy() -> Self {
        match Self::parse(
            DEFAULT_POLICY_TOML,
            "crates/optout-core/policies/default.toml",
        ) {
            Ok(policy) => policy,
            // The shipped file is checked by a unit test; reaching this is a build defect.
            Err(error) => unreachable!("the shipped default policy is invalid: {error}"),
        }
    }

    pub fn purpose(&self, purpose: &Purpose) -> Option<&PurposePolicy> {
        self.purposes.get(purpose)
    }
}

/// All policy versions loaded so far, in the order they take effect.
#[derive(Clone, Debug, Default)]
pub struct PolicyHistory {
    versions: Vec<PolicyDocument>,
}

impl PolicyHistory {
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a history from documents in load order, checking that they follow each other.
    pub fn from_versions(
        versions: impl IntoIterator<Item = PolicyDocument>,
    ) -> Result<Self, PolicyOrderError> {
        let mut history = Self::new();
        for version in versions {
            history.push(version)?;
        }
        Ok(history)
    }

    /// Whether `next` may follow the latest version.
    pub fn check_next(&self, next: &PolicyDocument) -> Result<(), PolicyOrderError> {
        check_follows(
            self.latest()
                .map(|latest| (latest.version, latest.effective_from)),
            next.version,
            next.effective_from,
        )
    }

    pub fn push(&mut self, next: PolicyDocument) -> Result<(), PolicyOrderError> {
        self.check_next(&next)?;
        self.versions.push(next);
        Ok(())
    }

    /// The version in force at `at`: the latest whose `effective_from` is at or before it.
    pub fn in_force_at(&self, at: Timestamp) -> Option<&PolicyDocument> {
        let after = self
            .versions
            .partition_point(|version| version.effective_from <= at);
        after
            .checked_sub(1)
            .and_then(|index| self.versions.get(index))
    }

    pub fn latest(&self) -> Option<&PolicyDocument> {
        self.versions.last()
    }

    pub fn versions(&self) -> &[PolicyDocument] {
        &self.versions
    }

    pub fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }

    /// Every purpose some version defines, sorted: what a choice may name, since a choice
    /// stays valid evidence after a later version drops its purpose.
    pub fn defined_purposes(&self) -> std::collections::BTreeSet<&Purpose> {
        self.versions
            .iter()
            .flat_map(|version| version.purposes.keys())
            .collect()
    }
}

/// The ordering rule between consecutive policy versions, shared by the history and the
/// ledger writer (which sees only version numbers and times).
pub fn check_follows(
    latest: Option<(PolicyVersion, Timestamp)>,
    new: PolicyVersion,
    new_from: Timestamp,
) -> Result<(), PolicyOrderError> {
    let Some((latest, latest_from)) = latest else {
        return Ok(());
    };
    if new <= latest {
        return Err(PolicyOrderError::VersionNotIncreasing { new, latest });
    }
    if new_from <= latest_from {
        return Err(PolicyOrderError::EffectiveFromNotIncreasing {
            new,
            new_from,
            latest,
            latest_from,
        });
    }
    Ok(())
}

struct Locator<'a> {
    text: &'a str,
    origin: &'a str,
}

impl Locator<'_> {
    fn error(&self, offset: usize, reason: String) -> PolicyError {
        let before = self.text.get(..offset).unwrap_or(self.text);
        let line = before.matches('\n').count() + 1;
        let column = before
            .rsplit('\n')
            .next()
            .map_or(0, |tail| tail.chars().count())
            + 1;
        PolicyError {
            origin: self.origin.to_string(),
            line,
            column,
            reason,
        }
    }

    fn at<T>(&self, spanned: &Spanned<T>, reason: String) -> PolicyError {
        self.error(spanned.span().start, reason)
    }

    fn time(&self, value: &Spanned<toml::Value>, field: &str) -> Result<Timestamp, PolicyError> {
        let text = match value.get_ref() {
            toml::Value::String(text) => text.clone(),
            toml::Value::Datetime(datetime) => datetime.to_string(),
            other => {
                return Err(self.at(
                    value,
                    format!(
                        "{field} must be an RFC 3339 time, found {}",
                        other.type_str()
                    ),
                ))
            }
        };
        Timestamp::parse_rfc3339(&text).map_err(|error| self.at(value, format!("{field}: {error}")))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    version: Spanned<i64>,
    effective_from: Spanned<toml::Value>,
    #[serde(default)]
    groups: BTreeMap<String, Spanned<Vec<Spanned<String>>>>,
    purposes: Spanned<BTreeMap<Spanned<String>, RawPurpose>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPurpose {
    title: Spanned<String>,
    notice: Spanned<String>,
    notice_version: Option<String>,
    #[serde(default = "default_language")]
    notice_language: String,
    allowed_fields: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    gpc_opt_out: bool,
    default: Spanned<RawRule>,
    #[serde(default)]
    rules: Vec<Spanned<RawRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default)]
    jurisdictions: Vec<Spanned<String>>,
    mode: Spanned<String>,
    notified_at: Option<Spanned<toml::Value>>,
    default_effective_from: Option<Spanned<toml::Value>>,
}

fn default_language() -> String {
    "en".to_string()
}

impl RawPolicy {
    fn validate(self, locate: &Locator<'_>, text: &str) -> Result<PolicyDocument, PolicyError> {
        let version = u32::try_from(*self.version.get_ref())
            .ok()
            .filter(|version| *version > 0)
            .map(PolicyVersion)
            .ok_or_else(|| {
                locate.at(
                    &self.version,
                    "version must be a positive integer below 2^32".into(),
                )
            })?;
        let effective_from = locate.time(&self.effective_from, "effective_from")?;
        let groups = validate_groups(&self.groups, locate)?;
        let purposes_span = self.purposes.span().start;
        let mut purposes = BTreeMap::new();
        for (name, raw) in self.purposes.into_inner() {
            let purpose = Purpose::new(name.get_ref())
                .map_err(|error| locate.at(&name, error.to_string()))?;
            let policy = raw.validate(purpose.clone(), version, &groups, locate)?;
            purposes.insert(purpose, policy);
        }
        if purposes.is_empty() {
            return Err(locate.error(
                purposes_span,
                "a policy must define at least one purpose".into(),
            ));
        }
        Ok(PolicyDocument {
            version,
            effective_from,
            purposes,
            text: text.to_string(),
        })
    }
}

fn validate_groups(
    raw: &BTreeMap<String, Spanned<Vec<Spanned<String>>>>,
    locate: &Locator<'_>,
) -> Result<BTreeMap<String, Vec<Jurisdiction>>, PolicyError> {
    let mut groups = BTreeMap::new();
    for (name, members) in raw {
        if Jurisdiction::parse(name).is_ok_and(|code| code.is_assigned()) {
            return Err(locate.at(
                members,
                format!("group name {name:?} is a country code; choose another name"),
            ));
        }
        let mut codes = Vec::new();
        for code in members.get_ref() {
            codes.push(assigned_code(code, locate)?);
        }
        groups.insert(name.clone(), codes);
    }
    Ok(groups)
}

fn assigned_code(
    code: &Spanned<String>,
    locate: &Locator<'_>,
) -> Result<Jurisdiction, PolicyError> {
    let jurisdiction =
        Jurisdiction::parse(code.get_ref()).map_err(|error| locate.at(code, error.to_string()))?;
    if !jurisdiction.is_assigned() {
        return Err(locate.at(
            code,
            format!("{jurisdiction} is not an assigned ISO 3166-1 alpha-2 code"),
        ));
    }
    Ok(jurisdiction)
}

impl RawPurpose {
    fn validate(
        self,
        purpose: Purpose,
        version: PolicyVersion,
        groups: &BTreeMap<String, Vec<Jurisdiction>>,
        locate: &Locator<'_>,
    ) -> Result<PurposePolicy, PolicyError> {
        for (value, field) in [(&self.title, "title"), (&self.notice, "notice")] {
            if value.get_ref().trim().is_empty() {
                return Err(locate.at(value, format!("{field} of purpose {purpose} is empty")));
            }
        }
        let mut allowed_fields = Vec::new();
        let mut seen = BTreeSet::new();
        for field in self.allowed_fields.get_ref() {
            let name = field.get_ref().trim();
            if name.is_empty() || name.chars().any(char::is_control) {
                return Err(locate.at(field, format!("invalid field name {name:?}")));
            }
            if !seen.insert(name.to_string()) {
                return Err(locate.at(field, format!("field {name:?} is listed twice")));
            }
            allowed_fields.push(name.to_string());
        }
        if !self.default.get_ref().jurisdictions.is_empty() {
            return Err(locate.at(
                &self.default,
                "the default rule applies to every jurisdiction not named elsewhere; remove `jurisdictions`".into(),
            ));
        }
        let default_rule = self.default.get_ref().rule(locate)?;
        let mut rules = BTreeMap::new();
        for raw_rule in &self.rules {
            let rule = raw_rule.get_ref().rule(locate)?;
            if raw_rule.get_ref().jurisdictions.is_empty() {
                return Err(locate.at(raw_rule, "a rule must name its jurisdictions".into()));
            }
            for name in &raw_rule.get_ref().jurisdictions {
                let codes = match groups.get(name.get_ref()) {
                    Some(codes) => codes.clone(),
                    None => vec![assigned_code(name, locate)?],
                };
                for code in codes {
                    if rules.insert(code, rule).is_some() {
                        return Err(locate.at(
                            name,
                            format!("{code} is given more than one rule for purpose {purpose}"),
                        ));
                    }
                }
            }
        }
        Ok(PurposePolicy {
            purpose,
            title: self.title.into_inner(),
            notice: Notice {
                text: self.notice.into_inner(),
                version: self.notice_version.unwrap_or_else(|| version.to_string()),
                language: self.notice_language,
            },
            allowed_fields,
            gpc_opt_out: self.gpc_opt_out,
            default_rule,
            rules,
        })
    }
}

impl RawRule {
    fn rule(&self, locate: &Locator<'_>) -> Result<Rule, PolicyError> {
        let no_dates = |mode: &str| -> Result<(), PolicyError> {
            if let Some(deadline) = &self.default_effective_from {
                return Err(locate.at(
                    deadline,
                    format!(
                        "default_effective_from only applies to mode \"opt_out\", not {mode:?}"
                    ),
                ));
            }
            Ok(())
        };
        match self.mode.get_ref().as_str() {
            "opt_out" => {
                let missing =
                    |field: &str| locate.at(&self.mode, format!("mode \"opt_out\" needs {field}"));
                let notified_at = self
                    .notified_at
                    .as_ref()
                    .ok_or_else(|| missing("notified_at"))?;
                let deadline = self
                    .default_effective_from
                    .as_ref()
                    .ok_or_else(|| missing("default_effective_from"))?;
                let notified = locate.time(notified_at, "notified_at")?;
                let default_effective_from = locate.time(deadline, "default_effective_from")?;
                if default_effective_from < notified {
                    return Err(locate.at(
                        deadline,
                        "default_effective_from is before notified_at: members must be told before the default counts".into(),
                    ));
                }
                Ok(Rule::OptOut {
                    notified_at: notified,
                    default_effective_from,
                })
            }
            "opt_in" => no_dates("opt_in").map(|()| Rule::OptIn),
            "excluded" => no_dates("excluded").map(|()| Rule::Excluded),
            other => Err(locate.at(
                &self.mode,
                format!("unknown mode {other:?}: expected \"opt_out\", \"opt_in\" or \"excluded\""),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).unwrap()
    }

    #[test]
    fn default_policy_matches_the_promise() {
        let policy = PolicyDocument::default_policy();
        assert_eq!(policy.effective_from, t("2023-10-16T00:00:00Z"));
        let training = policy
            .purpose(&Purpose::new("ai_training").unwrap())
            .unwrap();
        assert_eq!(training.title, "Use of data for AI training");
        assert_eq!(
            training.allowed_fields,
            ["headline", "skills", "experience"]
        );
        assert_eq!(
            training.rule_for(Jurisdiction::parse("US").unwrap()),
            Rule::OptOut {
                notified_at: t("2023-10-16T00:00:00Z"),
                default_effective_from: t("2023-10-30T00:00:00Z")
            }
        );
        for code in [
            "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE",
            "IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "IS",
            "LI", "NO", "CH", "GB",
        ] {
            assert_eq!(
                training.rule_for(Jurisdiction::parse(code).unwrap()),
                Rule::OptIn,
                "{code}"
            );
        }
        assert_eq!(training.rules.len(), 32);
        assert!(policy
            .purpose(&Purpose::new("ai_personalization").unwrap())
            .is_some());
    }

    #[test]
    fn errors_name_file_line_and_reason() {
        let text = "version = 1\neffective_from = \"2024-01-01T00:00:00Z\"\n[purposes.p]\ntitle = \"T\"\nnotice = \"N\"\nallowed_fields = []\ndefault = { mode = \"sometimes\" }\n";
        let error = PolicyDocument::parse(text, "p.toml").unwrap_err();
        assert_eq!((error.origin.as_str(), error.line), ("p.toml", 7));
        assert!(
            error.reason.contains("unknown mode \"sometimes\""),
            "{error}"
        );

        let syntax =
            PolicyDocument::parse("version = 1\neffective_from = [\n", "s.toml").unwrap_err();
        assert_eq!(syntax.origin, "s.toml");
        assert!(syntax.line >= 2, "{syntax}");

        let unknown_field = "version = 1\neffective_from = \"2024-01-01T00:00:00Z\"\ncolour = 1\n";
        let error = PolicyDocument::parse(unknown_field, "u.toml").unwrap_err();
        assert_eq!(error.line, 3, "{error}");
    }

    #[test]
    fn rejects_overlapping_rules_and_bad_codes() {
        let base = "version = 1\neffective_from = \"2024-01-01T00:00:00Z\"\n[groups]\nNORDIC = [\"SE\", \"NO\"]\n[purposes.p]\ntitle = \"T\"\nnotice = \"N\"\nallowed_fields = [\"a\"]\ndefault = { mode = \"opt_in\" }\n";
        let overlap = format!("{base}[[purposes.p.rules]]\njurisdictions = [\"NORDIC\"]\nmode = \"excluded\"\n[[purposes.p.rules]]\njurisdictions = [\"SE\"]\nmode = \"opt_in\"\n");
        let error = PolicyDocument::parse(&overlap, "o.toml").unwrap_err();
        assert!(
            error.reason.contains("SE is given more than one rule"),
            "{error}"
        );
        assert_eq!(error.line, 14);
        let bad_code =
            format!("{base}[[purposes.p.rules]]\njurisdictions = [\"QQ\"]\nmode = \"excluded\"\n");
        let error = PolicyDocument::parse(&bad_code, "b.toml").unwrap_err();
        assert!(error.reason.contains("QQ is not an assigned"), "{error}");
        let opt_out_without_deadline = base.replace(
            "{ mode = \"opt_in\" }",
            "{ mode = \"opt_out\", notified_at = 2024-01-01T00:00:00Z }",
        );
        let error = PolicyDocument::parse(&opt_out_without_deadline, "d.toml").unwrap_err();
        assert!(
            error.reason.contains("needs default_effective_from"),
            "{error}"
        );
    }

    #[test]
    fn history_picks_version_in_force_and_keeps_order() {
        let v1 = PolicyDocument::default_policy();
        let mut v2 = v1.clone();
        v2.version = PolicyVersion(2);
        v2.effective_from = t("2024-06-01T00:00:00Z");
        let mut history = PolicyHistory::from_versions([v1, v2.clone()]).unwrap();
        assert!(history.in_force_at(t("2023-10-15T23:59:59Z")).is_none());
        assert_eq!(
            history
                .in_force_at(t("2023-10-16T00:00:00Z"))
                .unwrap()
                .version,
            PolicyVersion(1)
        );
        assert_eq!(
            history
                .in_force_at(t("2024-06-01T00:00:00Z"))
                .unwrap()
                .version,
            PolicyVersion(2)
        );
        assert!(matches!(
            history.push(v2.clone()),
            Err(PolicyOrderError::VersionNotIncreasing { .. })
        ));
        let mut v3 = v2;
        v3.version = PolicyVersion(3);
        assert!(matches!(
            history.push(v3),
            Err(PolicyOrderError::EffectiveFromNotIncreasing { .. })
        ));
    }
}
