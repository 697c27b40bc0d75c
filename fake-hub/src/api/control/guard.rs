//! Who may call the control API: a browser page from another site may not (cross-origin
//! writes, `text/plain` simple requests included), a page reached under another host name may
//! not (DNS rebinding), and with a bearer token nobody without it may. The token is required
//! when the API listens on a non-loopback address.
//!
//! The web console needs no change for any of this: it calls the API on its own origin, and
//! opening it once as `/?token=...` stores the token in a same-site cookie that its requests
//! and its event stream then carry.

use super::ApiError;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::IpAddr;
use std::sync::Arc;

/// The cookie the console's token is kept in.
const TOKEN_COOKIE: &str = "otasim_token";

/// Access rules for the control API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiAccess {
    /// A bearer token every `/api` request must carry (`Authorization: Bearer TOKEN`, or the
    /// console's cookie); required when the API binds a non-loopback address.
    pub token: Option<String>,
    /// Host names that name this hub, besides IP addresses and `localhost` (which always do).
    pub host_names: Vec<String>,
}

impl ApiAccess {
    /// Refuses a non-loopback `addr` without a token.
    pub(crate) fn check_bind(&self, addr: std::net::SocketAddr) -> std::io::Result<()> {
        if !addr.ip().is_loopback() && self.token.as_deref().is_none_or(str::is_empty) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("the control API on {addr} (not loopback) needs a bearer token"),
            ));
        }
        Ok(())
    }

    fn host_is_ours(&self, host: &str) -> bool {
        let name = host_name(host);
        name.eq_ignore_ascii_case("localhost")
            || name
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok()
            || self.host_names.iter().any(|n| n.eq_ignore_ascii_case(name))
    }

    fn token_given(&self, headers: &HeaderMap, token: &str) -> bool {
        let bearer = headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.strip_prefix("Bearer "))
            .any(|t| t.trim() == token);
        bearer || cookie(headers, TOKEN_COOKIE).is_some_and(|t| t == token)
    }
}

/// The host part of a `Host` header value (`name:port`, `[v6]:port`, `name`).
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A refusal: status, the header at fault, why.
type Refusal = (StatusCode, &'static str, String);

fn refuse(status: StatusCode, field: &'static str, error: String) -> Refusal {
    (status, field, error)
}

fn respond((status, field, error): Refusal) -> Response {
    let mut e = ApiError::bad_request(Some(field), error).into_response();
    *e.status_mut() = status;
    e
}

/// Why a request is refused, if it is.
fn verdict(access: &ApiAccess, req: &Request<Body>) -> Result<(), Refusal> {
    let headers = req.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or_default();
    if !access.host_is_ours(host) {
        let error = format!("Host {host:?} does not name this hub (DNS rebinding?)");
        return Err(refuse(StatusCode::FORBIDDEN, "Host", error));
    }
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe {
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("?");
            let ours = [format!("http://{host}"), format!("https://{host}")];
            if !ours.iter().any(|o| o.eq_ignore_ascii_case(origin)) {
                let error = format!("cross-origin write from {origin} refused");
                return Err(refuse(StatusCode::FORBIDDEN, "Origin", error));
            }
        }
        let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
        if site.is_some_and(|s| s != "same-origin" && s != "none") {
            let error = format!("cross-site write refused (Sec-Fetch-Site: {site:?})");
            return Err(refuse(StatusCode::FORBIDDEN, "Origin", error));
        }
    }
    if let Some(token) = access.token.as_deref()
        && req.uri().path().starts_with("/api")
        && !access.token_given(headers, token)
    {
        let error = "this hub's control API needs its token: Authorization: Bearer TOKEN, \
                     or open the console once as /?token=TOKEN"
            .to_owned();
        return Err(refuse(StatusCode::UNAUTHORIZED, "Authorization", error));
    }
    Ok(())
}

/// The middleware: refuses what [`verdict`] refuses; a page opened with the right `?token=`
/// gets the console's cookie.
pub(crate) async fn guard(
    State(access): State<Arc<ApiAccess>>,
    req: Request<Body>,
    next: Next,
) -> Response {
    if let Err(refused) = verdict(&access, &req) {
        return respond(refused);
    }
    let set_cookie = access.token.as_deref().filter(|token| {
        req.uri()
            .query()
            .into_iter()
            .flat_map(|q| q.split('&'))
            .any(|kv| kv.strip_prefix("token=") == Some(token))
    });
    let cookie = set_cookie.and_then(|t| {
        HeaderValue::from_str(&format!(
            "{TOKEN_COOKIE}={t}; Path=/; HttpOnly; SameSite=Strict"
        ))
        .ok()
    });
    let mut response = next.run(req).await;
    if let Some(c) = cookie {
        response.headers_mut().insert(header::SET_COOKIE, c);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn host_names_of_the_hub_are_ip_literals_localhost_and_the_configured_ones() {
        let access = ApiAccess {
            token: None,
            host_names: vec!["hub.lan".into()],
        };
        for ok in [
            "127.0.0.1:8080",
            "[::1]:80",
            "localhost",
            "LOCALHOST:1",
            "hub.lan:8080",
            "10.0.0.7",
        ] {
            assert!(access.host_is_ours(ok), "{ok}");
        }
        for bad in [
            "attacker.example",
            "attacker.example:8080",
            "127.0.0.1.nip.io",
            "",
            "hub.lan.evil",
        ] {
            assert!(!access.host_is_ours(bad), "{bad}");
        }
    }

    #[test]
    fn a_non_loopback_api_needs_a_token() {
        let none = ApiAccess::default();
        assert!(none.check_bind("127.0.0.1:8080".parse().unwrap()).is_ok());
        assert!(none.check_bind("[::1]:8080".parse().unwrap()).is_ok());
        assert!(none.check_bind("0.0.0.0:8080".parse().unwrap()).is_err());
        assert!(
            none.check_bind("192.168.1.5:8080".parse().unwrap())
                .is_err()
        );
        let empty = ApiAccess {
            token: Some(String::new()),
            host_names: vec![],
        };
        assert!(empty.check_bind("0.0.0.0:8080".parse().unwrap()).is_err());
        let token = ApiAccess {
            token: Some("t".into()),
            host_names: vec![],
        };
        assert!(token.check_bind("0.0.0.0:8080".parse().unwrap()).is_ok());
    }

    proptest! {
        #[test]
        fn a_host_with_a_letter_outside_the_allowed_names_is_refused(name in "[a-z][a-z0-9.-]{0,40}", port in proptest::option::of(0u16..)) {
            prop_assume!(name != "localhost");
            let access = ApiAccess::default();
            let host = match port { Some(p) => format!("{name}:{p}"), None => name.clone() };
            prop_assert!(!access.host_is_ours(&host));
        }

        #[test]
        fn cookie_and_host_parsers_take_any_text(text in ".{0,200}") {
            let mut headers = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&text) {
                headers.insert(header::COOKIE, v);
            }
            let _ = cookie(&headers, TOKEN_COOKIE);
            let _ = host_name(&text);
            let _ = ApiAccess::default().host_is_ours(&text);
        }
    }
}
