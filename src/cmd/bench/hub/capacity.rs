//! The bench clients' own cost, measured against mosquitto alone: many connections, each
//! subscribed to its own topic and publishing the bench's progress reports to it, so every
//! message is one publish sent and one received through the same client code the fleet uses.
//! Its CPU time per message says how many messages a second one core of clients can drive; a
//! hub run far below that is not held back by its clients.

use super::client::{Client, Counters, Login};
use super::proc::{self, CpuTime};
use anyhow::Context as _;
use rumqttc::QoS;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// What the probe measured.
pub(super) struct Capacity {
    pub(super) clients: usize,
    pub(super) messages: u64,
    pub(super) wall: Duration,
    pub(super) cpu: Option<Duration>,
}

impl Capacity {
    /// Microseconds of client CPU per message (sent or received).
    pub(super) fn cpu_us_per_msg(&self) -> Option<f64> {
        Some(self.cpu?.as_secs_f64() * 1e6 / self.messages.max(1) as f64)
    }
}

/// `clients` connections to mosquitto at `addr`, each publishing `per_client` QoS 1 messages
/// to its own topic and reading them back; all within `limit`.
pub(super) async fn probe(
    addr: SocketAddr,
    clients: usize,
    per_client: usize,
    limit: Duration,
) -> anyhow::Result<Capacity> {
    let counters = Arc::new(Counters::default());
    let run = async {
        let connected = connect(addr, clients, &counters).await?;
        let cpu_before = CpuTime::of(None);
        let started = Instant::now();
        let mut workers = JoinSet::new();
        for (i, client) in connected.into_iter().enumerate() {
            workers.spawn(echo(client, format!("bench/capacity/{i}"), per_client));
        }
        while let Some(done) = workers.join_next().await {
            done.context("client task")??;
        }
        anyhow::Ok(Capacity {
            clients,
            messages: counters.total(),
            wall: started.elapsed(),
            cpu: proc::cpu_used(cpu_before, CpuTime::of(None)),
        })
    };
    tokio::time::timeout(limit, run)
        .await
        .with_context(|| format!("the client probe did not finish within {limit:?}"))?
}

async fn connect(
    addr: SocketAddr,
    clients: usize,
    counters: &Arc<Counters>,
) -> anyhow::Result<Vec<Client>> {
    let gate = Arc::new(Semaphore::new(100));
    let mut tasks = JoinSet::new();
    for i in 0..clients {
        let (gate, counters) = (gate.clone(), counters.clone());
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await?;
            let id = format!("bench-capacity-{i}");
            Client::connect(addr, Login::Anonymous(&id), counters).await
        });
    }
    let mut out = Vec::with_capacity(clients);
    while let Some(done) = tasks.join_next().await {
        out.push(done.context("connect task")??);
    }
    Ok(out)
}

async fn echo(mut client: Client, topic: String, count: usize) -> anyhow::Result<()> {
    client.subscribe(&topic).await?;
    let body = json!({"type": "report_progress", "report": {"progress": {
        "state": "downloading", "percent": "50", "result_code": "0", "result_msg": ""},
        "version": "2.0"}});
    for _ in 0..count {
        client.publish(&topic, QoS::AtLeastOnce, &body).await?;
    }
    let mut got = 0;
    while got < count {
        let (t, _) = client.next().await?;
        if t == topic {
            got += 1;
        }
    }
    Ok(())
}
