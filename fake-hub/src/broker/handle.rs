//! The hub logic's side of the broker: publishing to devices and kicking them.
//!
//! Commands go through one queue drained by one task on the broker's runtime, so hub publishes
//! reach rmqtt's router in the order `publish` was called. The queue is unbounded so that
//! `publish` never blocks and can be called from inside a hook; the hub sends a handful of
//! messages per device event, so it cannot grow without bound in practice.

use std::sync::Arc;

use rmqtt::context::ServerContext;
use rmqtt::session::SessionState;
use rmqtt::types::{ClientId, CodecPublish, From as Sender, Id, Publish, QoS};
use rmqtt::utils::timestamp_millis;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::connections::Connections;

/// The client id that hub publishes appear to come from (rmqtt wants a sender).
const HUB_SENDER_ID: &str = "fake-hub";

/// A command for the broker's drain task.
pub(super) enum Command {
    Publish {
        topic: String,
        payload: Vec<u8>,
        qos: QoS,
    },
    Kick {
        client_id: String,
    },
    /// Runs a hub task (timers, late replies) on the broker's runtime, so it stops with it.
    Spawn(super::Hold),
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Publish { topic, qos, .. } => write!(f, "publish {topic} qos {qos:?}"),
            Command::Kick { client_id } => write!(f, "kick {client_id}"),
            Command::Spawn(_) => f.write_str("spawn"),
        }
    }
}

/// Cheap, cloneable handle the hub logic uses to act on the broker.
#[derive(Clone)]
pub(crate) struct BrokerHandle {
    commands: mpsc::UnboundedSender<Command>,
    connections: Arc<Connections>,
}

impl BrokerHandle {
    pub(super) fn new(
        commands: mpsc::UnboundedSender<Command>,
        connections: Arc<Connections>,
    ) -> Self {
        Self {
            commands,
            connections,
        }
    }

    /// Hub-to-device publish to every subscriber of `topic`, at `qos` (0 or 1; 2 and above mean
    /// 2) capped by each subscription's QoS. Non-blocking and callable from inside a hook;
    /// messages reach subscribers in the order `publish` was called. Dropped after shutdown.
    pub(crate) fn publish(&self, topic: &str, payload: Vec<u8>, qos: u8) {
        let qos = match qos {
            0 => QoS::AtMostOnce,
            1 => QoS::AtLeastOnce,
            _ => QoS::ExactlyOnce,
        };
        self.send(Command::Publish {
            topic: topic.to_owned(),
            payload,
            qos,
        });
    }

    /// Disconnects the client's current connection (its subscriptions go with it). Non-blocking;
    /// `on_disconnected` reports `kicked` once it is done. A no-op for an unknown client id.
    /// Hub publishes queued before the kick are routed first, but may not be written to the
    /// client before its socket closes.
    pub(crate) fn kick(&self, client_id: &str) {
        self.send(Command::Kick {
            client_id: client_id.to_owned(),
        });
    }

    /// Runs `task` on the broker's runtime; it is dropped when the broker stops.
    pub(crate) fn spawn(&self, task: super::Hold) {
        self.send(Command::Spawn(task));
    }

    /// Whether the client id has a live connection (between `on_connected` and
    /// `on_disconnected`).
    #[allow(
        dead_code,
        reason = "part of the broker interface; the hub logic tracks presence itself for now"
    )]
    pub(crate) fn is_connected(&self, client_id: &str) -> bool {
        self.connections.is_connected(client_id)
    }

    fn send(&self, command: Command) {
        if let Err(e) = self.commands.send(command) {
            debug!(command = ?e.0, "broker stopped, command dropped");
        }
    }
}

/// How many publishes are routed at once in a cluster, each lane in order (see [`drain`]).
pub(super) const CLUSTER_LANES: usize = 32;

/// Runs every command in queue order until all handles are gone or the runtime stops.
///
/// Alone, a publish is routed before the next one starts. In a cluster, routing one waits for
/// every other node's answer, so publishes go out on `lanes` lanes at once: all publishes to
/// one device (the last two levels of the topic, `{product}/{device}`) share a lane, in order,
/// so each device still sees the hub's messages in the order the hub sent them.
pub(super) async fn drain(
    scx: ServerContext,
    mut commands: mpsc::UnboundedReceiver<Command>,
    lanes: usize,
) {
    let from = Sender::from_system(Id::from(
        scx.node.id(),
        ClientId::from_static(HUB_SENDER_ID),
    ));
    let lanes: Vec<mpsc::UnboundedSender<(String, Vec<u8>, QoS)>> = (0..lanes.max(1))
        .skip(1)
        .map(|_| {
            let (tx, mut rx) = mpsc::unbounded_channel::<(String, Vec<u8>, QoS)>();
            let (scx, from) = (scx.clone(), from.clone());
            tokio::spawn(async move {
                while let Some((topic, payload, qos)) = rx.recv().await {
                    publish(&scx, &from, topic, payload, qos).await;
                }
            });
            tx
        })
        .collect();
    while let Some(command) = commands.recv().await {
        match command {
            Command::Publish {
                topic,
                payload,
                qos,
            } if !lanes.is_empty() => {
                let lane = &lanes[lane_of(&topic, lanes.len())];
                if lane.send((topic, payload, qos)).is_err() {
                    debug!("a publish lane stopped; publish dropped");
                }
            }
            Command::Publish {
                topic,
                payload,
                qos,
            } => publish(&scx, &from, topic, payload, qos).await,
            // A kick waits for the session to answer (up to 5 s in rmqtt): off the queue, so
            // it cannot hold up later publishes.
            Command::Kick { client_id } => {
                tokio::spawn(kick(scx.clone(), client_id));
            }
            Command::Spawn(task) => {
                tokio::spawn(task);
            }
        }
    }
}

/// The lane of a topic: a hash of its device part, its last two levels.
fn lane_of(topic: &str, lanes: usize) -> usize {
    use std::hash::{Hash as _, Hasher as _};
    let device = topic.rsplitn(3, '/').take(2).collect::<Vec<_>>();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    device.hash(&mut hasher);
    (hasher.finish() % lanes as u64) as usize
}

async fn publish(scx: &ServerContext, from: &Sender, topic: String, payload: Vec<u8>, qos: QoS) {
    let codec = CodecPublish {
        dup: false,
        retain: false,
        qos,
        topic: topic.into(),
        packet_id: None,
        payload: payload.into(),
        properties: None,
    };
    let publish = Publish::from(codec).create_time(timestamp_millis());
    debug!(topic = %publish.topic, qos = qos.value(), "hub publish");
    // The same path rmqtt's HTTP API uses; no message storage, so no expiry to pass.
    if let Err(e) = SessionState::forwards(scx, from.clone(), publish, false, None).await {
        warn!(error = %e, "hub publish could not be routed");
    }
}

async fn kick(scx: ServerContext, client_id: String) {
    let id = Id::from(scx.node.id(), ClientId::from(client_id.as_str()));
    let entry = scx.extends.shared().await.entry(id);
    // The lock is the one a CONNECT with the same client id takes while it is being accepted.
    let result = match entry.try_lock().await {
        Ok(mut locked) => locked.kick(true, true, true).await.map(|_| ()),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => info!(client_id, "kick done"),
        Err(e) => warn!(client_id, error = %e, "kick failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::lane_of;

    #[test]
    fn every_topic_of_one_device_shares_a_lane() {
        let lanes = 32;
        let device = "JR1WOKB7Q7/gw1";
        let topics = [
            format!("$ota/update/{device}"),
            format!("$gateway/operation/result/{device}"),
            format!("$thing/down/service/{device}"),
        ];
        let lane = lane_of(&topics[0], lanes);
        assert!(topics.iter().all(|t| lane_of(t, lanes) == lane));
        let spread: std::collections::HashSet<usize> = (0..200)
            .map(|g| lane_of(&format!("$ota/update/JR1WOKB7Q7/gw{g}"), lanes))
            .collect();
        assert!(
            spread.len() > lanes / 2,
            "devices spread over the lanes: {spread:?}"
        );
        assert!(lane_of("no-slashes", lanes) < lanes);
    }
}
