//! Gateway topology as rules: every bind code -801 to -809, unbind, describe, online and
//! offline, and a gateway's subdevices going offline with its connection.

use super::*;
use otasim_protocol::{SignMethod, bind_signature};
use serde_json::json;

fn entry(kit: &Kit, sub: &DeviceId, secret: &str, age_secs: i64, random: i64) -> Value {
    let timestamp = kit.core.clock.now_unix_secs() - age_secs;
    json!({
        "product_id": sub.product_id(),
        "device_name": sub.device_name(),
        "signature": bind_signature(sub, secret, random, timestamp, SignMethod::HmacSha1),
        "random": random,
        "timestamp": timestamp,
        "signmethod": "hmacsha1",
        "authtype": "psk",
    })
}

fn kit() -> Kit {
    let kit = Kit::new();
    kit.gateway(&gw());
    kit.connected(&gw());
    kit
}

#[test]
fn every_bind_code_from_801_to_809() {
    let kit = kit();
    let other = id("JR1WOKB7Q6", "gw2");
    kit.gateway(&other);
    kit.connected(&other);
    let free = sub(1);
    kit.subdevice(&free, None);
    let bind = |e: Value| kit.operation(&gw(), "bind", json!([e]))[0];

    // -801: parameters missing.
    let mut no_sig = entry(&kit, &free, SUB_SECRET, 0, 1);
    no_sig.as_object_mut().map(|o| o.remove("signature"));
    assert_eq!(bind(no_sig), -801);
    // -804: a sign method the Hub does not know.
    let mut md5 = entry(&kit, &free, SUB_SECRET, 0, 2);
    md5["signmethod"] = json!("md5");
    assert_eq!(bind(md5), -804);
    // -802: no such subdevice.
    assert_eq!(bind(entry(&kit, &sub(99), SUB_SECRET, 0, 3)), -802);
    // -808: a gateway cannot be bound.
    assert_eq!(bind(entry(&kit, &other, GW_SECRET, 0, 4)), -808);
    // -807: a disabled subdevice.
    let disabled = sub(2);
    kit.subdevice(&disabled, None);
    kit.core
        .lock()
        .registry
        .get_mut(&disabled)
        .expect("known")
        .enabled = false;
    assert_eq!(bind(entry(&kit, &disabled, SUB_SECRET, 0, 5)), -807);
    // -803: signed with another secret.
    assert_eq!(bind(entry(&kit, &free, GW_SECRET, 0, 6)), -803);
    // -805: too old, and too far ahead.
    let too_old = crate::topology::BIND_MAX_AGE_SECS + 5;
    assert_eq!(bind(entry(&kit, &free, SUB_SECRET, too_old, 7)), -805);
    let ahead = -(crate::topology::BIND_MAX_AHEAD_SECS + 5);
    assert_eq!(bind(entry(&kit, &free, SUB_SECRET, ahead, 8)), -805);
    // Success, then -809 for the same gateway asking again.
    let good = entry(&kit, &free, SUB_SECRET, 0, 9);
    assert_eq!(bind(good.clone()), 0);
    assert_eq!(bind(good.clone()), -809);
    // -806: another gateway with a fresh signature; the same signature replayed is spent.
    let fresh = entry(&kit, &free, SUB_SECRET, 0, 10);
    assert_eq!(kit.operation(&other, "bind", json!([fresh]))[0], -806);
    assert_eq!(kit.operation(&other, "bind", json!([good]))[0], -805);
    let rec = kit.core.lock().registry.get(&free).cloned().expect("known");
    assert_eq!(rec.bound_to, Some(gw()));
}

#[test]
fn a_spent_signature_does_not_bind_again_after_unbind() {
    let kit = kit();
    kit.subdevice(&sub(1), None);
    let good = entry(&kit, &sub(1), SUB_SECRET, 0, 42);
    assert_eq!(kit.operation(&gw(), "bind", json!([good.clone()])), [0]);
    let named = json!([{"product_id": sub(1).product_id(), "device_name": sub(1).device_name()}]);
    assert_eq!(kit.operation(&gw(), "unbind", named.clone()), [0]);
    assert_eq!(kit.operation(&gw(), "unbind", named), [-1]);
    assert_eq!(kit.operation(&gw(), "bind", json!([good])), [-805]);
}

#[test]
fn online_offline_and_describe_follow_the_bindings() {
    let kit = kit();
    kit.subdevice(&sub(1), Some(&gw()));
    kit.subdevice(&sub(2), Some(&gw()));
    kit.subdevice(&sub(3), None);
    let named =
        |s: &DeviceId| json!([{"product_id": s.product_id(), "device_name": s.device_name()}]);
    assert_eq!(kit.operation(&gw(), "online", named(&sub(3))), [-1]);
    assert_eq!(kit.operation(&gw(), "online", named(&sub(1))), [0]);
    let online = |s: &DeviceId| kit.core.lock().registry.get(s).is_some_and(|r| r.online);
    assert!(online(&sub(1)) && !online(&sub(2)));
    // Online, the subdevice's topics are the gateway's to use; offline, they are not.
    let report = format!("$ota/report/{}", sub(1));
    assert!(kit.core.allow_publish(&gw().client_id(), &report));
    assert_eq!(kit.operation(&gw(), "offline", named(&sub(1))), [0]);
    assert!(!kit.core.allow_publish(&gw().client_id(), &report));
    let topic = format!("$gateway/operation/{}", gw());
    assert!(kit.publish(&gw(), &topic, &json!({"type": "describe_sub_devices"})));
    let (_, reply) = kit.take_published().pop().expect("a reply");
    let names: Vec<&str> = reply["payload"]["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .filter_map(|d| d["device_name"].as_str())
        .collect();
    assert_eq!(names, ["light1", "light2"]);
}

#[test]
fn subdevices_go_offline_with_their_gateway_and_unbind_all_empties_it() {
    let kit = kit();
    let subs: Vec<DeviceId> = (1..=3).map(sub).collect();
    for s in &subs {
        kit.subdevice(s, Some(&gw()));
    }
    kit.online(&gw(), &subs);
    kit.core.on_disconnected(&gw().client_id(), "remote_close");
    let state = kit.core.lock();
    assert!(
        subs.iter()
            .all(|s| !state.registry.get(s).expect("known").online)
    );
    assert_eq!(state.registry.bound_to(&gw()), subs);
    drop(state);
    crate::topology::unbind_all(&kit.core, &mut kit.core.lock(), &gw());
    assert!(kit.core.lock().registry.bound_to(&gw()).is_empty());
    let (topic, msg) = kit.take_published().pop().expect("unbind_all sent");
    assert_eq!(topic, format!("$gateway/operation/result/{}", gw()));
    assert_eq!(msg["type"], "unbind_all");
}

/// Thousands of gateways binding and bringing their subdevices online in quick succession:
/// every one answers 0, and each bind costs the same however many came before (the spent
/// signatures are trimmed by their order, not searched).
#[test]
fn many_gateways_bind_and_online_their_subdevices() {
    let kit = Kit::new();
    let gateways = 500;
    for g in 0..gateways {
        let gw = id("JR1WOKB7Q6", &format!("gw{g}"));
        kit.gateway(&gw);
        kit.connected(&gw);
        let subs: Vec<DeviceId> = (0..10)
            .map(|s| id("E69UADXUYY", &format!("s{g}_{s}")))
            .collect();
        let entries: Vec<Value> = subs
            .iter()
            .map(|s| {
                kit.subdevice(s, None);
                entry(&kit, s, SUB_SECRET, 0, 7)
            })
            .collect();
        assert_eq!(kit.operation(&gw, "bind", json!(entries)), [0; 10], "{gw}");
        kit.online(&gw, &subs);
    }
    let state = kit.core.lock();
    assert_eq!(state.used_binds.len(), gateways * 10);
    assert!(state.registry.devices().filter(|d| d.online).count() == gateways * 11);
}
