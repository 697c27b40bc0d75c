//! The handle to a running fake COS.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::Method;
use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

use crate::auth::qsign::{self, Canonical, Window};
use crate::auth::{CosKey, Keys};
use crate::clock::CosClock;
use crate::config::CosConfig;
use crate::fault::{FaultRule, InstalledRule, RuleGuard, RuleId};
use crate::journal::{Journal, JournalEntry};
use crate::name::ObjectName;
use crate::shared::Shared;
use crate::store::{ObjectInfo, Store, StoredObject};
use crate::tls::TlsIdentity;
use crate::{CosError, server, sign};

/// Cancels the instance when the last handle goes away.
#[derive(Debug)]
struct Lifecycle {
    shutdown: CancellationToken,
}

impl Drop for Lifecycle {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A running fake COS; clones are cheap and control the same instance, which stops when
/// [`Cos::shutdown`] is awaited or the last clone is dropped.
#[derive(Debug, Clone)]
pub struct Cos {
    pub(crate) shared: Arc<Shared>,
    /// `None` for the control API's own handle, which must not keep the instance alive.
    _lifecycle: Option<Arc<Lifecycle>>,
}

/// The longest validity a signed or presigned URL may have: 100 years, as COS allows signatures
/// "a long time (for example, 50 years)" ahead.
pub const MAX_URL_VALIDITY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `now + valid_for` in unix seconds, refused past [`MAX_URL_VALIDITY`] (never wrapping).
fn expiry(now_unix: u64, valid_for: Duration) -> Result<u64, CosError> {
    if valid_for > MAX_URL_VALIDITY {
        return Err(CosError::ValidityTooLong {
            secs: valid_for.as_secs(),
            max_secs: MAX_URL_VALIDITY.as_secs(),
        });
    }
    Ok(now_unix.saturating_add(valid_for.as_secs()))
}

/// Starts a fake COS on an already-bound listener.
pub async fn start(listener: TcpListener, config: CosConfig) -> Result<Cos, CosError> {
    let mut plan = config.plan()?;
    let plan_keys = std::mem::take(&mut plan.keys);
    let journal = Arc::new(Journal::new(plan.journal_capacity));
    let addr = listener.local_addr().map_err(CosError::LocalAddr)?;
    let shutdown = CancellationToken::new();
    let shared = Arc::new(Shared {
        plan,
        addr,
        clock: CosClock::default(),
        store: Store::default(),
        keys: Keys::new(plan_keys),
        rules: Arc::default(),
        journal,
        shutdown: shutdown.clone(),
        tracker: TaskTracker::new(),
        https_host: std::sync::RwLock::default(),
    });
    shared
        .tracker
        .spawn(server::accept_loop(listener, Arc::clone(&shared)));
    info!(%addr, "fake COS listening");
    Ok(Cos {
        shared,
        _lifecycle: Some(Arc::new(Lifecycle { shutdown })),
    })
}

impl Cos {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// A handle that controls the instance without keeping it alive.
    pub(crate) fn detached(&self) -> Cos {
        Cos {
            shared: Arc::clone(&self.shared),
            _lifecycle: None,
        }
    }

    /// Stores (or replaces) an object; its ETag and MD5 come from the bytes.
    pub fn put_object(&self, name: &str, bytes: impl Into<Bytes>) -> Result<ObjectInfo, CosError> {
        let name = ObjectName::parse(name)?;
        let object = StoredObject::new(&name, bytes.into(), self.shared.clock.now());
        Ok(self.shared.store.put(name, object).info.clone())
    }

    /// Every stored object, ordered by name.
    pub fn list_objects(&self) -> Vec<ObjectInfo> {
        self.shared.store.list()
    }

    /// Metadata of a stored object.
    pub fn object_info(&self, name: &str) -> Option<ObjectInfo> {
        let name = ObjectName::parse(name).ok()?;
        self.shared.store.get(&name).map(|o| o.info.clone())
    }

    /// Removes an object; true if it existed.
    pub fn delete_object(&self, name: &str) -> bool {
        ObjectName::parse(name).is_ok_and(|name| self.shared.store.delete(&name))
    }

    /// A URL for `name` that is valid for `valid_for` from now on the instance clock:
    /// `http://{host}/{name}?sign={hex}&t={unix expiry}` (`https` with TLS). The host is the
    /// configured `public_host`, else the listener's address, without the port if it is the
    /// scheme's default. `valid_for` may be at most [`MAX_URL_VALIDITY`].
    pub fn signed_url(&self, name: &str, valid_for: Duration) -> Result<String, CosError> {
        let name = ObjectName::parse(name)?;
        let expires = expiry(self.shared.clock.now_unix(), valid_for)?;
        let sign = sign::sign(&self.shared.plan.secret, &name, expires);
        let (scheme, host) = self.url_base();
        Ok(format!("{scheme}://{host}/{name}?sign={sign}&t={expires}"))
    }

    /// A presigned COS XML API URL for `method` (`PUT`, `GET` or `HEAD`) on `name`, signed
    /// with `key` as `cos-python-sdk-v5`'s `get_presigned_url` does (`q-sign-*` in the query,
    /// `host` signed), valid from a minute ago on the instance clock until `valid_for` from
    /// now (at most [`MAX_URL_VALIDITY`]). `key` must be one the instance accepts.
    pub fn presigned_url(
        &self,
        method: &Method,
        name: &str,
        key: &CosKey,
        valid_for: Duration,
    ) -> Result<String, CosError> {
        let name = ObjectName::parse(name)?;
        if ![Method::PUT, Method::GET, Method::HEAD].contains(method) {
            return Err(CosError::Config {
                field: "method",
                reason: format!("{method} cannot be presigned (PUT, GET or HEAD)"),
            });
        }
        if !self.shared.keys.holds(key) {
            return Err(CosError::UnknownKey(key.secret_id().to_owned()));
        }
        let now = self.shared.clock.now_unix();
        let window = Window {
            start: now.saturating_sub(60),
            end: expiry(now, valid_for)?,
        };
        let (scheme, host) = self.url_base();
        let canonical = Canonical {
            method: method.as_str().to_owned(),
            path: format!("/{name}"),
            params: Vec::new(),
            headers: vec![("host".to_owned(), qsign::quote(host.as_bytes()))],
        };
        let query = qsign::presign_query(key.secret_id(), key.secret_key(), window, &canonical);
        Ok(format!("{scheme}://{host}/{name}?{query}"))
    }

    /// [`Cos::presigned_url`] for a `PUT`: the upload URL a cloud API hands out.
    pub fn presigned_put_url(
        &self,
        name: &str,
        key: &CosKey,
        valid_for: Duration,
    ) -> Result<String, CosError> {
        self.presigned_url(&Method::PUT, name, key, valid_for)
    }

    /// Accepts `key`'s signatures from now on (replacing a pair with the same SecretId).
    pub fn add_key(&self, key: CosKey) {
        self.shared.keys.add(key);
    }

    /// Also serves HTTPS on `listener` with `identity`: the same objects, rules, journal and
    /// clock as the main listener (a gateway may download over either). Returns its address.
    pub fn serve_https(
        &self,
        listener: TcpListener,
        identity: &TlsIdentity,
    ) -> Result<SocketAddr, CosError> {
        let config = identity.server_config()?;
        let addr = listener.local_addr().map_err(CosError::LocalAddr)?;
        self.shared.tracker.spawn(server::accept_with(
            listener,
            Arc::clone(&self.shared),
            Some(config),
        ));
        info!(%addr, "fake COS listening for HTTPS");
        Ok(addr)
    }

    /// From now on signed URLs are `https://{host}/...`: `host` as given (e.g. the address of
    /// [`Cos::serve_https`]'s listener, without the port on 443, or a public name).
    pub fn sign_https_urls(&self, host: impl Into<String>) {
        *self
            .shared
            .https_host
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(host.into());
    }

    /// The scheme and the host (with a non-default port) URLs are written with.
    fn url_base(&self) -> (&'static str, String) {
        let https_host = self
            .shared
            .https_host
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some(host) = https_host {
            return ("https", host);
        }
        let scheme = if self.is_tls() { "https" } else { "http" };
        let default_port = if self.is_tls() { 443 } else { 80 };
        let addr = self.shared.addr;
        let host = match &self.shared.plan.public_host {
            Some(host) => host.clone(),
            // The C SDK ignores URL ports: on the default port, leave it out as COS does.
            None if addr.port() == default_port => match addr {
                SocketAddr::V4(v4) => v4.ip().to_string(),
                SocketAddr::V6(v6) => format!("[{}]", v6.ip()),
            },
            None => addr.to_string(),
        };
        (scheme, host)
    }

    /// Whether the firmware listener speaks HTTPS.
    pub fn is_tls(&self) -> bool {
        self.shared.plan.tls.is_some()
    }

    /// The instance clock, used for URL expiry and Last-Modified.
    pub fn clock(&self) -> &CosClock {
        &self.shared.clock
    }

    /// Moves the instance clock forward, e.g. past a URL's expiry.
    pub fn advance_clock(&self, by: Duration) {
        self.shared.clock.advance(by);
    }

    /// Installs a fault rule after the existing ones; the guard removes it when dropped.
    pub fn add_rule(&self, rule: FaultRule) -> Result<RuleGuard, CosError> {
        rule.validate()?;
        let id = self.shared.rules.add(rule);
        Ok(RuleGuard::new(id, Arc::clone(&self.shared.rules)))
    }

    /// Removes a rule kept with [`RuleGuard::keep`]; true if it was installed.
    pub fn remove_rule(&self, id: RuleId) -> bool {
        self.shared.rules.remove(id)
    }

    /// The installed rules in decision order, with how often each fired.
    pub fn rules(&self) -> Vec<InstalledRule> {
        self.shared.rules.list()
    }

    /// Removes every rule, leaving objects and the journal alone.
    pub fn clear_rules(&self) {
        self.shared.rules.clear();
    }

    /// Every request still in the journal (the newest `journal_capacity`), in arrival order.
    pub fn journal(&self) -> Vec<JournalEntry> {
        self.shared.journal.snapshot()
    }

    /// The requests still in the journal numbered above `seq`, in arrival order (`0` for all).
    pub fn journal_since(&self, seq: u64) -> Vec<JournalEntry> {
        self.shared.journal.page(seq, usize::MAX)
    }

    /// At most `limit` requests numbered above `seq`, oldest first: one page of the journal;
    /// the next page starts after the last `seq` returned.
    pub fn journal_page(&self, seq: u64, limit: usize) -> Vec<JournalEntry> {
        self.shared.journal.page(seq, limit)
    }

    /// A live feed of the journal: each entry is sent when its answer is decided (usually
    /// [`ConnEnd::InProgress`](crate::ConnEnd) for a body) and again whenever its `end` changes
    /// (complete, cut, stalled, ...). A subscriber that falls more than 4096 updates behind
    /// gets `Lagged` and can catch up with [`Cos::journal_since`].
    pub fn subscribe_journal(&self) -> broadcast::Receiver<JournalEntry> {
        self.shared.journal.live()
    }

    /// Waits until `done` holds for the journal, or fails after `timeout`.
    pub async fn wait_journal(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&[JournalEntry]) -> bool,
    ) -> Result<Vec<JournalEntry>, CosError> {
        let mut changes = self.shared.journal.subscribe();
        let wait = async {
            loop {
                changes.borrow_and_update();
                let journal = self.journal();
                if done(&journal) {
                    return Ok(journal);
                }
                if changes.changed().await.is_err() {
                    return Err(CosError::JournalTimeout(timeout));
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .unwrap_or(Err(CosError::JournalTimeout(timeout)))
    }

    /// Forgets rules, the journal, request numbers and attempt counts, and sets the clock back
    /// to real time. Objects stay: what is served (a `--dir` folder, uploaded firmware) is
    /// never dropped by a reset; [`Cos::delete_object`] removes one.
    pub fn reset(&self) {
        self.shared.clock.set_offset_ms(0);
        self.shared.rules.clear();
        self.shared.journal.clear();
    }

    /// Stops accepting, drops every connection and waits for every task to end.
    pub async fn shutdown(self) {
        self.shared.shutdown.cancel();
        self.shared.tracker.close();
        self.shared.tracker.wait().await;
        info!(addr = %self.shared.addr, "fake COS stopped");
    }
}
