//! The hub's certificate authority, made with rcgen at run time: the TLS port's server
//! certificate (for every name devices dial: `*.iotcloud.tencentdevices.com`, each product's
//! host, `localhost`, 127.0.0.1) and per-device client certificates for certificate auth.
//!
//! A device certificate's common name is the device's MQTT client id,
//! `{product_id}{device_name}`: the hub identifies a TLS client by it.

use otasim_protocol::DeviceId;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::HubError;

/// A device certificate and its private key, both PEM.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeviceCert {
    /// The certificate, signed by the hub's CA, CN = the device's client id.
    pub cert_pem: String,
    /// The certificate's private key (PKCS#8).
    pub key_pem: String,
}

/// The wildcard every product's MQTT host name falls under.
pub(crate) const HUB_WILDCARD: &str = "*.iotcloud.tencentdevices.com";

/// The CA and the TLS port's server certificate and key, all PEM.
pub(crate) struct HubCa {
    issuer: Issuer<'static, KeyPair>,
    ca_pem: String,
    server_cert_pem: String,
    server_key_pem: String,
}

fn tls_error(what: &'static str) -> impl FnOnce(rcgen::Error) -> HubError {
    move |e| HubError::Tls(format!("{what}: {e}"))
}

impl HubCa {
    /// A fresh CA, and a server certificate for the Hub's host names plus `extra_names`
    /// (each product's `{pid}.iotcloud.tencentdevices.com`, other host names or IPs).
    pub(crate) fn generate(extra_names: &[String]) -> Result<HubCa, HubError> {
        let ca_key = KeyPair::generate().map_err(tls_error("CA key"))?;
        let mut params =
            CertificateParams::new(Vec::<String>::new()).map_err(tls_error("CA params"))?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "otasim fake-hub CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = params.self_signed(&ca_key).map_err(tls_error("CA cert"))?;
        let issuer = Issuer::new(params, ca_key);
        let mut names = vec![
            HUB_WILDCARD.to_owned(),
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ];
        for name in extra_names {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        let mut server = CertificateParams::new(names).map_err(tls_error("server names"))?;
        server
            .distinguished_name
            .push(DnType::CommonName, "iotcloud.tencentdevices.com");
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().map_err(tls_error("server key"))?;
        let cert = server
            .signed_by(&key, &issuer)
            .map_err(tls_error("server cert"))?;
        Ok(HubCa {
            issuer,
            ca_pem: ca_cert.pem(),
            server_cert_pem: cert.pem(),
            server_key_pem: key.serialize_pem(),
        })
    }

    pub(crate) fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    pub(crate) fn server_cert_pem(&self) -> &str {
        &self.server_cert_pem
    }

    pub(crate) fn server_key_pem(&self) -> &str {
        &self.server_key_pem
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

/// A CA PEM as a C string array initialiser, ready to paste as the C SDK's
/// `static const char *iot_https_ca_crt = ...` (and `iot_ca_crt`): one quoted line per PEM
/// line, each ending in `\r\n` as in the SDK's own `qcloud_iot_ca.c`.
pub fn ca_as_c_array(pem: &str) -> String {
    let mut out = String::from("static const char *iot_https_ca_crt = {\n");
    for line in pem.lines().filter(|l| !l.trim().is_empty()) {
        out.push_str(&format!("    \"{}\\r\\n\"\n", line.trim()));
    }
    out.push_str("};\n");
    out
}

/// The hub's certificates.
impl crate::Hub {
    /// The mutual-TLS listener's address, if the hub has one.
    pub fn tls_addr(&self) -> Option<std::net::SocketAddr> {
        self.broker.tls_addr()
    }

    /// The PEM of the CA that signs the TLS listener's certificate and device certificates.
    pub fn ca_pem(&self) -> Option<String> {
        self.core.ca.as_ref().map(|ca| ca.ca_pem().to_owned())
    }

    /// A client certificate for `device` (CN = its client id), signed by the hub's CA.
    pub fn issue_device_cert(
        &self,
        device: &otasim_protocol::DeviceId,
    ) -> Result<DeviceCert, crate::HubError> {
        self.core
            .ca
            .as_ref()
            .ok_or(crate::HubError::NoTls)?
            .issue(device)
    }

    /// A client certificate with any common name, signed by the hub's CA (for refusal tests).
    pub fn issue_cert_with_cn(&self, common_name: &str) -> Result<DeviceCert, crate::HubError> {
        self.core
            .ca
            .as_ref()
            .ok_or(crate::HubError::NoTls)?
            .issue_cn(common_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_array_quotes_every_pem_line_with_its_newline() {
        let pem = "-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n";
        assert_eq!(
            ca_as_c_array(pem),
            "static const char *iot_https_ca_crt = {\n    \"-----BEGIN CERTIFICATE-----\\r\\n\"\n    \"AAA\\r\\n\"\n    \"-----END CERTIFICATE-----\\r\\n\"\n};\n"
        );
    }
}
