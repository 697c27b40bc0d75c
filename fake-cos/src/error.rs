//! Errors of the fake COS library API (not HTTP answers: those are COS XML bodies).

use std::time::Duration;

/// What can go wrong when driving the fake COS from a test or the harness.
#[derive(Debug, thiserror::Error)]
pub enum CosError {
    /// The object name is not one path segment of `[A-Za-z0-9._-]`, 1 to 128 characters.
    #[error("invalid object name {name:?}: {reason}")]
    InvalidObjectName {
        /// The rejected name.
        name: String,
        /// Which rule it broke.
        reason: &'static str,
    },
    /// The listener could not report its address.
    #[error("fake COS listener has no local address")]
    LocalAddr(#[source] std::io::Error),
    /// The random signing secret could not be drawn from the OS.
    #[error("could not draw a random signing secret")]
    Random(#[source] getrandom::Error),
    /// A configuration field is invalid.
    #[error("invalid fake COS config field `{field}`: {reason}")]
    Config {
        /// The offending field.
        field: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// A fault rule refers to something invalid.
    #[error("invalid fault rule: {field}: {reason}")]
    InvalidRule {
        /// The offending field, e.g. `verdict.code`.
        field: &'static str,
        /// Why it is invalid.
        reason: &'static str,
        /// The underlying error, e.g. an invalid object name.
        #[source]
        source: Option<Box<CosError>>,
    },
    /// The TLS identity could not be made or loaded.
    #[error("TLS setup failed: {what}")]
    Tls {
        /// The step that failed, e.g. `server certificate`.
        what: &'static str,
        /// What the TLS library said.
        #[source]
        source: TlsError,
    },
    /// The control API listener could not report its address.
    #[error("control API listener has no local address")]
    AdminAddr(#[source] std::io::Error),
    /// A folder of objects could not be read.
    #[error("reading {path}: {source}")]
    Folder {
        /// The folder or file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A URL was asked to stay valid longer than [`MAX_URL_VALIDITY`](crate::MAX_URL_VALIDITY).
    #[error("valid_secs: {secs} is more than the maximum of {max_secs} seconds")]
    ValidityTooLong {
        /// The validity asked for, in seconds.
        secs: u64,
        /// The maximum, in seconds.
        max_secs: u64,
    },
    /// A presigned URL was asked for with a key pair the instance does not accept.
    #[error("SecretId {0:?} is not one of this fake COS's keys (add it with Cos::add_key)")]
    UnknownKey(String),
    /// A journal condition did not hold before the deadline.
    #[error("journal condition not met within {0:?}")]
    JournalTimeout(Duration),
}

/// The library error behind [`CosError::Tls`].
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Making a key or certificate failed.
    #[error(transparent)]
    Certificate(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error(transparent)]
    Config(#[from] rustls::Error),
    /// A certificate or key given as PEM could not be read.
    #[error("{0}")]
    Pem(String),
}
