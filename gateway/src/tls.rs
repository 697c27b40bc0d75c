//! TLS client settings from PEM: the CA that signs the server, and an optional device
//! certificate for mutual TLS. Used by the MQTT session and by `https://` downloads.

use rustls::ClientConfig;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why TLS settings could not be built; names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A PEM file holds nothing usable.
    #[error("{what}: {reason}")]
    Pem {
        /// Which input, e.g. `ca certificate`.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// rustls refused the combination.
    #[error("tls configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// PEM material for a TLS client.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsSettings {
    ca_pem: Vec<u8>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The private key never reaches logs.
        f.debug_struct("TlsSettings")
            .field("ca_pem_bytes", &self.ca_pem.len())
            .field("mutual", &self.identity.is_some())
            .finish()
    }
}

impl TlsSettings {
    /// Trust servers whose chain ends at a certificate of `ca_pem`.
    pub fn new(ca_pem: impl Into<Vec<u8>>) -> Self {
        TlsSettings {
            ca_pem: ca_pem.into(),
            identity: None,
        }
    }

    /// Presents `cert_pem` (chain) with `key_pem` to the server: mutual TLS.
    pub fn with_identity(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.identity = Some((cert_pem.into(), key_pem.into()));
        self
    }

    /// Reads the CA (and the identity, if given) from PEM files.
    pub fn from_files(ca: &Path, identity: Option<(&Path, &Path)>) -> Result<Self, TlsError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| TlsError::Read {
                path: path.to_path_buf(),
                source,
            })
        };
        let settings = TlsSettings::new(read(ca)?);
        Ok(match identity {
            Some((cert, key)) => settings.with_identity(read(cert)?, read(key)?),
            None => settings,
        })
    }

    /// A rustls client configuration with the ring provider.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in certs(&self.ca_pem, "ca certificate")? {
            roots.add(cert)?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots);
        let config = match &self.identity {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| TlsError::Pem {
                    what: "device key",
                    reason: e.to_string(),
                })?;
                builder.with_client_auth_cert(certs(cert, "device certificate")?, key)?
            }
        };
        Ok(Arc::new(config))
    }
}

fn certs(pem: &[u8], what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what,
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            what,
            reason: "no certificate in the PEM".into(),
        });
    }
    Ok(certs)
}
