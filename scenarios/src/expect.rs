//! Report-sequence patterns: `downloading 0`, `downloading*`, `burning`, `done`, `fail -4`.

use otasim_protocol::{ProgressReport, ProgressState};

/// One element of an expected report sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReportPattern {
    /// `downloading N`: exactly this percent.
    Downloading(u8),
    /// `downloading*`: any number (zero included) of downloading reports.
    AnyDownloading,
    /// `burning`.
    Burning,
    /// `done`.
    Done,
    /// `fail CODE`.
    Fail(i32),
}

pub(crate) fn parse_report_pattern(text: &str) -> Result<ReportPattern, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let bad =
        || format!("{text:?} is not one of: downloading N, downloading*, burning, done, fail CODE");
    match words.as_slice() {
        ["downloading*"] => Ok(ReportPattern::AnyDownloading),
        ["downloading", n] => n
            .parse()
            .ok()
            .filter(|p| *p <= 100)
            .map(ReportPattern::Downloading)
            .ok_or_else(bad),
        ["burning"] => Ok(ReportPattern::Burning),
        ["done"] => Ok(ReportPattern::Done),
        ["fail", c] => c.parse().map(ReportPattern::Fail).map_err(|_| bad()),
        _ => Err(bad()),
    }
}

/// Checks an expected final result: `succeeded`, `failed`, `failed CODE`, `untouched`,
/// `no task`, or a state an update can stop in (`pushed`, `downloading`, `burning`, `done`).
pub(crate) fn parse_result(text: &str) -> Result<(), String> {
    let ok = match text.split_whitespace().collect::<Vec<_>>().as_slice() {
        ["failed", code] => code.parse::<i32>().is_ok(),
        ["no", "task"] => true,
        [one] => [
            "succeeded",
            "failed",
            "untouched",
            "queued",
            "pushed",
            "downloading",
            "burning",
            "done",
            "waiting_retry",
            "cancelled",
        ]
        .contains(one),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{text:?} is not one of: succeeded, failed, failed CODE, untouched, no task, queued, pushed, downloading, burning, done, waiting_retry, cancelled"
        ))
    }
}

/// Whether a device's final result (`failed -4 (md5 mismatch)`) is what `want` says.
pub(crate) fn result_matches(want: &str, got: &str) -> bool {
    got == want || got.starts_with(&format!("{want} "))
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
    // The longest prefix of reports that some prefix of the patterns matches.
    (0..=reports.len())
        .rev()
        .find(|&n| prefix_matches(patterns, &reports[..n]))
        .map(|n| n.min(reports.len()))
}

/// Whether `reports` can be the start of a sequence matching `patterns`.
fn prefix_matches(patterns: &[ReportPattern], reports: &[ProgressReport]) -> bool {
    if reports.is_empty() {
        return true;
    }
    match patterns.split_first() {
        None => false,
        Some((ReportPattern::AnyDownloading, rest)) => {
            prefix_matches(rest, reports)
                || (reports[0].state == ProgressState::Downloading
                    && prefix_matches(patterns, &reports[1..]))
        }
        Some((p, rest)) => element_matches(p, &reports[0]) && prefix_matches(rest, &reports[1..]),
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

fn element_matches(p: &ReportPattern, r: &ProgressReport) -> bool {
    match (p, r.state) {
        (ReportPattern::Downloading(n), ProgressState::Downloading) => r.percent == Some(*n),
        (ReportPattern::AnyDownloading, ProgressState::Downloading) => true,
        (ReportPattern::Burning, ProgressState::Burning) => true,
        (ReportPattern::Done, ProgressState::Done) => true,
        (ReportPattern::Fail(c), ProgressState::Fail) => r.result_code.code() == *c,
        _ => false,
    }
}

/// Whether `reports` match `patterns` in full.
pub(crate) fn sequence_matches(patterns: &[ReportPattern], reports: &[ProgressReport]) -> bool {
    match patterns.split_first() {
        None => reports.is_empty(),
        Some((ReportPattern::AnyDownloading, rest)) => {
            // Zero or more downloading reports, then the rest.
            let mut i = 0;
            loop {
                if sequence_matches(rest, &reports[i..]) {
                    return true;
                }
                match reports.get(i) {
                    Some(r) if r.state == ProgressState::Downloading => i += 1,
                    _ => return false,
                }
            }
        }
        Some((p, rest)) => reports
            .split_first()
            .is_some_and(|(r, more)| element_matches(p, r) && sequence_matches(rest, more)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use otasim_protocol::OtaResultCode;
    use proptest::prelude::*;

    fn pats(items: &[&str]) -> Vec<ReportPattern> {
        items
            .iter()
            .map(|s| parse_report_pattern(s).unwrap())
            .collect()
    }

    #[test]
    fn exact_and_starred_sequences_match() {
        let reports = vec![
            ProgressReport::downloading("1", 0),
            ProgressReport::downloading("1", 40),
            ProgressReport::fail("1", OtaResultCode::Md5Mismatch, "x"),
        ];
        assert!(sequence_matches(
            &pats(&["downloading 0", "downloading 40", "fail -4"]),
            &reports
        ));
        assert!(sequence_matches(
            &pats(&["downloading*", "fail -4"]),
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
    fn bad_patterns_are_refused() {
        for bad in [
            "",
            "download 1",
            "downloading 101",
            "fail",
            "fail x",
            "done now",
        ] {
            assert!(parse_report_pattern(bad).is_err(), "{bad}");
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
        }
    }
}
