//! Kicking, reconnecting, several brokers per process, and shutdown.

use rumqttc::{Packet, QoS};

use super::support::{
    GATEWAY, GATEWAY_PASSWORD, Incoming, LIGHT, LIGHT_PASSWORD, Seen, TestClient, TestHub,
};

const UPDATE_TOPIC: &str = "$ota/update/JR1WOKB7Q7/gw_deng1";

fn is_gateway_event(s: &Seen) -> bool {
    matches!(s, Seen::Connected(c) if c == GATEWAY)
        || matches!(s, Seen::Disconnected { client_id, .. } if client_id == GATEWAY)
}

#[tokio::test]
async fn kick_disconnects_client_and_fires_on_disconnected() {
    let mut hub = TestHub::start().await;
    let mut device = TestClient::connect(hub.addr(), GATEWAY, GATEWAY_PASSWORD).await;
    hub.expect("on_connected", |s| *s == Seen::Connected(GATEWAY.into()))
        .await;

    hub.broker.handle().kick(GATEWAY);
    device.ended().await;
    let seen = hub
        .expect("on_disconnected", |s| {
            matches!(s, Seen::Disconnected { .. })
        })
        .await;
    assert_eq!(
        seen,
        Seen::Disconnected {
            client_id: GATEWAY.into(),
            reason: "kicked".into()
        }
    );
    assert!(!hub.broker.handle().is_connected(GATEWAY));
    hub.broker.shutdown().await;
}

#[tokio::test]
async fn clean_disconnect_is_reported_as_client_disconnect() {
    let mut hub = TestHub::start().await;
    let device = TestClient::connect(hub.addr(), GATEWAY, GATEWAY_PASSWORD).await;
    device.disconnect().await;
    let seen = hub
        .expect("on_disconnected", |s| {
            matches!(s, Seen::Disconnected { .. })
        })
        .await;
    assert_eq!(
        seen,
        Seen::Disconnected {
            client_id: GATEWAY.into(),
            reason: "client_disconnect".into()
        }
    );
    hub.broker.shutdown().await;
}

/// Whatever order rmqtt runs the old connection's end and the new one's start in, the hub must
/// never see the device go offline after its newest connection came up.
#[tokio::test]
async fn reconnect_with_same_client_id_never_reports_the_new_connection_offline() {
    let mut hub = TestHub::start().await;
    let mut old = TestClient::connect(hub.addr(), GATEWAY, GATEWAY_PASSWORD).await;
    let new = TestClient::connect(hub.addr(), GATEWAY, GATEWAY_PASSWORD).await;
    old.ended().await;
    new.disconnect().await;

    let mut events = Vec::new();
    loop {
        let seen = hub.expect("gateway event", is_gateway_event).await;
        let done =
            matches!(&seen, Seen::Disconnected { reason, .. } if reason == "client_disconnect");
        events.push(seen);
        if done {
            break;
        }
    }
    let before_last = &events[events.len() - 2];
    assert_eq!(
        *before_last,
        Seen::Connected(GATEWAY.into()),
        "events: {events:?}"
    );
    hub.broker.shutdown().await;
}

#[tokio::test]
async fn two_brokers_in_one_process_serve_independently() {
    let first = TestHub::start().await;
    let second = TestHub::start().await;
    assert_ne!(first.addr().port(), second.addr().port());

    let mut on_first = TestClient::connect(first.addr(), GATEWAY, GATEWAY_PASSWORD).await;
    let mut on_second = TestClient::connect(second.addr(), GATEWAY, GATEWAY_PASSWORD).await;
    for client in [&mut on_first, &mut on_second] {
        client
            .client
            .subscribe(UPDATE_TOPIC, QoS::AtLeastOnce)
            .await
            .expect("queued");
        client
            .expect("SUBACK", |i| {
                matches!(i, Incoming::Packet(Packet::SubAck(_)))
            })
            .await;
    }

    first
        .broker
        .handle()
        .publish(UPDATE_TOPIC, b"from first".to_vec(), 1);
    second
        .broker
        .handle()
        .publish(UPDATE_TOPIC, b"from second".to_vec(), 1);
    for (client, expected) in [
        (&mut on_first, "from first"),
        (&mut on_second, "from second"),
    ] {
        let incoming = client
            .expect("PUBLISH", |i| {
                matches!(i, Incoming::Packet(Packet::Publish(_)))
            })
            .await;
        let Incoming::Packet(Packet::Publish(p)) = incoming else {
            unreachable!("matched above")
        };
        assert_eq!(p.payload.as_ref(), expected.as_bytes());
    }

    // Stopping one leaves the other serving.
    first.broker.shutdown().await;
    on_first.ended().await;
    let _light = TestClient::connect(second.addr(), LIGHT, LIGHT_PASSWORD).await;
    assert!(second.broker.handle().is_connected(GATEWAY));
    second.broker.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_live_connections_and_frees_the_port() {
    let hub = TestHub::start().await;
    let addr = hub.addr();
    let mut device = TestClient::connect(addr, GATEWAY, GATEWAY_PASSWORD).await;
    let handle = hub.broker.handle();

    hub.broker.shutdown().await;
    device.ended().await;
    assert!(!handle.is_connected(GATEWAY));
    // A handle outliving its broker is harmless.
    handle.publish(UPDATE_TOPIC, b"late".to_vec(), 1);
    handle.kick(GATEWAY);

    // A restarted hub gets the same port back and serves on it.
    let restarted = TestHub::start_on(addr).await;
    assert_eq!(restarted.addr(), addr);
    let _device = TestClient::connect(addr, GATEWAY, GATEWAY_PASSWORD).await;
    restarted.broker.shutdown().await;
}
