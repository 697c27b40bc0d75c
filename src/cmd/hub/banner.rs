//! The lines `otasim hub` prints once it listens.

use super::Served;

/// The parseable `listening` line first, then where to point things.
pub(super) fn print_banner(served: &Served) {
    let (mqtt, api) = (served.hub.local_addr(), served.api.local_addr());
    let tls = served
        .hub
        .tls_addr()
        .map(|a| format!(" tls={a}"))
        .unwrap_or_default();
    let cloud = served.cloud.local_addr();
    let cos_tls = served
        .cos_tls
        .map(|a| format!(" cos_tls={a}"))
        .unwrap_or_default();
    say!(
        "listening mqtt={mqtt} cos={} api={api}{tls} cloud={cloud}{cos_tls}",
        served.cos.local_addr()
    );
    say!("MQTT:        tcp://{mqtt}");
    let sample = served
        .cos
        .signed_url("OBJECT", std::time::Duration::from_secs(1));
    match sample
        .ok()
        .and_then(|u| u.split_once('?').map(|(base, _)| base.to_owned()))
    {
        Some(base) => say!("firmware:    {base}?sign=..."),
        None => say!("firmware:    http://{}/OBJECT?sign=...", served.public_host),
    }
    match &served.token {
        Some(t) => {
            say!("console:     http://{api}/?token={t}");
            say!("API token:   Authorization: Bearer {t}");
        }
        None => say!("console:     http://{api}/"),
    }
    say!("control API: http://{api}/api/devices");
    say!("live events: http://{api}/api/events");
    say!("cloud API:   http://{cloud}/ (iotcloud 2021-04-08, TC3-HMAC-SHA256)");
    if served.default_key {
        say!(
            "cloud keys:  SecretId={} SecretKey={} (declare [[api_key]] in the fleet file for others)",
            fake_hub::api::cloud::DEFAULT_SECRET_ID,
            fake_hub::api::cloud::DEFAULT_SECRET_KEY
        );
    }
}
