//! Instance configuration.

use crate::CosError;
use crate::tls::TlsIdentity;

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
}

/// A validated [`CosConfig`]: what the server runs with.
#[derive(Debug, Clone)]
pub(crate) struct CosPlan {
    pub(crate) secret: Vec<u8>,
    pub(crate) public_host: Option<String>,
    pub(crate) tls: Option<std::sync::Arc<rustls::ServerConfig>>,
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
                getrandom::fill(&mut secret).map_err(|e| CosError::Random(e.to_string()))?;
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
        Ok(CosPlan {
            secret,
            public_host: self.public_host,
            tls,
        })
    }
}
