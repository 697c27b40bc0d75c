//! Burners: simulated faults and the command burner, each ending with an honest report.

use super::{Rig, failure, image};
use fake_hub::UpdateState;
use gateway::{BurnerChoice, GatewayOptions, SimulatedBurn};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;

/// The reports end `burning` then `fail`, and `burning` came after the download's 100.
fn assert_burn_failed(rig: &Rig, device: &otasim_protocol::DeviceId) {
    let states = rig.reported_states(device);
    let n = states.len();
    assert!(n >= 2, "{states:?}");
    assert_eq!(&states[n - 2..], ["burning", "fail"], "{states:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn simulated_burn_faults_fail_with_code_5_and_say_what_happened() {
    let rig = Rig::start(4).await;
    rig.upload("2.0", image(50_000, 5));
    let behaviours = [
        SimulatedBurn::FailAt {
            percent: 40,
            duration_ms: 0,
        },
        SimulatedBurn::WrongVersion {
            reports: "0.9".into(),
            duration_ms: 0,
        },
        SimulatedBurn::OfflineAt {
            percent: 70,
            duration_ms: 0,
        },
        SimulatedBurn::Succeed { duration_ms: 50 },
    ];
    let map: BTreeMap<_, _> = rig.subs.iter().cloned().zip(behaviours).collect();
    let mut options = GatewayOptions::new();
    options.burner = BurnerChoice::Simulated(map);
    let (gw, _events) = rig.gateway(options).await;
    rig.push("2.0", &rig.subs);
    let expected = [
        "flash write failed at 40%",
        "burned 2.0 but the subdevice reports version 0.9",
        "went offline at 70%",
    ];
    for (sub, words) in rig.subs.iter().zip(expected) {
        let (code, message) = failure(&rig.final_state(sub).await);
        assert_eq!(code, -5, "{sub}: {message}");
        assert!(message.contains(words), "{sub}: {message}");
        assert_burn_failed(&rig, sub);
    }
    assert_eq!(rig.final_state(&rig.subs[3]).await, UpdateState::Succeeded);
    // `done` already made the update a success; the version report follows it.
    let reported = |h: &fake_hub::Hub| {
        h.device(&rig.subs[3]).and_then(|d| d.version).as_deref() == Some("2.0")
    };
    assert!(
        rig.hub
            .wait_until(std::time::Duration::from_secs(10), reported)
            .await,
        "the new version is reported: {:?}",
        rig.hub.device(&rig.subs[3])
    );
    gw.shutdown().await;
    rig.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn command_burner_runs_the_users_program_and_reports_its_stderr_on_failure() {
    let rig = Rig::start(2).await;
    rig.upload("2.0", image(50_000, 6));
    let program = rig.dir.path().join("burn.sh");
    let log = rig.dir.path().join("burned.txt");
    let script = format!(
        "#!/bin/sh\nif [ \"$3\" = light2 ]; then echo 'light2: no answer on the bus' >&2; exit 4; fi\n\
         cmp -s \"$1\" \"$OTASIM_IMAGE\" || exit 9\necho \"$2/$3 $4 $(wc -c < \"$1\")\" >> {}\necho 100\n",
        log.display()
    );
    std::fs::write(&program, script).expect("write script");
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut options = GatewayOptions::new();
    options.burner = BurnerChoice::Command(program);
    let (gw, _events) = rig.gateway(options).await;
    rig.push("2.0", &rig.subs);
    assert_eq!(rig.final_state(&rig.subs[0]).await, UpdateState::Succeeded);
    let (code, message) = failure(&rig.final_state(&rig.subs[1]).await);
    assert_eq!(code, -5);
    assert!(message.contains("exited with exit status: 4"), "{message}");
    assert!(
        message.contains("light2: no answer on the bus"),
        "{message}"
    );
    assert_burn_failed(&rig, &rig.subs[1]);
    let burned = std::fs::read_to_string(log).expect("the program ran");
    assert_eq!(burned.trim(), "E69UADXUYY/light1 2.0 50000");
    gw.shutdown().await;
    rig.shutdown().await;
}
