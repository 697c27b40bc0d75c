//! The gateway's MQTT session: connect, bring subdevices online, route Hub messages.

use crate::outbox::{Outbound, Outbox};
use crate::subdevice::Input;
use crate::{GatewayEvent, Shared};
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
        }
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
        let op_topic = Topic::GatewayOperation(self.gateway.clone()).to_string();
        let subs: Vec<DeviceId> = self.subdevices.keys().cloned().collect();
        for sub in subs {
            let req = GatewayRequest::single(OperationType::Online, GatewayDevice::named(&sub));
            self.outbox.push(Outbound {
                device: None,
                topic: op_topic.clone(),
                qos: QoS::AtMostOnce,
                payload: req.encode(),
            });
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
            if result != GatewayResult::Success {
                warn!(device = %id, code = result.code(), "hub refused online");
                continue;
            }
            if !self.subdevices.contains_key(&id) {
                warn!(device = %id, "online reply for a subdevice this gateway does not serve");
                continue;
            }
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
            return warn!(%device, "hub refused the ota subscription");
        }
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
            Err(e) => warn!(device = %dev, error = %e, "malformed ota message ignored"),
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
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) < backoff(5));
        for n in [1, 10, 100, u32::MAX] {
            assert!(backoff(n) <= MAX_BACKOFF.mul_f64(1.5));
            assert!(backoff(n) >= Duration::from_millis(100));
        }
    }
}
