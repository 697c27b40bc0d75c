//! The state one instance's handle, accept loop and request handlers share. A leaf: it
//! depends only on the parts it holds, so `cos` (the handle), `server` (connections) and
//! `handler` (requests) all point here and never at each other.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Keys;
use crate::clock::CosClock;
use crate::config::CosPlan;
use crate::fault::RuleSet;
use crate::journal::Journal;
use crate::store::Store;

/// State shared by the handle and every task of one instance.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) plan: CosPlan,
    pub(crate) addr: SocketAddr,
    pub(crate) clock: CosClock,
    pub(crate) store: Store,
    pub(crate) keys: Keys,
    pub(crate) rules: Arc<RuleSet>,
    pub(crate) journal: Arc<Journal>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) tracker: TaskTracker,
    /// The host signed URLs name over `https://` once an extra HTTPS listener is told to be
    /// the one URLs point at (see `Cos::sign_https_urls`).
    pub(crate) https_host: RwLock<Option<String>>,
}
