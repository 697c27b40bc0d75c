//! The per-subdevice update logic as a pure state machine: events in, actions out.
//!
//! The driver in `subdevice.rs` does the I/O (downloads, burns, MQTT publishes) and feeds the
//! results back as events. Keeping the decisions here lets tests drive every interleaving
//! without sockets or files.

use crate::validate::{self, Rejection, Target, Version};
use otasim_protocol::{OtaResultCode, ProgressReport, UpdateFirmware};
use std::path::PathBuf;
use std::time::Duration;

/// Progress reports while data flows are at most this often (protocol.md section 4).
pub(crate) const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// Why a download or burn failed, as the wire will say it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The code for the report.
    pub code: OtaResultCode,
    /// What happened, in words, for `result_msg`.
    pub message: String,
}

impl Failure {
    /// A failure with a code and an honest message.
    pub fn new(code: OtaResultCode, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }
}

/// What happened to a subdevice's update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// The Hub sent `update_firmware`.
    Command(UpdateFirmware),
    /// Bytes of the image are stored; `now` is monotonic time since the gateway started.
    Progress {
        bytes: u64,
        total: u64,
        now: Duration,
    },
    /// The image download ended.
    Downloaded(Result<PathBuf, Failure>),
    /// The burn ended.
    Burned(Result<(), Failure>),
}

/// What the driver must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Publish a progress report.
    Report(ProgressReport),
    /// Fetch this image (shared with other subdevices that need the same one).
    Download(Target),
    /// Stop waiting for the current download (it checkpoints for whoever resumes it).
    AbandonDownload,
    /// The current download goes on under this fresh URL of the same image.
    RefreshUrl(String),
    /// Burn this verified image.
    Burn { image: PathBuf, version: Version },
    /// Publish `report_version` with this version.
    ReportVersion(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Idle,
    Downloading {
        target: Target,
        last_report: Option<Duration>,
        last_percent: u8,
    },
    Burning {
        target: Target,
        queued: Option<Target>,
    },
}

/// One subdevice's update state.
#[derive(Debug, Clone)]
pub(crate) struct UpdateMachine {
    running: String,
    max_size_bytes: u64,
    phase: Phase,
}

impl UpdateMachine {
    /// A machine for a subdevice running `running`, refusing images over `max_size_bytes`.
    pub(crate) fn new(running: String, max_size_bytes: u64) -> Self {
        UpdateMachine {
            running,
            max_size_bytes,
            phase: Phase::Idle,
        }
    }

    /// The version the subdevice runs now.
    pub(crate) fn running_version(&self) -> &str {
        &self.running
    }

    /// The version being burned, while a burn runs.
    pub(crate) fn target_version(&self) -> Option<&str> {
        match &self.phase {
            Phase::Burning { target, .. } => Some(target.version.as_str()),
            _ => None,
        }
    }

    /// Whether no update is in progress.
    #[cfg(test)]
    pub(crate) fn is_idle(&self) -> bool {
        self.phase == Phase::Idle
    }

    /// Feeds one event and returns what to do, in order.
    pub(crate) fn handle(&mut self, event: Event) -> Vec<Action> {
        match event {
            Event::Command(cmd) => self.on_command(&cmd),
            Event::Progress { bytes, total, now } => self.on_progress(bytes, total, now),
            Event::Downloaded(result) => self.on_downloaded(result),
            Event::Burned(result) => self.on_burned(result),
        }
    }

    fn on_command(&mut self, cmd: &UpdateFirmware) -> Vec<Action> {
        let target = match validate::check(cmd, self.max_size_bytes) {
            Ok(t) => t,
            Err(rejection) => return vec![reject(cmd, &rejection)],
        };
        let runs_it = target.version.as_str() == self.running;
        match &mut self.phase {
            // A redelivered command for the update just finished: nothing to fetch or burn.
            Phase::Idle if runs_it => already_running(&target),
            Phase::Idle => self.start(target),
            // The same image under a fresh URL (the Hub re-signs on every send): the download
            // goes on, and its next request uses the URL that has not expired.
            Phase::Downloading {
                target: current, ..
            } if current.same_update(&target) => {
                if current.url == target.url {
                    return Vec::new();
                }
                current.url = target.url.clone();
                vec![Action::RefreshUrl(target.url)]
            }
            // Back to the version it runs: nothing to fetch or burn, just say so.
            Phase::Downloading { .. } if runs_it => {
                self.phase = Phase::Idle;
                let mut actions = vec![Action::AbandonDownload];
                actions.extend(already_running(&target));
                actions
            }
            Phase::Downloading { .. } => {
                let mut actions = vec![Action::AbandonDownload];
                actions.extend(self.start(target));
                actions
            }
            Phase::Burning {
                target: current, ..
            } if current.same_update(&target) => Vec::new(),
            // A burn is never interrupted half way: the newer command runs when it ends.
            Phase::Burning { queued, .. } => {
                *queued = Some(target);
                Vec::new()
            }
        }
    }

    fn start(&mut self, target: Target) -> Vec<Action> {
        let report = ProgressReport::downloading(target.version.as_str(), 0);
        self.phase = Phase::Downloading {
            target: target.clone(),
            last_report: None,
            last_percent: 0,
        };
        vec![Action::Report(report), Action::Download(target)]
    }

    fn on_progress(&mut self, bytes: u64, total: u64, now: Duration) -> Vec<Action> {
        let Phase::Downloading {
            target,
            last_report,
            last_percent,
        } = &mut self.phase
        else {
            return Vec::new();
        };
        // `downloading 0` went out with the command; the first chunk starts the clock.
        let Some(last) = *last_report else {
            *last_report = Some(now);
            return Vec::new();
        };
        let percent = percent_of(bytes, total);
        // 100 is reported once the image is verified, not when the last byte lands.
        let due = now.saturating_sub(last) >= PROGRESS_INTERVAL;
        if percent >= 100 || percent <= *last_percent || !due {
            return Vec::new();
        }
        *last_report = Some(now);
        *last_percent = percent;
        vec![Action::Report(ProgressReport::downloading(
            target.version.as_str(),
            percent,
        ))]
    }

    fn on_downloaded(&mut self, result: Result<PathBuf, Failure>) -> Vec<Action> {
        let Phase::Downloading { target, .. } = &self.phase else {
            return Vec::new();
        };
        let target = target.clone();
        let version = target.version.as_str();
        match result {
            Ok(image) => {
                let actions = vec![
                    Action::Report(ProgressReport::downloading(version, 100)),
                    Action::Report(ProgressReport::burning(version)),
                    Action::Burn {
                        image,
                        version: target.version.clone(),
                    },
                ];
                self.phase = Phase::Burning {
                    target,
                    queued: None,
                };
                actions
            }
            Err(f) => {
                self.phase = Phase::Idle;
                vec![Action::Report(ProgressReport::fail(
                    version, f.code, f.message,
                ))]
            }
        }
    }

    fn on_burned(&mut self, result: Result<(), Failure>) -> Vec<Action> {
        let Phase::Burning { target, queued } = std::mem::replace(&mut self.phase, Phase::Idle)
        else {
            return Vec::new();
        };
        let version = target.version.as_str();
        let mut actions = match result {
            Ok(()) => {
                self.running = version.to_owned();
                vec![
                    Action::Report(ProgressReport::done(version)),
                    Action::ReportVersion(version.to_owned()),
                ]
            }
            Err(f) => vec![Action::Report(ProgressReport::fail(
                version, f.code, f.message,
            ))],
        };
        if let Some(next) = queued {
            actions.extend(self.start(next));
        }
        actions
    }
}

fn already_running(target: &Target) -> Vec<Action> {
    let version = target.version.as_str();
    vec![
        Action::Report(ProgressReport::done(version)),
        Action::ReportVersion(version.to_owned()),
    ]
}

fn percent_of(bytes: u64, total: u64) -> u8 {
    if total == 0 {
        return 0;
    }
    (u128::from(bytes.min(total)) * 100 / u128::from(total)) as u8
}

fn reject(cmd: &UpdateFirmware, rejection: &Rejection) -> Action {
    Action::Report(ProgressReport::fail(
        &validate::reportable_version(&cmd.version),
        OtaResultCode::UpgradeFailed,
        format!("rejected update_firmware: {rejection}"),
    ))
}

#[cfg(test)]
mod tests;
