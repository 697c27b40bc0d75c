//! The gateway's MQTT session: connect, bring subdevices online, route Hub messages.
//!
//! A subdevice is online once the Hub answered `online` with success and granted its OTA
//! subscription. Until then it is retried: an `online` without an answer in time, an answer
//! that refuses it, or a refused subscription sends `online` again after a pause that doubles
//! from `online_retry` up to [`crate::MAX_ONLINE_RETRY`], for as long as the connection lasts.

use crate::outbox::{Outbound, Outbox};
use crate::subdevice::Input;
use crate::validate::reportable_version;
use crate::{GatewayEvent, MAX_ONLINE_RETRY, Shared};
use otasim_protocol::{
    DeviceId, GatewayDevice, GatewayReply, GatewayRequest, GatewayResult, HubOtaMessage,
    OperationType, Topic,
};
use rumqttc::{
    AsyncClient, Event, EventLoop, Incoming, Outgoing, QoS, SubAck, SubscribeReasonCode,
};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};

const MAX_BACKOFF: Duration = Duration::from_secs(30);

pub(crate) struct Session {
    gateway: DeviceId,
    shared: Arc<Shared>,
    subdevices: BTreeMap<DeviceId, mpsc::Sender<Input>>,
    outbox: Outbox,
    /// Subscriptions asked for, in order, until rumqttc gives them a packet id.
    subscribing: VecDeque<Option<DeviceId>>,
    /// Subdevice subscriptions waiting for their SUBACK, by packet id.
    subacks: BTreeMap<u16, DeviceId>,
    /// Subdevices not online yet on this connection.
    joining: BTreeMap<DeviceId, Joining>,
}

/// Where a subdevice is on its way online, and when to try again.
#[derive(Debug, Clone, Copy)]
struct Joining {
    /// `online` went out; `false` once its success reply came and the subscription is asked.
    awaiting_reply: bool,
    /// When to send `online` again if the subdevice is not online by then.
    retry_at: Instant,
    /// `online` requests sent so far on this connection.
    tries: u32,
}

impl Session {
    pub(crate) fn new(
        gateway: DeviceId,
        shared: Arc<Shared>,
        subdevices: BTreeMap<DeviceId, mpsc::Sender<Input>>,
        client: AsyncClient,
    ) -> Self {
        Session {
            gateway,
            shared,
            subdevices,
            outbox: Outbox::new(client),
            subscribing: VecDeque::new(),
            subacks: BTreeMap::new(),
            joining: BTreeMap::new(),
        }
    }

    /// The pause before `online` is sent again after `tries` requests.
    fn retry_after(&self, tries: u32) -> Duration {
        let doublings = tries.saturating_sub(1).min(16);
        self.shared
            .online_retry
            .saturating_mul(1 << doublings)
            .min(MAX_ONLINE_RETRY)
    }

    /// Sends `online` for `sub` and schedules its retry.
    fn send_online(&mut self, sub: &DeviceId) {
        let tries = self.joining.get(sub).map_or(0, |j| j.tries) + 1;
        let retry_at = Instant::now() + self.retry_after(tries);
        self.joining.insert(
            sub.clone(),
            Joining {
                awaiting_reply: true,
                retry_at,
                tries,
            },
        );
        let req = GatewayRequest::single(OperationType::Online, GatewayDevice::named(sub));
        let topic = Topic::GatewayOperation(self.gateway.clone()).to_string();
        self.outbox.push(Outbound {
            device: None,
            topic,
            qos: QoS::AtMostOnce,
            payload: req.encode(),
        });
    }

    /// Re-sends `online` for every subdevice whose retry is due.
    fn retry_due(&mut self) {
        let now = Instant::now();
        let due: Vec<DeviceId> = self
            .joining
            .iter()
            .filter(|(_, j)| j.retry_at <= now)
            .map(|(d, _)| d.clone())
            .collect();
        for sub in due {
            info!(device = %sub, "subdevice not online yet, sending online again");
            self.send_online(&sub);
        }
        self.outbox.flush();
    }

    fn next_retry(&self) -> Option<Instant> {
        self.joining.values().map(|j| j.retry_at).min()
    }

    /// Polls the event loop and publishes the drivers' messages until shutdown, reconnecting
    /// with backoff and jitter.
    pub(crate) async fn run(
        mut self,
        mut eventloop: EventLoop,
        mut outbound: mpsc::Receiver<Outbound>,
    ) {
        let mut failures = 0u32;
        loop {
            let retry_at = self.next_retry();
            let polled = tokio::select! {
                // Cancel-safe: dropping a pending poll only loses a packet being read, and the
                // session is ending anyway.
                _ = self.shared.cancel.cancelled() => break,
                // Cancel-safe: `recv` loses nothing, and a poll dropped for it keeps its
                // partly written frames in rumqttc's buffer and its events in its state.
                Some(message) = outbound.recv() => {
                    self.outbox.push(message);
                    continue;
                }
                // Cancel-safe for the same reason as `recv` above.
                _ = sleep_until(retry_at), if retry_at.is_some() => {
                    self.retry_due();
                    continue;
                }
                polled = eventloop.poll() => polled,
            };
            match polled {
                Ok(event) => {
                    if matches!(event, Event::Incoming(Incoming::ConnAck(_))) {
                        failures = 0;
                    }
                    self.on_event(event).await;
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    warn!(error = %e, attempt = failures, "mqtt connection lost");
                    self.outbox.on_disconnected();
                    self.subscribing.clear();
                    self.subacks.clear();
                    self.joining.clear();
                    self.tell_all(|| Input::Offline).await;
                    self.shared.emit(GatewayEvent::Disconnected {
                        reason: e.to_string(),
                    });
                    let delay = backoff(failures);
                    tokio::select! {
                        _ = self.shared.cancel.cancelled() => break,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
        // Best effort: tell the broker we are leaving so it does not wait for the keepalive.
        let _ = self.outbox.client().try_disconnect();
        let _ = tokio::time::timeout(Duration::from_millis(200), eventloop.poll()).await;
    }

    async fn on_event(&mut self, event: Event) {
        match event {
            Event::Incoming(Incoming::ConnAck(_)) => self.on_connected(),
            Event::Incoming(Incoming::Publish(p)) => self.route(&p.topic, &p.payload).await,
            Event::Incoming(Incoming::PubAck(ack)) => self.outbox.on_puback(ack.pkid),
            Event::Outgoing(Outgoing::Publish(pkid)) => self.outbox.on_outgoing_publish(pkid),
            Event::Outgoing(Outgoing::Subscribe(pkid)) => {
                if let Some(Some(device)) = self.subscribing.pop_front() {
                    self.subacks.insert(pkid, device);
                }
            }
            Event::Incoming(Incoming::SubAck(ack)) => self.on_suback(&ack).await,
            _ => {}
        }
        self.outbox.flush();
    }

    fn on_connected(&mut self) {
        info!(gateway = %self.gateway, "connected to hub");
        self.outbox.on_connected();
        self.shared.emit(GatewayEvent::Connected);
        let result_topic = Topic::GatewayOperationResult(self.gateway.clone()).to_string();
        self.subscribe(result_topic, None);
        self.joining.clear();
        let subs: Vec<DeviceId> = self.subdevices.keys().cloned().collect();
        for sub in subs {
            self.send_online(&sub);
        }
    }

    async fn route(&mut self, topic: &str, payload: &[u8]) {
        match topic.parse::<Topic>() {
            Ok(Topic::GatewayOperationResult(_)) => self.on_gateway_reply(payload).await,
            Ok(Topic::OtaUpdate(dev)) => self.on_ota(dev, payload).await,
            _ => debug!(%topic, "ignoring message on unexpected topic"),
        }
    }

    async fn on_gateway_reply(&mut self, payload: &[u8]) {
        let reply = match GatewayReply::parse(payload) {
            Ok(r) => r,
            Err(e) => return warn!(error = %e, "malformed gateway reply ignored"),
        };
        if reply.kind != OperationType::Online {
            return debug!(kind = ?reply.kind, "gateway message ignored");
        }
        for dev in &reply.devices {
            let Ok(id) = dev.id() else { continue };
            let result = dev.result().unwrap_or(GatewayResult::Other(i64::MIN));
            self.shared.emit(GatewayEvent::Online {
                device: id.clone(),
                result: result.code(),
            });
            if !self.subdevices.contains_key(&id) {
                warn!(device = %id, "online reply for a subdevice this gateway does not serve");
                continue;
            }
            if result != GatewayResult::Success {
                // The retry already scheduled asks again later (it may be bound meanwhile).
                warn!(device = %id, code = result.code(), "hub refused online");
                continue;
            }
            // A late answer to a request already repeated, or to one already answered.
            let Some(joining) = self.joining.get_mut(&id).filter(|j| j.awaiting_reply) else {
                debug!(device = %id, "duplicate online reply ignored");
                continue;
            };
            joining.awaiting_reply = false;
            // The version is reported once the Hub confirms the subscription: its answer (and
            // a re-sent `update_firmware`) must find the subscription in place.
            let topic = Topic::OtaUpdate(id.clone()).to_string();
            self.subscribe(topic, Some(id));
        }
    }

    fn subscribe(&mut self, topic: String, device: Option<DeviceId>) {
        match self
            .outbox
            .client()
            .try_subscribe(topic.clone(), QoS::AtLeastOnce)
        {
            Ok(()) => self.subscribing.push_back(device),
            Err(e) => warn!(error = %e, %topic, "subscribe failed"),
        }
    }

    async fn on_suback(&mut self, ack: &SubAck) {
        let Some(device) = self.subacks.remove(&ack.pkid) else {
            return;
        };
        if ack
            .return_codes
            .iter()
            .any(|c| matches!(c, SubscribeReasonCode::Failure))
        {
            // Its retry, already scheduled, brings it online again from the start.
            return warn!(%device, "hub refused the ota subscription");
        }
        self.joining.remove(&device);
        // What waited goes out before the driver's fresh version report.
        self.outbox.on_online(&device);
        self.send(&device, Input::Online).await;
    }

    async fn on_ota(&self, dev: DeviceId, payload: &[u8]) {
        match HubOtaMessage::parse(payload) {
            Ok(HubOtaMessage::UpdateFirmware(cmd)) => self.send(&dev, Input::Update(cmd)).await,
            Ok(HubOtaMessage::ReportVersionRsp {
                result_code,
                version,
                ..
            }) if result_code != 0 => {
                warn!(device = %dev, result_code, %version, "hub refused version report")
            }
            Ok(HubOtaMessage::ReportVersionRsp { .. }) => {}
            Err(e) => match unreadable_update_version(payload) {
                Some(version) => {
                    let reason = e.to_string();
                    self.send(&dev, Input::Unreadable { version, reason }).await;
                }
                None => warn!(device = %dev, error = %e, "malformed ota message ignored"),
            },
        }
    }

    async fn tell_all(&self, input: impl Fn() -> Input) {
        for dev in self.subdevices.keys() {
            self.send(dev, input()).await;
        }
    }

    async fn send(&self, dev: &DeviceId, input: Input) {
        match self.subdevices.get(dev) {
            Some(tx) => {
                if tx.send(input).await.is_err() {
                    debug!(device = %dev, "subdevice driver gone");
                }
            }
            None => warn!(device = %dev, "message for a subdevice this gateway does not serve"),
        }
    }
}

/// For a payload that says it is an `update_firmware` but does not parse as one: the version
/// to put in the fail report (what it names, made safe, or `unknown`).
fn unreadable_update_version(payload: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(payload).ok()?;
    if value.get("type")?.as_str()? != "update_firmware" {
        return None;
    }
    let version = match value.get("version") {
        Some(serde_json::Value::String(v)) => reportable_version(v),
        _ => "unknown".to_owned(),
    };
    Some(version)
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Exponential backoff from 100 ms to 30 s with up to 50% jitter.
fn backoff(failures: u32) -> Duration {
    let base = Duration::from_millis(100).saturating_mul(1 << failures.min(9));
    let base = base.min(MAX_BACKOFF);
    let jitter = rand::random_range(0.0..0.5);
    base.mul_f64(1.0 + jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_update_firmware_payloads_are_answered_when_unreadable() {
        let bad = br#"{"type":"update_firmware","file_size":"10","version":"V2"}"#;
        assert_eq!(unreadable_update_version(bad), Some("V2".into()));
        let no_version = br#"{"type":"update_firmware","md5sum":7}"#;
        assert_eq!(
            unreadable_update_version(no_version),
            Some("unknown".into())
        );
        let hostile = br#"{"type":"update_firmware","version":"../x\n"}"#;
        let v = unreadable_update_version(hostile).expect("answered");
        assert!(!v.contains('\n') && v.len() <= 32, "{v:?}");
        assert_eq!(unreadable_update_version(br#"{"type":"other"}"#), None);
        assert_eq!(unreadable_update_version(b"not json"), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) < backoff(5));
        for n in [1, 10, 100, u32::MAX] {
            assert!(backoff(n) <= MAX_BACKOFF.mul_f64(1.5));
            assert!(backoff(n) >= Duration::from_millis(100));
        }
    }
}
