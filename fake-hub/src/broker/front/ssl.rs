//! The TLS port's OpenSSL context: TLS 1.2 PSK for the C SDK's key auth, a server certificate
//! for key-auth clients that send a password, and an optional client certificate for
//! certificate devices, all on one port. rustls cannot serve the first (it has no PSK).

use std::sync::{Arc, OnceLock};

use openssl::error::ErrorStack;
use openssl::ex_data::Index;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::ssl::{
    Ssl, SslContext, SslContextBuilder, SslMethod, SslRef, SslVerifyMode, SslVersion,
};
use openssl::x509::X509;

use crate::broker::{BrokerHooks, TlsListener};

/// The ciphers offered: OpenSSL's defaults for certificate clients, plus the two PSK suites the
/// C SDK offers (`TLS_PSK_WITH_AES_128_CBC_SHA`, `TLS_PSK_WITH_AES_256_CBC_SHA`). Security
/// level 0 because OpenSSL 3 would otherwise drop the SHA-1 suites the SDK insists on.
const CIPHERS: &str = "DEFAULT:PSK-AES128-CBC-SHA:PSK-AES256-CBC-SHA:@SECLEVEL=0";

/// What the PSK callback saw, kept on the connection so a failed handshake can say why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PskSeen {
    /// The identity is a device the hub knows; its secret was the key.
    Known(String),
    /// No device has this identity (or it may not connect).
    Unknown(String),
}

fn psk_index() -> Result<Index<Ssl, PskSeen>, ErrorStack> {
    static INDEX: OnceLock<Index<Ssl, PskSeen>> = OnceLock::new();
    if let Some(i) = INDEX.get() {
        return Ok(*i);
    }
    let made = Ssl::new_ex_index()?;
    Ok(*INDEX.get_or_init(|| made))
}

/// What the PSK callback recorded on a connection, if it ran.
pub(crate) fn psk_seen(ssl: &SslRef) -> Option<PskSeen> {
    ssl.ex_data(psk_index().ok()?).cloned()
}

/// The common name of the verified client certificate, if the client sent one.
pub(crate) fn client_common_name(ssl: &SslRef) -> Option<Option<String>> {
    let cert = ssl.peer_certificate()?;
    let cn = cert
        .subject_name()
        .entries_by_nid(Nid::COMMONNAME)
        .next()
        .and_then(|e| e.data().to_string().ok());
    Some(cn)
}

/// Builds the context once per listener; `hooks` answers PSK identities with device keys.
pub(crate) fn context(
    tls: &TlsListener,
    hooks: Arc<dyn BrokerHooks>,
) -> Result<SslContext, ErrorStack> {
    let index = psk_index()?;
    let mut b = SslContextBuilder::new(SslMethod::tls_server())?;
    b.set_min_proto_version(Some(SslVersion::TLS1_2))?;
    b.set_cipher_list(CIPHERS)?;
    let mut chain = X509::stack_from_pem(tls.cert_pem.as_bytes())?.into_iter();
    if let Some(leaf) = chain.next() {
        b.set_certificate(&leaf)?;
    }
    for extra in chain {
        b.add_extra_chain_cert(extra)?;
    }
    let key = PKey::private_key_from_pem(tls.key_pem.as_bytes())?;
    b.set_private_key(&key)?;
    b.check_private_key()?;
    let ca = X509::from_pem(tls.client_ca_pem.as_bytes())?;
    b.add_client_ca(&ca)?;
    b.cert_store_mut().add_cert(ca)?;
    // A certificate is asked for but optional: key-auth clients have none. A certificate that
    // is sent must chain to the hub's CA, or the handshake fails.
    b.set_verify(SslVerifyMode::PEER);
    b.set_psk_server_callback(move |ssl, identity, out| {
        let identity = String::from_utf8_lossy(identity.unwrap_or_default()).into_owned();
        match hooks.psk_key(&identity) {
            Some(key) if key.len() <= out.len() => {
                out[..key.len()].copy_from_slice(&key);
                ssl.set_ex_data(index, PskSeen::Known(identity));
                Ok(key.len())
            }
            _ => {
                ssl.set_ex_data(index, PskSeen::Unknown(identity));
                // Zero bytes: OpenSSL fails the handshake with `unknown_psk_identity`.
                Ok(0)
            }
        }
    });
    Ok(b.build())
}
