//! Every scenario of the catalog runs and passes, each in its own world, four at once.

use scenarios::{Plan, RunReport};
use std::path::{Path, PathBuf};

fn catalog() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("catalog")
}

fn describe(r: &RunReport) -> String {
    format!(
        "{} ({}), seed {}:\n  {}\n{}\n{}",
        r.name,
        r.path,
        r.seed,
        r.failure_lines().join("\n  "),
        r.context.join("\n"),
        r.devices
            .iter()
            .map(|d| format!("  {} {} [{}]", d.device, d.result, d.reports.join(", ")))
            .collect::<Vec<_>>()
            .join("\n")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_catalog_scenario_passes() {
    let files = scenarios::discover(&[catalog()]).expect("the catalog folder");
    let only = std::env::var("CATALOG_ONLY").ok();
    let plans: Vec<Plan> = files
        .iter()
        .filter(|f| {
            only.as_ref()
                .is_none_or(|o| f.to_string_lossy().contains(o.as_str()))
        })
        .map(|f| Plan::load(f).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    if only.is_none() {
        assert!(
            plans.len() >= 40,
            "the catalog has {} scenarios",
            plans.len()
        );
    }
    let results = scenarios::run_all(&plans, None, 4, |_, _| {}).await;
    let failed: Vec<String> = results
        .into_iter()
        .map(|r| r.expect("the world starts"))
        .filter(|r| !r.passed)
        .map(|r| describe(&r))
        .collect();
    assert!(
        failed.is_empty(),
        "{} failed:\n{}",
        failed.len(),
        failed.join("\n\n")
    );
}
