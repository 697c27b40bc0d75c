//! The per-device update machine, by example and by proptest over orderings of reports,
//! versions and clock ticks.

use super::*;
use proptest::prelude::*;

fn id() -> DeviceId {
    DeviceId::new("E69UADXUYY", "light1").expect("valid id")
}

fn update(policy: Policy) -> DeviceUpdate {
    let mut u = DeviceUpdate::new(
        1,
        id(),
        Some("0.1".into()),
        "1.0".into(),
        policy,
        Duration::ZERO,
        Duration::ZERO,
    );
    assert_eq!(u.on_tick(Duration::ZERO), Effect::Send);
    u
}

const T0: Duration = Duration::ZERO;

fn strict() -> Policy {
    Policy {
        require_version_report: true,
        ..Policy::default()
    }
}

#[test]
fn done_is_success_and_a_later_other_version_is_only_a_warning() {
    let mut u = update(Policy::default());
    u.on_progress(&ProgressReport::downloading("1.0", 0), T0);
    u.on_progress(&ProgressReport::burning("1.0"), T0);
    u.on_progress(&ProgressReport::done("1.0"), T0);
    assert_eq!(u.state, UpdateState::Succeeded);
    assert_eq!(u.wake_at, None);
    // The official sample restarts with its hard-coded 0.1.
    assert_eq!(u.on_version("0.1", T0), Effect::None);
    assert_eq!(u.state, UpdateState::Succeeded);
    assert_eq!(
        u.warning.as_deref(),
        Some("reported 0.1 after done (target 1.0)")
    );
}

#[test]
fn the_state_never_moves_backwards_within_an_attempt() {
    let mut u = update(Policy::default());
    u.on_progress(&ProgressReport::downloading("1.0", 100), T0);
    u.on_progress(&ProgressReport::burning("1.0"), T0);
    assert_eq!(
        u.on_progress(&ProgressReport::downloading("1.0", 50), T0),
        Effect::NotApplied
    );
    assert_eq!(u.state, UpdateState::Burning);
}

#[test]
fn strict_rule_succeeds_only_after_done_and_the_target_version() {
    let mut u = update(strict());
    u.on_progress(&ProgressReport::downloading("1.0", 0), T0);
    u.on_progress(&ProgressReport::burning("1.0"), T0);
    u.on_progress(&ProgressReport::done("1.0"), T0);
    assert_eq!(u.state, UpdateState::Done);
    assert_eq!(u.on_version("1.0", T0), Effect::None);
    assert_eq!(u.state, UpdateState::Succeeded);
    let labels: Vec<_> = u.history.iter().map(|(_, s)| s.label()).collect();
    assert_eq!(
        labels,
        [
            "queued",
            "pushed",
            "downloading",
            "burning",
            "done",
            "succeeded"
        ]
    );
}

#[test]
fn strict_rule_fails_a_wrong_version_after_done() {
    let mut u = update(strict());
    u.on_progress(&ProgressReport::done("1.0"), T0);
    u.on_version("0.1", T0);
    assert!(matches!(u.state, UpdateState::Failed { code: -5, .. }));
}

#[test]
fn old_version_during_an_attempt_asks_for_a_resend() {
    let mut u = update(strict());
    assert_eq!(u.on_version("0.1", T0), Effect::Send);
    u.on_progress(&ProgressReport::downloading("1.0", 0), T0);
    assert_eq!(u.on_version("0.1", T0), Effect::Send);
    assert_eq!(u.state, UpdateState::Pushed);
    assert_eq!(
        u.on_version("1.0", T0),
        Effect::None,
        "the target without done changes nothing"
    );
    u.on_progress(&ProgressReport::done("1.0"), T0);
    assert_eq!(u.on_version("0.1", T0), Effect::None);
    assert!(matches!(u.state, UpdateState::Failed { .. }));
}

#[test]
fn stale_reports_about_other_versions_are_ignored() {
    let mut u = update(Policy::default());
    u.on_progress(
        &ProgressReport::fail("0.9", OtaResultCode::Md5Mismatch, "x"),
        T0,
    );
    assert_eq!(u.state, UpdateState::Pushed);
    u.on_progress(
        &ProgressReport::fail("1.0", OtaResultCode::Md5Mismatch, "md5"),
        T0,
    );
    assert_eq!(
        u.state,
        UpdateState::Failed {
            code: -4,
            message: "md5".into()
        }
    );
}

#[test]
fn timeout_retries_after_the_interval_then_fails_for_good() {
    let policy = Policy {
        timeout: Some(Duration::from_secs(60)),
        retries: 1,
        retry_interval: Duration::from_secs(10),
        require_version_report: false,
    };
    let mut u = update(policy);
    assert_eq!(u.on_tick(Duration::from_secs(59)), Effect::None);
    assert_eq!(u.on_tick(Duration::from_secs(60)), Effect::None);
    assert_eq!(u.state.label(), "waiting_retry");
    assert_eq!(u.on_tick(Duration::from_secs(70)), Effect::Send);
    assert_eq!(u.attempts, 2);
    assert_eq!(u.on_tick(Duration::from_secs(130)), Effect::None);
    assert!(matches!(u.state, UpdateState::Failed { code: -1, .. }));
    assert_eq!(u.wake_at, None);
}

#[test]
fn queued_update_starts_at_its_start_time() {
    let mut u = DeviceUpdate::new(
        1,
        id(),
        None,
        "1.0".into(),
        Policy::default(),
        T0,
        Duration::from_secs(30),
    );
    assert_eq!(u.on_tick(Duration::from_secs(29)), Effect::None);
    assert_eq!(u.on_version("0.1", T0), Effect::None, "queued devices wait");
    assert_eq!(u.on_tick(Duration::from_secs(30)), Effect::Send);
    assert_eq!(u.state, UpdateState::Pushed);
}

#[derive(Debug, Clone)]
enum Ev {
    Progress(u8, bool),
    Version(bool),
    Tick(u64),
    Cancel,
}

fn event() -> impl Strategy<Value = Ev> {
    prop_oneof![
        (0..4u8, any::<bool>()).prop_map(|(s, t)| Ev::Progress(s, t)),
        any::<bool>().prop_map(Ev::Version),
        (0..200u64).prop_map(Ev::Tick),
        Just(Ev::Cancel),
    ]
}

fn apply(u: &mut DeviceUpdate, ev: &Ev, now: &mut Duration) -> Effect {
    let version = |target: bool| if target { "1.0" } else { "0.1" };
    match ev {
        Ev::Progress(s, t) => {
            let v = version(*t);
            let r = match s {
                0 => ProgressReport::downloading(v, 50),
                1 => ProgressReport::burning(v),
                2 => ProgressReport::done(v),
                _ => ProgressReport::fail(v, OtaResultCode::UpgradeFailed, "x"),
            };
            u.on_progress(&r, *now)
        }
        Ev::Version(t) => u.on_version(version(*t), *now),
        Ev::Tick(secs) => {
            *now += Duration::from_secs(*secs);
            u.on_tick(*now)
        }
        Ev::Cancel => {
            u.cancel("test".into(), *now);
            Effect::None
        }
    }
}

proptest! {
    #[test]
    fn any_ordering_keeps_the_machine_consistent(
        events in proptest::collection::vec(event(), 0..40),
        retries in 0..3u32,
        timeout in proptest::option::of(1..100u64),
        require_version_report in any::<bool>(),
    ) {
        let policy = Policy {
            timeout: timeout.map(Duration::from_secs),
            retries,
            retry_interval: Duration::from_secs(5),
            require_version_report,
        };
        let mut u = update(policy);
        let mut now = T0;
        let mut sends = 1;
        for ev in &events {
            let was_final = u.state.is_final();
            let before = u.state.clone();
            if apply(&mut u, ev, &mut now) == Effect::Send {
                sends += 1;
                prop_assert!(!u.state.is_final(), "no command for a final update");
            }
            // A final state never changes.
            if was_final {
                prop_assert_eq!(&u.state, &before);
            }
            prop_assert!(u.attempts <= retries + 1, "attempts {} > 1 + {}", u.attempts, retries);
            if u.state == UpdateState::Succeeded && require_version_report {
                let done_seen = u.history.iter().any(|(_, s)| *s == UpdateState::Done);
                prop_assert!(done_seen, "succeeded without done");
            }
            if !require_version_report {
                prop_assert_ne!(&u.state, &UpdateState::Done, "done is success");
            }
            if u.state.is_final() {
                prop_assert_eq!(u.wake_at, None);
            }
        }
        // History times never go backwards and consecutive entries differ.
        for w in u.history.windows(2) {
            prop_assert!(w[0].0 <= w[1].0);
            prop_assert_ne!(&w[0].1, &w[1].1);
        }
        prop_assert!(sends >= u.attempts);
    }

    #[test]
    fn without_a_timeout_only_reports_end_an_attempt(ticks in proptest::collection::vec(0..10_000u64, 1..20)) {
        let mut u = update(Policy::default());
        let mut now = T0;
        for t in ticks {
            now += Duration::from_secs(t);
            prop_assert_eq!(u.on_tick(now), Effect::None);
        }
        prop_assert_eq!(u.state, UpdateState::Pushed);
    }
}
