//! One progress bar per subdevice on a terminal (indicatif): bytes, speed and ETA while an
//! image downloads, percent while it burns, and a final line that stays when it ends or when
//! the gateway is stopped.

use super::online_refusal;
use gateway::GatewayEvent;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use otasim_protocol::{DeviceId, ProgressReport, ProgressState};
use std::collections::BTreeMap;
use std::time::Duration;

/// Redraws per second on the terminal; the steady tick keeps speed and ETA moving between
/// events, so the screen changes at least this often even on a stalled link.
const DRAW_HZ: u8 = 10;
const TICK: Duration = Duration::from_millis(200);

/// What a row shows now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing measurable yet (waiting for the hub, online, idle).
    Idle,
    /// Downloading with byte counts from the download itself.
    Bytes,
    /// Downloading as the percentages the gateway reports (an image another subdevice fetches).
    Percent,
    /// Burning, in percent.
    Burning,
}

struct Row {
    bar: ProgressBar,
    phase: Phase,
    version: String,
}

/// The bars of every subdevice, in device order.
pub(super) struct Bars {
    _multi: MultiProgress,
    rows: BTreeMap<DeviceId, Row>,
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("the bar templates are constants known to parse")
        .progress_chars("=> ")
}

fn idle_style() -> ProgressStyle {
    style("{prefix:<28} {msg}")
}

fn bytes_style() -> ProgressStyle {
    style(
        "{prefix:<28} [{bar:24}] {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec:>12} \
         eta {eta:<4} {msg}",
    )
}

fn percent_style() -> ProgressStyle {
    style("{prefix:<28} [{bar:24}] {pos:>3}% {msg}")
}

impl Bars {
    /// A waiting row per subdevice, drawn on stderr.
    pub(super) fn new(devices: &[DeviceId]) -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(DRAW_HZ));
        let rows = devices
            .iter()
            .map(|d| {
                let bar = multi.add(ProgressBar::new(0));
                bar.set_style(idle_style());
                bar.set_prefix(d.to_string());
                bar.set_message("waiting for the hub");
                bar.enable_steady_tick(TICK);
                let row = Row {
                    bar,
                    phase: Phase::Idle,
                    version: String::new(),
                };
                (d.clone(), row)
            })
            .collect();
        Bars {
            _multi: multi,
            rows,
        }
    }

    /// Moves the row the event is about.
    pub(super) fn update(&mut self, event: &GatewayEvent) {
        match event {
            GatewayEvent::Online { device, result } => {
                if let Some(row) = self.rows.get_mut(device) {
                    let text = match result {
                        0 => "online".to_owned(),
                        r => format!("online refused ({r}): {}", online_refusal(device, *r)),
                    };
                    row.idle(text);
                }
            }
            GatewayEvent::DownloadProgress {
                device,
                stored_bytes,
                total_bytes,
            } => {
                if let Some(row) = self.rows.get_mut(device) {
                    row.bytes(*stored_bytes, *total_bytes);
                }
            }
            GatewayEvent::Report { device, report } => {
                if let Some(row) = self.rows.get_mut(device) {
                    row.report(report);
                }
            }
            GatewayEvent::BurnProgress { device, percent } => {
                if let Some(row) = self.rows.get_mut(device) {
                    row.percent(Phase::Burning, *percent, "burning");
                }
            }
            _ => {}
        }
    }

    /// Leaves every row that is still moving with a final line saying where it stopped.
    pub(super) fn stopped(&self) {
        for row in self.rows.values() {
            let at = match row.phase {
                // Its message already says where it is (online, done, failed).
                Phase::Idle => {
                    row.bar.abandon();
                    continue;
                }
                Phase::Bytes => format!("{} bytes", row.bar.position()),
                Phase::Percent | Phase::Burning => format!("{}%", row.bar.position()),
            };
            row.bar.set_style(idle_style());
            row.bar.abandon_with_message(format!(
                "stopped at {at} of {} (the gateway was stopped)",
                row.version
            ));
        }
    }
}

impl Row {
    fn idle(&mut self, text: String) {
        self.phase = Phase::Idle;
        self.bar.set_style(idle_style());
        self.bar.set_message(text);
    }

    fn bytes(&mut self, stored: u64, total: u64) {
        if self.phase != Phase::Bytes || stored < self.bar.position() {
            self.phase = Phase::Bytes;
            self.bar.reset();
            self.bar.set_style(bytes_style());
        }
        self.bar.set_length(total);
        self.bar.set_position(stored);
        self.bar
            .set_message(format!("downloading {}", self.version));
    }

    fn percent(&mut self, phase: Phase, percent: u8, what: &str) {
        if self.phase != phase {
            self.phase = phase;
            self.bar.reset();
            self.bar.set_style(percent_style());
            self.bar.set_length(100);
        }
        self.bar.set_position(u64::from(percent.min(100)));
        self.bar.set_message(format!("{what} {}", self.version));
    }

    fn report(&mut self, report: &ProgressReport) {
        self.version.clone_from(&report.version);
        match report.state {
            // Byte counts, when this subdevice's command fetches the image, say more.
            ProgressState::Downloading if self.phase == Phase::Bytes => {}
            ProgressState::Downloading => {
                self.percent(Phase::Percent, report.percent.unwrap_or(0), "downloading");
            }
            ProgressState::Burning => self.percent(Phase::Burning, 0, "burning"),
            ProgressState::Done => {
                self.idle(format!("done, running {}", report.version));
            }
            ProgressState::Fail => self.idle(format!(
                "failed {} ({}): {}",
                report.version,
                report.result_code.code(),
                report.result_msg
            )),
        }
    }
}
