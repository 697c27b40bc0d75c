//! The pure resume/range state machine of one image download: no I/O, no clock.
//!
//! It knows how many bytes are stored and how many are durable, builds the `Range` of the next
//! request, judges each response head and each body chunk, and says when to checkpoint. The
//! async driver performs what it decides; proptest drives it directly.
//!
//! Range form: we send the exact form `bytes={offset}-{size-1}`, not the SDK's `{offset}-{size}`.
//! Both are valid HTTP (a server clamps a last-byte-pos past the end), but the exact form does
//! not rely on clamping, and the answer it asks for is exactly the `Content-Range` we verify.

use crate::download::config::CheckpointPolicy;
use crate::download::error::{RestartReason, Violation};

/// The parts of a response head the machine judges.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ResponseHead {
    pub(crate) status: u16,
    pub(crate) content_length: Option<u64>,
    pub(crate) content_range: Option<String>,
    pub(crate) etag: Option<String>,
    pub(crate) content_encoding: Option<String>,
}

/// What to do with a response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeadDecision {
    /// Stream the body; it continues the stored prefix.
    Accept,
    /// The resume was refused but this body is the whole image: drop the partial, keep reading.
    RestartWithBody(RestartReason),
    /// Drop the partial and send a new request from byte 0.
    RestartNewRequest(RestartReason),
    /// A status that says "try again later" (5xx, 408, 429).
    Retry(u16),
    /// HTTP 404.
    NotFound,
    /// HTTP 403.
    Forbidden,
    /// A response that retrying will not fix.
    Fail(Violation),
}

/// How a body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyEnd {
    /// Every byte of the image is stored.
    Complete,
    /// The body stopped before the end of the image.
    Cut,
}

/// What the checkpoint file records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CheckpointRecord {
    pub(crate) durable_bytes: u64,
    pub(crate) etag: Option<String>,
}

/// Progress of one image through requests, chunks and checkpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Transfer {
    file_size: u64,
    /// Bytes accepted and hashed (possibly not yet synced).
    stored: u64,
    /// Bytes covered by the checkpoint on disk; never more than `stored`.
    durable: u64,
    etag: Option<String>,
    policy: CheckpointPolicy,
    /// Body bytes accepted over all requests, restarts included (a statistic, not state).
    fetched: u64,
}

impl Transfer {
    /// Starts from a durable prefix found on disk (0 for a fresh download).
    pub(crate) fn resume(
        file_size: u64,
        durable: u64,
        etag: Option<String>,
        policy: CheckpointPolicy,
    ) -> Self {
        let durable = durable.min(file_size);
        Transfer {
            file_size,
            stored: durable,
            durable,
            etag,
            policy,
            fetched: 0,
        }
    }

    pub(crate) fn stored(&self) -> u64 {
        self.stored
    }

    pub(crate) fn durable(&self) -> u64 {
        self.durable
    }

    pub(crate) fn fetched(&self) -> u64 {
        self.fetched
    }

    pub(crate) fn is_complete(&self) -> bool {
        self.stored == self.file_size
    }

    /// The `Range` header value for the next request, `None` for an empty image.
    pub(crate) fn range_header(&self) -> Option<String> {
        (self.file_size > 0).then(|| format!("bytes={}-{}", self.stored, self.file_size - 1))
    }

    /// Judges a response head; on a restart the stored prefix is forgotten.
    pub(crate) fn on_head(&mut self, head: &ResponseHead) -> HeadDecision {
        let decision = match head.status {
            200 => self.judge_full(head),
            206 => self.judge_partial(head),
            404 => HeadDecision::NotFound,
            403 => HeadDecision::Forbidden,
            416 if self.stored > 0 => {
                HeadDecision::RestartNewRequest(RestartReason::RangeNotSatisfiable)
            }
            408 | 429 | 500..=599 => HeadDecision::Retry(head.status),
            other => HeadDecision::Fail(Violation::UnexpectedStatus(other)),
        };
        let decision = match (decision, &head.content_encoding) {
            (HeadDecision::Accept | HeadDecision::RestartWithBody(_), Some(enc))
                if !enc.eq_ignore_ascii_case("identity") =>
            {
                HeadDecision::Fail(Violation::ContentEncoding(enc.clone()))
            }
            (decision, _) => decision,
        };
        match &decision {
            HeadDecision::Accept => self.etag = head.etag.clone().or(self.etag.take()),
            HeadDecision::RestartWithBody(_) => self.forget(head.etag.clone()),
            HeadDecision::RestartNewRequest(_) => self.forget(None),
            _ => {}
        }
        decision
    }

    fn judge_full(&self, head: &ResponseHead) -> HeadDecision {
        if let Some(got) = head.content_length.filter(|&len| len != self.file_size) {
            return HeadDecision::Fail(Violation::ContentLength {
                got,
                expected: self.file_size,
            });
        }
        if self.stored > 0 {
            HeadDecision::RestartWithBody(RestartReason::FullBodyOnResume)
        } else {
            HeadDecision::Accept
        }
    }

    fn judge_partial(&self, head: &ResponseHead) -> HeadDecision {
        let expected_end = self.file_size.saturating_sub(1);
        let parsed = head.content_range.as_deref().and_then(parse_content_range);
        if parsed != Some((self.stored, expected_end, self.file_size)) || self.file_size == 0 {
            let got = head.content_range.clone();
            return if self.stored > 0 {
                HeadDecision::RestartNewRequest(RestartReason::ContentRangeMismatch { got })
            } else {
                HeadDecision::Fail(Violation::ContentRange {
                    got,
                    expected_start: self.stored,
                    expected_end,
                    file_size: self.file_size,
                })
            };
        }
        if let (Some(old), Some(new)) = (&self.etag, &head.etag)
            && old != new
            && self.stored > 0
        {
            let reason = RestartReason::EtagChanged {
                old: old.clone(),
                new: new.clone(),
            };
            return HeadDecision::RestartNewRequest(reason);
        }
        let expected = self.file_size - self.stored;
        match head.content_length {
            Some(got) if got != expected => {
                HeadDecision::Fail(Violation::ContentLength { got, expected })
            }
            _ => HeadDecision::Accept,
        }
    }

    fn forget(&mut self, etag: Option<String>) {
        self.stored = 0;
        self.durable = 0;
        self.etag = etag;
    }

    /// Accepts `len` more body bytes; `Ok(true)` means "make durable and checkpoint now".
    /// Refuses, before anything is written, a chunk that would pass the image size.
    pub(crate) fn on_data(&mut self, len: u64) -> Result<bool, Violation> {
        match self.stored.checked_add(len) {
            Some(end) if end <= self.file_size => {
                self.stored = end;
                self.fetched += len;
            }
            _ => {
                return Err(Violation::BodyTooLong {
                    file_size: self.file_size,
                });
            }
        }
        let pending = self.stored - self.durable;
        Ok(match self.policy {
            CheckpointPolicy::EveryChunk => pending > 0,
            CheckpointPolicy::EveryBytes(every) => pending >= every.get(),
        })
    }

    /// The stored bytes are now synced: returns the checkpoint to write.
    pub(crate) fn on_durable(&mut self) -> CheckpointRecord {
        self.durable = self.stored;
        CheckpointRecord {
            durable_bytes: self.durable,
            etag: self.etag.clone(),
        }
    }

    /// Whether a body that ended here delivered the whole image.
    pub(crate) fn on_end(&self) -> BodyEnd {
        if self.is_complete() {
            BodyEnd::Complete
        } else {
            BodyEnd::Cut
        }
    }
}

/// Parses `bytes {first}-{last}/{total}`; `None` for anything else, including `*` totals.
pub(crate) fn parse_content_range(value: &str) -> Option<(u64, u64, u64)> {
    let value = value.trim();
    let (unit, rest) = value.split_once(' ')?;
    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }
    let (range, total) = rest.trim_start().split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let number = |s: &str| {
        let s = s.trim();
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse::<u64>().ok()
    };
    let (first, last, total) = (number(first)?, number(last)?, number(total)?);
    (first <= last && last < total).then_some((first, last, total))
}

#[cfg(test)]
mod tests;
