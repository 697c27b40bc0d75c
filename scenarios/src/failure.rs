//! What a run found wrong, as values: a [`Failure`] per expectation or step that did not hold.
//! Text is made only when one is printed; tests and the qualification report match kinds.

use crate::expect::{ReportPattern, ResultPattern};
use crate::plan::Bounds;
use serde::Serialize;
use std::time::Duration;

/// Why a step could not complete.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StepError {
    /// A wait ran out before its milestone.
    #[error("after {:.1}s, still waiting for {waiting_for}", waited.as_secs_f64())]
    TimedOut {
        /// How long it waited.
        waited: Duration,
        /// The milestone, in words.
        waiting_for: String,
    },
    /// Something happened during an `expect_quiet` spell.
    #[error("{what} after {:.1}s of a {:.1}s quiet spell", after.as_secs_f64(), spell.as_secs_f64())]
    NotQuiet {
        /// What happened, in words.
        what: String,
        /// When, from the start of the spell (approximate).
        after: Duration,
        /// The spell asked for.
        spell: Duration,
    },
    /// The hub refused a console action.
    #[error("the hub refused: {0}")]
    Hub(String),
    /// A fault, a gateway or the disk could not be set up.
    #[error("{0}")]
    World(String),
    /// A task number the hub does not know.
    #[error("task {0} is unknown to the hub")]
    UnknownTask(u64),
    /// A `raw_publish` got another answer than the one it asked for.
    #[error("the raw client got {got}, expected {expected}")]
    RawAnswer {
        /// Asked for.
        expected: String,
        /// Got.
        got: String,
    },
}

/// One thing that did not hold.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Failure {
    /// A step failed; the steps after it did not run.
    Step {
        /// 1-based.
        index: usize,
        /// Its action name.
        action: &'static str,
        /// Why.
        error: StepError,
    },
    /// A device's reports are not the expected sequence.
    Reports {
        /// The device.
        device: String,
        /// 0-based index of the first report the patterns cannot account for.
        at: usize,
        /// That report, as a pattern spells it (`None`: a report is missing at the end).
        got_report: Option<String>,
        /// The expected sequence.
        expected: Vec<ReportPattern>,
        /// Every report received.
        got: Vec<String>,
    },
    /// A report from a device that `nothing_else` says should be silent.
    UnexpectedReport {
        /// The device.
        device: String,
        /// The report.
        report: String,
    },
    /// The hub refused a publish (`nothing_else`).
    RefusedPublish {
        /// The client.
        client_id: String,
        /// The topic.
        topic: String,
    },
    /// The hub's final version for a device.
    Version {
        /// The device.
        device: String,
        /// Expected.
        expected: String,
        /// What the hub has.
        got: Option<String>,
    },
    /// A device's final result.
    Result {
        /// The device.
        device: String,
        /// Expected.
        expected: ResultPattern,
        /// What the hub shows.
        got: String,
    },
    /// The `online` answer for a device.
    OnlineResult {
        /// The device.
        device: String,
        /// Expected.
        expected: i64,
        /// What the hub answered.
        got: Option<i64>,
    },
    /// A device that must be untouched received commands.
    Touched {
        /// The device.
        device: String,
        /// How many `update_firmware`.
        commands: usize,
    },
    /// How many `update_firmware` a device received.
    UpdateCommands {
        /// The device.
        device: String,
        /// Expected.
        expected: Bounds,
        /// Received.
        got: u64,
    },
    /// Bytes the gateway fetched for a device.
    BytesDownloaded {
        /// The device.
        device: String,
        /// Expected.
        expected: Bounds,
        /// Fetched.
        got: u64,
    },
    /// Firmware body bytes COS sent.
    CosBytes {
        /// Expected.
        expected: Bounds,
        /// Sent.
        got: u64,
    },
    /// GET requests COS answered.
    CosRequests {
        /// Expected.
        expected: Bounds,
        /// Answered.
        got: u64,
    },
    /// One COS request is not what was expected.
    CosRequest {
        /// Which GET, from 1.
        nth: u64,
        /// What did not hold.
        mismatch: CosMismatch,
    },
    /// A count, a pause between COS requests or the Range of one (`[[expect.counts]]`,
    /// `[[expect.cos_gaps]]`, `[[expect.cos_ranges]]`), said as text.
    Counted {
        /// What did not hold.
        what: String,
    },
    /// What the hub recorded (`[[expect.transcript]]`, `[expect.warnings]`), said as text.
    Recorded {
        /// What did not hold.
        what: String,
    },
    /// The task summaries.
    Tasks {
        /// Expected, oldest first.
        expected: Vec<std::collections::BTreeMap<String, usize>>,
        /// At the end.
        got: Vec<std::collections::BTreeMap<String, usize>>,
    },
}

/// How a single COS request differs from its expectation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "what", rename_all = "snake_case")]
pub enum CosMismatch {
    /// There were fewer GETs.
    Missing {
        /// How many there were.
        requests: u64,
    },
    /// The first byte asked for.
    RangeStart {
        /// Expected.
        expected: u64,
        /// Asked (0 without a Range header).
        got: u64,
    },
    /// The Range header.
    Range {
        /// Expected (`None`: no header).
        expected: Option<String>,
        /// Sent.
        got: Option<String>,
    },
    /// The status COS answered.
    Status {
        /// Expected.
        expected: u16,
        /// Answered.
        got: u16,
    },
    /// Too soon after the previous GET.
    Gap {
        /// At least, in ms.
        expected_ms: u64,
        /// Observed, in ms.
        got_ms: u64,
    },
}

impl Failure {
    /// A short name of the kind, for tables and tests (`reports`, `cos_request`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Step { .. } => "step",
            Failure::Reports { .. } => "reports",
            Failure::UnexpectedReport { .. } => "unexpected_report",
            Failure::RefusedPublish { .. } => "refused_publish",
            Failure::Version { .. } => "version",
            Failure::Result { .. } => "result",
            Failure::OnlineResult { .. } => "online_result",
            Failure::Touched { .. } => "touched",
            Failure::UpdateCommands { .. } => "update_commands",
            Failure::BytesDownloaded { .. } => "bytes_downloaded",
            Failure::CosBytes { .. } => "cos_bytes",
            Failure::CosRequests { .. } => "cos_requests",
            Failure::CosRequest { .. } => "cos_request",
            Failure::Counted { .. } => "counted",
            Failure::Recorded { .. } => "recorded",
            Failure::Tasks { .. } => "tasks",
        }
    }

    /// Whether the failure is about COS requests (its context is the COS journal).
    pub fn is_about_cos(&self) -> bool {
        matches!(
            self,
            Failure::CosBytes { .. } | Failure::CosRequests { .. } | Failure::CosRequest { .. }
        )
    }
}

fn join<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Step {
                index,
                action,
                error,
            } => write!(f, "step {index} ({action}): {error}"),
            Failure::Reports {
                device,
                at,
                got_report,
                expected,
                got,
            } => {
                match got_report {
                    Some(r) => write!(f, "{device}: report #{} {r:?} was not expected", at + 1)?,
                    None => write!(
                        f,
                        "{device}: after report #{at}, more reports were expected"
                    )?,
                }
                write!(
                    f,
                    "; expected [{}], got [{}]",
                    join(expected),
                    got.join(", ")
                )
            }
            Failure::UnexpectedReport { device, report } => {
                write!(f, "{device}: unexpected report {report:?} (nothing_else)")
            }
            Failure::RefusedPublish { client_id, topic } => {
                write!(
                    f,
                    "refused publish by {client_id} on {topic} (nothing_else)"
                )
            }
            Failure::Version {
                device,
                expected,
                got,
            } => write!(
                f,
                "{device}: expected version {expected}, hub has {}",
                got.as_deref().unwrap_or("none")
            ),
            Failure::Result {
                device,
                expected,
                got,
            } => write!(f, "{device}: expected result {expected}, got {got}"),
            Failure::OnlineResult {
                device,
                expected,
                got,
            } => write!(
                f,
                "{device}: expected online result {expected}, got {got:?}"
            ),
            Failure::Touched { device, commands } => {
                write!(
                    f,
                    "{device}: expected untouched, got {commands} update_firmware"
                )
            }
            Failure::UpdateCommands {
                device,
                expected,
                got,
            } => write!(
                f,
                "{device}: expected update_firmware received {expected}, got {got}"
            ),
            Failure::BytesDownloaded {
                device,
                expected,
                got,
            } => write!(
                f,
                "{device}: expected bytes downloaded {expected}, got {got}"
            ),
            Failure::CosBytes { expected, got } => {
                write!(f, "expected COS body bytes sent {expected}, got {got}")
            }
            Failure::CosRequests { expected, got } => {
                write!(f, "expected COS GET requests {expected}, got {got}")
            }
            Failure::CosRequest { nth, mismatch } => {
                write!(f, "COS GET #{nth}: ")?;
                match mismatch {
                    CosMismatch::Missing { requests } => {
                        write!(f, "never came ({requests} GETs in all)")
                    }
                    CosMismatch::RangeStart { expected, got } => {
                        write!(f, "expected a range from byte {expected}, asked from {got}")
                    }
                    CosMismatch::Range { expected, got } => write!(
                        f,
                        "expected Range {}, got {}",
                        expected.as_deref().unwrap_or("none"),
                        got.as_deref().unwrap_or("none")
                    ),
                    CosMismatch::Status { expected, got } => {
                        write!(f, "expected status {expected}, got {got}")
                    }
                    CosMismatch::Gap {
                        expected_ms,
                        got_ms,
                    } => write!(
                        f,
                        "came {got_ms} ms after the GET before it, expected at least {expected_ms} ms"
                    ),
                }
            }
            Failure::Counted { what } | Failure::Recorded { what } => f.write_str(what),
            Failure::Tasks { expected, got } => {
                write!(f, "expected task summaries {expected:?}, got {got:?}")
            }
        }
    }
}
