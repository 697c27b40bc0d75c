//! Starting and stopping an embedded rmqtt broker on its own runtime and thread.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rmqtt::context::ServerContext;
use rmqtt::net::{Builder, Listener};
use rmqtt::server::MqttServer;
use rmqtt::types::{ListenerId, QoS};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, info, warn};

use super::connections::Connections;
use super::fitter::{HubFitterManager, Unavailable};
use super::handle::{self, BrokerHandle, Command};
use super::{BrokerConfig, BrokerError, BrokerHooks, TlsListener, hooks};

/// rmqtt keys listener settings by id and panics on a duplicate; with port 0 the default id (the
/// port) would collide, so every listener gets an explicit one.
const TCP_LISTENER_ID: ListenerId = 1;
/// The mutual-TLS listener's id; the hooks tell TLS connections by it.
pub(super) const TLS_LISTENER_ID: ListenerId = 2;

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

/// Sets rmqtt up on the current runtime and spawns its tasks; returns the bound addresses.
async fn serve(
    config: BrokerConfig,
    hooks: Arc<dyn BrokerHooks>,
    connections: Arc<Connections>,
    commands: mpsc::UnboundedReceiver<Command>,
) -> Result<(SocketAddr, Option<SocketAddr>), BrokerError> {
    // Busy checking refuses CONNECTs with code 3 on a loaded machine (a test run is one).
    let scx = ServerContext::new().busy_check_enable(false).build().await;
    let unavailable = Arc::new(Unavailable::default());
    *scx.extends.fitter_mgr_mut().await = Box::new(HubFitterManager {
        unavailable: unavailable.clone(),
    });
    hooks::install(&scx, hooks, connections, unavailable).await;

    let listener = bind_tcp(config.mqtt_addr).await?;
    let local_addr = bound_addr(&listener, config.mqtt_addr)?;
    // `run()` rather than `start()`: `start()` calls `process::exit` when a listener fails.
    let mut server = MqttServer::new(scx.clone()).listener_by_id(listener, TCP_LISTENER_ID);
    let mut tls_addr = None;
    if let Some(tls) = &config.tls {
        let listener = bind_tls(tls)?;
        tls_addr = Some(bound_addr(&listener, tls.addr)?);
        server = server.listener_by_id(listener, TLS_LISTENER_ID);
    }
    let server = server.build();
    tokio::spawn(async move {
        if let Err(e) = server.run().await {
            error!(error = %e, "broker stopped serving");
        }
    });
    tokio::spawn(handle::drain(scx, commands));
    Ok((local_addr, tls_addr))
}

fn bound_addr(listener: &Listener, asked: SocketAddr) -> Result<SocketAddr, BrokerError> {
    listener.local_addr().map_err(|e| BrokerError::Bind {
        addr: asked,
        source: to_io_error(e),
    })
}

/// The mutual-TLS listener: clients must present a certificate signed by the hub's CA, and the
/// certificate's details reach the authentication hook.
fn bind_tls(tls: &TlsListener) -> Result<Listener, BrokerError> {
    let path = |p: &std::path::Path| p.to_string_lossy().into_owned();
    listener_builder(tls.addr)
        .name("fake-hub/tls")
        .tls_cert(Some(path(&tls.cert)))
        .tls_key(Some(path(&tls.key)))
        .tls_client_ca_certs(Some(path(&tls.client_ca)))
        .tls_cross_certificate(true)
        .collect_cert_info(true)
        .bind()
        .and_then(|l| l.tls())
        .map_err(|e| BrokerError::Bind {
            addr: tls.addr,
            source: to_io_error(e),
        })
}

/// The settings every listener shares (a TLS listener would add its certificate files).
fn listener_builder(addr: SocketAddr) -> Builder {
    Builder::new()
        .name("fake-hub/tcp")
        .laddr(addr)
        // Without it every QoS 1 exchange waits about 40 ms for delayed ACKs.
        .nodelay(true)
        // A restarted hub binds its old port while old connections sit in TIME_WAIT.
        .reuseaddr(Some(true))
        // Otherwise a CONNECT without a username is accepted without reaching the auth hook.
        .allow_anonymous(false)
        // The Hub speaks QoS 0 and 1 only; a QoS 2 subscription is granted 1.
        .max_qos_allowed(QoS::AtLeastOnce)
        .max_packet_size(MAX_PACKET_BYTES)
}

async fn bind_tcp(addr: SocketAddr) -> Result<Listener, BrokerError> {
    let mut attempt = 1;
    loop {
        let result = listener_builder(addr).bind().and_then(|l| l.tcp());
        match result.map_err(to_io_error) {
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

/// rmqtt errors are `anyhow` errors; keep an I/O error's kind when there is one.
fn to_io_error(e: rmqtt::Error) -> io::Error {
    match e.downcast::<io::Error>() {
        Ok(e) => e,
        Err(e) => io::Error::other(format!("{e:#}")),
    }
}
