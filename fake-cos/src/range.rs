//! Single-range resolution per RFC 7233 on top of `http-range-header`'s parser.
//!
//! Choices the RFC leaves to the server, made the way COS (and nginx) behave and the SDKs expect:
//! - an end past the last byte is clamped: the SDKs ask `bytes=0-{size}`, one past the end;
//! - a syntactically invalid header (including `last < first`, an unknown unit) is ignored and
//!   the whole object served with 200 (RFC 7233 §3.1 allows ignoring Range); a 416 there would
//!   make an SDK restart a download it could have finished;
//! - several ranges are answered with the whole object (allowed by §3.1): multipart/byteranges
//!   is something no firmware client asks for;
//! - a first byte at or past the end, a zero-length suffix, or any range of an empty object is
//!   unsatisfiable: 416 with `Content-Range: bytes */{size}`.

use http_range_header::{EndPosition, RangeUnsatisfiableError, StartPosition};

/// Which bytes of an object a request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Selection {
    /// 200 with the whole object.
    Whole,
    /// 206 with bytes `start..=end`.
    Partial {
        /// First byte offset.
        start: u64,
        /// Last byte offset, inclusive.
        end: u64,
    },
    /// 416.
    Unsatisfiable,
}

impl Selection {
    /// The half-open byte range served, for an object of `size` bytes.
    pub(crate) fn bounds(self, size: u64) -> Option<(u64, u64)> {
        match self {
            Self::Whole => Some((0, size)),
            Self::Partial { start, end } => Some((start, end + 1)),
            Self::Unsatisfiable => None,
        }
    }
}

/// Resolves the `Range` header value (if any) against an object of `size` bytes.
pub(crate) fn select(range: Option<&str>, size: u64) -> Selection {
    let Some(range) = range else {
        return Selection::Whole;
    };
    let parsed = match http_range_header::parse_range_header(range) {
        Ok(parsed) => parsed,
        Err(RangeUnsatisfiableError::ZeroSuffix) => return Selection::Unsatisfiable,
        Err(_) => return Selection::Whole,
    };
    let [single] = parsed.ranges.as_slice() else {
        return Selection::Whole;
    };
    let start = match single.start {
        StartPosition::Index(start) => start,
        StartPosition::FromLast(suffix) => size.saturating_sub(suffix),
    };
    if let EndPosition::Index(end) = single.end
        && end < start
    {
        return Selection::Whole;
    }
    if start >= size {
        return Selection::Unsatisfiable;
    }
    let end = match single.end {
        EndPosition::Index(end) => end.min(size - 1),
        EndPosition::LastByte => size - 1,
    };
    Selection::Partial { start, end }
}

/// The first byte a request asks for, for rule selectors: 0 without a usable range.
pub(crate) fn requested_start(range: Option<&str>, size: Option<u64>) -> u64 {
    match (range, size) {
        (Some(range), Some(size)) => match select(Some(range), size) {
            Selection::Partial { start, .. } => start,
            Selection::Whole | Selection::Unsatisfiable => 0,
        },
        (Some(range), None) => http_range_header::parse_range_header(range)
            .ok()
            .and_then(|p| match p.ranges.as_slice() {
                [r] => match r.start {
                    StartPosition::Index(start) => Some(start),
                    StartPosition::FromLast(_) => None,
                },
                _ => None,
            })
            .unwrap_or(0),
        (None, _) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZE: u64 = 29_972;

    fn sel(range: &str) -> Selection {
        select(Some(range), SIZE)
    }

    #[test]
    fn sdk_range_one_past_the_end_is_clamped_to_last_byte() {
        assert_eq!(
            sel("bytes=0-29972"),
            Selection::Partial {
                start: 0,
                end: 29_971
            }
        );
        assert_eq!(
            sel("bytes=4999-29972"),
            Selection::Partial {
                start: 4999,
                end: 29_971
            }
        );
    }

    #[test]
    fn open_ended_and_suffix_ranges_reach_the_last_byte() {
        assert_eq!(
            sel("bytes=100-"),
            Selection::Partial {
                start: 100,
                end: 29_971
            }
        );
        assert_eq!(
            sel("bytes=-10"),
            Selection::Partial {
                start: 29_962,
                end: 29_971
            }
        );
        assert_eq!(
            sel("bytes=-99999"),
            Selection::Partial {
                start: 0,
                end: 29_971
            }
        );
    }

    #[test]
    fn start_at_or_past_end_and_zero_suffix_are_unsatisfiable() {
        assert_eq!(sel("bytes=29972-29972"), Selection::Unsatisfiable);
        assert_eq!(sel("bytes=40000-"), Selection::Unsatisfiable);
        assert_eq!(sel("bytes=-0"), Selection::Unsatisfiable);
        assert_eq!(select(Some("bytes=0-"), 0), Selection::Unsatisfiable);
    }

    #[test]
    fn malformed_or_multiple_ranges_serve_the_whole_object() {
        for r in [
            "bytes=5-3",
            "items=0-1",
            "bytes=abc",
            "bytes=0-1,5-9",
            "bytes= 0-1",
            "",
        ] {
            assert_eq!(sel(r), Selection::Whole, "{r:?}");
        }
        assert_eq!(select(None, SIZE), Selection::Whole);
    }

    #[test]
    fn requested_start_reads_the_first_byte_asked() {
        assert_eq!(requested_start(Some("bytes=4999-29972"), Some(SIZE)), 4999);
        assert_eq!(requested_start(Some("bytes=4999-29972"), None), 4999);
        assert_eq!(requested_start(None, Some(SIZE)), 0);
    }
}
