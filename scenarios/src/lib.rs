//! Scripted OTA scenarios as data: a TOML file names the fleet, the firmware, the faults, the
//! console's actions and what must hold at the end; one engine runs any of them in a fresh world
//! of fake COS, fake hub and gateways on loopback.
//!
//! The seed demo is `catalog/seed-demo.toml`, run by `otasim demo`.

mod expect;
mod plan;
mod run;
mod timeline;
mod world;

pub use expect::describe_report;
pub use fake_hub::TranscriptEntry;
pub use plan::{Expectations, FirmwarePlan, GatewayPlan, Plan, PlanError, Step, SubdevicePlan};
pub use run::{DeviceRow, RunReport, reports_for, run};
pub use timeline::describe_entry;
pub use world::{World, WorldError};

/// The seed demo scenario, built into the binary.
pub const SEED_DEMO: &str = include_str!("../catalog/seed-demo.toml");
