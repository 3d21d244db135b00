//! Reports for privacy officers and auditors (`GET /v1/reports/choices`): how many
//! choices allowed and how many denied, per day (UTC), per jurisdiction the member was in
//! when choosing, or per source, optionally for one purpose.
//!
//! A report counts choice *events* (every flip counts), read from the ledger up to the
//! head at the time of the request, so the answer names the position it reflects and is
//! the same whenever it is asked again for that position.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use optout_core::{EventBody, LedgerPosition, Purpose, Timestamp};
use optout_store::Ledger;

use crate::dto::{ChoiceReport, ReportBucket};
use crate::problem::ApiError;

/// Events read per page when the report needs whole events.
const REPORT_PAGE_EVENTS: usize = 10_000;

/// What the buckets of a report are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportBy {
    Day,
    Jurisdiction,
    Source,
}

impl ReportBy {
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        match text {
            "day" => Ok(ReportBy::Day),
            "jurisdiction" => Ok(ReportBy::Jurisdiction),
            "source" => Ok(ReportBy::Source),
            other => Err(ApiError::InvalidParameter {
                what: "by",
                detail: format!(
                    "{:?} is not one of day, jurisdiction, source",
                    other.chars().take(64).collect::<String>()
                ),
            }),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ReportBy::Day => "day",
            ReportBy::Jurisdiction => "jurisdiction",
            ReportBy::Source => "source",
        }
    }
}

/// Bucket label of a choice made without a known jurisdiction.
pub const UNKNOWN_JURISDICTION: &str = "unknown";

/// Counts the choices up to the ledger head.
pub fn choice_report(
    ledger: &dyn Ledger,
    by: ReportBy,
    purpose: Option<Purpose>,
) -> Result<ChoiceReport, ApiError> {
    let head = ledger
        .head()?
        .map_or(LedgerPosition(0), |head| head.position);
    let mut counts: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut count = |bucket: &str, allowed: bool| {
        let entry = match counts.get_mut(bucket) {
            Some(entry) => entry,
            None => counts.entry(bucket.to_string()).or_default(),
        };
        if allowed {
            entry.0 += 1;
        } else {
            entry.1 += 1;
        }
    };
    let wanted = |candidate: &Purpose| purpose.as_ref().is_none_or(|p| p == candidate);
    match by {
        // The lean scan has purpose, allowed and time: enough for days.
        ReportBy::Day => ledger.scan_choices(head, &mut |facts| {
            if wanted(facts.purpose) {
                count(&day(facts.at), facts.allowed);
            }
        })?,
        ReportBy::Jurisdiction | ReportBy::Source => {
            let mut next = LedgerPosition::FIRST;
            while next <= head {
                let page = ledger.read_range(next, REPORT_PAGE_EVENTS)?;
                let Some(last) = page.last() else { break };
                next = last.position().next();
                for sealed in page.iter().filter(|sealed| sealed.position() <= head) {
                    let EventBody::Choice(choice) = &sealed.event.body else {
                        continue;
                    };
                    if !wanted(&choice.purpose) {
                        continue;
                    }
                    let bucket = match by {
                        ReportBy::Source => choice.source.as_str(),
                        _ => choice
                            .jurisdiction
                            .as_ref()
                            .map_or(UNKNOWN_JURISDICTION, |code| code.as_str()),
                    };
                    count(bucket, choice.allowed);
                }
            }
        }
    }
    let buckets: Vec<ReportBucket> = counts
        .into_iter()
        .map(|(bucket, (allowed, denied))| ReportBucket {
            bucket,
            allowed,
            denied,
            total: allowed + denied,
        })
        .collect();
    let allowed = buckets.iter().map(|bucket| bucket.allowed).sum();
    let denied = buckets.iter().map(|bucket| bucket.denied).sum();
    Ok(ChoiceReport {
        by: by.as_str(),
        purpose,
        ledger_position: head,
        allowed,
        denied,
        total: allowed + denied,
        buckets,
    })
}

/// The UTC date of a time, `YYYY-MM-DD`.
fn day(at: Timestamp) -> String {
    let text = at.to_rfc3339();
    text.get(..10).unwrap_or(&text).to_string()
}

/// The report as CSV: one header line naming the bucket column after `by`, then one
/// line per bucket. Bucket labels are dates, country codes and source names: nothing
/// that needs quoting.
pub fn to_csv(report: &ChoiceReport) -> String {
    let mut text = format!("{},allowed,denied,total\n", report.by);
    for bucket in &report.buckets {
        let _ = writeln!(
            text,
            "{},{},{},{}",
            bucket.bucket, bucket.allowed, bucket.denied, bucket.total
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_utc_dates() {
        let at = Timestamp::parse_rfc3339("2024-05-01T23:59:59Z").unwrap_or(Timestamp::MIN);
        assert_eq!(day(at), "2024-05-01");
    }

    #[test]
    fn unknown_by_names_the_choices() {
        let error = ReportBy::parse("week").unwrap_err();
        assert!(error.to_string().contains("day, jurisdiction, source"));
    }
}
