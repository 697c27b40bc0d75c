//! Joining rmqtt's broadcast cluster: the node's server context, its gRPC listener and the
//! `rmqtt-cluster-broadcast` plugin, set up in code rather than from rmqtt's config files.

use rmqtt::context::{CircuitBreakerConfig, CountBasedWindowConfig, ServerContext, WindowConfig};

use super::ClusterConfig;

/// The plugin's name: its settings are looked up under it.
const PLUGIN: &str = "rmqtt-cluster-broadcast";

/// A server context for this node: its id, the cluster's node list, and a circuit breaker
/// that never opens. rmqtt's default one opens for 30 s once a quarter of the calls to a node
/// failed or every call took 2 s, and drops every message for that node meanwhile: on a loaded
/// test machine that loses messages a real Hub would deliver.
pub(crate) async fn context(cluster: &ClusterConfig) -> ServerContext {
    let nodes: Vec<String> = cluster
        .nodes
        .iter()
        .map(|(id, addr)| format!("\"{id}@{addr}\""))
        .collect();
    let settings = format!(
        "node_grpc_addrs = [{}]\nnode_grpc_client_timeout = \"{}ms\"\n",
        nodes.join(", "),
        cluster.peer_timeout.as_millis()
    );
    ServerContext::new()
        .node_id(cluster.node_id)
        .busy_check_enable(false)
        .circuit_breaker_config(CircuitBreakerConfig {
            failure_rate_threshold: 2.0,
            slow_call_rate_threshold: 2.0,
            minimum_number_of_calls: usize::MAX,
            // The default window keeps every call of the last 45 s and rescans them on each
            // call: a tenth of the owner's CPU under load. A count window is constant work.
            window: WindowConfig::CountBased(CountBasedWindowConfig {
                sliding_window_size: 20,
            }),
            ..CircuitBreakerConfig::default()
        })
        .plugins_config_map_add(PLUGIN, settings)
        .build()
        .await
}

/// Starts the node's cluster listener on `addr` and the plugin, which swaps in the cluster's
/// router and session registry. Must run after the hooks are installed and before any listener
/// accepts: sessions made before it would stay in the local registry.
pub(crate) async fn join(scx: &ServerContext, addr: std::net::SocketAddr) -> Result<(), String> {
    // rmqtt retries a failed bind every 3 s in silence: try the port first, for a clear error.
    drop(
        std::net::TcpListener::bind(addr)
            .map_err(|e| format!("the cluster port {addr} cannot be bound: {e}"))?,
    );
    scx.node.start_grpc_server(scx.clone(), addr, true, false);
    rmqtt_cluster_broadcast::register(scx, true, false)
        .await
        .map_err(|e| format!("starting rmqtt-cluster-broadcast: {e:#}"))
}
