//! The fake hub on the wire: every rule of the real Hub it reproduces, its update tasks and its
//! misbehaviour on cue, tested with rumqttc clients and raw MQTT bytes over real loopback TCP
//! and TLS. Tests wait on conditions with a deadline, never on sleeps.

mod faults;
mod fidelity;
mod front;
mod limits;
mod raw;
mod robustness;
mod support;
mod tasks;
mod tls;
mod topology;
