//! The hub across processes: N broker nodes on rmqtt's broadcast cluster, one Hub.
//!
//! Routing is rmqtt's: every node runs `rmqtt-cluster-broadcast`, so a publish on any node
//! (a device's, or the Hub's own) reaches subscribers on every node, and a kick or a second
//! CONNECT with the same client id on another node ends the old connection wherever it is.
//!
//! The Hub's state has one owner. The owner node runs the whole Hub (registry, topology, OTA,
//! tasks, faults, transcript, COS, control API); every other node is an edge: a broker whose
//! hook calls (CONNECT, SUBSCRIBE and PUBLISH decisions, connection events) the owner answers,
//! in order, over one HTTP stream per edge (see `edge`). Partitioning the state by device
//! would split what the Hub decides across nodes (a gateway and its subdevices, a task and its
//! devices, one clock for URL expiry) and need a consensus protocol of its own; one owner keeps
//! every rule in one place, exactly as on one node, and an edge adds one loopback or LAN round
//! trip per batch of calls.

mod edge;
mod owner;
pub(crate) mod wire;

#[cfg(feature = "cluster")]
pub(crate) mod plugin;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub(crate) use edge::{OwnerApi, RemoteHooks};
pub(crate) use owner::{Owner, SOLO_NODE};
pub(crate) use wire::{Answer, BATCH_PATH, Batch, HOLD_PATH, Hold, MAX_BATCH_BYTES};

use crate::broker::{Broker, BrokerConfig, FrontLimits};
use crate::{DEFAULT_CONNECT_DEADLINE, DEFAULT_MAX_CONNECTIONS, HubError};

/// Whether this build can join a cluster (built with the `cluster` feature).
pub const AVAILABLE: bool = cfg!(feature = "cluster");

/// This node's place in a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// This node's id (1 to 65535), one of `nodes`.
    pub node_id: u64,
    /// Every node of the cluster, this one included: its id and the address its cluster
    /// (gRPC) listener binds and the others dial. Ports must be fixed: each node dials every
    /// other node's from the start.
    pub nodes: Vec<(u64, SocketAddr)>,
    /// How long a node waits on another node's answer before giving up on it.
    pub peer_timeout: Duration,
}

impl ClusterConfig {
    /// Checks the node list: at least two nodes, unique ids and addresses, fixed ports, and
    /// this node among them; answers this node's cluster address.
    pub fn validate(&self) -> Result<SocketAddr, HubError> {
        let invalid = |reason: String| HubError::Invalid {
            field: "cluster",
            reason,
        };
        if self.nodes.len() < 2 {
            return Err(invalid("a cluster has at least two nodes".into()));
        }
        if self.nodes.len() > 64 {
            return Err(invalid("at most 64 nodes".into()));
        }
        for (i, (id, addr)) in self.nodes.iter().enumerate() {
            if *id == 0 || *id > u64::from(u16::MAX) {
                return Err(invalid(format!("node id {id} is not in 1..=65535")));
            }
            if addr.port() == 0 {
                return Err(invalid(format!(
                    "node {id}: the cluster port must be fixed, not 0"
                )));
            }
            if let Some((other, _)) = self.nodes[..i].iter().find(|(o, a)| o == id || a == addr) {
                return Err(invalid(format!(
                    "node {id} at {addr} repeats node {other}'s id or address"
                )));
            }
        }
        if self.peer_timeout.is_zero() || self.peer_timeout > Duration::from_secs(300) {
            return Err(invalid("peer_timeout must be in 1 ms..=300 s".into()));
        }
        self.nodes
            .iter()
            .find(|(id, _)| *id == self.node_id)
            .map(|(_, addr)| *addr)
            .ok_or_else(|| invalid(format!("node {} is not in the node list", self.node_id)))
    }
}

/// How an edge node listens and where its owner is.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// The edge's MQTT listener.
    pub mqtt_addr: SocketAddr,
    /// The owner node's control API.
    pub owner_api: SocketAddr,
    /// The owner's control API token, if it has one.
    pub owner_token: Option<String>,
    /// This node's place in the cluster.
    pub cluster: ClusterConfig,
    /// As [`crate::HubConfig::connect_deadline`].
    pub connect_deadline: Duration,
    /// As [`crate::HubConfig::max_connections_per_listener`].
    pub max_connections_per_listener: usize,
}

impl EdgeConfig {
    /// An edge on `mqtt_addr` for the owner whose control API is at `owner_api`.
    pub fn new(mqtt_addr: SocketAddr, owner_api: SocketAddr, cluster: ClusterConfig) -> Self {
        EdgeConfig {
            mqtt_addr,
            owner_api,
            owner_token: None,
            cluster,
            connect_deadline: DEFAULT_CONNECT_DEADLINE,
            max_connections_per_listener: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// A running edge node: MQTT for devices, every decision made by the owner.
pub struct Edge {
    broker: Broker,
    drain: tokio::task::JoinHandle<()>,
}

impl Edge {
    /// Starts the edge's broker in the cluster; the owner need not be up yet (CONNECTs are
    /// refused with code 3 until it is).
    pub async fn start(config: EdgeConfig) -> Result<Edge, HubError> {
        config.cluster.validate()?;
        if config.max_connections_per_listener == 0 {
            return Err(HubError::Invalid {
                field: "max_connections_per_listener",
                reason: "must be at least 1".into(),
            });
        }
        let owner = OwnerApi {
            addr: config.owner_api,
            token: config.owner_token.clone(),
        };
        let (hooks, drain) = RemoteHooks::new(config.cluster.node_id, owner);
        let drain = tokio::spawn(drain);
        let broker = Broker::start(
            BrokerConfig {
                mqtt_addr: config.mqtt_addr,
                tls: None,
                limits: FrontLimits {
                    connect_deadline: config.connect_deadline,
                    max_connections: config.max_connections_per_listener,
                },
                cluster: Some(config.cluster),
            },
            Arc::clone(&hooks) as _,
        )
        .await
        .map_err(crate::broker_error)?;
        Ok(Edge { broker, drain })
    }

    /// The MQTT listener's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.broker.local_addr()
    }

    /// Stops the edge and waits until its connections are closed.
    pub async fn shutdown(self) {
        self.broker.shutdown().await;
        self.drain.abort();
    }
}
