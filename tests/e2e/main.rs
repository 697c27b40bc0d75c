//! End-to-end tests: real sockets on loopback, real files, one module per family.

mod cloud_sdk;
mod console;
mod cos;
mod cos_sdk;
mod demo;
mod gateway;
mod hardening;
mod hub;
mod python_sdk;
mod qualify;
mod scenarios;
mod seed_rules;
mod support;
