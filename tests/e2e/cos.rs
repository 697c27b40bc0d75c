//! End-to-end tests: one per fake-cos fault family, run as a scenario against our gateway,
//! showing the reports the hub receives and the requests fake-cos journaled.

use crate::support::within;
use fake_cos::{ConnEnd, JournalEntry};
use scenarios::{Plan, RunReport};
use std::path::Path;

/// Size of the test image: several body chunks, small enough to be quick.
const SIZE: u64 = 100_000;
/// The object the hub stores the image as: `{product_id}_{version}`.
const OBJECT: &str = "E69UADXUYY_V100R0001";

/// One gateway, one light at 0.1, images V100R0001 (pushed) and V100R0002 (a replacement for
/// `replace_object`), the given `[[cos_faults]]`, and the expected report sequence of light1.
fn scenario(name: &str, faults: &str, reports: &[&str], version_after: &str) -> String {
    let reports = reports
        .iter()
        .map(|r| format!("{r:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"name = "{name}"

[[gateways]]
product_id = "JR1WOKB7Q7"
device_name = "gw_deng1"
secret = "1RRdhkwmZ45wYXjuPfygeA=="

[[subdevices]]
product_id = "E69UADXUYY"
device_name = "light1"
version = "0.1"

[[firmware]]
product_id = "E69UADXUYY"
version = "V100R0001"
size = {SIZE}
seed = 1

[[firmware]]
product_id = "E69UADXUYY"
version = "V100R0002"
size = {SIZE}
seed = 2

{faults}

[[steps]]
action = "wait_online"

[[steps]]
action = "push"
product_id = "E69UADXUYY"
version = "V100R0001"
method = "devices"
devices = ["light1"]

[[steps]]
action = "wait_tasks"

[expect.versions]
"E69UADXUYY/light1" = "{version_after}"

[expect.reports]
"E69UADXUYY/light1" = [{reports}]
"#
    )
}

/// Runs the scenario and checks that it passed; returns the report for further checks.
async fn run(name: &str, faults: &str, reports: &[&str], version_after: &str) -> RunReport {
    let text = scenario(name, faults, reports, version_after);
    let plan = Plan::parse(Path::new(&format!("{name}.toml")), &text)
        .unwrap_or_else(|e| panic!("scenario {name} is valid: {e}"));
    let report = within(name, scenarios::run(&plan, None))
        .await
        .expect("world starts");
    assert!(
        report.passed,
        "failures: {:#?}\nreports: {:?}\njournal: {:#?}",
        report.failures,
        report
            .devices
            .iter()
            .map(|d| &d.reports)
            .collect::<Vec<_>>(),
        report.cos_journal
    );
    report
}

/// The GETs of the pushed image, in order.
fn gets(report: &RunReport) -> Vec<&JournalEntry> {
    report
        .cos_journal
        .iter()
        .filter(|e| e.method == "GET" && e.object.as_deref() == Some(OBJECT))
        .collect()
}

fn fault_kind(entry: &JournalEntry) -> Option<String> {
    entry
        .fault
        .as_ref()
        .and_then(|f| serde_json::to_value(&f.verdict).ok())
        .and_then(|v| v["kind"].as_str().map(str::to_owned))
}

const FIRST_ATTEMPT: &str = "when = { object = \"E69UADXUYY_V100R0001\", attempt = 1 }";
const SECOND_ATTEMPT: &str = "when = { object = \"E69UADXUYY_V100R0001\", attempt = 2 }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_403_on_the_first_request_reports_signature_expired() {
    let faults = format!(
        "[[cos_faults]]\n{FIRST_ATTEMPT}\nverdict = {{ kind = \"status\", code = 403 }}\n\
         fires = \"once\""
    );
    let report = run("cos-403", &faults, &["downloading 0", "fail -3"], "0.1").await;
    let gets = gets(&report);
    assert_eq!(gets.len(), 1, "a 403 is not retried");
    assert_eq!(gets[0].status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_404_reports_file_not_exist() {
    let faults = format!(
        "[[cos_faults]]\n{FIRST_ATTEMPT}\nverdict = {{ kind = \"status\", code = 404 }}\n\
         fires = \"once\""
    );
    let report = run("cos-404", &faults, &["downloading 0", "fail -2"], "0.1").await;
    assert_eq!(gets(&report)[0].status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_503_with_retry_after_then_ok_is_retried_to_done() {
    let faults = format!(
        "[[cos_faults]]\n{FIRST_ATTEMPT}\n\
         verdict = {{ kind = \"status\", code = 503, retry_after_secs = 1 }}\nfires = \"once\""
    );
    let report = run(
        "cos-503",
        &faults,
        &["downloading 0", "downloading*", "burning", "done"],
        "V100R0001",
    )
    .await;
    let statuses: Vec<u16> = gets(&report).iter().map(|e| e.status).collect();
    assert_eq!(statuses, [503, 206]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_after_n_bytes_is_resumed_from_byte_n_to_done() {
    let faults = format!(
        "[[cos_faults]]\n{FIRST_ATTEMPT}\nverdict = {{ kind = \"cut_after\", bytes = 40000 }}\n\
         fires = \"once\""
    );
    let report = run(
        "cos-cut",
        &faults,
        &["downloading 0", "downloading*", "burning", "done"],
        "V100R0001",
    )
    .await;
    let gets = gets(&report);
    assert_eq!(gets.len(), 2, "{gets:#?}");
    assert_eq!(
        (gets[0].end, gets[0].body_bytes_sent),
        (ConnEnd::Cut, 40_000)
    );
    assert_eq!(gets[1].range.as_deref(), Some("bytes=40000-99999"));
    assert_eq!((gets[1].status, gets[1].end), (206, ConnEnd::Complete));
    assert_eq!(gets[1].body_bytes_sent, SIZE - 40_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_mid_body_is_resumed_to_done() {
    let faults = format!(
        "[[cos_faults]]\n{FIRST_ATTEMPT}\nverdict = {{ kind = \"reset\", after_bytes = 30000 }}\n\
         fires = \"once\""
    );
    let report = run(
        "cos-reset",
        &faults,
        &["downloading 0", "downloading*", "burning", "done"],
        "V100R0001",
    )
    .await;
    let gets = gets(&report);
    assert_eq!(gets[0].end, ConnEnd::Reset);
    let last = gets.last().expect("a final request");
    assert_eq!((last.status, last.end), (206, ConnEnd::Complete));
    assert!(last.range.as_deref().is_some_and(|r| r.ends_with("-99999")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corruption_in_the_resumed_range_only_reports_md5_mismatch() {
    let faults = format!(
        "[[cos_faults]]\n{FIRST_ATTEMPT}\nverdict = {{ kind = \"cut_after\", bytes = 40000 }}\n\
         fires = \"once\"\n\n[[cos_faults]]\n{SECOND_ATTEMPT}\n\
         verdict = {{ kind = \"corrupt\", offset = 70000 }}\nfires = \"once\""
    );
    let report = run(
        "cos-corrupt-resume",
        &faults,
        &["downloading 0", "downloading*", "fail -4"],
        "0.1",
    )
    .await;
    let gets = gets(&report);
    assert_eq!(gets.len(), 2, "an MD5 mismatch is not retried: {gets:#?}");
    assert_eq!(fault_kind(gets[1]).as_deref(), Some("corrupt"));
    assert_eq!(gets[1].range.as_deref(), Some("bytes=40000-99999"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignored_range_on_the_resume_restarts_from_zero_to_done() {
    let faults = format!(
        "[[cos_faults]]\n{FIRST_ATTEMPT}\nverdict = {{ kind = \"cut_after\", bytes = 40000 }}\n\
         fires = \"once\"\n\n[[cos_faults]]\n{SECOND_ATTEMPT}\n\
         verdict = {{ kind = \"ignore_range\" }}\nfires = \"once\""
    );
    let report = run(
        "cos-ignore-range",
        &faults,
        &["downloading 0", "downloading*", "burning", "done"],
        "V100R0001",
    )
    .await;
    let gets = gets(&report);
    assert_eq!(gets.len(), 2, "{gets:#?}");
    assert_eq!(gets[1].range.as_deref(), Some("bytes=40000-99999"));
    assert_eq!((gets[1].status, gets[1].body_bytes_sent), (200, SIZE));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_replaced_between_attempts_restarts_and_reports_md5_mismatch() {
    let faults = format!(
        "[[cos_faults]]\n{FIRST_ATTEMPT}\nverdict = {{ kind = \"cut_after\", bytes = 40000 }}\n\
         fires = \"once\"\n\n[[cos_faults]]\n{SECOND_ATTEMPT}\n\
         verdict = {{ kind = \"replace_object\", with_object = \"E69UADXUYY_V100R0002\" }}\n\
         fires = \"once\""
    );
    let report = run(
        "cos-replace",
        &faults,
        &["downloading 0", "downloading*", "fail -4"],
        "0.1",
    )
    .await;
    let gets = gets(&report);
    let restart = gets.last().expect("a request after the new ETag");
    assert_eq!(restart.range.as_deref(), Some("bytes=0-99999"), "{gets:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finite_stall_and_throttle_only_slow_the_download_to_done() {
    let faults = format!(
        "[[cos_faults]]\n{FIRST_ATTEMPT}\n\
         verdict = {{ kind = \"stall_after\", bytes = 20000, for_ms = 300 }}\nfires = \"once\"\n\n\
         [[cos_faults]]\nwhen = {{ object = \"{OBJECT}\" }}\n\
         verdict = {{ kind = \"throttle\", bytes_per_sec = 400000 }}\nfires = \"always\""
    );
    let report = run(
        "cos-stall-throttle",
        &faults,
        &["downloading 0", "downloading*", "burning", "done"],
        "V100R0001",
    )
    .await;
    let gets = gets(&report);
    assert_eq!(gets.len(), 1, "{gets:#?}");
    assert_eq!(fault_kind(gets[0]).as_deref(), Some("stall_after"));
    assert_eq!(
        (gets[0].end, gets[0].body_bytes_sent),
        (ConnEnd::Complete, SIZE)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_loop_reports_upgrade_failed() {
    let faults = format!(
        "[[cos_faults]]\nwhen = {{ object = \"{OBJECT}\" }}\n\
         verdict = {{ kind = \"redirect\", location = \"/{OBJECT}\" }}\nfires = \"always\""
    );
    let report = run(
        "cos-redirect",
        &faults,
        &["downloading 0", "fail -5"],
        "0.1",
    )
    .await;
    assert_eq!(gets(&report)[0].status, 302);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_body_is_refused_as_upgrade_failed() {
    let faults = format!(
        "[[cos_faults]]\nwhen = {{ object = \"{OBJECT}\" }}\n\
         verdict = {{ kind = \"gzip\" }}\nfires = \"always\""
    );
    let report = run("cos-gzip", &faults, &["downloading 0", "fail -5"], "0.1").await;
    assert_eq!(
        gets(&report).len(),
        1,
        "an encoding violation is not retried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_body_without_content_length_is_accepted_to_done() {
    let faults = format!(
        "[[cos_faults]]\nwhen = {{ object = \"{OBJECT}\" }}\n\
         verdict = {{ kind = \"chunked\" }}\nfires = \"always\""
    );
    let report = run(
        "cos-chunked",
        &faults,
        &["downloading 0", "downloading*", "burning", "done"],
        "V100R0001",
    )
    .await;
    assert_eq!(fault_kind(gets(&report)[0]).as_deref(), Some("chunked"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_content_length_reports_upgrade_failed() {
    let faults = format!(
        "[[cos_faults]]\nwhen = {{ object = \"{OBJECT}\" }}\n\
         verdict = {{ kind = \"wrong_content_length\", delta = -10 }}\nfires = \"always\""
    );
    let report = run(
        "cos-wrong-length",
        &faults,
        &["downloading 0", "fail -5"],
        "0.1",
    )
    .await;
    assert_eq!(gets(&report).len(), 1, "a length violation is not retried");
}

/// Reads `otasim cos` output lines until one satisfies `want`.
async fn line_where(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    want: impl Fn(&str) -> bool,
) -> String {
    loop {
        let line = lines
            .next_line()
            .await
            .expect("readable stdout")
            .expect("otasim cos still running");
        if want(&line) {
            return line;
        }
    }
}

/// One HTTP/1.1 request with `Connection: close`; the raw answer.
async fn raw_get(addr: &str, target: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    String::from_utf8_lossy(&raw).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otasim_cos_serves_a_folder_prints_urls_and_each_request_until_sigterm() {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("fw.bin"), b"firmware bytes").expect("write");
    std::fs::write(dir.path().join("bad name.bin"), b"x").expect("write");
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("passwd")).expect("symlink");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_otasim"))
        .args(["cos", "--dir"])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("otasim runs");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let admin = within(
        "admin line",
        line_where(&mut lines, |l| l.starts_with("admin: ")),
    )
    .await;
    let object = within(
        "object line",
        line_where(&mut lines, |l| l.starts_with("object ")),
    )
    .await;
    assert!(object.starts_with("object fw.bin size=14 md5="), "{object}");
    let url = object.split_once(" url=http://").expect("a signed URL").1;
    let (host, target) = url.split_at(url.find('/').expect("a path"));
    let answer = within("download", raw_get(host, target)).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.ends_with("\r\n\r\nfirmware bytes"), "{answer}");
    let logged = within(
        "request line",
        line_where(&mut lines, |l| {
            l.starts_with("#1 ") && l.ends_with(" complete")
        }),
    )
    .await;
    assert!(
        logged.contains(" GET /fw.bin attempt=1 -> 200 14 B "),
        "{logged}"
    );
    let admin = admin.trim_start_matches("admin: http://");
    let objects = within("control API", raw_get(admin, "/objects")).await;
    assert!(objects.contains(r#""name":"fw.bin""#), "{objects}");
    let pid = child.id().expect("running").to_string();
    let signal = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .expect("kill runs");
    assert!(signal.success());
    let status = within("exit after SIGTERM", child.wait())
        .await
        .expect("exit");
    assert!(status.success(), "{status}");
    let mut stderr = String::new();
    let mut err = child.stderr.take().expect("stderr");
    err.read_to_string(&mut stderr).await.expect("stderr");
    assert!(stderr.contains("warning: skipping"), "{stderr}");
    assert!(stderr.contains("bad name.bin"), "{stderr}");
    assert!(
        stderr.contains("symbolic link out of the folder"),
        "{stderr}"
    );
}
