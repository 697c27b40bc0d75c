//! JUnit XML: one test case per scenario, the seed as a property, the first divergence and
//! its transcript as the failure text.

use crate::run::RunReport;
use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};
use std::time::Duration;

/// The JUnit XML of a set of runs; `errors` are scenarios that could not run (path, why).
pub fn junit_xml(reports: &[RunReport], errors: &[(String, String)]) -> String {
    let mut suite = TestSuite::new("otasim scenarios");
    for r in reports {
        let status = if r.passed {
            TestCaseStatus::success()
        } else {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_message(
                r.failures
                    .first()
                    .map(|f| f.to_string())
                    .unwrap_or_default(),
            );
            s.set_type("expectation");
            s.set_description(format!(
                "{}\n\n{}",
                r.failure_lines().join("\n"),
                r.context.join("\n")
            ));
            s
        };
        let mut case = TestCase::new(r.name.clone(), status);
        case.set_classname(r.path.clone());
        case.set_time(Duration::from_millis(r.elapsed_ms));
        case.add_property(Property::new("seed", r.seed.to_string()));
        case.set_system_out(format!(
            "replay: otasim replay {} {}\n{}",
            r.seed, r.path, r.description
        ));
        suite.add_test_case(case);
    }
    for (path, why) in errors {
        let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
        s.set_message(why.clone());
        let mut case = TestCase::new(path.clone(), s);
        case.set_classname(path.clone());
        suite.add_test_case(case);
    }
    let mut report = Report::new("otasim");
    report.add_test_suite(suite);
    report
        .to_string()
        .unwrap_or_else(|e| format!("<!-- JUnit serialization failed: {e} -->"))
}

/// The JUnit XML of a qualification: skipped scenarios as skipped, with their reason.
pub fn junit_qualification(gateway: &str, results: &[crate::qualify::Qualified]) -> String {
    use crate::qualify::Verdict;
    let mut suite = TestSuite::new(format!("otasim qualify {gateway}"));
    for q in results {
        let status = match q.verdict {
            Verdict::Passed => TestCaseStatus::success(),
            Verdict::Skipped => {
                let mut s = TestCaseStatus::skipped();
                s.set_message(q.reason.clone());
                s
            }
            Verdict::Failed | Verdict::Error => {
                let kind = if q.verdict == Verdict::Failed {
                    NonSuccessKind::Failure
                } else {
                    NonSuccessKind::Error
                };
                let mut s = TestCaseStatus::non_success(kind);
                s.set_message(q.reason.clone());
                if let Some(r) = &q.report {
                    s.set_description(format!(
                        "{}\n\n{}",
                        r.failure_lines().join("\n"),
                        r.context.join("\n")
                    ));
                }
                s
            }
        };
        let mut case = TestCase::new(q.name.clone(), status);
        case.set_classname(q.path.clone());
        if let Some(r) = &q.report {
            case.set_time(Duration::from_millis(r.elapsed_ms));
        }
        suite.add_test_case(case);
    }
    let mut report = Report::new("otasim qualify");
    report.add_test_suite(suite);
    report
        .to_string()
        .unwrap_or_else(|e| format!("<!-- JUnit serialization failed: {e} -->"))
}
