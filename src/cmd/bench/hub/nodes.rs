//! `otasim bench hub --nodes N`: the same fleet and task on one hub, then on a cluster of N
//! nodes (an owner and N-1 edge nodes, each an `otasim hub` process, on loopback), with the
//! gateways spread evenly over the nodes. Printed side by side.

use anyhow::Context as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use super::client::Counters;
use super::{
    Fleet, HubProcess, bounded, connect_all, cores, hub_command, line_addr, listening_line,
    max_connections, start_hub, start_hub_with, update_all,
};

/// What one run measured.
struct Run {
    connect: Duration,
    update: Duration,
    messages: u64,
    succeeded: u64,
    rss_mib: Option<f64>,
}

pub(super) async fn run(fleet: Fleet, nodes: usize) -> anyhow::Result<ExitCode> {
    // A size one process cannot hold (its open-file limit) is reported, and the cluster still
    // runs: that is what the cluster is for.
    let one = measure(&fleet, 1).await.context("on one hub");
    let many = measure(&fleet, nodes)
        .await
        .with_context(|| format!("on {nodes} nodes"));
    say!(
        "otasim bench hub --nodes {nodes}: {} gateways x {} subdevices, {}-byte firmware, {} cores, \
         gateways spread evenly over the nodes",
        fleet.gateways,
        fleet.subdevices,
        fleet.firmware_bytes,
        cores()
    );
    say!(
        "{:<10} {:>10} {:>18} {:>10} {:>14} {:>18}",
        "nodes",
        "connect",
        "update (1 task)",
        "msg/s",
        "succeeded",
        "RSS (all nodes)"
    );
    for (n, r) in [(1, &one), (nodes, &many)] {
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                say!("{n:<10} FAILED: {e:#}");
                continue;
            }
        };
        let rss = r
            .rss_mib
            .map_or("n/a".to_owned(), |m| format!("{m:.1} MiB"));
        say!(
            "{:<10} {:>8.2} s {:>16.2} s {:>10.0} {:>14} {:>18}",
            n,
            r.connect.as_secs_f64(),
            r.update.as_secs_f64(),
            r.messages as f64 / r.update.as_secs_f64(),
            format!("{}/{}", r.succeeded, fleet.devices()),
            rss
        );
    }
    say!(
        "on one machine every node shares its cores: the cluster prices the owner's stream and \
         rmqtt's routing between nodes, it does not add CPU"
    );
    let all = fleet.devices() as u64;
    let passed = |r: &anyhow::Result<Run>| r.as_ref().is_ok_and(|r| r.succeeded == all);
    Ok(if passed(&one) && passed(&many) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn measure(fleet: &Fleet, nodes: usize) -> anyhow::Result<Run> {
    let dir = tempfile::tempdir()?;
    let limit = fleet.phase_timeout;
    let hub = if nodes == 1 {
        bounded("starting the hub", limit, start_hub(dir.path(), fleet)).await?
    } else {
        bounded(
            "starting the cluster",
            limit,
            start_cluster(dir.path(), fleet, nodes),
        )
        .await?
    };
    let counters = Arc::new(Counters::default());
    let result = async {
        let (ready, connect) =
            bounded("connecting", limit, connect_all(&hub, fleet, &counters)).await?;
        let updated = bounded(
            "the update",
            limit,
            update_all(&hub, fleet, ready, &counters),
        )
        .await?;
        anyhow::Ok(Run {
            connect,
            update: updated.elapsed,
            messages: updated.messages,
            succeeded: updated.succeeded,
            rss_mib: hub.peak_rss_mib(),
        })
    }
    .await;
    hub.stop().await;
    result
}

/// The owner with the fleet, then the edge nodes, on loopback cluster ports.
async fn start_cluster(
    dir: &std::path::Path,
    fleet: &Fleet,
    nodes: usize,
) -> anyhow::Result<HubProcess> {
    let ports = cluster_ports(nodes)?;
    let list = ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{}@127.0.0.1:{p}", i + 1))
        .collect::<Vec<_>>()
        .join(",");
    let cluster = |node: usize| {
        vec![
            "--cluster-node".to_owned(),
            node.to_string(),
            "--cluster-nodes".to_owned(),
            list.clone(),
        ]
    };
    let mut hub = start_hub_with(dir, fleet, &cluster(1)).await?;
    // Each edge holds its share of the gateways.
    let share = fleet.gateways.div_ceil(nodes);
    let cap = max_connections(&Fleet {
        gateways: share,
        ..*fleet
    });
    for node in 2..=nodes {
        let mut child = hub_command(cap)?
            .args(cluster(node))
            .arg("--cluster-owner")
            .arg(hub.api.to_string())
            .spawn()
            .context("starting an edge node")?;
        let first = listening_line(&mut child, fleet.phase_timeout).await?;
        let mqtt = line_addr(&first, "mqtt")?;
        hub.edges.push((child, mqtt));
    }
    Ok(hub)
}

/// Free loopback ports for the nodes' cluster listeners, which must be fixed up front.
fn cluster_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let held = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .context("finding free cluster ports")?;
    held.iter().map(|l| Ok(l.local_addr()?.port())).collect()
}
