//! A `-3` says which refusal it was: a URL past its expiry and a URL whose signature does not
//! match give different explanations, in the gateway's `result_msg`, in the COS journal and in
//! the scenario's result.

use scenarios::{Plan, RunReport};
use std::path::Path;

/// A real expiry: the body stalls at 40,000 bytes, the COS clock moves two hours, and the
/// resume is refused; no retry, so the update ends failed -3.
const EXPIRY: &str = r#"
name = "url-expired-mid-download"
time_scale = 0.05
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
version = "V2"
size = 100000
seed = 7
[[cos_faults]]
when = { object = "E69UADXUYY_V2" }
verdict = { kind = "stall_after", bytes = 40000 }
fires = "once"
[[steps]]
action = "wait_online"
[[steps]]
action = "push"
product_id = "E69UADXUYY"
version = "V2"
method = "devices"
devices = ["light1"]
[[steps]]
action = "wait_until"
until = { on = "cos_bytes", object = "E69UADXUYY_V2", at_least = 40000 }
[[steps]]
action = "advance_cos_clock"
seconds = 7200
[[steps]]
action = "wait_tasks"
[expect.results]
"E69UADXUYY/light1" = "failed -3"
"#;

async fn run(plan: &Plan) -> RunReport {
    let report = scenarios::run(plan, None).await.expect("the world starts");
    assert!(report.passed, "{:?}", report.failure_lines());
    report
}

fn refused_code(report: &RunReport) -> (String, &'static str) {
    let refused = report
        .cos_journal
        .iter()
        .rev()
        .find(|j| j.status == 403)
        .expect("a refused request");
    let error = refused
        .error
        .as_ref()
        .expect("the journal keeps the COS code");
    (
        error.code.clone(),
        error.refusal().expect("a credential refusal"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_url_and_a_signature_mismatch_are_told_apart() {
    let catalog = Path::new(env!("CARGO_MANIFEST_DIR")).join("catalog");
    let mismatch = Plan::load(&catalog.join("http-403-signature-mismatch.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let expiry = Plan::parse(Path::new("url-expired-mid-download.toml"), EXPIRY)
        .unwrap_or_else(|e| panic!("{e}"));
    let (mismatch, expiry) = tokio::join!(run(&mismatch), run(&expiry));

    assert_eq!(
        refused_code(&mismatch),
        ("SignatureDoesNotMatch".into(), "signature mismatch")
    );
    assert_eq!(refused_code(&expiry), ("AccessDenied".into(), "expired"));

    let result = |r: &RunReport| r.devices[0].result.clone();
    let (m, e) = (result(&mismatch), result(&expiry));
    assert!(
        m.contains("url refused: SignatureDoesNotMatch")
            && m.ends_with(
                "url refused: signature mismatch (SignatureDoesNotMatch: The Signature you \
                 specified is invalid.)"
            ),
        "{m}"
    );
    assert!(
        e.contains("url refused: AccessDenied")
            && e.ends_with("url refused: expired (AccessDenied: Request has expired)"),
        "{e}"
    );
}
