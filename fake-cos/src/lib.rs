//! A fake Tencent COS that serves firmware images to gateway OTA downloads, offline.
//!
//! It sits beside the fake IoT Hub in the otasim harness: the Hub's `update_firmware` carries a
//! URL from [`Cos::signed_url`], and the gateway (or a real SDK) fetches it here. The server
//! speaks the HTTP/1.1 the SDKs' fragile parsers need (title-case headers, `Content-Length`,
//! never chunked or compressed unless a fault says so), answers single ranges per RFC 7233
//! (clamping the SDKs' one-past-the-end `bytes=0-{size}`), checks expiring URL signatures on a
//! clock tests can move, journals every request, and injects faults from an ordered list of
//! serde rules ([`FaultRule`]) that fire on typed milestones. It speaks HTTP or, with a
//! [`TlsIdentity`] made at run time, HTTPS; [`Cos::serve_admin`] adds an HTTP+JSON control API
//! on a separate listener, and [`Cos::subscribe_journal`] is a live feed of requests.
//!
//! Choices where HTTP leaves room, made as COS does and the SDKs need: a malformed `Range`
//! (including `last < first`) and a multi-range request are ignored and answered 200 with the
//! whole object (RFC 7233 §3.1 allows it; a 416 would make a client restart a download it could
//! finish); a first byte at or past the end is 416 with `Content-Range: bytes */{size}`;
//! `If-Range` holds only for the current quoted ETag or the exact `Last-Modified` date. Header
//! names go out title-case through hyper, which spells `ETag` as `Etag` (names are
//! case-insensitive; the C SDK only matches `Content-Length` and `Content-Range`). Invalid
//! object names are 400 `InvalidURI` and are never decoded or looked up.
//!
//! ```no_run
//! # async fn demo() -> Result<(), fake_cos::CosError> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
//! let cos = fake_cos::start(listener, fake_cos::CosConfig::default()).await?;
//! let info = cos.put_object("fw.bin", bytes::Bytes::from_static(b"firmware"))?;
//! let url = cos.signed_url(&info.name, std::time::Duration::from_secs(3600))?;
//! # let _ = url;
//! cos.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod admin;
mod auth;
mod body;
mod clock;
mod config;
mod cos;
mod error;
mod fault;
mod folder;
mod handler;
mod io;
mod journal;
mod name;
mod put;
mod range;
mod response;
mod sendfile;
mod server;
mod shared;
mod sign;
mod store;
mod tls;

pub use admin::Admin;
pub use auth::CosKey;
pub use clock::CosClock;
pub use config::{CosConfig, DEFAULT_MAX_OBJECT_BYTES};
pub use cos::{Cos, MAX_URL_VALIDITY, start};
pub use error::{CosError, TlsError};
pub use fault::{FaultRule, FiredRule, Fires, InstalledRule, RuleGuard, RuleId, Selector, Verdict};
pub use folder::FolderLoad;
pub use journal::{
    ConnEnd, CosErrorReply, DEFAULT_JOURNAL_CAPACITY, JournalEntry, MAX_FIELD_BYTES, refusal_reason,
};
pub use store::ObjectInfo;
pub use tls::TlsIdentity;
