//! The gateway's MQTT session: connect, bring subdevices online, route Hub messages.

use crate::subdevice::Input;
use crate::{GatewayEvent, Shared};
use otasim_protocol::{
    DeviceId, GatewayDevice, GatewayReply, GatewayRequest, GatewayResult, HubOtaMessage,
    OperationType, Topic,
};
use rumqttc::{Event, EventLoop, Incoming, QoS};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

const MAX_BACKOFF: Duration = Duration::from_secs(30);

pub(crate) struct Session {
    gateway: DeviceId,
    shared: Arc<Shared>,
    subdevices: BTreeMap<DeviceId, mpsc::Sender<Input>>,
}

impl Session {
    pub(crate) fn new(
        gateway: DeviceId,
        shared: Arc<Shared>,
        subdevices: BTreeMap<DeviceId, mpsc::Sender<Input>>,
    ) -> Self {
        Session {
            gateway,
            shared,
            subdevices,
        }
    }

    /// Polls the event loop until shutdown, reconnecting with backoff and jitter.
    pub(crate) async fn run(self, mut eventloop: EventLoop) {
        let mut failures = 0u32;
        loop {
            let polled = tokio::select! {
                // Cancel-safe: dropping a pending poll only loses a packet being read, and the
                // session is ending anyway.
                _ = self.shared.cancel.cancelled() => break,
                polled = eventloop.poll() => polled,
            };
            match polled {
                Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                    failures = 0;
                    self.on_connected().await;
                }
                Ok(Event::Incoming(Incoming::Publish(p))) => self.route(&p.topic, &p.payload).await,
                Ok(_) => {}
                Err(e) => {
                    failures = failures.saturating_add(1);
                    warn!(error = %e, attempt = failures, "mqtt connection lost");
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
        let _ = self.shared.client.try_disconnect();
        let _ = tokio::time::timeout(Duration::from_millis(200), eventloop.poll()).await;
    }

    async fn on_connected(&self) {
        info!(gateway = %self.gateway, "connected to hub");
        self.shared.emit(GatewayEvent::Connected);
        let result_topic = Topic::GatewayOperationResult(self.gateway.clone()).to_string();
        if let Err(e) = self
            .shared
            .client
            .subscribe(result_topic, QoS::AtLeastOnce)
            .await
        {
            warn!(error = %e, "subscribe to gateway result topic failed");
        }
        let op_topic = Topic::GatewayOperation(self.gateway.clone()).to_string();
        for sub in self.subdevices.keys() {
            let req = GatewayRequest::single(OperationType::Online, GatewayDevice::named(sub));
            if let Err(e) = self
                .shared
                .client
                .publish(op_topic.clone(), QoS::AtMostOnce, false, req.encode())
                .await
            {
                warn!(error = %e, device = %sub, "online request not sent");
            }
        }
    }

    async fn route(&self, topic: &str, payload: &[u8]) {
        match topic.parse::<Topic>() {
            Ok(Topic::GatewayOperationResult(_)) => self.on_gateway_reply(payload).await,
            Ok(Topic::OtaUpdate(dev)) => self.on_ota(dev, payload).await,
            _ => debug!(%topic, "ignoring message on unexpected topic"),
        }
    }

    async fn on_gateway_reply(&self, payload: &[u8]) {
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
            self.send(&id, Input::Online).await;
        }
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
