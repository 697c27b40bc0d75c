//! Every publish of the gateway goes through here, so none is lost to a reconnect.
//!
//! rumqttc with a clean session drops every unacknowledged publish when it reconnects, and a
//! report for a subdevice is only accepted once the Hub has that subdevice online again. So
//! the outbox keeps, per subdevice, what could not be published yet, publishes only to online
//! subdevices, pairs each publish with the packet id rumqttc gives it (requests leave in the
//! order they were queued), and on a disconnect puts every QoS 1 report not yet acknowledged
//! back at the front of its queue. `downloading` reports (QoS 0) are not kept: the next one
//! says more.

use otasim_protocol::DeviceId;
use rumqttc::{AsyncClient, QoS};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use tracing::{debug, warn};

/// A message to publish.
#[derive(Debug, Clone)]
pub(crate) struct Outbound {
    /// The subdevice it is about; `None` for the gateway's own operation topic.
    pub(crate) device: Option<DeviceId>,
    pub(crate) topic: String,
    pub(crate) qos: QoS,
    pub(crate) payload: Vec<u8>,
}

#[derive(Debug)]
struct Sent {
    message: Outbound,
    pkid: Option<u16>,
}

/// The publishing side of the session.
pub(crate) struct Outbox {
    client: AsyncClient,
    connected: bool,
    online: BTreeSet<DeviceId>,
    queues: BTreeMap<DeviceId, VecDeque<Outbound>>,
    sent: VecDeque<Sent>,
}

impl Outbox {
    pub(crate) fn new(client: AsyncClient) -> Self {
        Outbox {
            client,
            connected: false,
            online: BTreeSet::new(),
            queues: BTreeMap::new(),
            sent: VecDeque::new(),
        }
    }

    pub(crate) fn client(&self) -> &AsyncClient {
        &self.client
    }

    /// The connection is up; subdevices are offline until the Hub says otherwise.
    pub(crate) fn on_connected(&mut self) {
        self.connected = true;
        self.online.clear();
    }

    /// The connection dropped: unacknowledged QoS 1 publishes go back to their queues.
    pub(crate) fn on_disconnected(&mut self) {
        self.connected = false;
        self.online.clear();
        while let Some(sent) = self.sent.pop_back() {
            let Some(device) = sent.message.device.clone() else {
                continue;
            };
            if sent.message.qos != QoS::AtMostOnce {
                debug!(%device, topic = %sent.message.topic, "requeueing unacknowledged publish");
                self.queues
                    .entry(device)
                    .or_default()
                    .push_front(sent.message);
            }
        }
    }

    /// The Hub has `device` online: publish what waited for it.
    pub(crate) fn on_online(&mut self, device: &DeviceId) {
        self.online.insert(device.clone());
        self.flush();
    }

    /// rumqttc sent a publish with this packet id (0 for QoS 0).
    pub(crate) fn on_outgoing_publish(&mut self, pkid: u16) {
        let Some(index) = self.sent.iter().position(|s| s.pkid.is_none()) else {
            return warn!(pkid, "publish sent that the outbox does not know");
        };
        if self.sent[index].message.qos == QoS::AtMostOnce {
            self.sent.remove(index);
        } else {
            self.sent[index].pkid = Some(pkid);
        }
    }

    /// The broker acknowledged a QoS 1 publish.
    pub(crate) fn on_puback(&mut self, pkid: u16) {
        if let Some(index) = self.sent.iter().position(|s| s.pkid == Some(pkid)) {
            self.sent.remove(index);
        }
    }

    /// Publishes now if possible, otherwise keeps it (QoS 1) or drops it (QoS 0).
    pub(crate) fn push(&mut self, message: Outbound) {
        let ready = self.connected
            && message
                .device
                .as_ref()
                .is_none_or(|d| self.online.contains(d) && self.queue_empty(d));
        if ready && self.try_send(&message) {
            return;
        }
        match (&message.device, message.qos) {
            (Some(device), QoS::AtLeastOnce | QoS::ExactlyOnce) => {
                self.queues
                    .entry(device.clone())
                    .or_default()
                    .push_back(message);
            }
            _ => debug!(topic = %message.topic, "dropping a report made while offline"),
        }
    }

    /// Publishes queued messages of online subdevices, in order, while rumqttc takes them.
    pub(crate) fn flush(&mut self) {
        if !self.connected {
            return;
        }
        let online: Vec<DeviceId> = self.online.iter().cloned().collect();
        for device in online {
            while let Some(message) = self.queues.get_mut(&device).and_then(VecDeque::pop_front) {
                if !self.try_send(&message) {
                    self.queues.entry(device).or_default().push_front(message);
                    return;
                }
            }
        }
    }

    fn queue_empty(&self, device: &DeviceId) -> bool {
        self.queues.get(device).is_none_or(VecDeque::is_empty)
    }

    fn try_send(&mut self, message: &Outbound) -> bool {
        let sent = self.client.try_publish(
            message.topic.clone(),
            message.qos,
            false,
            message.payload.clone(),
        );
        match sent {
            Ok(()) => {
                self.sent.push_back(Sent {
                    message: message.clone(),
                    pkid: None,
                });
                true
            }
            Err(error) => {
                debug!(%error, "request queue full, keeping the message");
                false
            }
        }
    }
}
