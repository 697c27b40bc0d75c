//! Starting and stopping an embedded rmqtt broker on its own runtime and thread.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rmqtt::context::ServerContext;
use rmqtt::net::{Builder, Listener};
use rmqtt::server::MqttServer;
use rmqtt::types::{ListenerId, QoS};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, info, warn};

use super::connections::Connections;
use super::fitter::{HubFitterManager, Unavailable};
use super::front::{self, Front, FrontKind, PeerBook};
use super::handle::{self, BrokerHandle, Command};
use super::{BrokerConfig, BrokerError, BrokerHooks, hooks};

/// rmqtt keys listener settings by id and panics on a duplicate; with port 0 the default id (the
/// port) would collide, so its one internal listener gets an explicit one.
const TCP_LISTENER_ID: ListenerId = 1;

/// The largest MQTT packet accepted: 16 KB of payload (the Hub's message limit) plus room for
/// the topic and header. A larger packet is a protocol error and the client is disconnected.
pub(crate) const MAX_PACKET_BYTES: u32 = 16 * 1024 + 512;

/// How often a bind on an explicit port is retried when the port is still in use.
const BIND_ATTEMPTS: u32 = 20;
/// Pause between bind attempts: a restart on the same port can meet an outgoing connection
/// that briefly holds it as its ephemeral source port.
const BIND_RETRY_DELAY: Duration = Duration::from_millis(50);

/// An embedded rmqtt broker running on its own tokio runtime and thread.
///
/// Dropping it stops it without waiting; [`Broker::shutdown`] stops it and waits.
pub(crate) struct Broker {
    local_addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
    handle: BrokerHandle,
    connections: Arc<Connections>,
    stop: Option<oneshot::Sender<()>>,
    stopped: Option<oneshot::Receiver<()>>,
}

/// What the broker thread reports once its listeners are bound: the plain and TLS addresses.
type Ready = Result<(SocketAddr, Option<SocketAddr>), BrokerError>;

impl Broker {
    /// Starts a broker; returns once the listener is bound and authentication is in force.
    pub(crate) async fn start(
        config: BrokerConfig,
        hooks: Arc<dyn BrokerHooks>,
    ) -> Result<Broker, BrokerError> {
        let connections = Arc::new(Connections::default());
        let (commands_tx, commands_rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = oneshot::channel::<Ready>();
        let (stop_tx, stop_rx) = oneshot::channel();
        let (stopped_tx, stopped_rx) = oneshot::channel();

        let thread_connections = connections.clone();
        std::thread::Builder::new()
            .name("fake-hub-broker".to_owned())
            .spawn(move || {
                run_thread(
                    config,
                    hooks,
                    thread_connections,
                    commands_rx,
                    ready_tx,
                    stop_rx,
                );
                // Sent after the runtime is dropped: every socket is closed by now.
                let _ = stopped_tx.send(());
            })
            .map_err(BrokerError::Runtime)?;

        let (local_addr, tls_addr) = ready_rx.await.map_err(|_| BrokerError::Stopped)??;
        info!(%local_addr, ?tls_addr, "broker listening");
        Ok(Broker {
            local_addr,
            tls_addr,
            handle: BrokerHandle::new(commands_tx, connections.clone()),
            connections,
            stop: Some(stop_tx),
            stopped: Some(stopped_rx),
        })
    }

    /// The address the MQTT listener is bound to.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address the mutual-TLS listener is bound to, if there is one.
    pub(crate) fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// A cheap handle for publishing and kicking, usable from hooks and other threads.
    pub(crate) fn handle(&self) -> BrokerHandle {
        self.handle.clone()
    }

    /// Stops the broker and waits until every connection is closed and the port is free.
    ///
    /// Clients see their connection end; `on_disconnected` is not called for them.
    pub(crate) async fn shutdown(mut self) {
        self.stop_now();
        if let Some(stopped) = self.stopped.take() {
            // An error only means the thread is gone already, which is what we wait for.
            let _ = stopped.await;
        }
        info!(local_addr = %self.local_addr, "broker stopped");
    }

    fn stop_now(&mut self) {
        self.connections.clear();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// The broker thread: builds the runtime, serves until told to stop, then drops the runtime,
/// which drops every rmqtt task and so closes the listener and every connection.
fn run_thread(
    config: BrokerConfig,
    hooks: Arc<dyn BrokerHooks>,
    connections: Arc<Connections>,
    commands: mpsc::UnboundedReceiver<Command>,
    ready: oneshot::Sender<Ready>,
    stop: oneshot::Receiver<()>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = ready.send(Err(BrokerError::Runtime(e)));
            return;
        }
    };
    runtime.block_on(async move {
        match serve(config, hooks, connections, commands).await {
            Ok(addrs) => {
                if ready.send(Ok(addrs)).is_err() {
                    debug!("broker start was abandoned, stopping");
                    return;
                }
                // Err means the Broker was dropped: stop as well.
                let _ = stop.await;
            }
            Err(e) => {
                let _ = ready.send(Err(e));
            }
        }
    });
    drop(runtime);
}

/// Sets rmqtt up on the current runtime behind the listener front, and spawns their tasks;
/// returns the public addresses.
async fn serve(
    config: BrokerConfig,
    hooks: Arc<dyn BrokerHooks>,
    connections: Arc<Connections>,
    commands: mpsc::UnboundedReceiver<Command>,
) -> Result<(SocketAddr, Option<SocketAddr>), BrokerError> {
    let scx = context(config.cluster.as_ref()).await?;
    let unavailable = Arc::new(Unavailable::default());
    *scx.extends.fitter_mgr_mut().await = Box::new(HubFitterManager {
        unavailable: unavailable.clone(),
    });
    let peers = Arc::new(PeerBook::default());
    hooks::install(&scx, hooks.clone(), connections, unavailable, peers.clone()).await;
    join_cluster(&scx, config.cluster.as_ref()).await?;

    // rmqtt's own listener: loopback, an OS-assigned port, reached only through the front.
    let internal = SocketAddr::from(([127, 0, 0, 1], 0));
    let listener = listener_builder(internal)
        .bind()
        .and_then(|l| l.tcp())
        .map_err(|e| BrokerError::Bind {
            addr: internal,
            source: to_io_error(e),
        })?;
    let upstream = bound_addr(&listener, internal)?;
    // `run()` rather than `start()`: `start()` calls `process::exit` when a listener fails.
    let server = MqttServer::new(scx.clone())
        .listener_by_id(listener, TCP_LISTENER_ID)
        .build();

    let front = Front {
        upstream,
        peers,
        hooks: hooks.clone(),
        limits: config.limits,
    };
    // Everything that can fail is checked before any listener accepts.
    let tls = match &config.tls {
        Some(tls) => Some((
            front::tls_kind(tls, hooks).map_err(BrokerError::Tls)?,
            bind_front(tls.addr).await?,
        )),
        None => None,
    };
    let plain = bind_front(config.mqtt_addr).await?;
    let local_addr = front_addr(&plain, config.mqtt_addr)?;
    let tls_addr = match &tls {
        Some((_, l)) => Some(front_addr(l, config.mqtt_addr)?),
        None => None,
    };
    tokio::spawn(async move {
        if let Err(e) = server.run().await {
            error!(error = %e, "broker stopped serving");
        }
    });
    tokio::spawn(front.clone().serve(plain, FrontKind::Plain));
    if let Some((kind, listener)) = tls {
        tokio::spawn(front.serve(listener, kind));
    }
    let lanes = if config.cluster.is_some() {
        handle::CLUSTER_LANES
    } else {
        1
    };
    tokio::spawn(handle::drain(scx, commands, lanes));
    Ok((local_addr, tls_addr))
}

/// rmqtt's server context: alone, or this node's in a cluster.
async fn context(
    cluster: Option<&crate::cluster::ClusterConfig>,
) -> Result<ServerContext, BrokerError> {
    match cluster {
        // Busy checking refuses CONNECTs with code 3 on a loaded machine (a test run is one).
        None => Ok(ServerContext::new().busy_check_enable(false).build().await),
        #[cfg(feature = "cluster")]
        Some(cluster) => Ok(crate::cluster::plugin::context(cluster).await),
        #[cfg(not(feature = "cluster"))]
        Some(_) => Err(BrokerError::Cluster(
            "this build has no cluster support (build with `--features cluster`)".into(),
        )),
    }
}

/// Joins the cluster, if there is one: after the hooks, before any listener accepts.
async fn join_cluster(
    scx: &ServerContext,
    cluster: Option<&crate::cluster::ClusterConfig>,
) -> Result<(), BrokerError> {
    let Some(cluster) = cluster else {
        return Ok(());
    };
    let addr = cluster
        .validate()
        .map_err(|e| BrokerError::Cluster(e.to_string()))?;
    #[cfg(feature = "cluster")]
    return crate::cluster::plugin::join(scx, addr)
        .await
        .map_err(BrokerError::Cluster);
    #[cfg(not(feature = "cluster"))]
    {
        let _ = (scx, addr);
        Err(BrokerError::Cluster(
            "this build has no cluster support".into(),
        ))
    }
}

fn bound_addr(listener: &Listener, asked: SocketAddr) -> Result<SocketAddr, BrokerError> {
    listener.local_addr().map_err(|e| BrokerError::Bind {
        addr: asked,
        source: to_io_error(e),
    })
}

fn front_addr(listener: &TcpListener, asked: SocketAddr) -> Result<SocketAddr, BrokerError> {
    listener.local_addr().map_err(|source| BrokerError::Bind {
        addr: asked,
        source,
    })
}

/// Binds a public listener, retrying a busy explicit port for a moment.
async fn bind_front(addr: SocketAddr) -> Result<TcpListener, BrokerError> {
    let mut attempt = 1;
    loop {
        match try_bind(addr) {
            Ok(listener) => return Ok(listener),
            Err(e)
                if e.kind() == io::ErrorKind::AddrInUse
                    && addr.port() != 0
                    && attempt < BIND_ATTEMPTS =>
            {
                warn!(%addr, attempt, "MQTT port still in use, retrying");
                attempt += 1;
                tokio::time::sleep(BIND_RETRY_DELAY).await;
            }
            Err(source) => return Err(BrokerError::Bind { addr, source }),
        }
    }
}

fn try_bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    // A restarted hub binds its old port while old connections sit in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// The settings of rmqtt's internal listener.
fn listener_builder(addr: SocketAddr) -> Builder {
    Builder::new()
        .name("fake-hub/tcp")
        .laddr(addr)
        // Without it every QoS 1 exchange waits about 40 ms for delayed ACKs.
        .nodelay(true)
        // Otherwise a CONNECT without a username is accepted without reaching the auth hook.
        .allow_anonymous(false)
        // The Hub speaks QoS 0 and 1 only; a QoS 2 subscription is granted 1.
        .max_qos_allowed(QoS::AtLeastOnce)
        .max_packet_size(MAX_PACKET_BYTES)
}

/// rmqtt errors are `anyhow` errors; keep an I/O error's kind when there is one.
fn to_io_error(e: rmqtt::Error) -> io::Error {
    match e.downcast::<io::Error>() {
        Ok(e) => e,
        Err(e) => io::Error::other(format!("{e:#}")),
    }
}
