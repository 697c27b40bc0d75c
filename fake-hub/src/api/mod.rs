//! The hub's control API over HTTP and JSON.
