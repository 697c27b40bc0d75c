//! A task's options, as Tencent's batch-update API offers them, with durations as plain
//! [`Duration`]s (milliseconds on the wire) so that a scenario can scale time.

use crate::tasks::{Policy, PushRequest};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::time::Duration;

/// A push and how to run it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskRequest {
    /// Which firmware, to whom.
    pub push: PushRequest,
    /// Timing, retries and override.
    #[serde(default)]
    pub options: TaskOptions,
}

impl From<PushRequest> for TaskRequest {
    fn from(push: PushRequest) -> Self {
        TaskRequest {
            push,
            options: TaskOptions::default(),
        }
    }
}

/// How a task runs. The default starts every device at once, with no timeout, no retry and no
/// override.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskOptions {
    /// Per device and attempt: an attempt that has not succeeded or failed after this long
    /// fails with code -1 (`timed out on the hub`).
    #[serde(default, rename = "timeout_ms", with = "opt_millis")]
    pub timeout: Option<Duration>,
    /// How many times a failed or timed-out attempt is retried (re-sending `update_firmware`
    /// with a fresh signed URL).
    #[serde(default)]
    pub retries: u32,
    /// The pause between a failed attempt and its retry.
    #[serde(default, rename = "retry_interval_ms", with = "millis")]
    pub retry_interval: Duration,
    /// At most this many devices start per period.
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// The pause between creating the task and starting its first device.
    #[serde(default, rename = "start_delay_ms", with = "millis")]
    pub start_delay: Duration,
    /// Take over devices that have a pending update under another task (which is cancelled
    /// for them). Without it such devices are skipped and listed in the task.
    #[serde(default)]
    pub override_running: bool,
    /// The strict success rule: a device succeeds only when it reports the target version
    /// after `done`, and any other version then fails it. Without it (the Hub console's rule,
    /// which the official samples rely on: they never report the new version) `done` is success.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_version_report: bool,
}

/// Devices started per period ("devices per minute" on the console).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Devices per period, at least 1.
    pub devices: u32,
    /// The period: a minute on the console; scale it to speed a scenario up.
    #[serde(rename = "per_ms", with = "millis")]
    pub per: Duration,
}

impl TaskOptions {
    pub(crate) fn policy(&self) -> Policy {
        Policy {
            timeout: self.timeout,
            retries: self.retries,
            retry_interval: self.retry_interval,
            require_version_report: self.require_version_report,
        }
    }

    /// When the `index`-th targeted device (from 0) starts, relative to the task's creation.
    pub(crate) fn start_offset(&self, index: usize) -> Duration {
        let batch = match self.rate_limit {
            Some(r) if r.devices > 0 => index / r.devices as usize,
            _ => 0,
        };
        let per = self.rate_limit.map_or(Duration::ZERO, |r| r.per);
        self.start_delay + per * u32::try_from(batch).unwrap_or(u32::MAX)
    }
}

mod millis {
    use super::*;

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

mod opt_millis {
    use super::*;

    pub(super) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Option::<u64>::deserialize(d).map(|o| o.map(Duration::from_millis))
    }
}
