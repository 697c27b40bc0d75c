//! Reports of finished runs: JUnit XML for CI, a self-contained HTML page per scenario with an
//! SVG sequence diagram, an index page per set of runs, and the JSON of every run.

mod html;
mod junit;
mod svg;

pub use html::{IndexEntry, html_index, html_timeline, page_name};
pub use junit::{junit_qualification, junit_xml};

use crate::run::RunReport;
use serde::Serialize;

/// Everything one `otasim run` did, as written by `--json`.
#[derive(Debug, Serialize)]
pub struct JsonReport<'a> {
    /// The seed given on the command line, if any (each scenario's own is in its report).
    pub seed: Option<u64>,
    /// How many scenarios ran at once.
    pub jobs: usize,
    /// Scenarios that passed.
    pub passed: usize,
    /// Scenarios that failed (or could not run).
    pub failed: usize,
    /// One report per scenario, every transcript event and HTTP request included.
    pub scenarios: &'a [RunReport],
    /// Scenarios whose world could not be built: `(path, error)`.
    pub errors: &'a [(String, String)],
}
