//! The owner node's side: applies edge nodes' hook calls to the one Hub, in order.
//!
//! The owner also tells apart which node holds each client's current connection: a device that
//! reconnects through another node is accepted there before its old connection's end reaches the
//! owner, and that late end must not mark it offline.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::broker::{AuthVerdict, BrokerHooks, ConnectInfo, Hold};
use crate::core::HubCore;

use super::wire::{self, Answer, Batch, Call};

/// The owner's node id when the hub runs alone.
pub(crate) const SOLO_NODE: u64 = 1;

/// The Hub as every node's broker sees it: the owner's core, with per-client node tracking.
pub(crate) struct Owner {
    core: Arc<HubCore>,
    /// The node of each connected client's current connection.
    holders: Mutex<HashMap<String, u64>>,
    /// This (the owner's own) node id.
    node: u64,
}

impl Owner {
    pub(crate) fn new(core: Arc<HubCore>, node: u64) -> Owner {
        Owner {
            core,
            holders: Mutex::default(),
            node,
        }
    }

    /// Applies one edge batch in order; answers one [`Answer`] per call, or what was wrong with
    /// the batch (nothing of it is applied then).
    pub(crate) fn apply(&self, batch: Batch) -> Result<Vec<Answer>, String> {
        if batch.node == self.node {
            return Err(format!("node {} is the owner's own id", batch.node));
        }
        if batch.calls.len() > wire::MAX_BATCH {
            return Err(format!(
                "{} calls in one batch, at most {}",
                batch.calls.len(),
                wire::MAX_BATCH
            ));
        }
        // Check everything first: a bad call refuses the batch before any call is applied
        // (the JSON parse already refused payloads that are not base64).
        if let Some(qos) = batch.calls.iter().find_map(|c| match c {
            Call::Publish { qos, .. } if *qos > 2 => Some(*qos),
            _ => None,
        }) {
            return Err(format!("a publish with qos {qos}"));
        }
        Ok(batch
            .calls
            .into_iter()
            .map(|call| self.apply_one(batch.node, call))
            .collect())
    }

    fn apply_one(&self, node: u64, call: Call) -> Answer {
        let core: &HubCore = &self.core;
        match call {
            Call::Authenticate(connect) => {
                let info = connect.into_info();
                let verdict = core.authenticate(&info);
                let connack_hold = verdict == AuthVerdict::Accept
                    && core.lock().connack_holds.contains_key(&info.client_id);
                Answer::Verdict {
                    verdict: verdict.into(),
                    connack_hold,
                }
            }
            Call::Subscribe {
                client_id,
                topic_filter,
            } => {
                let allow = core.allow_subscribe(&client_id, &topic_filter);
                let key = (client_id, topic_filter);
                let hold = core.lock().suback_holds.contains_key(&key);
                Answer::Allow { allow, hold }
            }
            Call::Publish {
                client_id,
                topic,
                payload,
                qos,
            } => {
                let allow = core.allow_publish(&client_id, &topic);
                if allow {
                    core.on_publish(&client_id, &topic, &payload, qos);
                } else {
                    core.on_publish_refused(&client_id, &topic, &payload);
                }
                Answer::Allow { allow, hold: false }
            }
            Call::Will {
                client_id,
                topic,
                payload,
            } => Answer::Allow {
                allow: core.on_will(&client_id, &topic, &payload),
                hold: false,
            },
            Call::Subscribed {
                client_id,
                topic_filter,
                granted_qos,
            } => {
                core.on_subscribed(&client_id, &topic_filter, granted_qos.min(1));
                Answer::Done
            }
            Call::Connected { client_id } => {
                self.connected(node, &client_id);
                Answer::Done
            }
            Call::Disconnected { client_id, reason } => {
                self.disconnected(node, &client_id, &reason);
                Answer::Done
            }
            Call::Violation { client_id, detail } => {
                core.on_protocol_violation(&client_id, &detail);
                Answer::Done
            }
            Call::TransportEvent { who, name, detail } => {
                let who = format!("{who} (node {node})");
                core.on_transport_event(&who, &name, &detail);
                Answer::Done
            }
        }
    }

    fn connected(&self, node: u64, client_id: &str) {
        self.holders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(client_id.to_owned(), node);
        self.core.on_connected(client_id);
    }

    fn disconnected(&self, node: u64, client_id: &str, reason: &str) {
        {
            let mut holders = self.holders.lock().unwrap_or_else(PoisonError::into_inner);
            if holders.get(client_id).is_some_and(|&n| n != node) {
                // The client is connected through another node now: this end is stale.
                return;
            }
            holders.remove(client_id);
        }
        self.core.on_disconnected(client_id, reason);
    }

    /// The hold the owner keeps on a CONNACK or SUBACK an edge is about to send, if any.
    pub(crate) fn hold(&self, hold: wire::Hold) -> Option<Hold> {
        match hold {
            wire::Hold::Connack { client_id } => self.core.connack_hold(&client_id),
            wire::Hold::Suback {
                client_id,
                topic_filter,
            } => self.core.suback_hold(&client_id, &topic_filter),
        }
    }
}

/// The owner's own broker goes through the owner too, for the node tracking.
impl BrokerHooks for Owner {
    fn authenticate(&self, info: &ConnectInfo) -> AuthVerdict {
        self.core.authenticate(info)
    }
    fn psk_key(&self, identity: &str) -> Option<Vec<u8>> {
        self.core.psk_key(identity)
    }
    fn on_transport_event(&self, who: &str, name: &str, detail: &str) {
        self.core.on_transport_event(who, name, detail);
    }
    fn allow_subscribe(&self, client_id: &str, topic_filter: &str) -> bool {
        self.core.allow_subscribe(client_id, topic_filter)
    }
    fn allow_publish(&self, client_id: &str, topic: &str) -> bool {
        self.core.allow_publish(client_id, topic)
    }
    fn on_publish(&self, client_id: &str, topic: &str, payload: &[u8], qos: u8) {
        self.core.on_publish(client_id, topic, payload, qos);
    }
    fn on_publish_refused(&self, client_id: &str, topic: &str, payload: &[u8]) {
        self.core.on_publish_refused(client_id, topic, payload);
    }
    fn connack_hold(&self, client_id: &str) -> Option<Hold> {
        self.core.connack_hold(client_id)
    }
    fn suback_hold(&self, client_id: &str, topic_filter: &str) -> Option<Hold> {
        self.core.suback_hold(client_id, topic_filter)
    }
    fn on_subscribed(&self, client_id: &str, topic_filter: &str, granted_qos: u8) {
        self.core
            .on_subscribed(client_id, topic_filter, granted_qos);
    }
    fn on_connected(&self, client_id: &str) {
        self.connected(self.node, client_id);
    }
    fn on_disconnected(&self, client_id: &str, reason: &str) {
        self.disconnected(self.node, client_id, reason);
    }
    fn on_protocol_violation(&self, client_id: &str, detail: &str) {
        self.core.on_protocol_violation(client_id, detail);
    }
    fn on_will(&self, client_id: &str, topic: &str, payload: &[u8]) -> bool {
        self.core.on_will(client_id, topic, payload)
    }
}
