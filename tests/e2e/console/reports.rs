//! Screenshots of the HTML reports `otasim run --html` writes, for a passing and a failing
//! scenario, taken in Chromium into `target/e2e-artifacts/`.

use super::{artifacts_dir, cdp::Browser};
use anyhow::Context as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The report page for `name` in `dir`: the file named after it, else any page but the index.
fn report_page(dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let mut pages: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "html"))
        .collect();
    pages.sort();
    let named = pages.iter().find(|p| {
        p.file_stem()
            .is_some_and(|s| s.to_string_lossy().contains(name))
    });
    named
        .or_else(|| pages.iter().find(|p| !p.ends_with("index.html")))
        .or(pages.first())
        .cloned()
        .with_context(|| format!("no HTML page in {}", dir.display()))
}

fn run_with_html(scenario: &Path, html: &Path) -> std::process::ExitStatus {
    Command::new(env!("CARGO_BIN_EXE_otasim"))
        .arg("run")
        .arg(scenario)
        .arg("--html")
        .arg(html)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("otasim run")
        .status
}

fn screenshot(page: &Path, artifact: &str) -> anyhow::Result<()> {
    let url = format!("file://{}", page.display());
    let mut browser = Browser::launch(&url)?;
    browser.wait_for("the report rendered", "document.readyState === 'complete'")?;
    let png = browser.screenshot()?;
    anyhow::ensure!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
    let shot = artifacts_dir().join(artifact);
    std::fs::create_dir_all(shot.parent().context("artifacts dir")?)?;
    std::fs::write(&shot, png)?;
    Ok(())
}

#[test]
#[ignore = "needs chromium: apt-get install chromium (run by .ci/run)"]
fn html_reports_of_a_passing_and_a_failing_scenario_are_screenshotted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let passing = root.join("scenarios/catalog/happy-one-subdevice.toml");
    let text = std::fs::read_to_string(&passing).expect("catalog scenario");
    let failing = dir.path().join("expects-two-cos-requests.toml");
    std::fs::write(
        &failing,
        text.replace(
            "name = \"happy-one-subdevice\"",
            "name = \"expects-two-cos-requests\"",
        )
        .replace(
            "cos_requests = { exactly = 1 }",
            "cos_requests = { exactly = 2 }",
        ),
    )
    .expect("write the failing scenario");
    let (pass_html, fail_html) = (dir.path().join("pass"), dir.path().join("fail"));
    assert!(
        run_with_html(&passing, &pass_html).success(),
        "the catalog scenario passes"
    );
    assert!(
        !run_with_html(&failing, &fail_html).success(),
        "the changed expectation fails"
    );
    let pass_page = report_page(&pass_html, "happy-one-subdevice").expect("passing report");
    let fail_page = report_page(&fail_html, "expects-two-cos-requests").expect("failing report");
    let fail_text = std::fs::read_to_string(&fail_page).expect("failing report text");
    assert!(
        fail_text.to_lowercase().contains("fail"),
        "the failing report says it failed"
    );
    screenshot(&pass_page, "report-passing.png").expect("passing report screenshot");
    screenshot(&fail_page, "report-failing.png").expect("failing report screenshot");
}
