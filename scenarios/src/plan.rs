//! The scenario file format: raw TOML types with `deny_unknown_fields` (`plan/raw.rs`),
//! validated (`plan/validate.rs`) into a [`Plan`] that the runner executes. Errors name the
//! file, the line and the field.

mod expectations;
mod locate;
mod raw;
mod step;
mod validate;
mod validate_expect;
mod validate_step;

pub use expectations::{Bounds, CosRequestExpect, Expectations, TranscriptExpect};
pub use step::{Condition, MqttLevel, QuietOn, RawAnswer, RawPublish, Step};

use fake_cos::FaultRule;
use gateway::download::{DownloadConfig, RetryPolicy, Timeouts};
use otasim_protocol::DeviceId;
use serde::{Deserialize, Serialize};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Why a scenario file was refused.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// TOML syntax or an unknown or mistyped field (the message has line and column).
    #[error("{path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// What the TOML parser said, with the line.
        message: String,
    },
    /// The file parses but says something impossible.
    #[error("{path}:{}: {field}: {reason}", line.map_or_else(|| "?".to_owned(), |l| l.to_string()))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The 1-based line of the field, when it could be found.
        line: Option<usize>,
        /// The field, as a path (`subdevices[2].gateway`).
        field: String,
        /// Why.
        reason: String,
    },
}

/// How a gateway of the fleet runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum GatewayRun {
    /// Our gateway, in process.
    #[default]
    Builtin,
    /// Another gateway, as a child process. In `args`, `{device_info}` is the path of the
    /// SDKs' `device_info.json` written from the fleet, `{hub_host}` and `{hub_port}` the hub's
    /// MQTT address, `{state_dir}` a directory kept across reboots.
    Command {
        /// The program.
        program: String,
        /// Its arguments, with the placeholders above.
        #[serde(default)]
        args: Vec<String>,
    },
    /// Nothing runs: the identity is used only by `raw_publish` steps, a client misbehaving at
    /// the protocol level (scenarios that pin the hub's own rules). Qualification leaves it.
    Raw,
}

/// How a subdevice takes a burn: the gateway crate's simulated behaviours, plus `hang`, and a
/// count of burns they apply to (the later ones succeed), counted across gateway reboots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum BurnerPlan {
    /// Every burn succeeds, taking `duration_ms`.
    Ok {
        /// How long a burn takes.
        #[serde(default)]
        duration_ms: u64,
    },
    /// The flash write fails at `percent`, for the first `times` burns (all if unset).
    Fail {
        /// 0 to 100.
        #[serde(default)]
        percent: u8,
        /// How many burns fail before they succeed.
        #[serde(default)]
        times: Option<u32>,
    },
    /// The burn never ends, for the first `times` burns (all if unset): only a reboot frees it.
    Hang {
        /// How many burns hang before they succeed.
        #[serde(default)]
        times: Option<u32>,
    },
    /// The burn works but the device then runs `version`, for the first `times` burns.
    WrongVersion {
        /// What the device runs after the burn.
        version: String,
        /// How many burns lie before they tell the truth.
        #[serde(default)]
        times: Option<u32>,
    },
    /// The device stops answering at `percent` of the burn, for the first `times` burns.
    Offline {
        /// 0 to 100.
        #[serde(default)]
        percent: u8,
        /// How many burns find it offline.
        #[serde(default)]
        times: Option<u32>,
    },
}

impl Default for BurnerPlan {
    fn default() -> Self {
        BurnerPlan::Ok { duration_ms: 0 }
    }
}

/// A gateway of the fleet.
#[derive(Debug, Clone)]
pub struct GatewayPlan {
    /// Its identity.
    pub id: DeviceId,
    /// Its base64 secret.
    pub secret: String,
    /// Built in, or an external command.
    pub run: GatewayRun,
    /// Images larger than this are refused.
    pub max_image_bytes: u64,
    /// Updates it runs at once (the built-in gateway's default if unset).
    pub max_concurrent: Option<std::num::NonZeroUsize>,
    /// Most bytes its images directory may hold (no quota if unset).
    pub quota_bytes: Option<u64>,
}

/// A subdevice of the fleet.
#[derive(Debug, Clone)]
pub struct SubdevicePlan {
    /// Its identity.
    pub id: DeviceId,
    /// The gateway that serves it.
    pub gateway: DeviceId,
    /// Its factory version.
    pub version: String,
    /// Its secret (for bind signatures).
    pub secret: String,
    /// Whether the hub has it bound to its gateway.
    pub bound: bool,
    /// How it takes a burn.
    pub burner: BurnerPlan,
}

/// A firmware image, generated from a seed or read from a file.
#[derive(Debug, Clone)]
pub struct FirmwarePlan {
    /// The product.
    pub product_id: String,
    /// The version.
    pub version: String,
    /// Size in bytes.
    pub size_bytes: u64,
    /// Seed of the generated bytes.
    pub seed: u64,
    /// The bytes of a firmware file, if the image came from one.
    pub file_bytes: Option<Arc<Vec<u8>>>,
}

impl FirmwarePlan {
    /// The image bytes: deterministic for a seed and size (or the file's bytes).
    pub fn bytes(&self) -> Vec<u8> {
        self.bytes_with(0)
    }

    /// The image bytes under a run seed: run seed 0 gives [`FirmwarePlan::bytes`].
    pub fn bytes_with(&self, run_seed: u64) -> Vec<u8> {
        if let Some(file) = &self.file_bytes {
            return file.as_ref().clone();
        }
        let mut x =
            (self.seed ^ run_seed.wrapping_mul(0xD1B5_4A32_D192_ED03)) ^ 0x9E37_79B9_7F4A_7C15;
        (0..self.size_bytes)
            .map(|_| {
                // xorshift64*: cheap, deterministic, not compressible by accident.
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
            })
            .collect()
    }

    /// The fake COS object the hub stores it under.
    pub fn object(&self) -> String {
        otasim_protocol::firmware_object_name(&self.product_id, &self.version)
    }
}

/// A validated scenario.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its name.
    pub name: String,
    /// What it models.
    pub description: String,
    /// The seed of every generated image (overridden by `otasim run --seed`).
    pub seed: u64,
    /// Factor on the gateway's download timeouts and retry delays (1.0: real time).
    pub time_scale: f64,
    /// Requests per download before the gateway gives up (its default if unset).
    pub download_attempts: Option<u32>,
    /// How often the gateway makes a download durable (its default, 1 MiB, if unset).
    pub checkpoint_bytes: Option<u64>,
    /// How long a burn may take (the gateway's default under the time scale, if unset).
    pub burn_timeout: Option<std::time::Duration>,
    /// The gateways.
    pub gateways: Vec<GatewayPlan>,
    /// The subdevices.
    pub subdevices: Vec<SubdevicePlan>,
    /// The firmware uploaded before the steps run.
    pub firmware: Vec<FirmwarePlan>,
    /// COS faults installed before the steps run.
    pub cos_faults: Vec<FaultRule>,
    /// Hub faults installed before the gateways start.
    pub hub_faults: Vec<fake_hub::HubFaultRule>,
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// What must hold at the end.
    pub expect: Expectations,
    /// Set when the scenario depends on the built-in gateway's internals (its simulated burner,
    /// its configuration): why. Qualifying an external gateway skips it with this reason.
    pub builtin_only: Option<String>,
}

/// The parser's message, plus the line of an unknown field's key: the parser points at the
/// table that holds it, which for `[[steps]]` may be a few lines up.
fn syntax_message(text: &str, e: &toml::de::Error) -> String {
    let mut message = e.to_string().trim_end().to_owned();
    let unknown = message
        .split("unknown field `")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
        .map(str::to_owned);
    if let (Some(key), Some(span)) = (unknown, e.span()) {
        let from = text[..span.start.min(text.len())].matches('\n').count();
        let at = text.lines().enumerate().skip(from).find(|(_, l)| {
            let l = l.trim_start();
            l.strip_prefix(key.as_str())
                .is_some_and(|r| r.trim_start().starts_with('='))
        });
        if let Some((i, _)) = at {
            message.push_str(&format!("\n(unknown field `{key}` is at line {})", i + 1));
        }
    }
    message
}

/// Default wait of a waiting step.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

impl Plan {
    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Plan, PlanError> {
        let text = std::fs::read_to_string(path).map_err(|source| PlanError::Read {
            path: path.to_owned(),
            source,
        })?;
        Plan::parse(path, &text)
    }

    /// Validates scenario text; `path` is for messages and for firmware files (relative to it).
    pub fn parse(path: &Path, text: &str) -> Result<Plan, PlanError> {
        let raw: raw::RawScenario = toml::from_str(text).map_err(|e| PlanError::Syntax {
            path: path.to_owned(),
            message: syntax_message(text, &e),
        })?;
        validate::Validator { path, text }.plan(raw)
    }

    /// The gateway's download settings under this plan's time scale.
    pub fn download_config(&self) -> DownloadConfig {
        let mut config = DownloadConfig::default();
        if let Some(every) = self.checkpoint_bytes.and_then(std::num::NonZeroU64::new) {
            config.checkpoint = gateway::download::CheckpointPolicy::EveryBytes(every);
            // Bytes still in the write buffer are not stored, so cannot be checkpointed.
            let buffer = usize::try_from(every.get())
                .ok()
                .and_then(std::num::NonZeroUsize::new);
            if let Some(b) = buffer.filter(|b| *b < config.write_buffer_bytes) {
                config.write_buffer_bytes = b;
            }
        }
        let s = |d: Duration| d.mul_f64(self.time_scale).max(Duration::from_millis(1));
        let t = config.timeouts;
        if let Ok(timeouts) = Timeouts::new(s(t.connect()), s(t.first_byte()), s(t.idle())) {
            config.timeouts = timeouts;
        }
        let r = config.retry;
        let attempts = self
            .download_attempts
            .and_then(NonZeroU32::new)
            .unwrap_or(r.max_attempts());
        let base = s(Duration::from_millis(500));
        if let Ok(retry) =
            RetryPolicy::new(attempts, s(r.max_total()), base, s(Duration::from_secs(30)))
        {
            config.retry = retry;
        }
        config
    }

    /// Every device named in the fleet.
    pub fn subdevice(&self, id: &DeviceId) -> Option<&SubdevicePlan> {
        self.subdevices.iter().find(|s| &s.id == id)
    }
}
