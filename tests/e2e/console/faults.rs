//! The console's fault panel in Chromium: hub and COS faults armed and removed live, and a
//! device's timeline showing the COS requests of its download beside its MQTT messages.

use super::{LIGHTS, Server, VERSION, id, in_browser, js, start_gateway};
use fake_hub::{Direction, HttpRecord, PushMethod, PushRequest, UpdateState};
use std::sync::Arc;

const CUT_AT: u64 = 10_000;

fn click(selector: &str) -> String {
    format!("document.querySelector({}).click();", js(selector))
}

fn faults_text_has(text: &str) -> String {
    format!(
        "document.getElementById('faults').textContent.includes({})",
        js(text)
    )
}

/// Arms a hub fault from a preset and removes it, arms a COS cut from JSON, pushes, and reads
/// the cut and the resumed request in light1's timeline; then removes the COS fault.
fn drive_faults(b: &mut super::cdp::Browser, hub: &Arc<fake_hub::Hub>) -> anyhow::Result<()> {
    b.wait_for(
        "light1 online in the fleet",
        &format!(
            "document.querySelector({}+' .dot.on')",
            js(&format!(
                "#fleet tr[data-device={}]",
                js(&format!("{LIGHTS}/light1"))
            ))
        ),
    )?;
    let choose = |id: &str, value: &str| {
        format!(
            "{{ const s = document.getElementById('{id}'); s.value = {}; \
             s.dispatchEvent(new Event('change')); }}",
            js(value)
        )
    };
    // A hub preset, armed and listed, then removed on the page.
    b.eval(&choose("fault-target", "hub"))?;
    b.eval(&choose("fault-preset", "duplicate update_firmware"))?;
    b.wait_for(
        "the preset's rule in the editor",
        "document.getElementById('fault-rule').value.includes('duplicate_update')",
    )?;
    b.eval(&click("#fault-arm"))?;
    b.wait_for("the hub fault listed", &faults_text_has("duplicate update"))?;
    b.eval(&click("#faults button[data-fault]"))?;
    b.wait_for("the hub fault gone", &faults_text_has("None"))?;

    // A COS cut, written as JSON in the COS rule format.
    let rule = serde_json::json!({
        "when": {"object": format!("{LIGHTS}_{VERSION}")},
        "verdict": {"kind": "cut_after", "bytes": CUT_AT},
        "fires": "once",
    });
    b.eval(&choose("fault-target", "cos"))?;
    b.eval(&format!(
        "document.getElementById('fault-rule').value = {}; {}",
        js(&rule.to_string()),
        click("#fault-arm")
    ))?;
    b.wait_for(
        "the COS fault listed",
        &format!(
            "{} && {}",
            faults_text_has("COS #"),
            faults_text_has("cut after")
        ),
    )?;

    hub.push(PushRequest {
        product_id: LIGHTS.into(),
        version: VERSION.into(),
        method: PushMethod::Devices {
            devices: vec!["light1".into()],
        },
    })?;
    b.eval(&format!(
        "selectDevice({})",
        js(&format!("{LIGHTS}/light1"))
    ))?;
    b.wait_for(
        "the cut and the resumed request in light1's timeline",
        "[...document.querySelectorAll('#timeline li.dir-http')].some((li) => li.textContent.includes('cut') && li.textContent.includes('cut after')) && \
         [...document.querySelectorAll('#timeline li.dir-http')].some((li) => li.textContent.includes('bytes=') && li.textContent.includes('206') && li.textContent.includes('complete'))",
    )?;
    b.wait_for(
        "the COS fault fired once",
        &faults_text_has("once, fired 1"),
    )?;
    b.eval(&click("#faults button[data-cos-fault]"))?;
    b.wait_for(
        "no COS fault left",
        &faults_text_has("COS serves every download"),
    )?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium: apt-get install chromium (run by .ci/run)"]
async fn console_arms_and_removes_hub_and_cos_faults_live_and_the_timeline_shows_cos_requests() {
    let server = Server::start_one_world().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let gw = start_gateway(&server.hub, &dir.path().join("gw"));
    let image: Vec<u8> = (0..60_000u32).map(|i| (i * 11 % 239) as u8).collect();
    server
        .hub
        .upload_firmware(LIGHTS, VERSION, image)
        .expect("upload");
    let hub = Arc::clone(&server.hub);
    in_browser(&server.url, "console-faults.png", move |b| {
        drive_faults(b, &hub)
    })
    .await;

    let hub = &server.hub;
    assert!(hub.faults().is_empty(), "the page removed the hub fault");
    assert!(
        hub.cos_faults().is_empty(),
        "the page removed the COS fault"
    );
    let light1 = hub.device(&id(LIGHTS, "light1")).expect("light1");
    assert_eq!(light1.update.map(|u| u.state), Some(UpdateState::Succeeded));
    let requests: Vec<HttpRecord> = hub
        .transcript()
        .iter()
        .filter(|e| e.direction == Direction::Http)
        .filter_map(|e| serde_json::from_str(&e.payload).ok())
        .collect();
    assert_eq!(requests[0].request.bytes_sent, CUT_AT);
    assert_eq!(requests[0].request.end, "cut");
    let resumed = requests[1].request.range.as_deref().expect("a Range");
    assert!(resumed.starts_with("bytes="), "{resumed}");
    assert!(
        requests
            .iter()
            .all(|r| r.devices == [format!("{LIGHTS}/light1")])
    );
    gw.shutdown().await;
    server.shutdown().await;
}
