//! A device whose gateway went away mid-burn is shown offline, not as a bar that moves.

use super::{LIGHTS, Server, VERSION, id, in_browser, js, start_gateway_with};
use fake_hub::{PushMethod, PushRequest, UpdateState};
use gateway::{BurnerChoice, GatewayOptions, SimulatedBurn};
use std::collections::BTreeMap;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium: apt-get install chromium (run by .ci/run)"]
async fn a_device_whose_gateway_died_mid_burn_shows_offline() {
    let server = Server::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut options = GatewayOptions::new();
    // A burn that outlives the test: the gateway is killed while it runs.
    let slow = SimulatedBurn::Succeed {
        duration_ms: 3_600_000,
    };
    options.burner = BurnerChoice::Simulated(BTreeMap::from([(id(LIGHTS, "light1"), slow)]));
    let gw = start_gateway_with(&server.hub, &dir.path().join("gw"), options);
    let hub = &server.hub;
    let image: Vec<u8> = (0..30_000u32).map(|i| (i * 7 % 251) as u8).collect();
    hub.upload_firmware(LIGHTS, VERSION, image).expect("upload");
    let light1 = id(LIGHTS, "light1");
    assert!(
        hub.wait_until(crate::support::DEADLINE, |h| h
            .device(&light1)
            .is_some_and(|d| d.online))
            .await,
        "light1 online"
    );
    let task = hub
        .push(PushRequest {
            product_id: LIGHTS.into(),
            version: VERSION.into(),
            method: PushMethod::Devices {
                devices: vec!["light1".into()],
            },
        })
        .expect("push");
    let burning = |h: &fake_hub::Hub| {
        h.task(task).is_some_and(|t| {
            t.devices
                .get(&format!("{LIGHTS}/light1"))
                .is_some_and(|u| u.state == UpdateState::Burning)
        })
    };
    assert!(
        hub.wait_until(crate::support::DEADLINE, burning).await,
        "light1 burning"
    );
    gw.kill().await;
    let gateway = id("JR1WOKB7Q7", "gw_deng1");
    assert!(
        hub.wait_until(crate::support::DEADLINE, |h| h
            .device(&gateway)
            .is_some_and(|d| !d.online))
            .await,
        "the gateway offline on the hub"
    );
    let row = format!("#tasks div.task[data-task=\"{task}\"] tr[data-device=\"{LIGHTS}/light1\"]");
    in_browser(&server.url, "console-offline.png", move |b| {
        b.wait_for(
            "light1 shown offline, its bar still",
            &format!(
                "document.querySelector({sel}) && \
                 document.querySelector({sel}).dataset.state === 'offline' && \
                 document.querySelector({bar}).classList.contains('offline') && \
                 document.querySelector({sel}).textContent.includes('gateway is not connected')",
                sel = js(&row),
                bar = js(&format!("{row} .bar-inner")),
            ),
        )?;
        Ok(())
    })
    .await;
    server.shutdown().await;
}
