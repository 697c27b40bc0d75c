//! The hub's HTTP APIs: [`control`] (the console's and the fake's own JSON API under `/api`,
//! served by [`serve`]) and [`cloud`] (Tencent's iotcloud 2021-04-08 actions, TC3-HMAC-SHA256).

pub mod cloud;
mod control;

pub use control::{
    ApiAccess, ApiError, ApiServer, MAX_EVENT_STREAMS, MAX_FIRMWARE_BYTES, router, serve,
    serve_guarded, serve_proxy, serve_with,
};
