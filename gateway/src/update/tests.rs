use super::*;
use proptest::prelude::*;

const MD5: &str = "20a4d2b1f8492a22fa3e472a758bf9ec";

fn cmd(version: &str) -> UpdateFirmware {
    UpdateFirmware {
        file_size: 1000,
        md5sum: MD5.into(),
        url: "http://127.0.0.1/fw?sign=x".into(),
        version: version.into(),
    }
}

fn machine() -> UpdateMachine {
    UpdateMachine::new("0.1".into(), 1 << 20)
}

fn reports(actions: &[Action]) -> Vec<ProgressReport> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Report(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn happy_path_reports_downloading_burning_done_then_version() {
    let mut m = machine();
    let a = m.handle(Event::Command(cmd("1.0")));
    assert_eq!(reports(&a), vec![ProgressReport::downloading("1.0", 0)]);
    assert!(matches!(a[1], Action::Download(_)));
    let a = m.handle(Event::Downloaded(Ok("img".into())));
    assert_eq!(
        reports(&a),
        vec![
            ProgressReport::downloading("1.0", 100),
            ProgressReport::burning("1.0")
        ]
    );
    assert!(matches!(a.last(), Some(Action::Burn { .. })));
    let a = m.handle(Event::Burned(Ok(())));
    assert_eq!(
        a,
        vec![
            Action::Report(ProgressReport::done("1.0")),
            Action::ReportVersion("1.0".into())
        ]
    );
    assert_eq!(m.running_version(), "1.0");
    assert!(m.is_idle());
}

#[test]
fn duplicate_command_does_not_start_a_second_download() {
    let mut m = machine();
    m.handle(Event::Command(cmd("1.0")));
    assert!(m.handle(Event::Command(cmd("1.0"))).is_empty());
    m.handle(Event::Downloaded(Ok("img".into())));
    assert!(m.handle(Event::Command(cmd("1.0"))).is_empty());
}

#[test]
fn redelivered_command_for_the_running_version_reports_done_without_download() {
    let mut m = machine();
    m.handle(Event::Command(cmd("1.0")));
    m.handle(Event::Downloaded(Ok("img".into())));
    m.handle(Event::Burned(Ok(())));
    let actions = m.handle(Event::Command(cmd("1.0")));
    assert!(!actions.iter().any(|a| matches!(a, Action::Download(_))));
    assert_eq!(
        actions,
        vec![
            Action::Report(ProgressReport::done("1.0")),
            Action::ReportVersion("1.0".into())
        ]
    );
    assert!(m.is_idle());
}

#[test]
fn fresh_url_for_the_same_image_refreshes_the_running_download() {
    let mut m = machine();
    m.handle(Event::Command(cmd("1.0")));
    let fresh = UpdateFirmware {
        url: "http://127.0.0.1/fw?sign=fresh".into(),
        ..cmd("1.0")
    };
    let a = m.handle(Event::Command(fresh.clone()));
    assert_eq!(a, vec![Action::RefreshUrl(fresh.url.clone())]);
    assert!(
        m.handle(Event::Command(fresh)).is_empty(),
        "already using it"
    );
}

#[test]
fn command_for_the_running_version_during_a_download_reports_done_without_fetching() {
    let mut m = machine();
    m.handle(Event::Command(cmd("1.0")));
    let a = m.handle(Event::Command(cmd("0.1")));
    assert_eq!(
        a,
        vec![
            Action::AbandonDownload,
            Action::Report(ProgressReport::done("0.1")),
            Action::ReportVersion("0.1".into())
        ]
    );
    assert!(m.is_idle());
    assert!(m.handle(Event::Downloaded(Ok("img".into()))).is_empty());
}

#[test]
fn newer_command_supersedes_a_running_download() {
    let mut m = machine();
    m.handle(Event::Command(cmd("1.0")));
    let a = m.handle(Event::Command(cmd("2.0")));
    assert_eq!(a[0], Action::AbandonDownload);
    assert_eq!(reports(&a), vec![ProgressReport::downloading("2.0", 0)]);
}

#[test]
fn command_during_burn_waits_for_the_burn() {
    let mut m = machine();
    m.handle(Event::Command(cmd("1.0")));
    m.handle(Event::Downloaded(Ok("img".into())));
    assert!(m.handle(Event::Command(cmd("2.0"))).is_empty());
    let a = m.handle(Event::Burned(Ok(())));
    assert_eq!(
        reports(&a),
        vec![
            ProgressReport::done("1.0"),
            ProgressReport::downloading("2.0", 0)
        ]
    );
}

#[test]
fn failures_report_their_code_and_message() {
    let mut m = machine();
    m.handle(Event::Command(cmd("1.0")));
    let f = Failure::new(OtaResultCode::SignatureExpired, "http 403 on attempt 1");
    let a = m.handle(Event::Downloaded(Err(f)));
    assert_eq!(
        reports(&a),
        vec![ProgressReport::fail(
            "1.0",
            OtaResultCode::SignatureExpired,
            "http 403 on attempt 1"
        )]
    );
    assert!(m.is_idle());
    m.handle(Event::Command(cmd("1.0")));
    m.handle(Event::Downloaded(Ok("img".into())));
    let a = m.handle(Event::Burned(Err(Failure::new(
        OtaResultCode::UpgradeFailed,
        "burn failed at 40%",
    ))));
    assert_eq!(reports(&a)[0].result_code, OtaResultCode::UpgradeFailed);
    assert_eq!(m.running_version(), "0.1");
}

#[test]
fn hostile_command_is_refused_with_a_fail_report_and_no_download() {
    let mut m = machine();
    let mut c = cmd("../../etc");
    c.file_size = -1;
    let a = m.handle(Event::Command(c));
    assert_eq!(a.len(), 1);
    let r = &reports(&a)[0];
    assert_eq!(r.result_code, OtaResultCode::UpgradeFailed);
    assert!(r.result_msg.contains("invalid version"), "{}", r.result_msg);
    assert!(m.is_idle());
}

#[test]
fn progress_is_reported_at_most_once_a_second() {
    let mut m = machine();
    m.handle(Event::Command(cmd("1.0")));
    let p = |m: &mut UpdateMachine, bytes, t| {
        reports(&m.handle(Event::Progress {
            bytes,
            total: 1000,
            now: secs(t),
        }))
    };
    assert!(
        p(&mut m, 100, 10).is_empty(),
        "first chunk only starts the clock"
    );
    assert!(p(&mut m, 200, 10).is_empty());
    assert_eq!(
        p(&mut m, 300, 11),
        vec![ProgressReport::downloading("1.0", 30)]
    );
    assert!(p(&mut m, 400, 11).is_empty());
    assert!(p(&mut m, 1000, 13).is_empty(), "100 waits for verification");
}

#[derive(Debug, Clone)]
enum Step {
    Cmd(u8),
    Progress(u16, u8),
    DownloadOk,
    DownloadFail,
    BurnOk,
    BurnFail,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..3u8).prop_map(Step::Cmd),
        (0..=1000u16, 0..5u8).prop_map(|(b, t)| Step::Progress(b, t)),
        Just(Step::DownloadOk),
        Just(Step::DownloadFail),
        Just(Step::BurnOk),
        Just(Step::BurnFail),
    ]
}

proptest! {
    /// Whatever order events arrive in, a burn is only ever asked for after a verified download
    /// of that version, `done` only follows a successful burn, and percent never goes backwards
    /// within one download.
    #[test]
    fn reports_stay_consistent_under_any_event_order(steps in prop::collection::vec(step(), 1..60)) {
        let mut m = machine();
        let mut clock = 0u64;
        let mut burning: Option<String> = None;
        let mut last_pct: Option<u8> = None;
        for s in steps {
            let ev = match s {
                Step::Cmd(v) => Event::Command(cmd(&format!("{v}.0"))),
                Step::Progress(b, dt) => { clock += u64::from(dt); Event::Progress { bytes: u64::from(b), total: 1000, now: secs(clock) } }
                Step::DownloadOk => Event::Downloaded(Ok("img".into())),
                Step::DownloadFail => Event::Downloaded(Err(Failure::new(OtaResultCode::UpgradeFailed, "cut"))),
                Step::BurnOk => Event::Burned(Ok(())),
                Step::BurnFail => Event::Burned(Err(Failure::new(OtaResultCode::UpgradeFailed, "burn"))),
            };
            let was_burning = !m.is_idle() && matches!(m.phase, Phase::Burning { .. });
            let running_before = m.running_version().to_owned();
            let redelivered = !was_burning
                && matches!(&ev, Event::Command(c) if c.version == running_before);
            for a in m.handle(ev.clone()) {
                match a {
                    Action::Burn { version, .. } => {
                        prop_assert!(matches!(ev, Event::Downloaded(Ok(_))));
                        burning = Some(version.to_string());
                    }
                    Action::Report(r) if r.state == otasim_protocol::ProgressState::Done => {
                        if redelivered {
                            prop_assert_eq!(&r.version, &running_before);
                        } else {
                            prop_assert!(was_burning && matches!(ev, Event::Burned(Ok(()))));
                            prop_assert_eq!(Some(&r.version), burning.as_ref());
                        }
                    }
                    Action::Report(r) if r.state == otasim_protocol::ProgressState::Downloading => {
                        let p = r.percent.unwrap();
                        if p == 0 { last_pct = Some(0); }
                        else { prop_assert!(last_pct.is_none_or(|l| p > l || p == 100)); last_pct = Some(p); }
                    }
                    _ => {}
                }
            }
        }
    }
}
