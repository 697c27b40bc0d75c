//! Why a download failed: one error enum with context, and the failure family it reports as.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// The failure family of a download, one per OTA failure code of protocol.md section 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// `-1`: the download timed out (connect, first byte, stall or total budget).
    DownloadTimeout,
    /// `-2`: the file does not exist (HTTP 404).
    FileNotExist,
    /// `-3`: the signed URL expired (HTTP 403).
    SignatureExpired,
    /// `-4`: the finished image does not have the expected MD5.
    Md5Mismatch,
    /// `-5`: anything else: cuts after the retry budget, 5xx, protocol violations, disk errors.
    UpgradeFailed,
}

/// Where a request stood when it failed. The URL has its query (the signature) removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptContext {
    /// `scheme://authority/path` of the image, without the query string.
    pub url: String,
    /// 1-based number of the HTTP request within this download.
    pub attempt: u32,
    /// Bytes of the image stored (and hashed) when the failure happened.
    pub offset: u64,
}

/// Which wait ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutPhase {
    /// The TCP connect did not finish.
    Connect,
    /// The response head did not arrive after the request was sent.
    FirstByte,
    /// No body data arrived for the idle timeout.
    Idle,
    /// The whole download exceeded the retry policy's total budget.
    Total,
}

impl fmt::Display for TimeoutPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeoutPhase::Connect => "connect",
            TimeoutPhase::FirstByte => "waiting for the response head",
            TimeoutPhase::Idle => "stalled body",
            TimeoutPhase::Total => "total download budget",
        })
    }
}

/// A response that breaks HTTP or the image description, and that retrying will not fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// A status that is neither success nor one we know how to handle.
    #[error("unexpected http status {0}")]
    UnexpectedStatus(u16),
    /// `Content-Length` does not match the requested range.
    #[error("content-length {got} but the range holds {expected} bytes")]
    ContentLength {
        /// What the server declared.
        got: u64,
        /// What the range (or the whole image) holds.
        expected: u64,
    },
    /// A 206 from offset 0 whose `Content-Range` is missing or is not the asked range.
    #[error(
        "content-range {} does not answer bytes {expected_start}-{expected_end}/{file_size}",
        got.as_deref().unwrap_or("(none)")
    )]
    ContentRange {
        /// The raw header, if any.
        got: Option<String>,
        /// First byte asked.
        expected_start: u64,
        /// Last byte asked.
        expected_end: u64,
        /// Size of the image.
        file_size: u64,
    },
    /// The body is encoded although we asked for `identity`.
    #[error("content-encoding {0:?} although identity was asked")]
    ContentEncoding(String),
    /// The body went on past the image size; nothing past the size was written.
    #[error("body longer than the image: more than {file_size} bytes")]
    BodyTooLong {
        /// Size of the image.
        file_size: u64,
    },
    /// More redirects in a row than the configured limit.
    #[error("more than {limit} redirects in a row")]
    TooManyRedirects {
        /// The limit (`download.max_redirects`).
        limit: u8,
    },
    /// A redirect whose `Location` cannot be followed.
    #[error("redirect to {location:?} not followed: {reason}")]
    BadRedirect {
        /// The location, without its query.
        location: String,
        /// Why.
        reason: &'static str,
    },
}

/// Why a resume could not continue, so the partial image was discarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestartReason {
    /// A resume was answered `200` with the whole image.
    FullBodyOnResume,
    /// A resume was answered `416 Range Not Satisfiable`.
    RangeNotSatisfiable,
    /// A resume was answered with another range than the one asked.
    ContentRangeMismatch {
        /// The raw `Content-Range`, if any.
        got: Option<String>,
    },
    /// The object's ETag differs from the one the partial was fetched under.
    EtagChanged {
        /// ETag stored in the checkpoint.
        old: String,
        /// ETag of this response.
        new: String,
    },
}

impl fmt::Display for RestartReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestartReason::FullBodyOnResume => {
                f.write_str("server answered 200 to a range request")
            }
            RestartReason::RangeNotSatisfiable => f.write_str("server answered 416 to a resume"),
            RestartReason::ContentRangeMismatch { got } => {
                let got = got.as_deref().unwrap_or("no content-range");
                write!(f, "server answered another range ({got})")
            }
            RestartReason::EtagChanged { old, new } => {
                write!(f, "object changed: etag {old} became {new}")
            }
        }
    }
}

/// A download that did not produce a verified image. Every variant says where it happened.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The URL is not `http(s)://host[:port]/path`, or is https without a configured CA.
    #[error("url {url:?} rejected: {reason}")]
    InvalidUrl {
        /// The URL without its query.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// HTTP 404.
    #[error("http 404 (file does not exist) on attempt {}", at.attempt)]
    FileNotExist {
        /// Where it happened.
        at: AttemptContext,
    },
    /// HTTP 403: COS refused the signed URL (expired, or a signature mismatch: its error
    /// `Code` tells which).
    #[error(
        "http 403 (url refused{}) on attempt {}",
        cos_code.as_deref().map(|c| format!(": {c}")).unwrap_or_default(),
        at.attempt
    )]
    SignatureExpired {
        /// The COS error `Code` of the answer's XML body (`AccessDenied`,
        /// `SignatureDoesNotMatch`, ...), if it had one.
        cos_code: Option<String>,
        /// Where it happened.
        at: AttemptContext,
    },
    /// Another error status (5xx after the retry budget, 416 from offset 0, ...).
    #[error("http {status} on attempt {}", at.attempt)]
    HttpStatus {
        /// The status code.
        status: u16,
        /// Where it happened.
        at: AttemptContext,
    },
    /// The complete image hashed to another MD5; the partial was deleted.
    #[error("md5 mismatch: expected {expected}, got {actual}")]
    Md5Mismatch {
        /// Lower-case hex MD5 from the update command.
        expected: String,
        /// Lower-case hex MD5 of the bytes received.
        actual: String,
    },
    /// A wait ran out.
    #[error("{phase} timeout after {after:?} at byte {} of {file_size} on attempt {}", at.offset, at.attempt)]
    Timeout {
        /// Which wait.
        phase: TimeoutPhase,
        /// How long it was.
        after: Duration,
        /// Size of the image.
        file_size: u64,
        /// Where it happened.
        at: AttemptContext,
    },
    /// The body ended early; the received prefix is kept for a resume.
    #[error("connection cut at byte {} of {file_size} on attempt {}", at.offset, at.attempt)]
    Cut {
        /// Size of the image.
        file_size: u64,
        /// Where it happened.
        at: AttemptContext,
    },
    /// The TCP connection could not be made.
    #[error("connect to {authority} failed on attempt {}: {source}", at.attempt)]
    Connect {
        /// `host:port`.
        authority: String,
        /// Where it happened.
        at: AttemptContext,
        /// The socket error.
        source: io::Error,
    },
    /// The TLS handshake failed (unknown issuer, wrong name, ...): retrying will not help.
    #[error("tls handshake with {authority} failed on attempt {}: {source}", at.attempt)]
    Tls {
        /// `host:port`.
        authority: String,
        /// Where it happened.
        at: AttemptContext,
        /// rustls' error, as I/O error.
        source: io::Error,
    },
    /// The HTTP exchange failed before the body (malformed response, reset).
    #[error("http exchange failed at byte {} on attempt {}: {source}", at.offset, at.attempt)]
    Http {
        /// Where it happened.
        at: AttemptContext,
        /// hyper's error.
        source: hyper::Error,
    },
    /// The server broke HTTP or contradicted the image description.
    #[error("bad response on attempt {}: {violation}", at.attempt)]
    Protocol {
        /// What was wrong.
        violation: Violation,
        /// Where it happened.
        at: AttemptContext,
    },
    /// Every attempt of the budget had to discard the partial image.
    #[error("gave up restarting on attempt {}: {reason}", at.attempt)]
    RestartBudget {
        /// Why the last restart was needed.
        reason: RestartReason,
        /// Where it happened.
        at: AttemptContext,
    },
    /// A local file operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What we were doing, e.g. `"sync"`.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

impl DownloadError {
    /// The failure family, for the `result_code` of the progress report.
    pub fn kind(&self) -> FailureKind {
        match self {
            DownloadError::FileNotExist { .. } => FailureKind::FileNotExist,
            DownloadError::SignatureExpired { .. } => FailureKind::SignatureExpired,
            DownloadError::Md5Mismatch { .. } => FailureKind::Md5Mismatch,
            DownloadError::Timeout { .. } => FailureKind::DownloadTimeout,
            _ => FailureKind::UpgradeFailed,
        }
    }

    /// Whether another attempt may succeed (cuts, stalls, 5xx, connect errors).
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            DownloadError::Timeout { phase, .. } => *phase != TimeoutPhase::Total,
            DownloadError::HttpStatus { status, .. } => {
                *status >= 500 || *status == 408 || *status == 429
            }
            DownloadError::Cut { .. }
            | DownloadError::Connect { .. }
            | DownloadError::Http { .. } => true,
            _ => false,
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| DownloadError::Io { op, path, source }
    }
}
