//! The listener front: every public MQTT port is a small TCP front owned by the hub, in front of
//! rmqtt's one internal plain listener on loopback.
//!
//! The front accepts, caps the connections of each listener, gives each connection a deadline
//! for its complete CONNECT (rmqtt's own protocol probe has none, so idle sockets would pile up
//! until descriptors run out), terminates TLS with OpenSSL on the TLS port (PSK, server
//! certificate, or mutual TLS), and then pipes bytes both ways. For each piped connection it
//! records, under the local address rmqtt sees as the peer, the real peer and how the handshake
//! authenticated it: the auth hook reads that record through [`PeerBook`].

mod frame;
mod ssl;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openssl::ssl::{Ssl, SslContext};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_openssl::SslStream;
use tracing::{debug, warn};

use super::server::MAX_PACKET_BYTES;
use super::{BrokerHooks, TlsListener, Transport};
use frame::FirstPacket;
pub(crate) use ssl::PskSeen;

/// Limits every public listener enforces before rmqtt sees a byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrontLimits {
    /// How long a new connection has to finish its TLS handshake and send its whole CONNECT.
    pub(crate) connect_deadline: Duration,
    /// How many connections one listener holds at once; more are closed at accept.
    pub(crate) max_connections: usize,
}

/// A piped connection as the auth hook sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PeerRecord {
    /// The client's real address.
    pub(crate) peer: SocketAddr,
    /// What the transport proved about the client.
    pub(crate) transport: Transport,
    conn: u64,
}

/// Piped connections by the front's outbound local address (rmqtt's view of the peer).
#[derive(Debug, Default)]
pub(crate) struct PeerBook {
    peers: Mutex<HashMap<SocketAddr, PeerRecord>>,
    next: AtomicU64,
}

impl PeerBook {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, PeerRecord>> {
        self.peers
            .lock()
            .expect("peer book lock: no code panics while holding it")
    }

    fn insert(&self, local: SocketAddr, peer: SocketAddr, transport: Transport) -> u64 {
        let conn = self.next.fetch_add(1, Ordering::Relaxed);
        let record = PeerRecord {
            peer,
            transport,
            conn,
        };
        self.lock().insert(local, record);
        conn
    }

    /// Removes the record only if it is still this connection's (the port may be reused).
    fn remove(&self, local: SocketAddr, conn: u64) {
        let mut peers = self.lock();
        if peers.get(&local).is_some_and(|r| r.conn == conn) {
            peers.remove(&local);
        }
    }

    /// The record of the connection rmqtt sees coming from `local`.
    pub(crate) fn get(&self, local: SocketAddr) -> Option<PeerRecord> {
        self.lock().get(&local).cloned()
    }
}

/// Whether a listener is plain TCP or the TLS port.
#[derive(Clone)]
pub(crate) enum FrontKind {
    /// Plain MQTT.
    Plain,
    /// TLS (PSK, server certificate or mutual), terminated here.
    Tls(SslContext),
}

impl FrontKind {
    fn name(&self) -> &'static str {
        match self {
            FrontKind::Plain => "mqtt",
            FrontKind::Tls(_) => "tls",
        }
    }
}

/// Builds the TLS port's OpenSSL context.
pub(crate) fn tls_kind(tls: &TlsListener, hooks: Arc<dyn BrokerHooks>) -> io::Result<FrontKind> {
    ssl::context(tls, hooks)
        .map(FrontKind::Tls)
        .map_err(|e| io::Error::other(format!("TLS context: {e}")))
}

/// What a front needs to serve: where rmqtt listens, the book, the hooks, the limits.
#[derive(Clone)]
pub(crate) struct Front {
    pub(crate) upstream: SocketAddr,
    pub(crate) peers: Arc<PeerBook>,
    pub(crate) hooks: Arc<dyn BrokerHooks>,
    pub(crate) limits: FrontLimits,
}

/// How a connection ended before it was piped, for the transcript.
#[derive(Debug, thiserror::Error)]
enum Refused {
    #[error("no complete CONNECT within {0} ms")]
    Deadline(u128),
    #[error("{0}")]
    Tls(String),
    #[error("first packet is not CONNECT (byte 0x{0:02x})")]
    NotConnect(u8),
    #[error("CONNECT larger than {MAX_PACKET_BYTES} bytes")]
    TooLarge,
    #[error("closed before CONNECT")]
    Closed,
    #[error("{0}")]
    Io(#[from] io::Error),
}

impl Front {
    /// Accepts on `listener` until the runtime stops; one task per connection, capped.
    pub(crate) async fn serve(self, listener: TcpListener, kind: FrontKind) {
        let permits = Arc::new(Semaphore::new(self.limits.max_connections));
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors or a reset before accept: back off briefly, go on.
                    warn!(error = %e, listener = kind.name(), "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            };
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                let detail = format!(
                    "{} listener full ({} connections); closed {peer}",
                    kind.name(),
                    self.limits.max_connections
                );
                self.hooks
                    .on_transport_event(&peer.to_string(), "connection refused", &detail);
                continue;
            };
            let front = self.clone();
            let kind = kind.clone();
            tokio::spawn(async move {
                front.serve_one(tcp, peer, kind).await;
                drop(permit);
            });
        }
    }

    async fn serve_one(&self, tcp: TcpStream, peer: SocketAddr, kind: FrontKind) {
        let _ = tcp.set_nodelay(true);
        let deadline = Instant::now() + self.limits.connect_deadline;
        let result = match kind {
            FrontKind::Plain => self.plain(tcp, peer, deadline).await,
            FrontKind::Tls(ctx) => self.tls(tcp, peer, &ctx, deadline).await,
        };
        if let Err((who, refused)) = result {
            debug!(%peer, %refused, "connection refused by the front");
            let name = match refused {
                Refused::Tls(_) => "tls refused",
                _ => "connection refused",
            };
            self.hooks
                .on_transport_event(&who, name, &format!("{refused} (from {peer})"));
        }
    }

    async fn plain(
        &self,
        mut tcp: TcpStream,
        peer: SocketAddr,
        deadline: Instant,
    ) -> Result<(), (String, Refused)> {
        let who = peer.to_string();
        let first = read_connect(&mut tcp, deadline, self.limits.connect_deadline)
            .await
            .map_err(|e| (who.clone(), e))?;
        self.pipe(tcp, first, peer, Transport::Plain)
            .await
            .map_err(|e| (who, e.into()))
    }

    async fn tls(
        &self,
        tcp: TcpStream,
        peer: SocketAddr,
        ctx: &SslContext,
        deadline: Instant,
    ) -> Result<(), (String, Refused)> {
        let who = peer.to_string();
        let tls_err = |e: openssl::error::ErrorStack| (who.clone(), Refused::Tls(e.to_string()));
        let ssl = Ssl::new(ctx).map_err(tls_err)?;
        let mut stream = SslStream::new(ssl, tcp).map_err(tls_err)?;
        let handshake = tokio::time::timeout_at(deadline, Pin::new(&mut stream).accept()).await;
        let seen = ssl::psk_seen(stream.ssl());
        let who = match &seen {
            Some(PskSeen::Known(id) | PskSeen::Unknown(id)) => id.clone(),
            None => who,
        };
        match handshake {
            Err(_) => {
                let ms = self.limits.connect_deadline.as_millis();
                return Err((who, Refused::Deadline(ms)));
            }
            Ok(Err(e)) => return Err((who, Refused::Tls(describe_tls_failure(&seen, &e)))),
            Ok(Ok(())) => {}
        }
        let transport = match (&seen, ssl::client_common_name(stream.ssl())) {
            (Some(PskSeen::Known(identity)), _) => Transport::TlsPsk {
                identity: identity.clone(),
            },
            (_, Some(common_name)) => Transport::TlsCert { common_name },
            _ => Transport::Tls,
        };
        let first = read_connect(&mut stream, deadline, self.limits.connect_deadline)
            .await
            .map_err(|e| (who.clone(), e))?;
        self.pipe(stream, first, peer, transport)
            .await
            .map_err(|e| (who, e.into()))
    }

    /// Connects to rmqtt, records the connection, forwards the CONNECT, then copies both ways,
    /// judging every PUBLISH from the client against the Hub's limits.
    async fn pipe<S>(
        &self,
        client: S,
        first: Vec<u8>,
        peer: SocketAddr,
        transport: Transport,
    ) -> io::Result<()>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let (level, client_id) = frame::connect_summary(&first).unwrap_or((4, peer.to_string()));
        let upstream = TcpStream::connect(self.upstream).await?;
        upstream.set_nodelay(true)?;
        let local = upstream.local_addr()?;
        let conn = self.peers.insert(local, peer, transport);
        let (mut client_rx, mut client_tx) = tokio::io::split(client);
        let (mut broker_rx, mut broker_tx) = upstream.into_split();
        let result = async {
            broker_tx.write_all(&first).await?;
            // Either direction ending ends the connection: dropping the other copy loses only
            // bytes for a connection that is closing anyway.
            let end = tokio::select! {
                r = tokio::io::copy(&mut broker_rx, &mut client_tx) => r.map(|_| None),
                r = forward_checked(&mut client_rx, &mut broker_tx, level) => r,
            };
            if let Some(refused) = end? {
                self.refuse_publish(&client_id, level, &refused);
                if let Some(code) = refused.v5_reason(level) {
                    // DISCONNECT with a reason code and no properties.
                    client_tx.write_all(&[0xe0, 0x02, code, 0x00]).await?;
                }
            }
            client_tx.shutdown().await
        }
        .await;
        // Before the socket closes, so a reused port never loses a newer record.
        self.peers.remove(local, conn);
        drop((broker_rx, broker_tx));
        if let Err(e) = result {
            // The ends closing abruptly is how MQTT connections usually end.
            debug!(%peer, error = %e, "pipe ended");
        }
        Ok(())
    }

    fn refuse_publish(&self, client_id: &str, level: u8, refused: &RefusedPublish) {
        let answer = match refused.v5_reason(level) {
            Some(code) => format!("DISCONNECT reason 0x{code:02X}"),
            None => "disconnected".to_owned(),
        };
        let detail = format!("{} on {}: {answer}", refused.why(), refused.head.topic);
        self.hooks
            .on_publish_refused(client_id, &refused.head.topic, &refused.head.payload);
        self.hooks
            .on_transport_event(client_id, "publish refused", &detail);
    }
}

/// A PUBLISH the Hub does not take, whatever its topic.
#[derive(Debug)]
struct RefusedPublish {
    head: frame::PublishHead,
}

impl RefusedPublish {
    fn judge(head: frame::PublishHead, level: u8) -> Option<Self> {
        let refused = head.qos == 2 || (head.retain && level == 5);
        refused.then_some(RefusedPublish { head })
    }

    fn why(&self) -> &'static str {
        if self.head.qos == 2 {
            "QoS 2 PUBLISH (the Hub offers QoS 0 and 1)"
        } else {
            "retained PUBLISH (CONNACK said Retain Available 0)"
        }
    }

    /// MQTT 5 answers with a DISCONNECT reason: 0x9B QoS not supported, 0x9A retain not
    /// supported. Earlier versions have no reason codes: the connection is just closed.
    fn v5_reason(&self, level: u8) -> Option<u8> {
        match (level, self.head.qos) {
            (5, 2) => Some(0x9b),
            (5, _) => Some(0x9a),
            _ => None,
        }
    }
}

/// Copies client bytes to the broker packet by packet; stops at the client's end (`None`) or
/// at the first PUBLISH the Hub refuses, which is not forwarded.
async fn forward_checked<R, W>(
    from: &mut R,
    to: &mut W,
    level: u8,
) -> io::Result<Option<RefusedPublish>>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let max = usize::try_from(MAX_PACKET_BYTES).unwrap_or(usize::MAX);
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 8192];
    loop {
        let mut start = 0;
        loop {
            match frame::packet_len(&buf[start..], max) {
                FirstPacket::Complete(n) => {
                    let packet = &buf[start..start + n];
                    if let Some(refused) = frame::publish_head(packet, level)
                        .and_then(|head| RefusedPublish::judge(head, level))
                    {
                        to.write_all(&buf[..start]).await?;
                        return Ok(Some(refused));
                    }
                    start += n;
                }
                FirstPacket::Partial => break,
                // Too large for the Hub: rmqtt refuses it and closes; just pass bytes on.
                FirstPacket::TooLarge | FirstPacket::NotConnect(_) => {
                    to.write_all(&buf).await?;
                    tokio::io::copy(from, to).await?;
                    return Ok(None);
                }
            }
        }
        to.write_all(&buf[..start]).await?;
        buf.drain(..start);
        let n = from.read(&mut chunk).await?;
        if n == 0 {
            let _ = to.shutdown().await;
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn describe_tls_failure(seen: &Option<PskSeen>, e: &openssl::ssl::Error) -> String {
    let detail = e
        .ssl_error()
        .map(|s| s.to_string())
        .unwrap_or_else(|| e.to_string());
    match seen {
        Some(PskSeen::Unknown(id)) => {
            format!("TLS-PSK: unknown identity {id:?} (no device with that client id may connect)")
        }
        Some(PskSeen::Known(id)) => format!(
            "TLS-PSK: handshake failed for identity {id:?}: the client's key is not that device's secret ({detail})"
        ),
        None => format!("TLS handshake failed: {detail}"),
    }
}

/// Reads until the first packet, a CONNECT, is complete; bounded in size and time.
async fn read_connect<S: AsyncRead + Unpin>(
    stream: &mut S,
    deadline: Instant,
    allowed: Duration,
) -> Result<Vec<u8>, Refused> {
    let max = usize::try_from(MAX_PACKET_BYTES).unwrap_or(usize::MAX);
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 2048];
    loop {
        match frame::first_packet(&buf, max) {
            FirstPacket::Complete(_) => return Ok(buf),
            FirstPacket::NotConnect(b) => return Err(Refused::NotConnect(b)),
            FirstPacket::TooLarge => return Err(Refused::TooLarge),
            FirstPacket::Partial => {}
        }
        let n = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
            .await
            .map_err(|_| Refused::Deadline(allowed.as_millis()))??;
        if n == 0 {
            return Err(Refused::Closed);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
