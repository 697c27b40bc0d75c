//! End-to-end tests: real sockets on loopback, real files, one module per family.

mod cloud_sdk;
mod cluster;
mod console;
mod cos;
mod cos_sdk;
mod demo;
mod errors;
mod examples;
mod gateway;
mod hardening;
mod hub;
mod pipes;
mod procs;
mod python_sdk;
mod qualify;
mod readme;
mod real_clients;
mod scenarios;
mod seed_rules;
mod support;
