//! End-to-end tests: scenarios, driven through the `otasim` commands users type.

use clap::Parser as _;
use otasim::Cli;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn catalog(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios/catalog")
        .join(format!("{name}.toml"))
        .display()
        .to_string()
}

async fn otasim(args: &[&str]) -> ExitCode {
    let cli = Cli::try_parse_from(std::iter::once("otasim").chain(args.iter().copied()))
        .expect("arguments parse");
    otasim::execute(cli).await.expect("the command runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_writes_junit_json_and_html_for_every_scenario() {
    let out = tempfile::tempdir().expect("temp dir");
    let junit = out.path().join("junit.xml");
    let json = out.path().join("report.json");
    let html: PathBuf = out.path().join("html");
    let code = otasim(&[
        "run",
        &catalog("cut-in-the-middle"),
        &catalog("http-404"),
        "--junit",
        junit.to_str().expect("utf-8"),
        "--json",
        json.to_str().expect("utf-8"),
        "--html",
        html.to_str().expect("utf-8"),
        "--jobs",
        "2",
    ])
    .await;
    assert_eq!(code, ExitCode::SUCCESS);
    let xml = std::fs::read_to_string(&junit).expect("junit written");
    assert!(
        xml.contains("tests=\"2\"") && xml.contains("failures=\"0\""),
        "{xml}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json written")).expect("json");
    assert_eq!(report["passed"], 2);
    let cut = &report["scenarios"][0];
    assert_eq!(cut["name"], "cut-in-the-middle");
    assert_eq!(cut["seed"], 0);
    assert!(cut["transcript"].as_array().is_some_and(|t| t.len() > 5));
    let ranges: Vec<_> = cut["cos_journal"]
        .as_array()
        .expect("journal")
        .iter()
        .map(|j| j["range"].clone())
        .collect();
    assert_eq!(
        ranges,
        [
            serde_json::json!("bytes=0-99999"),
            serde_json::json!("bytes=50000-99999")
        ]
    );
    for name in ["cut-in-the-middle", "http-404"] {
        let page =
            std::fs::read_to_string(html.join(format!("{name}.html"))).expect("html written");
        assert!(page.starts_with("<!DOCTYPE html>") && page.contains("<svg"));
    }
    let index = std::fs::read_to_string(html.join("index.html")).expect("index written");
    for name in ["cut-in-the-middle", "http-404"] {
        assert!(index.contains(&format!("href=\"{name}.html\"")), "{index}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_fails_on_an_invalid_file_and_passes_the_catalog() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "name = \"x\"\ngateways = []\nsubdevices = []\n").expect("write");
    assert_eq!(
        otasim(&["check", bad.to_str().expect("utf-8")]).await,
        ExitCode::FAILURE
    );
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/catalog");
    assert_eq!(
        otasim(&["check", folder.to_str().expect("utf-8")]).await,
        ExitCode::SUCCESS
    );
    assert_eq!(
        otasim(&["list", folder.to_str().expect("utf-8")]).await,
        ExitCode::SUCCESS
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_scenario_makes_run_fail_and_replay_reproduces_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let wrong = dir.path().join("wrong.toml");
    let text = std::fs::read_to_string(catalog("http-404")).expect("catalog file");
    std::fs::write(&wrong, text.replace("\"failed -2\"", "\"succeeded\"")).expect("write");
    let path = wrong.to_str().expect("utf-8");
    assert_eq!(
        otasim(&["run", path, "--seed", "9"]).await,
        ExitCode::FAILURE
    );
    assert_eq!(otasim(&["replay", "9", path]).await, ExitCode::FAILURE);
    assert_eq!(
        otasim(&["replay", "9", &catalog("http-404")]).await,
        ExitCode::SUCCESS
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_writes_a_scenario_that_checks() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("imported.toml");
    let log = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios/tests/fixtures/csdk-subdev-ota-sample.log");
    let code = otasim(&[
        "import",
        log.to_str().expect("utf-8"),
        "-o",
        out.to_str().expect("utf-8"),
    ])
    .await;
    assert_eq!(code, ExitCode::SUCCESS);
    assert_eq!(
        otasim(&["check", out.to_str().expect("utf-8")]).await,
        ExitCode::SUCCESS
    );
}

/// The same catalog scenario against a gateway run as an external command (`otasim gateway`,
/// configured from the fleet's `device_info.json`), and against that gateway broken on purpose.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_scenario_runs_against_an_external_gateway_and_catches_a_broken_one() {
    let mut plan = scenarios::Plan::load(Path::new(&catalog("happy-one-subdevice"))).expect("plan");
    let args = |extra: &[&str]| -> Vec<String> {
        [
            "gateway",
            "--device-info",
            "{device_info}",
            "--state-dir",
            "{state_dir}",
            "--hub",
            "{hub_host}:{hub_port}",
        ]
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect()
    };
    let program = env!("CARGO_BIN_EXE_otasim").to_owned();
    plan.gateways[0].run = scenarios::GatewayRun::Command {
        program: program.clone(),
        args: args(&[]),
    };
    let report = crate::support::within("the external gateway", scenarios::run(&plan, None))
        .await
        .expect("world");
    assert!(
        report.passed,
        "{:#?}\n{}",
        report.failures,
        report.context.join("\n")
    );
    // Broken: every burn fails, so the update the scenario guards cannot succeed.
    plan.gateways[0].run = scenarios::GatewayRun::Command {
        program,
        args: args(&["--burner-command", "/bin/false"]),
    };
    let broken = crate::support::within("the broken gateway", scenarios::run(&plan, None))
        .await
        .expect("world");
    assert!(!broken.passed);
    assert!(
        broken.failures.iter().any(|f| matches!(
            f,
            scenarios::Failure::Reports { got, .. } if got.iter().any(|r| r == "fail -5")
        )),
        "{:#?}",
        broken.failures
    );
}
