//! The control API: HTTP+JSON on its own listener, for humans and harnesses that cannot link
//! the Rust API. Every operation of [`Cos`] that changes or reads the instance is here; the
//! firmware listener never answers control requests, so a gateway cannot reach them by URL.
//!
//! | Method and path | Body | Answer |
//! |---|---|---|
//! | `GET /` | | this table, as JSON |
//! | `GET /objects` | | objects by name |
//! | `PUT /objects/{name}` | raw bytes | the stored object |
//! | `DELETE /objects/{name}` | | 204, or 404 |
//! | `GET /objects/{name}/url?valid_secs=N` | | `{"url": ...}` (default one day, at most 100 years) |
//! | `GET /rules` | | rules in decision order, with `fired` counts |
//! | `POST /rules` | a [`FaultRule`](crate::FaultRule) | 201 `{"id": N}` |
//! | `DELETE /rules` | | 204, every rule removed |
//! | `DELETE /rules/{id}` | | 204, or 404 |
//! | `GET /journal?since=SEQ&limit=N` | | at most `N` (default 1000, at most 10000) entries numbered above `SEQ` |
//! | `POST /reset` | | 204: rules, journal, attempts and clock forgotten; objects kept |
//! | `GET /clock` | | `{"offset_ms": ..., "now_unix": ...}` |
//! | `POST /clock` | `{"advance_secs": N}` or `{"offset_ms": N}` (each within 100 years) | the new clock |
//!
//! Errors are `{"error": "..."}` with 400 (the message names the field), 404 or 413.

mod routes;

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::server::{self, Limits};
use crate::{Cos, CosError};

/// Control connections served at once; the firmware listener's flood cannot take these.
const ADMIN_MAX_CONNECTIONS: usize = 64;

/// A running control API; stops with [`Admin::shutdown`] or with the instance.
#[derive(Debug)]
pub struct Admin {
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Admin {
    /// The address the control API listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://{addr}`, the base of every control URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting and drops every control connection.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        if let Err(error) = self.task.await {
            warn!(%error, "control API task failed");
        }
    }
}

impl Cos {
    /// Serves the control API on an already-bound listener. It stops when the returned handle
    /// is shut down or when the instance stops, and does not keep the instance alive.
    pub async fn serve_admin(&self, listener: TcpListener) -> Result<Admin, CosError> {
        let addr = listener.local_addr().map_err(CosError::AdminAddr)?;
        let shutdown = self.shared.shutdown.child_token();
        let app = routes::router(self.detached());
        let limits = Limits {
            max_connections: ADMIN_MAX_CONNECTIONS,
            ..self.shared.plan.limits
        };
        let task = self.shared.tracker.spawn(server::serve_router(
            listener,
            app,
            limits,
            shutdown.clone(),
            self.shared.tracker.clone(),
        ));
        info!(%addr, "fake COS control API listening");
        Ok(Admin {
            addr,
            shutdown,
            task,
        })
    }
}
