//! The Hub's answer to a CONNECT: key auth (HMAC-SHA1 or HMAC-SHA256 over the username, expiry
//! in seconds or milliseconds against the hub's wall clock) on the plain listener, certificate
//! auth (the client certificate's CN is the client id) on the TLS listener.

use crate::broker::{AuthVerdict, ConnectInfo};
use crate::core::State;
use crate::registry::DeviceKind;
use otasim_protocol::Credentials;
use tracing::debug;

/// Code 5 for unknown or disabled devices and subdevices (which cannot connect directly), code
/// 4 for bad or expired credentials. `now_unix_secs` is the hub's wall clock.
pub(crate) fn verdict(state: &State, info: &ConnectInfo, now_unix_secs: i64) -> AuthVerdict {
    let Some(rec) = state.registry.by_client_id(&info.client_id) else {
        return AuthVerdict::NotAuthorized;
    };
    if !rec.enabled || rec.kind == DeviceKind::Subdevice {
        return AuthVerdict::NotAuthorized;
    }
    if info.tls {
        // Mutual TLS already checked the chain; the certificate must name this client.
        return match &info.cert_cn {
            Some(cn) if *cn == info.client_id => AuthVerdict::Accept,
            other => {
                debug!(client_id = %info.client_id, cn = ?other, "certificate names another client");
                AuthVerdict::NotAuthorized
            }
        };
    }
    let (Some(username), Some(password)) = (&info.username, &info.password) else {
        return AuthVerdict::BadCredentials;
    };
    let password = String::from_utf8_lossy(password);
    match Credentials::verify(&info.client_id, username, &password, &rec.secret) {
        Ok(u) => match u.expiry_unix_secs() {
            Some(expiry) if i64::try_from(expiry).unwrap_or(i64::MAX) < now_unix_secs => {
                debug!(client_id = %info.client_id, expiry, now_unix_secs, "credentials expired");
                AuthVerdict::BadCredentials
            }
            _ => AuthVerdict::Accept,
        },
        Err(e) => {
            debug!(client_id = %info.client_id, error = %e, "bad credentials");
            AuthVerdict::BadCredentials
        }
    }
}
