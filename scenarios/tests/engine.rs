//! The engine's promises: same transcript on every run, errors that name line and field,
//! failures that show the first divergence, reports a person and a CI can read, field logs
//! that replay, and catalog scenarios that fail when what they guard is broken.

use scenarios::{
    BurnerPlan, Failure, Plan, PlanError, ReportPattern, ResultPattern, RunReport, TranscriptEntry,
};

fn pattern(text: &str) -> ReportPattern {
    ReportPattern::parse(text).expect("a valid pattern")
}
use std::path::{Path, PathBuf};

fn catalog(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("catalog")
        .join(format!("{name}.toml"))
}

fn load(name: &str) -> Plan {
    Plan::load(&catalog(name)).unwrap_or_else(|e| panic!("{e}"))
}

async fn run(plan: &Plan) -> RunReport {
    scenarios::run(plan, None).await.expect("the world starts")
}

/// One device's MQTT conversation, redacted: URLs and signatures, times and sequence numbers
/// out; progress percentages between 0 and 100 depend on wall time and are folded.
fn redacted(transcript: &[TranscriptEntry], device: &str) -> Vec<String> {
    transcript
        .iter()
        .filter(|e| e.topic.ends_with(device) && !e.topic.starts_with("$gateway"))
        .map(|e| {
            let mut v = e.json().unwrap_or(serde_json::Value::Null);
            if let Some(url) = v.get_mut("url") {
                *url = "[url]".into();
            }
            let text = v.to_string();
            let folded = text.contains("\"downloading\"")
                && !text.contains("\"percent\":\"0\"")
                && !text.contains("\"percent\":\"100\"");
            format!(
                "{:?} {} {}",
                e.direction,
                e.topic,
                if folded { "[progress]".into() } else { text }
            )
        })
        .filter(|l| !l.ends_with("[progress]"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scenario_gives_the_same_redacted_transcript_twenty_times() {
    let plan = load("cut-in-the-middle");
    let first = run(&plan).await;
    assert!(first.passed, "{:?}", first.failures);
    let want = redacted(&first.transcript, "light1");
    assert!(want.len() >= 6, "{want:#?}");
    for i in 1..20 {
        let again = run(&plan).await;
        assert!(again.passed, "run {i}: {:?}", again.failures);
        assert_eq!(redacted(&again.transcript, "light1"), want, "run {i}");
        let ranges: Vec<_> = again
            .cos_journal
            .iter()
            .map(|j| (j.range.clone(), j.status))
            .collect();
        let first_ranges: Vec<_> = first
            .cos_journal
            .iter()
            .map(|j| (j.range.clone(), j.status))
            .collect();
        assert_eq!(ranges, first_ranges, "run {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_fixes_the_firmware_and_another_seed_changes_it() {
    let plan = load("happy-one-subdevice");
    let md5 = |r: &RunReport| {
        r.transcript
            .iter()
            .find_map(|e| e.json().and_then(|v| v.get("md5sum").cloned()))
            .expect("an update_firmware")
    };
    let a = scenarios::run_seeded(&plan, 42, None).await.expect("world");
    let b = scenarios::run_seeded(&plan, 42, None).await.expect("world");
    let c = scenarios::run_seeded(&plan, 43, None).await.expect("world");
    assert!(a.passed && b.passed && c.passed);
    assert_eq!((a.seed, md5(&a)), (42, md5(&b)));
    assert_ne!(md5(&a), md5(&c));
}

fn invalid(text: &str) -> PlanError {
    Plan::parse(Path::new("bad.toml"), text).expect_err("the file is refused")
}

const HEAD: &str = "name = \"x\"\n\n[[gateways]]\nproduct_id = \"JR1WOKB7Q7\"\ndevice_name = \"gw\"\nsecret = \"c2VjcmV0\"\n\n[[subdevices]]\nproduct_id = \"E69UADXUYY\"\ndevice_name = \"light1\"\nversion = \"0.1\"\n\n[[firmware]]\nproduct_id = \"E69UADXUYY\"\nversion = \"V2\"\nsize = 100\n";

#[test]
fn a_typo_in_a_field_name_is_refused_with_its_line_and_name() {
    let e = invalid(&format!(
        "{HEAD}\n[[steps]]\naction = \"push\"\nproduct_id = \"E69UADXUYY\"\nversion = \"V2\"\nmethod = \"devices\"\ndevcies = [\"light1\"]\n"
    ));
    let text = e.to_string();
    assert!(text.contains("bad.toml"), "{text}");
    assert!(text.contains("line 23"), "{text}");
    assert!(text.contains("devcies"), "{text}");
}

#[test]
fn an_unknown_field_is_refused_with_its_line_and_name() {
    let e = invalid(&format!("{HEAD}colour = \"red\"\n"));
    let text = e.to_string();
    assert!(
        text.contains("line 17") && text.contains("colour"),
        "{text}"
    );
}

#[test]
fn a_firmware_file_that_is_a_device_is_refused_without_reading_it() {
    // `/dev/zero` never ends: reading it whole would hang the parser and fill memory.
    let e = invalid(&HEAD.replace("size = 100", "file = \"/dev/zero\""));
    let text = e.to_string();
    assert!(
        text.contains("firmware[0].file") && text.contains("regular file"),
        "{text}"
    );
}

#[test]
fn a_mistyped_value_is_refused_with_its_line() {
    let e = invalid(&HEAD.replace("size = 100", "size = \"big\""));
    let text = e.to_string();
    assert!(text.contains("line 16") && text.contains("size"), "{text}");
}

#[test]
fn an_impossible_expectation_is_refused_with_its_line_and_field() {
    let e = invalid(&format!(
        "{HEAD}\n[expect.versions]\n\"E69UADXUYY/light1\" = \"9.9\"\n"
    ));
    match &e {
        PlanError::Invalid { line, field, .. } => {
            assert_eq!(*line, Some(19), "{e}");
            assert_eq!(field, "expect.versions.E69UADXUYY/light1");
        }
        other => panic!("expected Invalid, got {other}"),
    }
    assert!(
        e.to_string().starts_with("bad.toml:19: expect.versions"),
        "{e}"
    );
    let bounds = invalid(&format!(
        "{HEAD}\n[expect]\ncos_requests = {{ min = 3, max = 1 }}\n"
    ));
    assert!(
        bounds
            .to_string()
            .contains("bad.toml:19: expect.cos_requests"),
        "{bounds}"
    );
    let device = invalid(&format!(
        "{HEAD}\n[expect.results]\n\"E69UADXUYY/nobody\" = \"done\"\n"
    ));
    assert!(
        device
            .to_string()
            .contains(":19: expect.results.E69UADXUYY/nobody"),
        "{device}"
    );
}

#[test]
fn hostile_scenario_text_is_refused_without_a_panic() {
    for text in [
        "",
        "\u{0}",
        "name = 1",
        "[[gateways]]\n[[gateways]]",
        &"[".repeat(10_000),
    ] {
        assert!(Plan::parse(Path::new("h.toml"), text).is_err());
    }
}

#[test]
fn every_catalog_file_validates_and_names_the_field_failure_it_models() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("catalog");
    let files = scenarios::discover(&[dir]).expect("catalog");
    assert!(files.len() >= 40, "{} files", files.len());
    for f in files {
        let text = std::fs::read_to_string(&f).expect("readable");
        assert!(
            text.starts_with('#'),
            "{} has no leading comment",
            f.display()
        );
        Plan::parse(&f, &text).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_names_the_first_divergence_with_the_transcript_around_it() {
    let mut plan = load("http-404");
    // Expect what a gateway that mislabels a 404 would be judged against.
    let light = plan.subdevices[0].id.clone();
    plan.expect
        .reports
        .insert(light, ["downloading 0", "fail -5"].map(pattern).to_vec());
    let report = run(&plan).await;
    assert!(!report.passed);
    assert!(
        matches!(&report.failures[0], Failure::Reports { at: 1, got_report: Some(r), .. } if r == "fail -2"),
        "{:?}",
        report.failures
    );
    assert!(
        report
            .context
            .iter()
            .any(|l| l.starts_with(">>") && l.contains("fail -2")),
        "{:#?}",
        report.context
    );
    assert!(report.context.len() >= 3, "{:#?}", report.context);
}

/// Mutation checks: each scenario, run in a world where the behaviour it guards is broken,
/// must fail, and say why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_catalog_scenarios_fail_when_what_they_guard_is_broken() {
    // A gateway that skipped the MD5 check would burn the corrupted image: the same wire as
    // a run where nothing corrupts it, judged against the same expectations.
    let mut md5 = load("md5-mismatch-in-resumed-range");
    md5.cos_faults
        .retain(|r| !matches!(r.verdict, fake_cos::Verdict::Corrupt { .. }));
    // A gateway that restarts instead of resuming fetches the cut bytes again.
    let mut resume = load("cut-in-the-middle");
    resume.cos_faults.push(
        serde_json::from_value(serde_json::json!({
            "when": {"attempt": 2}, "verdict": {"kind": "ignore_range"}, "fires": "once"
        }))
        .expect("rule"),
    );
    // A gateway that reports done whatever the burner says.
    let mut burn = load("burn-fails");
    burn.subdevices[0].burner = BurnerPlan::default();
    // A gateway that maps every HTTP error to -5.
    let mut not_found = load("http-404");
    not_found.cos_faults[0].verdict = fake_cos::Verdict::Status {
        code: 500,
        retry_after_secs: None,
    };
    // A gateway that publishes for a subdevice the hub refused.
    let mut unbound = load("online-refused-unbound");
    unbound.subdevices[1].bound = true;
    let reports = |f: &Failure| matches!(f, Failure::Reports { .. });
    let cos_bytes = |f: &Failure| matches!(f, Failure::CosBytes { .. });
    let online = |f: &Failure| matches!(f, Failure::OnlineResult { expected: -1, .. });
    type Guard<'a> = &'a dyn Fn(&Failure) -> bool;
    let cases: [(Plan, Guard); 5] = [
        (md5, &reports),
        (resume, &cos_bytes),
        (burn, &reports),
        (not_found, &reports),
        (unbound, &online),
    ];
    for (plan, guarded) in cases {
        let report = run(&plan).await;
        assert!(
            !report.passed,
            "{} passed with its guarded behaviour broken",
            plan.name
        );
        assert!(
            report.failures.iter().any(guarded),
            "{}: {:#?}",
            plan.name,
            report.failures
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_html_timeline_has_lanes_and_every_http_request() {
    let report = run(&load("cut-in-the-middle")).await;
    let html = scenarios::html_timeline(&report);
    for needle in [
        "<svg",
        "gateway gw_deng1",
        "light1",
        "COS",
        "marker-end",
        "Range: bytes=50000-",
        "cut_after",
        "update_firmware V2",
    ] {
        assert!(html.contains(needle), "missing {needle}");
    }
    assert!(!html.contains("<script"), "self-contained and static");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junit_lists_each_scenario_with_its_seed_and_failure() {
    let ok = run(&load("happy-one-subdevice")).await;
    let mut bad_plan = load("http-404");
    bad_plan.name = "http-404-broken".into();
    bad_plan
        .expect
        .results
        .insert(bad_plan.subdevices[0].id.clone(), ResultPattern::Succeeded);
    let bad = run(&bad_plan).await;
    let xml = scenarios::junit_xml(&[ok, bad], &[("x.toml".into(), "x.toml:3: nope".into())]);
    assert!(
        xml.contains("tests=\"3\"")
            && xml.contains("failures=\"1\"")
            && xml.contains("errors=\"1\""),
        "{xml}"
    );
    assert!(xml.contains("name=\"seed\" value=\"0\""), "{xml}");
    assert!(xml.contains("expected result succeeded"), "{xml}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_field_log_replays_its_report_sequence_against_our_gateway() {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/csdk-subdev-ota-sample.log");
    let log = std::fs::read(&fixture).unwrap_or_else(|e| panic!("{}: {e}", fixture.display()));
    let imported =
        scenarios::import_log("sample", &String::from_utf8_lossy(&log)).expect("the log imports");
    let plan = Plan::parse(Path::new("imported.toml"), &imported.toml)
        .unwrap_or_else(|e| panic!("{e}\n{}", imported.toml));
    assert_eq!(plan.gateways[0].id.to_string(), "TESTGW0001/gw1");
    assert_eq!(plan.subdevices.len(), 4);
    assert!(!plan.subdevices[1].bound, "light2 was answered online -1");
    let sizes: Vec<u64> = plan.firmware.iter().map(|f| f.size_bytes).collect();
    assert_eq!(sizes, [29972, 29972, 100_000, 29972]);
    assert!(imported.toml.contains("4f6490366f0432ffdffaabafa9defb0f"));
    let report = run(&plan).await;
    assert!(
        report.passed,
        "{:#?}\n{}",
        report.failures,
        report.context.join("\n")
    );
    let air = report
        .devices
        .iter()
        .find(|d| d.device.ends_with("airConditioner1"))
        .expect("row");
    assert_eq!(air.version_after.as_deref(), Some("2.2"));
}

#[test]
fn a_log_without_a_gateway_is_refused_clearly() {
    assert!(scenarios::import_log("x", "garbage\nINF|t|f|g(1): hello").is_err());
}

/// The editors' schema and the engine agree on every key the catalog uses.
#[test]
fn the_published_schema_allows_every_key_the_catalog_uses() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("scenario.schema.json")).expect("schema"),
    )
    .expect("the schema is JSON");
    let allowed = |def: &serde_json::Value| -> Vec<String> {
        def["properties"]
            .as_object()
            .expect("properties")
            .keys()
            .cloned()
            .collect()
    };
    let defs = &schema["$defs"];
    let check = |what: &str, value: &serde_json::Value, keys: &[String], file: &Path| {
        for k in value
            .as_object()
            .map(|o| o.keys().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            assert!(
                keys.contains(k),
                "{}: {what} key {k} is not in the schema",
                file.display()
            );
        }
    };
    for f in scenarios::discover(&[root.join("catalog")]).expect("catalog") {
        let doc: serde_json::Value =
            toml::from_str(&std::fs::read_to_string(&f).expect("file")).expect("toml");
        check("top-level", &doc, &allowed(&schema), &f);
        for (list, def) in [
            ("gateways", "gateway"),
            ("subdevices", "subdevice"),
            ("firmware", "firmware"),
            ("steps", "step"),
            ("cos_faults", "cos_fault"),
            ("hub_faults", "hub_fault"),
        ] {
            for item in doc[list].as_array().into_iter().flatten() {
                check(list, item, &allowed(&defs[def]), &f);
            }
        }
        check("expect", &doc["expect"], &allowed(&defs["expect"]), &f);
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 8, ..Default::default() })]

    /// Wherever the link is cut, the resume fetches exactly the missing bytes and the update
    /// succeeds: the cut offset is the offset under test.
    #[test]
    fn a_cut_at_any_offset_is_resumed_without_refetching(cut in 0u64..100_000) {
        let mut plan = load("cut-in-the-middle");
        plan.cos_faults[0].verdict = fake_cos::Verdict::CutAfter { bytes: cut };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let report = runtime.block_on(run(&plan));
        proptest::prop_assert!(report.passed, "cut at {cut}: {:?}", report.failures);
        let ranges: Vec<_> = report.cos_journal.iter().filter_map(|j| j.range.clone()).collect();
        proptest::prop_assert_eq!(ranges, vec!["bytes=0-99999".to_owned(), format!("bytes={cut}-99999")]);
    }
}
