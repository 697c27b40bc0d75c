//! TLS: MQTT over mutual TLS to the hub's TLS listener, images over HTTPS from fake COS.

use super::{Rig, image};
use fake_cos::{CosConfig, TlsIdentity};
use fake_hub::{HubConfig, UpdateState};
use gateway::{Gateway, GatewayOptions, TlsSettings};

#[tokio::test(flavor = "multi_thread")]
async fn gateway_updates_over_mutual_tls_mqtt_and_https_downloads() {
    let cos_identity = TlsIdentity::generate(&[]).expect("cos identity");
    let cos = CosConfig {
        tls: Some(cos_identity.clone()),
        ..CosConfig::default()
    };
    let rig = Rig::start_with(1, HubConfig::loopback_with_tls(), cos).await;
    rig.upload("2.0", image(100_000, 10));
    let hub_ca = rig.hub.ca_pem().expect("hub CA");
    let cert = rig
        .hub
        .issue_device_cert(&rig.gateway)
        .expect("device cert");
    let mut config = rig.config();
    config.hub.port = rig.hub.tls_addr().expect("tls listener").port();
    let mut options = GatewayOptions::new();
    options.mqtt_tls = Some(TlsSettings::new(hub_ca).with_identity(cert.cert_pem, cert.key_pem));
    options.https_ca = Some(TlsSettings::new(cos_identity.ca_pem()));
    let gw = Gateway::start_with(config, options).expect("gateway starts");
    rig.wait_online().await;
    rig.push("2.0", &rig.subs);
    assert_eq!(rig.final_state(&rig.subs[0]).await, UpdateState::Succeeded);
    let transcript = rig.hub.transcript();
    let url = transcript
        .iter()
        .filter_map(|e| e.json())
        .find_map(|v| v["url"].as_str().map(str::to_owned))
        .expect("update_firmware sent");
    assert!(url.starts_with("https://"), "{url}");
    gw.shutdown().await;
    rig.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn gateway_refuses_a_hub_its_ca_did_not_sign() {
    let rig = Rig::start_with(1, HubConfig::loopback_with_tls(), CosConfig::default()).await;
    let stranger = TlsIdentity::generate(&[]).expect("another CA");
    let cert = rig
        .hub
        .issue_device_cert(&rig.gateway)
        .expect("device cert");
    let mut config = rig.config();
    config.hub.port = rig.hub.tls_addr().expect("tls listener").port();
    let mut options = GatewayOptions::new();
    options.mqtt_tls =
        Some(TlsSettings::new(stranger.ca_pem()).with_identity(cert.cert_pem, cert.key_pem));
    let gw = Gateway::start_with(config, options).expect("gateway starts");
    let mut events = gw.events();
    let seen = super::collect_events(&mut events, "a refused handshake", |seen| {
        seen.iter()
            .any(|e| matches!(e, gateway::GatewayEvent::Disconnected { .. }))
    })
    .await;
    let reason = seen
        .iter()
        .find_map(|e| match e {
            gateway::GatewayEvent::Disconnected { reason } => Some(reason.clone()),
            _ => None,
        })
        .expect("disconnected");
    assert!(
        reason.to_lowercase().contains("certificate") || reason.to_lowercase().contains("tls"),
        "{reason}"
    );
    assert!(!rig.hub.device(&rig.gateway).is_some_and(|d| d.online));
    gw.shutdown().await;
    rig.shutdown().await;
}
