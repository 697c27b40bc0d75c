//! End-to-end tests of the fake COS over real TCP on 127.0.0.1, one module per family.

mod admin;
mod admin_client;
mod client;
mod compose;
mod determinism;
mod fast_path;
mod faults;
mod folder;
mod hardening;
mod journal;
mod resume;
mod serving;
mod signing;
mod tls;
mod upload;
