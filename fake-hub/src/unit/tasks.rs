//! Tasks as rules: the three push methods, timeouts, retries, the rate limit, start delays,
//! cancel and override, on the hub's clock moved by the test and the scheduler's timer queue.

use super::ota::{fleet, progress, push_all, state_of};
use super::*;
use crate::HubError;
use crate::tasks::{PushMethod, PushRequest, RateLimit, TaskOptions, TaskRequest, UpdateState};

fn request(method: PushMethod, options: TaskOptions) -> TaskRequest {
    TaskRequest {
        push: PushRequest {
            product_id: "E69UADXUYY".into(),
            version: "2.0".into(),
            method,
        },
        options,
    }
}

fn create(kit: &Kit, req: TaskRequest) -> Result<u64, HubError> {
    crate::tasks::create::push(&kit.core, req)
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn targets(kit: &Kit, task: u64) -> Vec<String> {
    let state = kit.core.lock();
    crate::tasks::create::status_of(&state, task)
        .expect("the task")
        .devices
        .into_keys()
        .collect()
}

#[test]
fn the_three_methods_choose_their_devices() {
    let (kit, subs) = fleet(3);
    kit.core
        .lock()
        .registry
        .get_mut(&subs[2])
        .expect("known")
        .version = Some("0.9".into());
    let by_versions = PushMethod::Versions {
        from_versions: names(&["1.0"]),
    };
    let t1 = create(&kit, request(by_versions, TaskOptions::default())).expect("task");
    assert_eq!(
        targets(&kit, t1),
        [subs[0].to_string(), subs[1].to_string()]
    );
    let both = PushMethod::DevicesAndVersions {
        devices: names(&["light2", "light3"]),
        from_versions: names(&["0.9"]),
    };
    let t2 = create(&kit, request(both, TaskOptions::default())).expect("task");
    assert_eq!(targets(&kit, t2), [subs[2].to_string()]);
    let listed = PushMethod::Devices {
        devices: names(&["light1"]),
    };
    let over = TaskOptions {
        override_running: true,
        ..TaskOptions::default()
    };
    let t3 = create(&kit, request(listed, over)).expect("task");
    assert_eq!(targets(&kit, t3), [subs[0].to_string()]);
    // The device taken over is cancelled under its old task.
    let old = crate::tasks::create::status_of(&kit.core.lock(), t1).expect("task");
    assert!(matches!(
        &old.devices[&subs[0].to_string()].state,
        UpdateState::Cancelled { reason } if reason == &format!("superseded by task {t3}")
    ));
    let unknown = PushMethod::Devices {
        devices: names(&["nobody"]),
    };
    assert!(matches!(
        create(&kit, request(unknown, TaskOptions::default())),
        Err(HubError::UnknownDevice(_))
    ));
    let none = PushMethod::Versions {
        from_versions: names(&["7.7"]),
    };
    assert!(matches!(
        create(&kit, request(none, TaskOptions::default())),
        Err(HubError::NoTargets)
    ));
}

#[test]
fn a_busy_device_is_skipped_without_override() {
    let (kit, subs) = fleet(1);
    let first = push_all(&kit);
    let again = PushMethod::Devices {
        devices: names(&["light1"]),
    };
    let second = create(&kit, request(again, TaskOptions::default())).expect("task");
    let status = crate::tasks::create::status_of(&kit.core.lock(), second).expect("task");
    assert_eq!(status.skipped[&subs[0].to_string()], first);
    assert!(status.devices.is_empty());
}

#[test]
fn a_timeout_retries_after_the_interval_then_fails_for_good() {
    let (kit, subs) = fleet(1);
    let options = TaskOptions {
        timeout: Some(Duration::from_secs(10)),
        retries: 1,
        retry_interval: Duration::from_secs(5),
        ..TaskOptions::default()
    };
    let versions = PushMethod::Versions {
        from_versions: names(&["1.0"]),
    };
    create(&kit, request(versions, options)).expect("task");
    let s = &subs[0];
    progress(&kit, s, "downloading", Some(5));
    kit.advance_ms(5_000);
    kit.tick();
    assert_eq!(state_of(&kit, s), UpdateState::Downloading { percent: 5 });
    kit.advance_ms(5_000);
    kit.tick();
    assert!(matches!(
        state_of(&kit, s),
        UpdateState::WaitingRetry { code: -1, .. }
    ));
    kit.take_published();
    kit.advance_ms(5_000);
    kit.tick();
    assert_eq!(state_of(&kit, s), UpdateState::Pushed);
    let resent = kit.take_published();
    assert_eq!(resent.len(), 1, "one retry: {resent:?}");
    assert_eq!(resent[0].1["type"], "update_firmware");
    kit.advance_ms(10_000);
    kit.tick();
    assert!(matches!(
        state_of(&kit, s),
        UpdateState::Failed { code: -1, .. }
    ));
    let u = kit.core.lock().updates[s].clone();
    assert_eq!((u.attempts, u.commands_sent), (2, 2));
    // Nothing is left in the timer queue.
    assert!(kit.core.lock().timers.is_empty());
    assert_eq!(kit.tick(), None);
}

#[test]
fn the_rate_limit_and_start_delay_start_devices_in_waves() {
    let (kit, subs) = fleet(5);
    let options = TaskOptions {
        rate_limit: Some(RateLimit {
            devices: 2,
            per: Duration::from_secs(60),
        }),
        start_delay: Duration::from_secs(10),
        ..TaskOptions::default()
    };
    let versions = PushMethod::Versions {
        from_versions: names(&["1.0"]),
    };
    create(&kit, request(versions, options)).expect("task");
    let started = |kit: &Kit| {
        subs.iter()
            .filter(|s| state_of(kit, s) != UpdateState::Queued)
            .count()
    };
    assert_eq!(started(&kit), 0);
    for (advance_ms, expected) in [(9_000, 0), (1_000, 2), (59_000, 2), (1_000, 4), (60_000, 5)] {
        kit.advance_ms(advance_ms);
        kit.tick();
        assert_eq!(started(&kit), expected, "after {advance_ms} more ms");
    }
}

#[test]
fn cancel_ends_every_unfinished_update_of_the_task_only() {
    let (kit, subs) = fleet(3);
    let task = push_all(&kit);
    progress(&kit, &subs[0], "done", None);
    assert!(crate::tasks::create::cancel(&kit.core, task));
    assert_eq!(state_of(&kit, &subs[0]), UpdateState::Succeeded);
    for s in &subs[1..] {
        assert!(matches!(state_of(&kit, s), UpdateState::Cancelled { .. }));
    }
    let status = crate::tasks::create::status_of(&kit.core.lock(), task).expect("task");
    assert!(status.cancelled && status.is_finished());
    assert_eq!(status.summary["cancelled"], 2);
    assert!(!crate::tasks::create::cancel(&kit.core, task + 1));
}

/// A task over a large fleet with a timeout: every step keeps one timer per update, and a
/// tick touches only the updates that are due (bounded in time: no step scans the fleet).
#[test]
fn the_timer_queue_holds_one_entry_per_pending_update() {
    let (kit, subs) = fleet(2_000);
    let options = TaskOptions {
        timeout: Some(Duration::from_secs(30)),
        ..TaskOptions::default()
    };
    let versions = PushMethod::Versions {
        from_versions: names(&["1.0"]),
    };
    create(&kit, request(versions, options)).expect("task");
    assert_eq!(kit.core.lock().timers.len(), subs.len());
    for s in &subs[..1_000] {
        progress(&kit, s, "done", None);
    }
    assert_eq!(kit.core.lock().timers.len(), 1_000);
    kit.advance_ms(30_000);
    kit.tick();
    let state = kit.core.lock();
    assert!(state.timers.is_empty());
    let failed = subs
        .iter()
        .filter(|s| matches!(state.updates[*s].state, UpdateState::Failed { .. }))
        .count();
    assert_eq!(failed, 1_000);
}
