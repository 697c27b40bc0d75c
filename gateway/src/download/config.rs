//! Download settings, valid by construction: timeouts, retry budget, checkpoint cadence.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};
use std::time::Duration;

/// A setting that cannot work; names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A timeout or budget of zero would fail every download.
    #[error("download.{field} must be greater than zero")]
    Zero {
        /// The field, e.g. `timeouts.idle`.
        field: &'static str,
    },
    /// The first backoff delay is longer than the cap.
    #[error("download.retry.base_delay ({base:?}) must not exceed retry.max_delay ({max:?})")]
    BackoffOrder {
        /// First delay.
        base: Duration,
        /// Cap.
        max: Duration,
    },
}

/// How long each wait of one attempt may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    connect: Duration,
    first_byte: Duration,
    idle: Duration,
}

impl Timeouts {
    /// Connect, response head after the request, and silence between body chunks; all non-zero.
    pub fn new(
        connect: Duration,
        first_byte: Duration,
        idle: Duration,
    ) -> Result<Self, ConfigError> {
        for (field, value) in [
            ("timeouts.connect", connect),
            ("timeouts.first_byte", first_byte),
            ("timeouts.idle", idle),
        ] {
            if value.is_zero() {
                return Err(ConfigError::Zero { field });
            }
        }
        Ok(Timeouts {
            connect,
            first_byte,
            idle,
        })
    }

    /// TCP connect timeout.
    pub fn connect(&self) -> Duration {
        self.connect
    }

    /// Timeout for the response head once the request is sent.
    pub fn first_byte(&self) -> Duration {
        self.first_byte
    }

    /// Longest silence between body chunks.
    pub fn idle(&self) -> Duration {
        self.idle
    }
}

impl Default for Timeouts {
    /// 10 s connect, 15 s first byte, 20 s idle.
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            first_byte: Duration::from_secs(15),
            idle: Duration::from_secs(20),
        }
    }
}

/// Retry budget for transient failures (cuts, stalls, 5xx, connect errors).
///
/// Every HTTP request counts as an attempt, including a request made after a resume was
/// refused. The delay before attempt `n + 1` is drawn from `[cap / 2, cap]` with
/// `cap = min(max_delay, base_delay * 2^(n - 1))` ("equal jitter": never zero, never in step).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    max_attempts: NonZeroU32,
    max_total: Duration,
    base_delay: Duration,
    max_delay: Duration,
}

impl RetryPolicy {
    /// At most `max_attempts` requests and `max_total` from start to end of the download.
    pub fn new(
        max_attempts: NonZeroU32,
        max_total: Duration,
        base_delay: Duration,
        max_delay: Duration,
    ) -> Result<Self, ConfigError> {
        if max_total.is_zero() {
            return Err(ConfigError::Zero {
                field: "retry.max_total",
            });
        }
        if base_delay > max_delay {
            return Err(ConfigError::BackoffOrder {
                base: base_delay,
                max: max_delay,
            });
        }
        Ok(RetryPolicy {
            max_attempts,
            max_total,
            base_delay,
            max_delay,
        })
    }

    /// Most requests per download.
    pub fn max_attempts(&self) -> NonZeroU32 {
        self.max_attempts
    }

    /// Longest time a download may take, retries and backoff included.
    pub fn max_total(&self) -> Duration {
        self.max_total
    }

    /// The delay after failed attempt `failed_attempt` (1-based), with `jitter` in `[0, 1]`.
    pub(crate) fn backoff(&self, failed_attempt: u32, jitter: f64) -> Duration {
        let doublings = failed_attempt.saturating_sub(1).min(30);
        let cap = self
            .base_delay
            .saturating_mul(1 << doublings)
            .min(self.max_delay);
        let half = cap / 2;
        half + (cap - half).mul_f64(jitter.clamp(0.0, 1.0))
    }
}

impl Default for RetryPolicy {
    /// 5 attempts within 10 minutes, backoff from 500 ms up to 30 s.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: NonZeroU32::new(5).expect("5 is not zero"),
            max_total: Duration::from_secs(600),
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

/// A uniform draw in `[0, 1)` for backoff jitter; randomness from the std hasher keys.
pub(crate) fn jitter() -> f64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u8(0);
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// When stored bytes are synced and a checkpoint written (besides the end of every attempt).
///
/// Each checkpoint costs an `fsync` of the data, one of the checkpoint and one of the
/// directory; what it buys is how much a power loss makes us fetch again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointPolicy {
    /// After every body chunk: smallest loss, slowest.
    EveryChunk,
    /// Once at least this many bytes are stored past the last checkpoint.
    EveryBytes(NonZeroU64),
}

impl CheckpointPolicy {
    /// The policy for an image of `file_size` bytes: `EveryBytes` is stretched to at least
    /// 1/32 of the image, so a large image pays a few dozen syncs rather than hundreds, and a
    /// crash costs at most about 3% of it.
    pub(crate) fn for_size(self, file_size: u64) -> Self {
        match self {
            CheckpointPolicy::EveryBytes(every) => {
                let scaled = NonZeroU64::new(file_size / 32).map_or(every, |s| every.max(s));
                CheckpointPolicy::EveryBytes(scaled)
            }
            CheckpointPolicy::EveryChunk => self,
        }
    }
}

/// Settings of the firmware downloader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownloadConfig {
    /// Waits of one attempt.
    pub timeouts: Timeouts,
    /// Retry budget.
    pub retry: RetryPolicy,
    /// Checkpoint cadence.
    pub checkpoint: CheckpointPolicy,
    /// Body bytes gathered before one write to the data file.
    pub write_buffer_bytes: NonZeroUsize,
    /// Redirects (301, 302, 303, 307, 308) followed in a row per request; 0 follows none.
    pub max_redirects: u8,
    /// The longest `Retry-After` honoured; a server asking more waits this long (and the
    /// download's total budget still bounds it).
    pub retry_after_cap: Duration,
}

impl Default for DownloadConfig {
    /// Default timeouts and retries, a checkpoint every 1 MiB, 256 KiB writes, up to 5
    /// redirects (as curl's and browsers' limits, which CDNs stay well within), `Retry-After`
    /// honoured up to 5 minutes.
    fn default() -> Self {
        DownloadConfig {
            timeouts: Timeouts::default(),
            retry: RetryPolicy::default(),
            checkpoint: CheckpointPolicy::EveryBytes(NonZeroU64::new(1 << 20).expect("not zero")),
            write_buffer_bytes: NonZeroUsize::new(256 << 10).expect("not zero"),
            max_redirects: 5,
            retry_after_cap: Duration::from_secs(300),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        let attempts = NonZeroU32::new(8).expect("not zero");
        RetryPolicy::new(
            attempts,
            Duration::from_secs(60),
            Duration::from_millis(100),
            Duration::from_secs(1),
        )
        .expect("valid")
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_equal_jitter() {
        let p = policy();
        assert_eq!(p.backoff(1, 0.0), Duration::from_millis(50));
        assert_eq!(p.backoff(1, 1.0), Duration::from_millis(100));
        assert_eq!(p.backoff(3, 1.0), Duration::from_millis(400));
        assert_eq!(p.backoff(30, 1.0), Duration::from_secs(1));
        assert_eq!(p.backoff(u32::MAX, 0.0), Duration::from_millis(500));
    }

    #[test]
    fn jitter_stays_in_unit_interval_and_varies() {
        let draws: Vec<f64> = (0..64).map(|_| jitter()).collect();
        assert!(draws.iter().all(|j| (0.0..1.0).contains(j)));
        assert!(draws.windows(2).any(|w| w[0] != w[1]));
    }

    #[test]
    fn checkpoints_of_large_images_are_spread_to_a_32nd() {
        let mib = NonZeroU64::new(1 << 20).expect("not zero");
        let policy = CheckpointPolicy::EveryBytes(mib);
        assert_eq!(policy.for_size(4 << 20), policy);
        assert_eq!(
            policy.for_size(256 << 20),
            CheckpointPolicy::EveryBytes(NonZeroU64::new(8 << 20).expect("not zero"))
        );
        assert_eq!(
            CheckpointPolicy::EveryChunk.for_size(256 << 20),
            CheckpointPolicy::EveryChunk
        );
    }

    #[test]
    fn invalid_settings_name_their_field() {
        let zero = Timeouts::new(
            Duration::from_secs(1),
            Duration::ZERO,
            Duration::from_secs(1),
        );
        assert_eq!(
            zero,
            Err(ConfigError::Zero {
                field: "timeouts.first_byte"
            })
        );
        let one = NonZeroU32::new(1).expect("not zero");
        let order = RetryPolicy::new(
            one,
            Duration::from_secs(1),
            Duration::from_secs(2),
            Duration::from_secs(1),
        );
        assert!(matches!(order, Err(ConfigError::BackoffOrder { .. })));
    }
}
