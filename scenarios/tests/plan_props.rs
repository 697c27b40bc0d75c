//! Property tests of the scenario file parser and validator (outside input: anyone may hand
//! `otasim run` a file). Any bytes, and any scenario built at random from the format's own keys
//! with values of every type and at the extremes, give a plan or an error that names the line
//! or the field, and never a panic.

use proptest::prelude::*;
use scenarios::{Plan, PlanError};
use std::path::Path;

const TOP: &[&str] = &[
    "name",
    "description",
    "seed",
    "time_scale",
    "download_attempts",
    "checkpoint_bytes",
    "burn_timeout_ms",
    "builtin_only",
    "cos_faults",
    "hub_faults",
];
const GATEWAY: &[&str] = &[
    "product_id",
    "device_name",
    "secret",
    "run",
    "max_image_bytes",
    "max_concurrent",
    "quota_bytes",
    "kind",
    "program",
    "args",
];
const SUBDEVICE: &[&str] = &[
    "product_id",
    "device_name",
    "gateway",
    "version",
    "secret",
    "bound",
    "burner",
    "count",
    "kind",
    "percent",
    "times",
    "duration_ms",
];
const FIRMWARE: &[&str] = &["product_id", "version", "size", "seed", "file"];
const ACTIONS: &[&str] = &[
    "wait_online",
    "push",
    "wait_tasks",
    "wait_until",
    "kill_gateway",
    "start_gateway",
    "kick",
    "add_cos_fault",
    "advance_cos_clock",
    "add_hub_fault",
    "cancel_task",
    "advance_hub_clock",
    "expect_quiet",
    "replace_firmware",
    "unbind",
    "configure_gateway",
    "fill_disk",
    "raw_publish",
    "no_such_action",
];
const STEP: &[&str] = &[
    "timeout_ms",
    "product_id",
    "version",
    "method",
    "devices",
    "from_versions",
    "options",
    "until",
    "on",
    "state",
    "device",
    "at_least",
    "count",
    "percent_at_least",
    "object",
    "gateway",
    "rule",
    "seconds",
    "ms",
    "task",
    "for_ms",
    "size",
    "seed",
    "file",
    "max_concurrent",
    "quota_bytes",
    "bytes",
    "as",
    "topic",
    "payload",
    "qos",
    "retain",
    "mqtt",
    "answer",
    "retries",
    "rate_limit",
    "per_ms",
];
const EXPECT: &[&str] = &[
    "versions",
    "reports",
    "online_results",
    "untouched",
    "results",
    "bytes_downloaded",
    "cos_bytes_sent",
    "cos_requests",
    "tasks",
    "nothing_else",
    "counts",
    "cos_gaps",
    "cos_ranges",
    "update_commands",
    "cos_request",
    "transcript",
    "warnings",
    "of",
    "direction",
    "topic",
    "json",
    "not_json",
    "contains",
    "min",
    "max",
    "exactly",
    "nth",
    "range",
    "min_ms",
    "E69UADXUYY/light1",
];

/// Strings a scenario uses, and a few that break things; never an absolute path.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "",
            "E69UADXUYY",
            "JR1WOKB7Q7",
            "gw_deng1",
            "light1",
            "E69UADXUYY/light1",
            "JR1WOKB7Q7/gw_deng1",
            "gateway",
            "0.1",
            "V2",
            "devices",
            "versions",
            "raw",
            "builtin",
            "ok",
            "hang",
            "downloading 0",
            "downloading*",
            "fail -5 ~md5",
            "succeeded",
            "failed -4",
            "disconnect 0x9B",
            "puback",
            "connack 5",
            "event",
            "refused",
            "$ota/report/E69UADXUYY/light1",
            "bytes=0-99",
            "report_version",
            "1RRdhkwmZ45wYXjuPfygeA==",
            "\u{0}",
            "é/ü",
        ])
        .prop_map(str::to_owned),
        "[a-zA-Z0-9_ .=\\-]{0,40}",
        "\\PC{0,20}",
    ]
}

fn leaf() -> impl Strategy<Value = toml::Value> {
    prop_oneof![
        text().prop_map(toml::Value::String),
        prop::sample::select(vec![
            0i64,
            1,
            -1,
            2,
            3,
            5,
            100,
            101,
            1024,
            1025,
            i64::from(u32::MAX),
            i64::MAX,
            i64::MIN,
        ])
        .prop_map(toml::Value::Integer),
        any::<i64>().prop_map(toml::Value::Integer),
        prop::sample::select(vec![
            0.0,
            0.05,
            1.0,
            10.0,
            10.5,
            -1.0,
            f64::NAN,
            f64::INFINITY
        ])
        .prop_map(toml::Value::Float),
        any::<bool>().prop_map(toml::Value::Boolean),
    ]
}

/// A value of any shape: leaves, arrays and tables whose keys come from `keys`.
fn value(keys: &'static [&'static str]) -> impl Strategy<Value = toml::Value> {
    leaf().prop_recursive(3, 24, 4, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(toml::Value::Array),
            prop::collection::btree_map(prop::sample::select(keys), inner, 0..4).prop_map(|m| {
                toml::Value::Table(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

/// A table with some of `keys`, each with a value of any shape.
fn table(
    keys: &'static [&'static str],
    nested: &'static [&'static str],
) -> impl Strategy<Value = toml::Table> {
    prop::collection::btree_map(prop::sample::select(keys), value(nested), 0..6)
        .prop_map(|m| m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

fn base() -> toml::Table {
    toml::from_str(
        r#"
name = "fuzz"
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
size = 10
"#,
    )
    .expect("the base scenario")
}

fn scenario() -> impl Strategy<Value = String> {
    (
        table(TOP, STEP),
        table(GATEWAY, GATEWAY),
        table(SUBDEVICE, SUBDEVICE),
        table(FIRMWARE, FIRMWARE),
        prop::collection::vec((prop::sample::select(ACTIONS), table(STEP, STEP)), 0..5),
        table(EXPECT, EXPECT),
        any::<bool>(),
    )
        .prop_map(|(top, gw, sub, fw, steps, expect, drop_base)| {
            let mut doc = if drop_base {
                toml::Table::new()
            } else {
                base()
            };
            let merge = |doc: &mut toml::Table, list: &str, extra: toml::Table| {
                if let Some(t) = doc
                    .get_mut(list)
                    .and_then(|v| v.as_array_mut())
                    .and_then(|a| a.first_mut())
                    .and_then(|v| v.as_table_mut())
                {
                    t.extend(extra);
                } else {
                    doc.insert(list.to_owned(), toml::Value::Array(vec![extra.into()]));
                }
            };
            doc.extend(top);
            merge(&mut doc, "gateways", gw);
            merge(&mut doc, "subdevices", sub);
            merge(&mut doc, "firmware", fw);
            let steps: Vec<toml::Value> = steps
                .into_iter()
                .map(|(action, mut t)| {
                    t.insert("action".into(), action.into());
                    t.into()
                })
                .collect();
            doc.insert("steps".into(), toml::Value::Array(steps));
            doc.insert("expect".into(), expect.into());
            toml::to_string(&doc).unwrap_or_default()
        })
}

/// Parses and validates; a refusal must say where.
fn judged(text: &str) -> Result<(), TestCaseError> {
    let path = Path::new("fuzz-scenarios/scenario.toml");
    match Plan::parse(path, text) {
        Ok(_) => Ok(()),
        Err(PlanError::Syntax { message, .. }) => {
            prop_assert!(
                message.contains("line ") || message.contains('`'),
                "a syntax error naming neither a line nor a field: {message}"
            );
            Ok(())
        }
        Err(PlanError::Invalid { field, reason, .. }) => {
            prop_assert!(!field.is_empty() && !reason.is_empty(), "{field}: {reason}");
            Ok(())
        }
        Err(e @ PlanError::Read { .. }) => Err(TestCaseError::fail(format!("read: {e}"))),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_are_a_plan_or_an_error_naming_where(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        judged(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn any_text_is_a_plan_or_an_error_naming_where(text in "\\PC{0,300}") {
        judged(&text)?;
    }

    #[test]
    fn any_structurally_random_scenario_is_a_plan_or_an_error_naming_where(text in scenario()) {
        judged(&text)?;
    }
}
