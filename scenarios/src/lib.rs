//! Scripted OTA scenarios as data: a TOML file names the fleet, the firmware, the faults, the
//! console's actions and what must hold at the end; one engine runs any of them in a fresh world
//! of fake COS, fake hub and gateways on loopback (own ports, own temp directory), so many run
//! side by side ([`run_all`]).
//!
//! The format (`scenario.schema.json` beside this crate is the editors' schema; errors name the
//! file, the line and the field):
//!
//! - `name`, `description`, `seed` (generated firmware bytes), `time_scale` (factor on the
//!   gateway's download timeouts and retry delays), `download_attempts`;
//! - `[[gateways]]` (identity, secret, `max_image_bytes`, `run` = built in, an external
//!   `command` given `{device_info}`, `{hub_host}`, `{hub_port}`, `{state_dir}`, or `raw`:
//!   nothing runs, the identity is for `raw_publish` steps),
//!   `[[subdevices]]` (identity, `version`, `bound`, `count`, `burner` = ok, fail, hang,
//!   wrong_version, offline, each for the first `times` burns), `[[firmware]]` (`size` and
//!   `seed`, or a `file`);
//! - `[[cos_faults]]` and `[[hub_faults]]`: the fakes' own rules, fired on their milestones (a
//!   COS rule's `verdict` may be a list, `{ kind = "steps", steps = [...] }`; a `wrong_url`
//!   may name the world's COS as `{cos}`);
//! - `[[steps]]`: `wait_online`, `push` (three methods, optional task `options`),
//!   `wait_tasks`, `wait_until` a milestone (`cos_bytes`, `cos_requests`, `report`,
//!   `hub_state`, `connects`, `offline`), `kill_gateway`/`start_gateway` (power cut and reboot
//!   on the same disk), `kick`, `add_cos_fault`, `add_hub_fault`, `cancel_task`,
//!   `advance_cos_clock`, `advance_hub_clock` (minute-long timeouts in milliseconds),
//!   `raw_publish` (one PUBLISH from a raw client with a device's credentials: `as`, `topic`,
//!   `payload`, `qos`, `retain`, `mqtt` = 3 or 5, and the `answer` it must get: `puback`,
//!   `accepted`, `closed`, `disconnect 0x9B`, ...);
//! - `[expect]`: `versions`, `reports` (exact or `downloading*` patterns), `results`
//!   (`succeeded`, `failed -4`, ...), `online_results`, `untouched`, `bytes_downloaded`,
//!   `cos_bytes_sent`, `cos_requests`, `tasks` (summaries), `nothing_else`, `transcript`
//!   (entries of a `direction` and `topic` with `json` fields, without `not_json` ones, or
//!   `contains` text, counted), `warnings` (text on a device's update).
//!
//! The seed demo is `catalog/seed-demo.toml`, run by `otasim demo`; the catalog is
//! `catalog/`, run by `otasim run scenarios/catalog`.

mod burner;
mod cos_store;
mod counts;
mod expect;
mod failure;
mod files;
mod happened;
mod hub_records;
mod import;
mod judge;
mod plan;
mod profile;
mod qualify;
mod raw_client;
mod report;
mod run;
mod steps;
mod timeline;
mod world;

pub use cos_store::{CosStore, HubCos};
pub use counts::{CosGap, CosRange, Count, CountOf};
pub use expect::{
    DeviceOutcome, MsgPattern, PatternError, PercentRange, ReportItem, ReportPattern,
    ResultPattern, describe_report,
};
pub use failure::{CosMismatch, Failure, StepError};
pub use fake_hub::TranscriptEntry;
pub use files::{DiscoverError, discover};
pub use happened::{DeviceRow, Happened, reports_for};
pub use import::{ImportError, Imported, import_log};
pub use judge::Record;
pub use plan::{
    Bounds, BurnerPlan, Condition, CosRequestExpect, Expectations, FirmwarePlan, GatewayPlan,
    GatewayRun, MqttLevel, Plan, PlanError, QuietOn, RawAnswer, RawPublish, Step, SubdevicePlan,
    TranscriptExpect,
};
pub use profile::{Concurrency, FailCodes, GatewayProfile, ProfileError, Resume};
pub use qualify::{GatewayUnderTest, Qualification, Qualified, Verdict};
pub use report::{
    IndexEntry, JsonReport, html_index, html_timeline, junit_qualification, junit_xml, page_name,
};
pub use run::{
    RunOptions, RunReport, for_external, is_external, run, run_all, run_keeping_world, run_seeded,
    run_with,
};
pub use timeline::{Narrator, describe_cos, describe_entry, explain_cos_error};
pub use world::{Note, Ports, World, WorldError};

/// The seed demo scenario, built into the binary.
pub const SEED_DEMO: &str = include_str!("../catalog/seed-demo.toml");
