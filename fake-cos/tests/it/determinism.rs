//! The same fault plan gives the same journal on every run.

use fake_cos::{FaultRule, Fires, Selector, Verdict};
use serde_json::{Value, json};

use crate::client::{FW_NAME, fixture, get};

/// A plan touching every selector and several verdict families, as a scenario would.
fn plan() -> Vec<FaultRule> {
    let on = |when: Selector, verdict: Verdict, fires: Fires| FaultRule {
        when,
        verdict,
        fires,
    };
    let object = Some(FW_NAME.to_owned());
    vec![
        on(
            Selector {
                object: object.clone(),
                attempt: Some(1),
                ..Selector::default()
            },
            Verdict::CutAfter { bytes: 5000 },
            Fires::Once,
        ),
        on(
            Selector {
                attempt: Some(2),
                ..Selector::default()
            },
            Verdict::Status {
                code: 503,
                retry_after_secs: Some(1),
            },
            Fires::Once,
        ),
        on(
            Selector {
                range_start: Some(5000),
                ..Selector::default()
            },
            Verdict::Corrupt {
                offset: 6000,
                len: 2,
                xor: 0x0F,
            },
            Fires::Times(1),
        ),
        on(
            Selector {
                nth_request: Some(4),
                ..Selector::default()
            },
            Verdict::IgnoreRange,
            Fires::Always,
        ),
        on(
            Selector {
                object,
                ..Selector::default()
            },
            Verdict::Reset { after_bytes: 100 },
            Fires::Times(1),
        ),
    ]
}

/// The journal as JSON with the client port (the only thing the OS chooses) removed.
fn redacted(journal: &[fake_cos::JournalEntry]) -> Value {
    let mut value = serde_json::to_value(journal).expect("journal serializes");
    for entry in value.as_array_mut().expect("a list") {
        let client = entry["client"].as_str().expect("client address").to_owned();
        let ip = client
            .rsplit_once(':')
            .map_or(client.clone(), |(ip, _)| ip.to_owned());
        entry["client"] = Value::String(ip);
    }
    value
}

async fn run_once() -> Value {
    let fx = fixture().await;
    for rule in plan() {
        fx.cos.add_rule(rule).expect("valid rule").keep();
    }
    for range in [
        "bytes=0-29972",
        "bytes=5000-29972",
        "bytes=5000-29972",
        "bytes=5000-29972",
        "bytes=5000-29972",
        "bytes=0-29971",
    ] {
        get(&fx, &[("Range", range)]).await;
    }
    let journal = redacted(&fx.cos.journal());
    fx.cos.shutdown().await;
    journal
}

#[tokio::test]
async fn one_fault_plan_run_twenty_times_gives_twenty_equal_journals() {
    let first = run_once().await;
    assert_eq!(first.as_array().map(Vec::len), Some(6));
    let fired: Vec<Value> = first
        .as_array()
        .expect("a list")
        .iter()
        .map(|e| e["fault"]["verdict"]["kind"].clone())
        .collect();
    let expected = ["cut_after", "status", "corrupt", "ignore_range", "reset"]
        .map(|k| json!(k))
        .into_iter()
        .chain([Value::Null]);
    assert_eq!(fired, expected.collect::<Vec<_>>());
    for run in 2..=20 {
        assert_eq!(run_once().await, first, "run {run} differs from run 1");
    }
}
