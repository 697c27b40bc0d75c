//! Final results: what the hub shows for a subdevice at the end (`succeeded`, `failed -4`,
//! `untouched`, ...), as a typed outcome and the pattern an expectation compares it with.

use super::{MsgPattern, PatternError, split_msg};
use fake_hub::UpdateState;
use serde::Serialize;

const ALLOWED: &str = "succeeded, failed, failed CODE, failed CODE ~MESSAGE, untouched, no task, \
queued, pushed, downloading, burning, done, waiting_retry, cancelled";

const STATES: [&str; 7] = [
    "queued",
    "pushed",
    "downloading",
    "burning",
    "done",
    "waiting_retry",
    "cancelled",
];

/// What the hub shows for a subdevice at the end of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum DeviceOutcome {
    /// No `update_firmware` ever reached it.
    Untouched,
    /// Commands reached it but the hub has no task for it.
    NoTask,
    /// The update succeeded.
    Succeeded,
    /// The update failed.
    Failed {
        /// The failure code.
        code: i32,
        /// The device's `result_msg` or the hub's reason.
        message: String,
    },
    /// The update stopped in this state (`pushed`, `burning`, `done`, ...).
    InState {
        /// The hub's state label.
        state: String,
    },
}

impl DeviceOutcome {
    /// The outcome the hub's update state stands for.
    pub fn of_state(state: &UpdateState) -> DeviceOutcome {
        match state {
            UpdateState::Succeeded => DeviceOutcome::Succeeded,
            UpdateState::Failed { code, message } => DeviceOutcome::Failed {
                code: *code,
                message: message.clone(),
            },
            other => DeviceOutcome::InState {
                state: other.label().to_owned(),
            },
        }
    }
}

impl std::fmt::Display for DeviceOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceOutcome::Untouched => f.write_str("untouched"),
            DeviceOutcome::NoTask => f.write_str("no task"),
            DeviceOutcome::Succeeded => f.write_str("succeeded"),
            DeviceOutcome::Failed { code, message } => write!(f, "failed {code} ({message})"),
            DeviceOutcome::InState { state } => f.write_str(state),
        }
    }
}

/// An expected final result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ResultPattern {
    /// `succeeded`.
    Succeeded,
    /// `failed`, `failed CODE`, `failed CODE ~text`.
    Failed {
        /// The code, if written.
        code: Option<i32>,
        /// What the message must contain.
        msg: Option<MsgPattern>,
    },
    /// `untouched`.
    Untouched,
    /// `no task`.
    NoTask,
    /// A state an update can stop in.
    InState {
        /// The state label.
        state: String,
    },
}

impl ResultPattern {
    /// Parses an expected result as written in `expect.results`.
    pub fn parse(text: &str) -> Result<ResultPattern, PatternError> {
        let bad = || PatternError {
            text: text.to_owned(),
            allowed: ALLOWED,
        };
        let (head, msg) = split_msg(text.trim());
        let words: Vec<&str> = head.split_whitespace().collect();
        Ok(match (words.as_slice(), msg) {
            (["failed", code], msg) => ResultPattern::Failed {
                code: Some(code.parse().map_err(|_| bad())?),
                msg,
            },
            (["failed"], msg) => ResultPattern::Failed { code: None, msg },
            (["succeeded"], None) => ResultPattern::Succeeded,
            (["untouched"], None) => ResultPattern::Untouched,
            (["no", "task"], None) => ResultPattern::NoTask,
            ([state], None) if STATES.contains(state) => ResultPattern::InState {
                state: (*state).to_owned(),
            },
            _ => return Err(bad()),
        })
    }

    /// Whether `got` is what this pattern says.
    pub fn matches(&self, got: &DeviceOutcome) -> bool {
        match (self, got) {
            (ResultPattern::Succeeded, DeviceOutcome::Succeeded)
            | (ResultPattern::Untouched, DeviceOutcome::Untouched)
            | (ResultPattern::NoTask, DeviceOutcome::NoTask) => true,
            (ResultPattern::Failed { code, msg }, DeviceOutcome::Failed { code: c, message }) => {
                code.is_none_or(|w| w == *c) && msg.as_ref().is_none_or(|m| m.holds(message))
            }
            (ResultPattern::InState { state }, DeviceOutcome::InState { state: s }) => state == s,
            _ => false,
        }
    }
}

impl std::fmt::Display for ResultPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResultPattern::Succeeded => f.write_str("succeeded"),
            ResultPattern::Failed { code, msg } => {
                f.write_str("failed")?;
                if let Some(c) = code {
                    write!(f, " {c}")?;
                }
                if let Some(m) = msg {
                    write!(f, " {m}")?;
                }
                Ok(())
            }
            ResultPattern::Untouched => f.write_str("untouched"),
            ResultPattern::NoTask => f.write_str("no task"),
            ResultPattern::InState { state } => f.write_str(state),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_match_by_kind_code_and_message() {
        let failed = DeviceOutcome::Failed {
            code: -4,
            message: "MD5 mismatch".into(),
        };
        for (text, want) in [
            ("failed", true),
            ("failed -4", true),
            ("failed -4 ~md5", true),
            ("failed -4 ~size", false),
            ("failed -5", false),
            ("succeeded", false),
        ] {
            assert_eq!(
                ResultPattern::parse(text).unwrap().matches(&failed),
                want,
                "{text}"
            );
        }
        assert!(
            ResultPattern::parse("burning")
                .unwrap()
                .matches(&DeviceOutcome::InState {
                    state: "burning".into()
                })
        );
        for bad in ["", "failed x", "succeeded ~x", "finished", "no"] {
            assert!(ResultPattern::parse(bad).is_err(), "{bad}");
        }
    }
}
