//! A task's options, as Tencent's batch-update API offers them, with durations as plain
//! [`Duration`]s (milliseconds on the wire) so that a scenario can scale time.

use super::{Policy, PushRequest};
use crate::HubError;
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
    #[serde(default, rename = "timeout_ms", with = "opt_millis_at_least_1")]
    pub timeout: Option<Duration>,
    /// How many times a failed or timed-out attempt is retried (re-sending `update_firmware`
    /// with a fresh signed URL).
    #[serde(default, deserialize_with = "retries")]
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
    #[serde(deserialize_with = "rate_devices")]
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
    /// Saturates: options built in Rust skip the parse-time range checks.
    pub(crate) fn start_offset(&self, index: usize) -> Duration {
        let batch = match self.rate_limit {
            Some(r) if r.devices > 0 => index / r.devices as usize,
            _ => 0,
        };
        let per = self.rate_limit.map_or(Duration::ZERO, |r| r.per);
        self.start_delay
            .saturating_add(per.saturating_mul(u32::try_from(batch).unwrap_or(u32::MAX)))
    }

    /// Checks every number against the ranges the wire format enforces (for options built in
    /// Rust or carried by a fault rule); the error names the field.
    pub fn validate(&self) -> Result<(), HubError> {
        let durations = [
            (
                "options.timeout_ms",
                self.timeout.unwrap_or(Duration::from_millis(1)),
            ),
            ("options.retry_interval_ms", self.retry_interval),
            ("options.start_delay_ms", self.start_delay),
            (
                "options.rate_limit.per_ms",
                self.rate_limit.map_or(Duration::ZERO, |r| r.per),
            ),
        ];
        for (field, d) in durations {
            if d > MAX_DURATION {
                return Err(invalid(
                    field,
                    format!("at most {MAX_DURATION_MS} ms (a year)"),
                ));
            }
        }
        if self.timeout == Some(Duration::ZERO) {
            return Err(invalid("options.timeout_ms", "at least 1 ms".to_owned()));
        }
        if self.retries > MAX_RETRIES {
            return Err(invalid("options.retries", format!("at most {MAX_RETRIES}")));
        }
        if let Some(r) = self.rate_limit
            && !(1..=MAX_RATE_DEVICES).contains(&r.devices)
        {
            let reason = format!("1 to {MAX_RATE_DEVICES} devices per period");
            return Err(invalid("options.rate_limit.devices", reason));
        }
        Ok(())
    }
}

/// The longest duration any option takes: a year, in milliseconds.
pub(crate) const MAX_DURATION_MS: u64 = 365 * 24 * 3600 * 1000;
const MAX_DURATION: Duration = Duration::from_millis(MAX_DURATION_MS);
/// The most retries a task may ask for.
pub(crate) const MAX_RETRIES: u32 = 1000;
/// The most devices a rate limit may start per period.
pub(crate) const MAX_RATE_DEVICES: u32 = 1_000_000;

fn invalid(field: &'static str, reason: String) -> HubError {
    HubError::Invalid { field, reason }
}

/// A count in `range`, or a serde error saying so (the API names the field from its path).
fn bounded_u32<'de, D: Deserializer<'de>>(
    d: D,
    range: std::ops::RangeInclusive<u32>,
) -> Result<u32, D::Error> {
    let n = u32::deserialize(d)?;
    if range.contains(&n) {
        Ok(n)
    } else {
        Err(serde::de::Error::custom(format!(
            "{n} is out of range: {} to {}",
            range.start(),
            range.end()
        )))
    }
}

fn retries<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    bounded_u32(d, 0..=MAX_RETRIES)
}

fn rate_devices<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    bounded_u32(d, 1..=MAX_RATE_DEVICES)
}

/// Milliseconds up to [`MAX_DURATION_MS`], at least `min`.
fn bounded_millis<'de, D: Deserializer<'de>>(d: D, min: u64) -> Result<Duration, D::Error> {
    let ms = u64::deserialize(d)?;
    if (min..=MAX_DURATION_MS).contains(&ms) {
        Ok(Duration::from_millis(ms))
    } else {
        Err(serde::de::Error::custom(format!(
            "{ms} ms is out of range: {min} to {MAX_DURATION_MS} (a year)"
        )))
    }
}

mod millis {
    use super::*;

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        bounded_millis(d, 0)
    }
}

mod opt_millis_at_least_1 {
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
        #[derive(Deserialize)]
        struct Ms(#[serde(deserialize_with = "at_least_1")] Duration);
        fn at_least_1<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
            bounded_millis(d, 1)
        }
        Option::<Ms>::deserialize(d).map(|o| o.map(|Ms(d)| d))
    }
}
