//! HTTPS for the firmware listener: a throwaway CA and a server certificate made with rcgen at
//! run time, so an HTTPS build of an SDK can be pointed at the fake with only the CA to trust;
//! or a certificate and key given as PEM, e.g. issued by the fake hub's CA so that one CA
//! serves both the MQTT TLS port and HTTPS downloads.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::CosError;

/// A CA and a server certificate it signed, made at run time; clones share them.
#[derive(Debug, Clone)]
pub struct TlsIdentity {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    ca_der: CertificateDer<'static>,
    ca_pem: String,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: PrivateKeyDer<'static>,
}

fn tls_error(what: &'static str) -> impl FnOnce(rcgen::Error) -> CosError {
    move |e| CosError::Tls {
        what,
        source: e.into(),
    }
}

impl TlsIdentity {
    /// A fresh CA and a server certificate for `localhost`, `127.0.0.1`, `::1` and `hosts`
    /// (names or IP addresses, e.g. the `public_host` of the URLs).
    pub fn generate(hosts: &[String]) -> Result<TlsIdentity, CosError> {
        let ca_key = KeyPair::generate().map_err(tls_error("CA key"))?;
        let mut ca_params =
            CertificateParams::new(Vec::<String>::new()).map_err(tls_error("CA parameters"))?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "fake-cos test CA");
        let ca_cert = ca_params
            .self_signed(&ca_key)
            .map_err(tls_error("CA certificate"))?;
        let issuer = Issuer::new(ca_params, ca_key);
        let mut names = vec!["localhost".to_owned(), "127.0.0.1".into(), "::1".into()];
        for host in hosts {
            let host = host_without_port(host);
            if !names.iter().any(|n| n == host) {
                names.push(host.to_owned());
            }
        }
        let server_key = KeyPair::generate().map_err(tls_error("server key"))?;
        let mut params = CertificateParams::new(names).map_err(tls_error("server names"))?;
        params
            .distinguished_name
            .push(DnType::CommonName, "fake-cos");
        let server_cert = params
            .signed_by(&server_key, &issuer)
            .map_err(tls_error("server certificate"))?;
        Ok(TlsIdentity {
            inner: Arc::new(Inner {
                ca_der: ca_cert.der().clone(),
                ca_pem: ca_cert.pem(),
                server_chain: vec![server_cert.der().clone()],
                server_key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                    server_key.serialize_der(),
                )),
            }),
        })
    }

    /// An identity from PEM: the server certificate (chain, leaf first), its private key
    /// (PKCS#8, PKCS#1 or SEC1) and the CA certificate clients are to trust. The names the
    /// certificate holds are the issuer's business; a handshake checks them.
    pub fn from_pem(cert_pem: &str, key_pem: &str, ca_pem: &str) -> Result<TlsIdentity, CosError> {
        let pem_error = |what: &'static str| {
            move |e: rustls_pki_types::pem::Error| CosError::Tls {
                what,
                source: crate::TlsError::Pem(e.to_string()),
            }
        };
        let server_chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(pem_error("server certificate PEM"))?;
        let ca_der = CertificateDer::from_pem_slice(ca_pem.as_bytes())
            .map_err(pem_error("CA certificate PEM"))?;
        let server_key =
            PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(pem_error("key PEM"))?;
        if server_chain.is_empty() {
            return Err(CosError::Tls {
                what: "server certificate PEM",
                source: crate::TlsError::Pem("no certificate in it".into()),
            });
        }
        let identity = TlsIdentity {
            inner: Arc::new(Inner {
                ca_der,
                ca_pem: ca_pem.to_owned(),
                server_chain,
                server_key,
            }),
        };
        // A key that does not fit the certificate fails here, not at the first handshake.
        identity.server_config()?;
        Ok(identity)
    }

    /// The CA certificate a client must trust, DER-encoded.
    pub fn ca_der(&self) -> &CertificateDer<'static> {
        &self.inner.ca_der
    }

    /// The CA certificate a client must trust, PEM-encoded.
    pub fn ca_pem(&self) -> &str {
        &self.inner.ca_pem
    }

    /// A rustls server config for the certificate (ring provider, HTTP/1.1 only).
    pub(crate) fn server_config(&self) -> Result<Arc<ServerConfig>, CosError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = self.inner.server_key.clone_key();
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| CosError::Tls {
                what: "protocol versions",
                source: e.into(),
            })?
            .with_no_client_auth()
            .with_single_cert(self.inner.server_chain.clone(), key)
            .map_err(|e| CosError::Tls {
                what: "server certificate",
                source: e.into(),
            })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// `host` of `host`, `host:port`, `[v6]` or `[v6]:port`.
fn host_without_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_without_port_strips_ports_and_brackets() {
        assert_eq!(host_without_port("cos.example:8443"), "cos.example");
        assert_eq!(host_without_port("127.0.0.1"), "127.0.0.1");
        assert_eq!(host_without_port("[::1]:443"), "::1");
        assert_eq!(host_without_port("::1"), "::1");
    }

    #[test]
    fn an_identity_from_pem_builds_an_acceptor_and_refuses_a_bad_pem() {
        let ca_key = KeyPair::generate().expect("key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).expect("CA");
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().expect("key");
        let cert = CertificateParams::new(vec!["cos.test".to_owned()])
            .expect("params")
            .signed_by(&key, &issuer)
            .expect("cert");
        let id = TlsIdentity::from_pem(&cert.pem(), &key.serialize_pem(), &ca_cert.pem())
            .expect("a valid identity");
        assert_eq!(id.ca_pem(), ca_cert.pem());
        assert_eq!(id.ca_der(), ca_cert.der());
        let other = KeyPair::generate().expect("key").serialize_pem();
        let err = TlsIdentity::from_pem(&cert.pem(), &other, &ca_cert.pem())
            .expect_err("a key that does not fit");
        assert!(err.to_string().contains("server certificate"), "{err}");
        let err = TlsIdentity::from_pem("junk", &key.serialize_pem(), &ca_cert.pem())
            .expect_err("no certificate");
        assert!(err.to_string().contains("server certificate PEM"), "{err}");
    }

    #[test]
    fn generated_identity_builds_an_acceptor() {
        let id = TlsIdentity::generate(&["cos.test:8443".into()]).expect("rcgen works");
        assert!(id.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(id.server_config().is_ok());
    }
}
