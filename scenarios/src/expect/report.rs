//! Report-sequence patterns: `downloading 0`, `downloading 40..60`, `downloading*`, `burning`,
//! `done`, `fail -4`, `fail -4 ~md5`, any of them optional with a trailing `?` (a QoS 1
//! duplicate, a report a gateway may or may not send).

use super::{MsgPattern, PatternError, PercentRange, split_msg};
use otasim_protocol::{ProgressReport, ProgressState};
use serde::Serialize;

const ALLOWED: &str = "downloading N, downloading A..B, downloading*, burning, done, fail CODE, \
fail CODE ~MESSAGE, each optionally followed by ?";

/// What one element of an expected report sequence matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "report", rename_all = "snake_case")]
pub enum ReportItem {
    /// `downloading N` or `downloading A..B`.
    Downloading(PercentRange),
    /// `downloading*`: any number (zero included) of downloading reports.
    AnyDownloading,
    /// `burning`.
    Burning,
    /// `done`.
    Done,
    /// `fail CODE`, with a `result_msg` pattern when `~text` follows.
    Fail {
        /// The code.
        code: i32,
        /// What the message must contain.
        msg: Option<MsgPattern>,
    },
}

/// One element of an expected report sequence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportPattern {
    /// What it matches.
    pub item: ReportItem,
    /// Written with a trailing `?`: the report may be missing.
    pub optional: bool,
}

impl ReportPattern {
    /// A required element.
    pub fn required(item: ReportItem) -> ReportPattern {
        ReportPattern {
            item,
            optional: false,
        }
    }

    /// Parses one element as written in `expect.reports`.
    pub fn parse(text: &str) -> Result<ReportPattern, PatternError> {
        let bad = || PatternError {
            text: text.to_owned(),
            allowed: ALLOWED,
        };
        let trimmed = text.trim();
        let (body, optional) = match trimmed.strip_suffix('?') {
            Some(b) => (b.trim_end(), true),
            None => (trimmed, false),
        };
        let (head, msg) = split_msg(body);
        let words: Vec<&str> = head.split_whitespace().collect();
        let item = match (words.as_slice(), &msg) {
            (["downloading*"], None) => ReportItem::AnyDownloading,
            (["downloading", n], None) => {
                ReportItem::Downloading(PercentRange::parse(n).ok_or_else(bad)?)
            }
            (["burning"], None) => ReportItem::Burning,
            (["done"], None) => ReportItem::Done,
            (["fail", c], _) => ReportItem::Fail {
                code: c.parse().map_err(|_| bad())?,
                msg,
            },
            _ => return Err(bad()),
        };
        if optional && item == ReportItem::AnyDownloading {
            return Err(bad());
        }
        Ok(ReportPattern { item, optional })
    }

    /// Whether one report matches this element (for `downloading*`: one downloading report).
    pub fn matches(&self, r: &ProgressReport) -> bool {
        match (&self.item, r.state) {
            (ReportItem::Downloading(range), ProgressState::Downloading) => {
                range.holds(r.percent.unwrap_or(0))
            }
            (ReportItem::AnyDownloading, ProgressState::Downloading) => true,
            (ReportItem::Burning, ProgressState::Burning) => true,
            (ReportItem::Done, ProgressState::Done) => true,
            (ReportItem::Fail { code, msg }, ProgressState::Fail) => {
                r.result_code.code() == *code && msg.as_ref().is_none_or(|m| m.holds(&r.result_msg))
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for ReportPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.item {
            ReportItem::Downloading(r) => write!(f, "downloading {r}")?,
            ReportItem::AnyDownloading => f.write_str("downloading*")?,
            ReportItem::Burning => f.write_str("burning")?,
            ReportItem::Done => f.write_str("done")?,
            ReportItem::Fail { code, msg: None } => write!(f, "fail {code}")?,
            ReportItem::Fail { code, msg: Some(m) } => write!(f, "fail {code} {m}")?,
        }
        if self.optional {
            f.write_str("?")?;
        }
        Ok(())
    }
}

/// A report as a pattern would spell it: `downloading 37`, `fail -4`.
pub fn describe_report(r: &ProgressReport) -> String {
    match r.state {
        ProgressState::Downloading => format!("downloading {}", r.percent.unwrap_or(0)),
        ProgressState::Burning => "burning".into(),
        ProgressState::Done => "done".into(),
        ProgressState::Fail => format!("fail {}", r.result_code.code()),
    }
}

/// `table[i][j]`: whether `patterns[i..]` can account for `reports[j..]`, in full (`prefix`
/// false) or as the start of a longer sequence (`prefix` true: patterns may be left over).
fn table(patterns: &[ReportPattern], reports: &[ProgressReport], prefix: bool) -> Vec<Vec<bool>> {
    let (p, r) = (patterns.len(), reports.len());
    let mut t = vec![vec![false; r + 1]; p + 1];
    t[p][r] = true;
    for row in t.iter_mut().take(p).filter(|_| prefix) {
        row[r] = true;
    }
    for i in (0..p).rev() {
        for j in (0..=r).rev() {
            if prefix && j == r {
                continue;
            }
            let pat = &patterns[i];
            let here = reports.get(j).is_some_and(|rep| pat.matches(rep));
            t[i][j] = match pat.item {
                // Zero downloading reports, or one and stay on the star.
                ReportItem::AnyDownloading => t[i + 1][j] || (here && t[i][j + 1]),
                _ => (here && t[i + 1][j + 1]) || (pat.optional && t[i + 1][j]),
            };
        }
    }
    t
}

/// Whether `reports` match `patterns` in full.
pub(crate) fn sequence_matches(patterns: &[ReportPattern], reports: &[ProgressReport]) -> bool {
    table(patterns, reports, false)[0][0]
}

/// The index of the first report that `patterns` cannot account for (`reports.len()` when a
/// report is missing at the end), or `None` when they match in full.
pub(crate) fn first_divergence(
    patterns: &[ReportPattern],
    reports: &[ProgressReport],
) -> Option<usize> {
    if sequence_matches(patterns, reports) {
        return None;
    }
    // The longest prefix of reports that some prefix of the patterns accounts for.
    (0..=reports.len())
        .rev()
        .find(|&n| table(patterns, &reports[..n], true)[0][0])
}

#[cfg(test)]
mod tests {
    use super::*;
    use otasim_protocol::OtaResultCode;
    use proptest::prelude::*;

    fn pats(items: &[&str]) -> Vec<ReportPattern> {
        items
            .iter()
            .map(|s| ReportPattern::parse(s).unwrap())
            .collect()
    }

    #[test]
    fn exact_and_starred_sequences_match() {
        let reports = vec![
            ProgressReport::downloading("1", 0),
            ProgressReport::downloading("1", 40),
            ProgressReport::fail("1", OtaResultCode::Md5Mismatch, "md5 mismatch: x"),
        ];
        assert!(sequence_matches(
            &pats(&["downloading 0", "downloading 40", "fail -4"]),
            &reports
        ));
        assert!(sequence_matches(
            &pats(&["downloading*", "fail -4"]),
            &reports
        ));
        assert!(sequence_matches(
            &pats(&["downloading*", "fail -4 ~MD5"]),
            &reports
        ));
        assert!(!sequence_matches(
            &pats(&["downloading*", "fail -4 ~size"]),
            &reports
        ));
        assert!(!sequence_matches(
            &pats(&["downloading*", "fail -5"]),
            &reports
        ));
        assert!(!sequence_matches(
            &pats(&["downloading 0", "fail -4"]),
            &reports
        ));
        assert!(sequence_matches(&pats(&["downloading*"]), &[]));
    }

    #[test]
    fn optional_items_and_percent_ranges_match() {
        let reports = vec![
            ProgressReport::downloading("1", 0),
            ProgressReport::downloading("1", 55),
            ProgressReport::burning("1"),
            ProgressReport::done("1"),
        ];
        assert!(sequence_matches(
            &pats(&[
                "downloading 0",
                "downloading 0?",
                "downloading 40..60",
                "burning",
                "burning?",
                "done"
            ]),
            &reports
        ));
        assert!(!sequence_matches(
            &pats(&["downloading 0", "downloading 60..100", "burning", "done"]),
            &reports
        ));
        assert_eq!(
            first_divergence(&pats(&["downloading 0", "done"]), &reports),
            Some(1)
        );
        assert_eq!(
            first_divergence(
                &pats(&["downloading*", "burning", "done", "done"]),
                &reports
            ),
            Some(4)
        );
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in [
            "",
            "download 1",
            "downloading 101",
            "downloading 60..40",
            "fail",
            "fail x",
            "done now",
            "done ~x",
            "downloading*?",
        ] {
            assert!(ReportPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn patterns_print_as_written() {
        for text in [
            "downloading 0",
            "downloading 4..9",
            "fail -4 ~md5",
            "done?",
            "downloading*",
        ] {
            assert_eq!(ReportPattern::parse(text).unwrap().to_string(), text);
        }
    }

    proptest! {
        #[test]
        fn starred_download_matches_any_number_of_progress_reports(pcts in prop::collection::vec(0..=100u8, 0..20)) {
            let mut reports: Vec<_> = pcts.iter().map(|p| ProgressReport::downloading("1", *p)).collect();
            reports.push(ProgressReport::burning("1"));
            reports.push(ProgressReport::done("1"));
            prop_assert!(sequence_matches(&pats(&["downloading*", "burning", "done"]), &reports));
            prop_assert!(!sequence_matches(&pats(&["downloading*", "done"]), &reports));
            prop_assert_eq!(first_divergence(&pats(&["downloading*", "done"]), &reports), Some(pcts.len()));
        }

        #[test]
        fn any_text_parses_or_is_refused_without_panic(text in ".{0,30}") {
            let _ = ReportPattern::parse(&text);
            let _ = crate::expect::ResultPattern::parse(&text);
        }
    }
}
