//! Expectations as types, parsed once when a plan is loaded: report-sequence patterns
//! ([`ReportPattern`]), final results ([`ResultPattern`]), `result_msg` patterns
//! ([`MsgPattern`]) and percent ranges ([`PercentRange`]). Nothing here is parsed again when a
//! run is judged.

mod report;
mod result;

pub use report::{ReportItem, ReportPattern, describe_report};
pub(crate) use report::{first_divergence, sequence_matches};
pub use result::{DeviceOutcome, ResultPattern};

use serde::Serialize;

/// Why an expectation's text was refused (the validator adds the field and the line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not one of: {allowed}")]
pub struct PatternError {
    /// What was written.
    pub text: String,
    /// What may be written.
    pub allowed: &'static str,
}

/// An inclusive percent range: `downloading 40..60`, or one value `downloading 40`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PercentRange {
    /// Lowest percent that matches.
    pub min: u8,
    /// Highest percent that matches.
    pub max: u8,
}

impl PercentRange {
    /// Parses `N` or `A..B` (0 to 100, A <= B).
    pub fn parse(text: &str) -> Option<PercentRange> {
        let pct = |s: &str| s.parse::<u8>().ok().filter(|p| *p <= 100);
        match text.split_once("..") {
            Some((a, b)) => {
                let (min, max) = (pct(a)?, pct(b)?);
                (min <= max).then_some(PercentRange { min, max })
            }
            None => pct(text).map(|p| PercentRange { min: p, max: p }),
        }
    }

    /// Whether `p` is inside.
    pub fn holds(&self, p: u8) -> bool {
        (self.min..=self.max).contains(&p)
    }
}

impl std::fmt::Display for PercentRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.min == self.max {
            write!(f, "{}", self.min)
        } else {
            write!(f, "{}..{}", self.min, self.max)
        }
    }
}

/// A `result_msg` pattern, written `~text`: the message contains `text`, ignoring case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MsgPattern(String);

impl MsgPattern {
    /// A pattern for messages that contain `needle` (any case).
    pub fn new(needle: &str) -> MsgPattern {
        MsgPattern(needle.to_lowercase())
    }

    /// Whether `msg` contains the pattern's text.
    pub fn holds(&self, msg: &str) -> bool {
        msg.to_lowercase().contains(&self.0)
    }
}

impl std::fmt::Display for MsgPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "~{}", self.0)
    }
}

/// Splits `head ~message text` into the head and its message pattern.
fn split_msg(text: &str) -> (&str, Option<MsgPattern>) {
    match text.split_once('~') {
        Some((head, msg)) => (head.trim_end(), Some(MsgPattern::new(msg.trim()))),
        None => (text, None),
    }
}
