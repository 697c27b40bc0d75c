//! The Hub's minimal answers on the device service topics, so SDK samples that call them do not
//! hang: `$sys/operation` time requests (the C SDK v3.2.3 syncs its clock there) and
//! `$shadow/operation` `get` (an empty shadow at version 0). Everything else on these topics is
//! recorded and ignored.

use crate::core::{HubCore, State};
use otasim_protocol::DeviceId;
use serde_json::{Value, json};

/// A publish on a topic outside `$ota` and `$gateway` (already recorded and allowed).
pub(crate) fn on_publish(core: &HubCore, state: &mut State, topic: &str, payload: &[u8]) {
    let levels: Vec<&str> = topic.split('/').collect();
    let (service, pid, dn) = match levels.as_slice() {
        ["$sys", "operation", pid, dn] => ("$sys", *pid, *dn),
        ["$shadow", "operation", pid, dn] => ("$shadow", *pid, *dn),
        _ => return,
    };
    let Ok(device) = DeviceId::new(pid, dn) else {
        return;
    };
    let client_id = device.client_id();
    let request: Value = match serde_json::from_slice(payload) {
        Ok(v) => v,
        Err(e) => {
            let why = format!("malformed JSON on {topic}: {e}");
            return core.event(state, &client_id, "ignored", why);
        }
    };
    let kind = request.get("type").and_then(Value::as_str).unwrap_or("");
    let reply = match (service, kind) {
        ("$sys", "get") if asks_time(&request) => json!({
            "type": "get",
            "time": core.clock.now_unix_secs(),
        }),
        ("$shadow", "get") => {
            let now_ms = core.clock.now_unix_ms();
            json!({
                "clientToken": request.get("clientToken").cloned().unwrap_or(Value::Null),
                "payload": {"state": {"reported": {}}, "timestamp": now_ms, "version": 0},
                "result": 0,
                "timestamp": now_ms,
                "type": "get",
            })
        }
        _ => {
            let why = format!("{service} request {kind:?} is not modelled by the fake hub");
            return core.event(state, &client_id, "ignored", why);
        }
    };
    let result_topic = format!("{service}/operation/result/{pid}/{dn}");
    let bytes = serde_json::to_vec(&reply).expect("a json! value always serializes");
    core.send_to(state, &device, &result_topic, bytes, 0);
}

/// `{"type": "get", "resource": ["time"]}`, as the C SDK sends it.
fn asks_time(request: &Value) -> bool {
    request
        .get("resource")
        .and_then(Value::as_array)
        .is_some_and(|r| r.iter().any(|x| x.as_str() == Some("time")))
}
