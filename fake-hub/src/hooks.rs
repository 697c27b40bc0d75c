//! The broker hooks, the hub's driver for MQTT: every CONNECT, SUBSCRIBE and PUBLISH passes
//! through here, takes the state lock for one step (see `core::Step`), is recorded, meets the
//! fault rules, and is handed to the concern it belongs to; what the step decided is recorded,
//! published and notified after the lock is released. Events that decide nothing (transport
//! events, refused publishes, protocol violations) are recorded without the state lock.

use crate::acl::Use;
use crate::broker::{AuthVerdict, BrokerHooks, ConnectInfo, Hold};
use crate::core::{HubCore, State};
use crate::faults::{HubFaultAction, Point};
use crate::registry::DeviceKind;
use crate::transcript::Direction;
use otasim_protocol::Topic;
use tracing::info;

impl BrokerHooks for HubCore {
    fn authenticate(&self, info: &ConnectInfo) -> AuthVerdict {
        // A will is a publish the broker makes later on the client's behalf, past the publish
        // ACL: it is authorized now, as a publish (AWS IoT refuses such a CONNECT the same way).
        let will_refused = info
            .will_topic
            .as_deref()
            .filter(|topic| !self.allow_publish(&info.client_id, topic));
        let mut state = self.lock();
        let (mut verdict, why) = crate::auth::verdict(&state, info, self.clock.now_unix_secs());
        if verdict == AuthVerdict::Accept && info.taken {
            // The broker would answer code 3 itself; say so in the transcript.
            verdict = AuthVerdict::ServerUnavailable;
        }
        if verdict == AuthVerdict::Accept
            && let Some(topic) = will_refused
        {
            verdict = AuthVerdict::NotAuthorized;
            let detail = format!("will on {topic}: the client may not publish there");
            self.event(&mut state, &info.client_id, "will refused", detail);
        }
        if verdict == AuthVerdict::Accept {
            let client_id = info.client_id.as_str();
            if let Some(action) = self.fire(&mut state, client_id, Point::Connect { client_id }) {
                match action {
                    HubFaultAction::RefuseConnect { code } => {
                        verdict = match code {
                            3 => AuthVerdict::ServerUnavailable,
                            4 => AuthVerdict::BadCredentials,
                            _ => AuthVerdict::NotAuthorized,
                        }
                    }
                    HubFaultAction::DelayConnack { ms } => {
                        let hold = self.hold(ms);
                        state.connack_holds.insert(client_id.to_owned(), hold);
                    }
                    other => self.act(&mut state, client_id, other),
                }
            }
        }
        let mut detail = format!(
            "{verdict:?} (mqtt level {}, {}, keepalive {} s, from {})",
            info.protocol_level,
            info.transport.label(),
            info.keepalive_secs,
            info.peer
        );
        if let Some(why) = why {
            detail.push_str(": ");
            detail.push_str(&why);
        }
        self.event(&mut state, &info.client_id, "connect", detail);
        if verdict != AuthVerdict::Accept {
            info!(client_id = %info.client_id, ?verdict, "connect refused");
        }
        verdict
    }

    fn psk_key(&self, identity: &str) -> Option<Vec<u8>> {
        let state = self.lock();
        let rec = state.registry.by_client_id(identity)?;
        if !rec.enabled || rec.kind == DeviceKind::Subdevice {
            return None;
        }
        otasim_protocol::device_key(&rec.secret).ok()
    }

    fn on_transport_event(&self, who: &str, name: &str, detail: &str) {
        // Only a record: no decision, so no state lock.
        self.emit_record(Direction::Event, who, name, detail.to_owned());
    }

    fn connack_hold(&self, client_id: &str) -> Option<Hold> {
        self.lock().connack_holds.remove(client_id)
    }

    fn allow_subscribe(&self, client_id: &str, topic_filter: &str) -> bool {
        let mut state = self.lock();
        let mut ok = self.may_use(&state, client_id, topic_filter, Use::Subscribe);
        if ok {
            let point = Point::Subscribe {
                client_id,
                topic_filter,
            };
            match self.fire(&mut state, client_id, point) {
                Some(HubFaultAction::FailSubscription) => ok = false,
                Some(HubFaultAction::DelaySuback { ms }) => {
                    let key = (client_id.to_owned(), topic_filter.to_owned());
                    let hold = self.hold(ms);
                    state.suback_holds.insert(key, hold);
                }
                Some(other) => self.act(&mut state, client_id, other),
                None => {}
            }
        }
        let event = if ok { "subscribe" } else { "suback failure" };
        self.event(&mut state, client_id, event, topic_filter.to_owned());
        ok
    }

    fn suback_hold(&self, client_id: &str, topic_filter: &str) -> Option<Hold> {
        let key = (client_id.to_owned(), topic_filter.to_owned());
        self.lock().suback_holds.remove(&key)
    }

    fn on_subscribed(&self, client_id: &str, topic_filter: &str, _granted_qos: u8) {
        let mut state = self.lock();
        let subs = state.subscriptions.entry(client_id.to_owned()).or_default();
        subs.insert(topic_filter.to_owned());
        let count = subs.len();
        if self.strict() {
            for detail in crate::strict::subscription_warnings(topic_filter, count) {
                crate::strict::warn(client_id, &detail);
                self.event(&mut state, client_id, "strict", detail);
            }
        }
    }

    fn allow_publish(&self, client_id: &str, topic: &str) -> bool {
        let state = self.lock();
        self.may_use(&state, client_id, topic, Use::Publish)
    }

    fn on_publish(&self, client_id: &str, topic: &str, payload: &[u8], _qos: u8) {
        let mut state = self.lock();
        let text = String::from_utf8_lossy(payload).into_owned();
        self.record(&mut state, Direction::In, client_id, topic, text);
        if let Ok(topic) = topic.parse::<Topic>() {
            self.dispatch(&mut state, client_id, &topic, payload);
        } else {
            crate::services::on_publish(self, &mut state, topic, payload);
        }
        drop(state);
        self.bump();
    }

    fn on_publish_refused(&self, client_id: &str, topic: &str, payload: &[u8]) {
        let text = String::from_utf8_lossy(payload).into_owned();
        self.emit_record(Direction::Refused, client_id, topic, text);
    }

    fn on_connected(&self, client_id: &str) {
        let mut state = self.lock();
        state.subscriptions.remove(client_id);
        let id = state.registry.by_client_id(client_id).map(|d| d.id.clone());
        if let Some(rec) = id.as_ref().and_then(|id| state.registry.get_mut(id)) {
            rec.online = true;
        }
        drop(state);
        self.bump();
    }

    fn on_protocol_violation(&self, client_id: &str, detail: &str) {
        self.emit_record(
            Direction::Event,
            client_id,
            "protocol violation",
            detail.to_owned(),
        );
    }

    fn on_will(&self, client_id: &str, topic: &str, payload: &[u8]) -> bool {
        // Checked again: authorized at CONNECT, the topology may have changed since.
        if !self.allow_publish(client_id, topic) {
            self.on_publish_refused(client_id, topic, payload);
            return false;
        }
        let detail = format!("{topic} ({} bytes)", payload.len());
        self.emit_record(Direction::Event, client_id, "will", detail);
        // Delivered like any publish of the client's, so the hub acts on it as on one.
        self.on_publish(client_id, topic, payload, 0);
        true
    }

    fn on_disconnected(&self, client_id: &str, reason: &str) {
        let mut state = self.lock();
        self.event(&mut state, client_id, "disconnect", reason.to_owned());
        state.subscriptions.remove(client_id);
        if let Some(id) = state.registry.by_client_id(client_id).map(|d| d.id.clone()) {
            // A gateway's subdevices go offline with it (found by the gateway index).
            state.registry.set_offline_with_subdevices(&id);
        }
        drop(state);
        self.bump();
    }
}

impl HubCore {
    /// Whether the client may use the topic: granted in some device's space (see `acl`) that
    /// is its own or, for a gateway, that of a bound and online subdevice.
    fn may_use(&self, state: &State, client_id: &str, topic: &str, usage: Use) -> bool {
        let Some(client) = state.registry.by_client_id(client_id) else {
            return false;
        };
        crate::acl::granted(topic, usage, &state.custom_topics)
            .is_some_and(|device| state.registry.may_act_for(client, &device))
    }

    /// A device message on one of the Hub's topics: its type meets the fault rules, then the
    /// concern answers it. Malformed JSON and unknown types are recorded and ignored, as the
    /// real Hub ignores them.
    fn dispatch(&self, state: &mut State, client_id: &str, topic: &Topic, payload: &[u8]) {
        let kind = match serde_json::from_slice::<serde_json::Value>(payload) {
            Ok(v) => v.get("type").and_then(|t| t.as_str()).map(str::to_owned),
            Err(e) => {
                self.event(
                    state,
                    client_id,
                    "ignored",
                    format!("malformed JSON on {topic}: {e}"),
                );
                return;
            }
        };
        let Some(kind) = kind else {
            self.event(state, client_id, "ignored", format!("no type on {topic}"));
            return;
        };
        let point = Point::Message {
            device: topic.device(),
            message_type: &kind,
        };
        let action = self.fire(state, client_id, point);
        match topic {
            Topic::OtaReport(device) => {
                self.on_ota_report(state, client_id, device, payload, action)
            }
            Topic::GatewayOperation(gateway) => {
                crate::topology::on_request(self, state, client_id, gateway, payload, action)
            }
            _ => {}
        }
    }
}
