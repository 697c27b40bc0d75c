//! A newcomer's mistakes get an error that names the path or flag and says what to do, before
//! anything runs or listens; and small things a first hour trips on.

use std::path::Path;
use std::process::{Command, Output};

fn otasim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_otasim"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUST_LOG")
        .output()
        .expect("otasim runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Fails unless the command failed with every `needle` on stderr, no cause said twice, and
/// nothing on stdout that says it started.
fn refused(args: &[&str], needles: &[&str]) -> String {
    let out = otasim(args);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success(), "otasim {args:?} succeeded: {stdout}");
    for n in needles {
        assert!(stderr.contains(n), "otasim {args:?}: {n:?} not in {stderr}");
    }
    let line = stderr
        .lines()
        .find(|l| l.starts_with("otasim: "))
        .unwrap_or("");
    let parts: Vec<&str> = line.split(": ").collect();
    for (i, p) in parts.iter().enumerate() {
        assert!(
            !parts[i + 1..].contains(p) || p.len() < 12,
            "otasim {args:?} repeats {p:?}: {line}"
        );
    }
    assert!(
        !stdout.contains("listening") && !stdout.contains("PASS"),
        "otasim {args:?} started before refusing: {stdout}"
    );
    stderr
}

#[test]
fn errors_name_the_path_and_say_what_to_do() {
    refused(&["replay", "7", "missing.toml"], &["missing.toml"]);
    refused(
        &["run", "missing.toml"],
        &["missing.toml", "check the path"],
    );
    refused(
        &[
            "gateway",
            "--device-info",
            "nope.json",
            "--state-dir",
            "gw-nope",
        ],
        &["nope.json", "examples/device_info.json"],
    );
    refused(
        &[
            "hub",
            "--fleet",
            "nope.toml",
            "--mqtt-port",
            "0",
            "--cos-port",
            "0",
            "--api-port",
            "0",
        ],
        &["nope.toml", "--example-fleet"],
    );
    refused(
        &["cos", "--dir", "no-such-folder"],
        &["no-such-folder", "--dir"],
    );
}

#[test]
fn an_unwritable_junit_path_is_refused_before_any_scenario_runs() {
    refused(
        &[
            "run",
            "scenarios/catalog/happy-one-subdevice.toml",
            "--junit",
            "no-such-folder/junit.xml",
        ],
        &["--junit no-such-folder/junit.xml", "create its folder"],
    );
}

#[test]
fn the_hub_checks_firmware_files_and_ports_before_it_says_listening() {
    refused(
        &[
            "hub",
            "--mqtt-port",
            "0",
            "--cos-port",
            "0",
            "--api-port",
            "0",
            "--firmware",
            "E69UADXUYY:V1:no-such-image.bin",
        ],
        &["no-such-image.bin", "examples/README.md"],
    );
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port to hold");
    let port = taken.local_addr().expect("bound").port().to_string();
    refused(
        &[
            "hub",
            "--mqtt-port",
            "0",
            "--cos-port",
            &port,
            "--api-port",
            "0",
        ],
        &[&format!("127.0.0.1:{port}"), "pass --cos-port"],
    );
}

#[test]
fn a_taken_tls_port_is_refused_naming_the_flag() {
    // Any port held here stands for a taken 8883 (the default, which tests never bind).
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port to hold");
    let port = taken.local_addr().expect("bound").port().to_string();
    let args = [
        "hub",
        "--mqtt-port",
        "0",
        "--cos-port",
        "0",
        "--api-port",
        "0",
    ];
    let stderr = refused(
        &[&args[..], &["--tls-port", &port]].concat(),
        &[&format!("127.0.0.1:{port}"), "--tls-port", "off"],
    );
    assert!(stderr.contains("TLS port"), "{stderr}");
    refused(
        &[&args[..], &["--tls-port", "8883x"]].concat(),
        &["--tls-port", "off"],
    );
    refused(
        &[&args[..], &["--tls-port", "off", "--ca-file", "ca.pem"]].concat(),
        &["--ca-file", "--tls-port off"],
    );
}

#[test]
fn list_without_arguments_lists_the_catalog() {
    let out = otasim(&["list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("seed-demo"), "{stdout}");
    let catalog =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/catalog"))
            .expect("the catalog")
            .count();
    let listed = stdout
        .lines()
        .filter(|l| l.contains("scenarios/catalog/"))
        .count();
    assert_eq!(listed, catalog, "{stdout}");
}

#[test]
fn help_shows_the_serve_default_and_verbose_logs_carry_no_colour_into_a_pipe() {
    let help = text(&otasim(&["demo", "--help"]).stdout);
    assert!(help.contains("8080 if PORT is left out"), "{help}");
    let out = otasim(&["-v", "run", "scenarios/catalog/seed-demo.toml"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("INFO"), "-v logs info: {stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "colour codes in a pipe: {stderr:?}"
    );
}
