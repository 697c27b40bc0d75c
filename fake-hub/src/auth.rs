//! The Hub's answer to a CONNECT, by what the transport already proved:
//! - plain TCP, or TLS with a server certificate only: key auth (HMAC-SHA1 or HMAC-SHA256 over
//!   the username, expiry in seconds or milliseconds against the hub's wall clock);
//! - TLS-PSK (the C SDK's key auth over TLS): the handshake proved the device's secret, so no
//!   password is needed, but the client id and the username must name the PSK identity;
//! - a client certificate (mutual TLS): its CN must be the client id.

use crate::broker::{AuthVerdict, ConnectInfo, Transport};
use crate::core::State;
use crate::registry::DeviceKind;
use otasim_protocol::{Credentials, Username};

/// A verdict and, when it refuses, why (for the transcript).
pub(crate) type Judged = (AuthVerdict, Option<String>);

/// Code 5 for unknown or disabled devices and subdevices (which cannot connect directly), and
/// for a transport that proved another device; code 4 for bad or expired credentials.
/// `now_unix_secs` is the hub's wall clock.
pub(crate) fn verdict(state: &State, info: &ConnectInfo, now_unix_secs: i64) -> Judged {
    let refuse = |v, why: String| (v, Some(why));
    let Some(rec) = state.registry.by_client_id(&info.client_id) else {
        return refuse(AuthVerdict::NotAuthorized, "unknown client id".into());
    };
    if !rec.enabled {
        return refuse(AuthVerdict::NotAuthorized, "device disabled".into());
    }
    if rec.kind == DeviceKind::Subdevice {
        return refuse(
            AuthVerdict::NotAuthorized,
            "a subdevice connects through its gateway".into(),
        );
    }
    match &info.transport {
        Transport::TlsCert { common_name } => match common_name {
            Some(cn) if *cn == info.client_id => (AuthVerdict::Accept, None),
            other => refuse(
                AuthVerdict::NotAuthorized,
                format!("client certificate names {other:?}, not {}", info.client_id),
            ),
        },
        Transport::TlsPsk { identity } => psk(info, identity, now_unix_secs),
        Transport::Plain | Transport::Tls => password(info, &rec.secret, now_unix_secs),
    }
}

fn expired(expiry: Option<u64>, now_unix_secs: i64) -> Option<String> {
    let expiry = expiry?;
    (i64::try_from(expiry).unwrap_or(i64::MAX) < now_unix_secs)
        .then(|| format!("username expired at {expiry}, hub time is {now_unix_secs}"))
}

fn psk(info: &ConnectInfo, identity: &str, now_unix_secs: i64) -> Judged {
    if identity != info.client_id {
        let why = format!(
            "the TLS-PSK handshake proved {identity}, the CONNECT claims {}",
            info.client_id
        );
        return (AuthVerdict::NotAuthorized, Some(why));
    }
    let Some(username) = &info.username else {
        return (AuthVerdict::BadCredentials, Some("no username".into()));
    };
    match Username::parse(username) {
        Ok(u) if u.client_id != identity => {
            let why = format!(
                "username names {}, the TLS-PSK identity is {identity}",
                u.client_id
            );
            (AuthVerdict::BadCredentials, Some(why))
        }
        Ok(u) => match expired(u.expiry_unix_secs(), now_unix_secs) {
            Some(why) => (AuthVerdict::BadCredentials, Some(why)),
            None => (AuthVerdict::Accept, None),
        },
        Err(e) => (AuthVerdict::BadCredentials, Some(e.to_string())),
    }
}

fn password(info: &ConnectInfo, secret: &str, now_unix_secs: i64) -> Judged {
    let (Some(username), Some(password)) = (&info.username, &info.password) else {
        return (
            AuthVerdict::BadCredentials,
            Some("key auth needs a username and a password".into()),
        );
    };
    let password = String::from_utf8_lossy(password);
    match Credentials::verify(&info.client_id, username, &password, secret) {
        Ok(u) => match expired(u.expiry_unix_secs(), now_unix_secs) {
            Some(why) => (AuthVerdict::BadCredentials, Some(why)),
            None => (AuthVerdict::Accept, None),
        },
        Err(e) => (AuthVerdict::BadCredentials, Some(e.to_string())),
    }
}
