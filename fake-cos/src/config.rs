//! Instance configuration.

use std::time::Duration;

use crate::CosError;
use crate::auth::CosKey;
use crate::journal::DEFAULT_JOURNAL_CAPACITY;
use crate::server::Limits;

/// How long a client may take to send a request head unless configured otherwise.
const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Firmware connections served at once unless configured otherwise.
const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// The largest journal a config may ask for, in entries.
const MAX_JOURNAL_CAPACITY: usize = 10_000_000;
use crate::tls::TlsIdentity;

/// The largest object a `PUT` may store unless configured otherwise.
pub const DEFAULT_MAX_OBJECT_BYTES: u64 = 512 << 20;

/// How one fake COS instance signs and spells its URLs.
#[derive(Debug, Clone, Default)]
pub struct CosConfig {
    /// HMAC-SHA1 key for URL signatures; `None` draws 32 random bytes per instance, so no test
    /// can forge a URL by accident.
    pub secret: Option<Vec<u8>>,
    /// Host written into signed URLs, e.g. `"127.0.0.1"` when a real SDK (which ignores ports and
    /// always dials 80) reaches this server through a port-80 forward. `None` uses the listener's
    /// `ip:port`.
    pub public_host: Option<String>,
    /// Serve HTTPS with this identity instead of plain HTTP; signed URLs then start `https://`.
    pub tls: Option<TlsIdentity>,
    /// SecretId/SecretKey pairs whose COS XML API signatures (`q-sign-*`, header or presigned
    /// query) are accepted for PUT, GET and HEAD; more can be added with
    /// [`Cos::add_key`](crate::Cos::add_key).
    pub keys: Vec<CosKey>,
    /// The largest object a signed `PUT` may store; `None` is [`DEFAULT_MAX_OBJECT_BYTES`].
    pub max_object_bytes: Option<u64>,
    /// How many requests the journal keeps (the newest); `None` is
    /// [`DEFAULT_JOURNAL_CAPACITY`](crate::DEFAULT_JOURNAL_CAPACITY).
    pub journal_capacity: Option<usize>,
    /// How long a client may take to send a request head before its connection is closed
    /// (slowloris, idle sockets); `None` is 10 s. Between 1 ms and 1 hour.
    pub header_timeout: Option<Duration>,
    /// Firmware connections served at once (more are closed on accept, so a flood leaves
    /// descriptors for the control API); `None` is 512. Between 1 and 65,536.
    pub max_connections: Option<usize>,
}

/// A validated [`CosConfig`]: what the server runs with.
#[derive(Debug, Clone)]
pub(crate) struct CosPlan {
    pub(crate) secret: Vec<u8>,
    pub(crate) public_host: Option<String>,
    pub(crate) tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    pub(crate) keys: Vec<CosKey>,
    pub(crate) max_object_bytes: u64,
    pub(crate) journal_capacity: usize,
    pub(crate) limits: Limits,
}

impl CosConfig {
    pub(crate) fn plan(self) -> Result<CosPlan, CosError> {
        let secret = match self.secret {
            Some(secret) if secret.is_empty() => {
                return Err(CosError::Config {
                    field: "secret",
                    reason: "must not be empty".into(),
                });
            }
            Some(secret) => secret,
            None => {
                let mut secret = vec![0u8; 32];
                getrandom::fill(&mut secret).map_err(CosError::Random)?;
                secret
            }
        };
        if let Some(host) = &self.public_host
            && (host.is_empty() || host.contains(['/', '?', '#', ' ']))
        {
            return Err(CosError::Config {
                field: "public_host",
                reason: format!("{host:?} is not a bare host[:port]"),
            });
        }
        let tls = self
            .tls
            .as_ref()
            .map(TlsIdentity::server_config)
            .transpose()?;
        let max_object_bytes = match self.max_object_bytes {
            Some(0) => {
                return Err(CosError::Config {
                    field: "max_object_bytes",
                    reason: "must be at least 1".into(),
                });
            }
            Some(max) => max,
            None => DEFAULT_MAX_OBJECT_BYTES,
        };
        let journal_capacity = match self.journal_capacity {
            None => DEFAULT_JOURNAL_CAPACITY,
            Some(n) if (1..=MAX_JOURNAL_CAPACITY).contains(&n) => n,
            Some(n) => {
                return Err(CosError::Config {
                    field: "journal_capacity",
                    reason: format!("{n} is not between 1 and {MAX_JOURNAL_CAPACITY}"),
                });
            }
        };
        let header_timeout = self.header_timeout.unwrap_or(DEFAULT_HEADER_TIMEOUT);
        if !(Duration::from_millis(1)..=Duration::from_secs(3600)).contains(&header_timeout) {
            return Err(CosError::Config {
                field: "header_timeout",
                reason: format!("{header_timeout:?} is not between 1 ms and 1 hour"),
            });
        }
        let max_connections = self.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS);
        if !(1..=65_536).contains(&max_connections) {
            return Err(CosError::Config {
                field: "max_connections",
                reason: format!("{max_connections} is not between 1 and 65536"),
            });
        }
        Ok(CosPlan {
            secret,
            public_host: self.public_host,
            tls,
            keys: self.keys,
            max_object_bytes,
            journal_capacity,
            limits: Limits {
                header_timeout,
                max_connections,
            },
        })
    }
}
