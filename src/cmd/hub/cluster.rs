//! `otasim hub` in a cluster: the flags, and an edge node's life.
//!
//! The owner node is a whole `otasim hub` with `--cluster-node` and `--cluster-nodes`; an edge
//! node adds `--cluster-owner`, the owner's control API, and serves only MQTT for devices plus
//! the owner's control API and console, forwarded.

use anyhow::Context as _;
use fake_hub::cluster::{ClusterConfig, Edge, EdgeConfig};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use super::HubArgs;

/// The cluster flags of `otasim hub`.
#[derive(Debug, Clone, clap::Args)]
pub(super) struct ClusterArgs {
    /// Join a cluster as this node id (one of --cluster-nodes); without --cluster-owner this
    /// node owns the Hub's state.
    #[arg(long, value_name = "ID", requires = "cluster_nodes")]
    pub(super) cluster_node: Option<u64>,
    /// Every node of the cluster, this one included: ID@HOST:PORT of its cluster port, which
    /// it binds and the others dial (comma-separated; the same list on every node).
    #[arg(long, value_name = "ID@HOST:PORT,...", value_delimiter = ',', value_parser = parse_node,
          requires = "cluster_node")]
    pub(super) cluster_nodes: Vec<(u64, SocketAddr)>,
    /// Run as an edge node of the cluster whose owner's control API is at HOST:PORT: devices
    /// connect here, the owner decides and records everything.
    #[arg(long, value_name = "HOST:PORT", requires = "cluster_node")]
    pub(super) cluster_owner: Option<SocketAddr>,
    /// How long a node waits on another before giving up on a message or a kick.
    #[arg(long, value_name = "MS", default_value_t = 5000,
          value_parser = clap::value_parser!(u64).range(1..=300_000))]
    pub(super) cluster_peer_timeout_ms: u64,
}

fn parse_node(text: &str) -> Result<(u64, SocketAddr), String> {
    let (id, addr) = text
        .split_once('@')
        .ok_or_else(|| format!("{text:?}: expected ID@HOST:PORT"))?;
    let id = id
        .parse::<u64>()
        .map_err(|e| format!("{text:?}: node id: {e}"))?;
    let addr = addr
        .parse::<SocketAddr>()
        .map_err(|e| format!("{text:?}: address: {e}"))?;
    Ok((id, addr))
}

impl ClusterArgs {
    /// The cluster this node joins, if any.
    pub(super) fn config(&self) -> anyhow::Result<Option<ClusterConfig>> {
        let Some(node_id) = self.cluster_node else {
            return Ok(None);
        };
        let config = ClusterConfig {
            node_id,
            nodes: self.cluster_nodes.clone(),
            peer_timeout: Duration::from_millis(self.cluster_peer_timeout_ms),
        };
        config
            .validate()
            .map_err(|e| anyhow::anyhow!("--cluster-nodes: {e}"))?;
        anyhow::ensure!(
            fake_hub::cluster::AVAILABLE,
            "this otasim was built without cluster support: build it with \
             `cargo build --release --features cluster` (which needs protoc: Debian's \
             protobuf-compiler)"
        );
        Ok(Some(config))
    }
}

/// An edge node: MQTT, and the owner's API and console forwarded, until stopped.
pub(super) async fn run_edge(
    args: &HubArgs,
    cluster: ClusterConfig,
    owner: SocketAddr,
) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.fleet.is_none() && args.firmware.is_empty() && args.transcript.is_none(),
        "an edge node (--cluster-owner) holds no fleet, firmware or transcript: give those to \
         the owner node"
    );
    let node = cluster.node_id;
    let stop = crate::cmd::signal::stop_signal()?;
    let mut config = EdgeConfig::new(SocketAddr::new(args.host, args.mqtt_port), owner, cluster);
    config.owner_token = args.api_token.clone();
    config.max_connections_per_listener = args.max_connections as usize;
    let edge = Edge::start(config)
        .await
        .with_context(|| format!("starting edge node {node}"))?;
    let token = super::api_token(args)?;
    let access = fake_hub::api::ApiAccess {
        token: token.clone(),
        host_names: args.api_host_name.clone(),
    };
    let api = fake_hub::api::serve_proxy(
        super::bind(args.host, args.api_port, "API", "--api-port").await?,
        owner,
        args.api_token.clone(),
        crate::console::router(),
        access,
    )
    .context("starting the edge's control API")?;
    let (mqtt, api_addr) = (edge.local_addr(), api.local_addr());
    say!("listening mqtt={mqtt} api={api_addr} node={node} owner={owner}");
    say!("MQTT:        tcp://{mqtt} (edge node {node}; the owner at {owner} decides)");
    say!("console:     http://{api_addr}/ (the owner's, forwarded)");
    stop.await;
    api.shutdown().await;
    edge.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
