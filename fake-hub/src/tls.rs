//! The hub's certificate authority, made with rcgen at run time: the TLS listener's server
//! certificate and per-device client certificates for certificate auth.
//!
//! A device certificate's common name is the device's MQTT client id,
//! `{product_id}{device_name}`: the hub identifies a TLS client by it.

use otasim_protocol::DeviceId;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::path::PathBuf;

use crate::HubError;

/// A device certificate and its private key, both PEM.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeviceCert {
    /// The certificate, signed by the hub's CA, CN = the device's client id.
    pub cert_pem: String,
    /// The certificate's private key (PKCS#8).
    pub key_pem: String,
}

/// The CA and the files the TLS listener reads (rmqtt takes paths, not bytes).
pub(crate) struct HubCa {
    issuer: Issuer<'static, KeyPair>,
    ca_pem: String,
    /// Holds the PEM files; removed when the hub is dropped.
    dir: tempfile::TempDir,
}

fn tls_error(what: &'static str) -> impl FnOnce(rcgen::Error) -> HubError {
    move |e| HubError::Tls(format!("{what}: {e}"))
}

impl HubCa {
    /// A fresh CA, and a server certificate for `localhost` and 127.0.0.1 written beside it.
    pub(crate) fn generate() -> Result<HubCa, HubError> {
        let ca_key = KeyPair::generate().map_err(tls_error("CA key"))?;
        let mut params =
            CertificateParams::new(Vec::<String>::new()).map_err(tls_error("CA params"))?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "otasim fake-hub CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = params.self_signed(&ca_key).map_err(tls_error("CA cert"))?;
        let dir = tempfile::tempdir().map_err(|e| HubError::Tls(format!("temp dir: {e}")))?;
        let ca = HubCa {
            issuer: Issuer::new(params, ca_key),
            ca_pem: ca_cert.pem(),
            dir,
        };
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let mut server = CertificateParams::new(names).map_err(tls_error("server names"))?;
        server
            .distinguished_name
            .push(DnType::CommonName, "iotcloud.tencentdevices.com");
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().map_err(tls_error("server key"))?;
        let cert = server
            .signed_by(&key, &ca.issuer)
            .map_err(tls_error("server cert"))?;
        ca.write("server.pem", &cert.pem())?;
        ca.write("server.key", &key.serialize_pem())?;
        ca.write("ca.pem", &ca.ca_pem)?;
        Ok(ca)
    }

    fn write(&self, name: &str, pem: &str) -> Result<(), HubError> {
        let path = self.dir.path().join(name);
        std::fs::write(&path, pem)
            .map_err(|e| HubError::Tls(format!("writing {}: {e}", path.display())))
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub(crate) fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A client certificate whose CN is the device's client id.
    pub(crate) fn issue(&self, device: &DeviceId) -> Result<DeviceCert, HubError> {
        self.issue_cn(&device.client_id())
    }

    /// A client certificate with any CN (tests use it for mismatches).
    pub(crate) fn issue_cn(&self, cn: &str) -> Result<DeviceCert, HubError> {
        let mut params =
            CertificateParams::new(Vec::<String>::new()).map_err(tls_error("device params"))?;
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().map_err(tls_error("device key"))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(tls_error("device cert"))?;
        Ok(DeviceCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}
