//! End-to-end tests: the web console in a real browser.
//!
//! The hub, fake COS and the control API with the console run in-process on loopback; a real
//! gateway serves two subdevices; headless Chromium is driven over the Chrome DevTools Protocol
//! (a small blocking client on a websocket) exactly as a person would use the page.

mod cdp;
mod offline;
mod reports;

use crate::support::within;
use anyhow::Context as _;
use cdp::Browser;
use fake_cos::{Cos, CosConfig};
use fake_hub::{Fires, Hub, HubConfig, HubFaultAction, HubFaultRule, Milestone, UpdateState};
use gateway::{Gateway, GatewayConfig, HubAddress, SubdeviceConfig};
use otasim_protocol::DeviceId;
use scenarios::CosStore;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const LIGHTS: &str = "E69UADXUYY";
const VERSION: &str = "V100R0001";

/// Fake COS, the hub, and one HTTP server with the control API and the console.
struct Server {
    hub: Arc<Hub>,
    cos: Cos,
    addr: SocketAddr,
    url: String,
    http: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start() -> Server {
        let cos_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind cos");
        let cos = fake_cos::start(cos_listener, CosConfig::default())
            .await
            .expect("fake cos starts");
        let store = Arc::new(CosStore(cos.clone()));
        let hub = Arc::new(
            Hub::start(HubConfig::loopback(), store)
                .await
                .expect("hub starts"),
        );
        let app = fake_hub::api::router(Arc::clone(&hub)).merge(otasim::console::router());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind api");
        let addr = listener.local_addr().expect("api addr");
        let url = format!("http://{addr}/");
        let http = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("api server runs");
        });
        Server {
            hub,
            cos,
            addr,
            url,
            http,
        }
    }

    /// Stops the HTTP server first so that nothing else holds the hub, then hub and COS.
    async fn shutdown(self) {
        self.http.abort();
        let _ = self.http.await;
        if let Ok(hub) = Arc::try_unwrap(self.hub) {
            hub.shutdown().await;
        }
        self.cos.shutdown().await;
    }
}

fn id(product: &str, name: &str) -> DeviceId {
    DeviceId::new(product, name).expect("valid id")
}

/// Registers gateway `gw_deng1` with `light1` and `light2` bound to it, and starts it.
fn start_gateway(hub: &Hub, state_dir: &Path) -> Gateway {
    start_gateway_with(hub, state_dir, gateway::GatewayOptions::new())
}

/// [`start_gateway`] with the caller's options (a slow burner, say).
fn start_gateway_with(hub: &Hub, state_dir: &Path, options: gateway::GatewayOptions) -> Gateway {
    let gw = id("JR1WOKB7Q7", "gw_deng1");
    let secret = "1RRdhkwmZ45wYXjuPfygeA==";
    hub.add_gateway(&gw, secret);
    let mut subdevices = Vec::new();
    for name in ["light1", "light2"] {
        let sub = id(LIGHTS, name);
        hub.add_subdevice(&sub, "c2VjcmV0c2VjcmV0", Some(&gw), None);
        subdevices.push(SubdeviceConfig {
            id: sub,
            factory_version: "0.1".into(),
        });
    }
    let port = hub.local_addr().port();
    Gateway::start_with(
        GatewayConfig {
            device: gw,
            secret: secret.into(),
            hub: HubAddress {
                host: "127.0.0.1".into(),
                port,
            },
            subdevices,
            state_dir: state_dir.to_path_buf(),
            max_image_bytes: 1 << 20,
            keepalive: Duration::from_secs(60),
            download: gateway::download::DownloadConfig::default(),
        },
        options,
    )
    .expect("gateway starts")
}

/// Where test artifacts go: `target/e2e-artifacts/`, under `CARGO_TARGET_DIR` if set.
fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("e2e-artifacts")
}

/// A JavaScript string literal.
fn js(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}

/// The page's steps: a refused upload, an upload, a refused push, a push of the image to both
/// lights by device list, then both rows done. Returns the task id the page reported.
fn drive_console(b: &mut Browser, image: &Path) -> anyhow::Result<u64> {
    let row = |name: &str| format!("#fleet tr[data-device={}]", js(&format!("{LIGHTS}/{name}")));
    let online = |name: &str| format!("document.querySelector({}+' .dot.on')", js(&row(name)));
    b.wait_for(
        "both lights online in the fleet",
        &format!("{} && {}", online("light1"), online("light2")),
    )?;
    let set = |id: &str, v: &str| format!("document.getElementById('{id}').value = {};", js(v));
    // A malformed upload: no file. The API's message shows and nothing is stored.
    b.eval(&format!(
        "{} {} document.getElementById('upload-submit').click();",
        set("upload-product", LIGHTS),
        set("upload-version", VERSION)
    ))?;
    b.wait_for(
        "the refused upload's message",
        "document.querySelector('#upload-message.error')?.textContent.includes('missing form field')",
    )?;
    b.set_file("#upload-file", image)?;
    b.eval("document.getElementById('upload-submit').click()")?;
    b.wait_for(
        "the uploaded firmware in the table",
        &format!(
            "document.querySelector('#firmware tr[data-firmware={}]') && document.querySelector('#upload-message.ok')",
            js(&format!("{LIGHTS}/{VERSION}"))
        ),
    )?;
    b.eval("document.querySelector('input[name=method][value=devices]').click()")?;
    b.eval(&format!(
        "{} document.getElementById('push-submit').click();",
        set("push-names", "light1, nosuchlight")
    ))?;
    b.wait_for(
        "the refused push's message",
        "document.querySelector('#push-message.error')?.textContent.includes('nosuchlight')",
    )?;
    b.eval(&format!(
        "{} document.getElementById('push-submit').click();",
        set("push-names", "light1\nlight2")
    ))?;
    let done = |name: &str| {
        format!(
            "document.querySelector('#tasks tr[data-device={}][data-state=succeeded]')",
            js(&format!("{LIGHTS}/{name}"))
        )
    };
    b.wait_for(
        "both rows of the task done",
        &format!("{} && {}", done("light1"), done("light2")),
    )?;
    let task = b.eval("Number(document.querySelector('#tasks div.task').dataset.task)")?;
    task.as_u64().context("a task id on the page")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium: apt-get install chromium (run by .ci/run)"]
async fn console_uploads_pushes_to_two_lights_and_shows_both_done() {
    let server = Server::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let gw = start_gateway(&server.hub, &dir.path().join("gw"));
    let image_path = dir.path().join("light.bin");
    let image: Vec<u8> = (0..40_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&image_path, &image).expect("write image");

    let task = in_browser(&server.url, "console.png", move |b| {
        drive_console(b, &image_path)
    })
    .await;

    let hub = &server.hub;
    let firmware = hub.firmware();
    assert_eq!(firmware.len(), 1, "only the good upload is stored");
    assert_eq!(firmware[0].size_bytes, image.len() as u64);
    assert_eq!(hub.tasks().len(), 1, "the refused push created no task");
    let status = hub.task(task).expect("the page's task exists");
    assert!(status.is_finished());
    for name in ["light1", "light2"] {
        let update = &status.devices[&format!("{LIGHTS}/{name}")];
        assert_eq!(update.state, UpdateState::Succeeded, "{name}");
        let device = hub.device(&id(LIGHTS, name)).expect("device");
        assert_eq!(device.version.as_deref(), Some(VERSION), "{name}");
    }
    gw.shutdown().await;
    server.shutdown().await;
}

/// The CSS selector of a light's row in the newest task.
fn newest_row(name: &str) -> String {
    format!(
        "#tasks div.task:first-child tr[data-device={}]",
        js(&format!("{LIGHTS}/{name}"))
    )
}

/// With a wrong-MD5 fault armed on light2: a push by devices and versions (light1 lands, light2
/// fails with -4 and its meaning), the fault removed on the page, then a push by version, with
/// task options, that lands on light2 alone.
fn drive_failure_and_retry(b: &mut Browser) -> anyhow::Result<()> {
    b.wait_for(
        "the armed fault listed",
        "document.getElementById('faults').textContent.includes('wrong md5')",
    )?;
    let tick = |sel: &str| format!("document.querySelector({}).click();", js(sel));
    b.eval(&tick("input[name=method][value=devices_and_versions]"))?;
    b.wait_for(
        "both lights on 0.1 offered",
        "document.querySelector('#push-version-choices input[value=\"0.1\"]:checked') && \
         document.querySelectorAll('#push-device-choices input').length === 2",
    )?;
    b.eval(&format!(
        "{}{}document.getElementById('push-submit').click();",
        tick("#push-device-choices input[value=light1]"),
        tick("#push-device-choices input[value=light2]")
    ))?;
    b.wait_for(
        "light1 done and light2 failed with -4 and its meaning",
        &format!(
            "document.querySelector({}) && document.querySelector({})?.textContent.includes('-4 md5 mismatch')",
            js(&format!("{}[data-state=succeeded]", newest_row("light1"))),
            js(&format!("{}[data-state=failed]", newest_row("light2")))
        ),
    )?;
    b.eval(&tick("#faults button[data-fault]"))?;
    b.wait_for(
        "no fault left",
        "document.getElementById('faults').textContent.includes('None')",
    )?;
    b.eval(&tick("input[name=method][value=versions]"))?;
    b.eval(
        "document.getElementById('push-options').open = true; \
         document.getElementById('opt-timeout').value = '20'; \
         document.getElementById('opt-retries').value = '2'; \
         document.getElementById('push-submit').click();",
    )?;
    b.wait_for(
        "a second task with its options, done on light2",
        &format!(
            "document.querySelectorAll('#tasks div.task').length === 2 && document.querySelector({}) && \
             document.querySelector('#tasks div.task:first-child').textContent.includes('timeout 20 s, 2 retries')",
            js(&format!("{}[data-state=succeeded]", newest_row("light2")))
        ),
    )?;
    b.wait_for(
        "the task with a failure says so in the failure colour",
        "[...document.querySelectorAll('#tasks .task-head .finished.failed')]\
         .some((e) => e.textContent === 'finished with 1 failed')",
    )?;
    b.eval(
        "{ const f = document.getElementById('task-filter'); f.value = 'failed'; \
         f.dispatchEvent(new Event('input')); }",
    )?;
    b.wait_for(
        "the filter keeps only the task with a failure",
        "document.getElementById('task-count').textContent === '1 of 2 tasks shown'",
    )?;
    b.eval(
        "{ const f = document.getElementById('task-filter'); f.value = ''; \
         f.dispatchEvent(new Event('input')); document.getElementById('task-collapse-all').click(); }",
    )?;
    b.wait_for(
        "collapse all hides every task's rows",
        "document.querySelectorAll('#tasks div.task.collapsed').length === 2",
    )?;
    b.eval("document.getElementById('task-expand-all').click();")?;
    Ok(())
}

/// Runs `drive` against the console in Chromium; the screenshot is saved as
/// `target/e2e-artifacts/{artifact}` whatever happened.
async fn in_browser<T: Send + 'static>(
    url: &str,
    artifact: &str,
    drive: impl FnOnce(&mut Browser) -> anyhow::Result<T> + Send + 'static,
) -> T {
    let url = url.to_owned();
    let shot = artifacts_dir().join(artifact);
    // The DevTools client blocks; it runs on its own thread while the hub runs on the runtime.
    tokio::task::spawn_blocking(move || -> anyhow::Result<T> {
        let mut browser = Browser::launch(&url)?;
        let outcome = drive(&mut browser);
        let png = browser.screenshot()?;
        anyhow::ensure!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
        std::fs::create_dir_all(shot.parent().context("artifacts dir")?)?;
        std::fs::write(&shot, png)?;
        outcome
    })
    .await
    .expect("browser thread")
    .expect("the console works in chromium")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium: apt-get install chromium (run by .ci/run)"]
async fn console_shows_a_failure_code_with_its_meaning_and_the_fault_behind_it() {
    let server = Server::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let gw = start_gateway(&server.hub, &dir.path().join("gw"));
    let hub = &server.hub;
    let image: Vec<u8> = (0..30_000u32).map(|i| (i * 13 % 241) as u8).collect();
    hub.upload_firmware(LIGHTS, VERSION, image).expect("upload");
    hub.add_fault(HubFaultRule {
        when: Milestone::UpdateFirmware {
            device: id(LIGHTS, "light2"),
            nth: None,
        },
        action: HubFaultAction::WrongMd5 { md5: None },
        fires: Fires::Always,
    })
    .expect("a valid fault");
    in_browser(&server.url, "console-failure.png", drive_failure_and_retry).await;

    assert!(hub.faults().is_empty(), "the page removed the fault");
    let tasks = hub.tasks();
    assert_eq!(tasks.len(), 2);
    let first = &tasks[0].devices;
    assert_eq!(
        first[&format!("{LIGHTS}/light1")].state,
        UpdateState::Succeeded
    );
    assert!(matches!(
        first[&format!("{LIGHTS}/light2")].state,
        UpdateState::Failed { code: -4, .. }
    ));
    let second: Vec<&String> = tasks[1].devices.keys().collect();
    assert_eq!(
        second,
        [&format!("{LIGHTS}/light2")],
        "by version: only light2 ran 0.1"
    );
    assert!(tasks[1].is_finished());
    assert_eq!(tasks[1].options.timeout, Some(Duration::from_secs(20)));
    assert_eq!(tasks[1].options.retries, 2);
    let light2 = hub.device(&id(LIGHTS, "light2")).expect("light2");
    assert_eq!(light2.version.as_deref(), Some(VERSION));
    gw.shutdown().await;
    server.shutdown().await;
}

/// `GET path` over HTTP/1.1: the status and the response text; a server-sent event stream is
/// read up to its headers only.
async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = tcp.read(&mut buf).await.expect("read");
        raw.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&raw).into_owned();
        let stream = text.contains("\r\n\r\n") && text.contains("text/event-stream");
        if n == 0 || stream {
            let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
            return (status, text);
        }
    }
}

/// Every `/api/...` path a script names, with `${...}` parts replaced by `1` and queries cut.
fn api_paths(script: &str) -> Vec<String> {
    let mut paths: Vec<String> = script
        .match_indices("/api/")
        .filter(|(i, _)| matches!(script[..*i].chars().last(), Some('\'' | '`')))
        .map(|(i, _)| {
            let rest = &script[i..];
            let end = rest.find(['\'', '`', '?']).unwrap_or(rest.len());
            let mut path = String::new();
            for (n, part) in rest[..end].split("${").enumerate() {
                match (n, part.split_once('}')) {
                    (0, _) | (_, None) => path.push_str(part),
                    (_, Some((_, after))) => {
                        path.push('1');
                        path.push_str(after);
                    }
                }
            }
            path
        })
        .collect();
    paths.sort();
    paths.dedup();
    paths
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_route_the_console_calls_is_served_beside_it() {
    let server = Server::start().await;
    let (status, page) = within("the page", http_get(server.addr, "/")).await;
    assert_eq!(status, 200, "{page}");
    let mut script = String::new();
    for src in page.split('"').filter(|s| s.ends_with(".js")) {
        let (status, text) = within(src, http_get(server.addr, src)).await;
        assert_eq!(status, 200, "{src}");
        script.push_str(&text);
    }
    let paths = api_paths(&script);
    for expected in [
        "/api/events",
        "/api/firmware/form",
        "/api/tasks",
        "/api/transcript",
    ] {
        assert!(
            paths.iter().any(|p| p == expected),
            "{expected} in {paths:?}"
        );
    }
    for path in &paths {
        let (status, text) = within(path, http_get(server.addr, path)).await;
        // 405 (another method) or 404 for an unknown task are fine; the fallback is not.
        assert!(
            status != 0 && !text.contains("no such route"),
            "the page calls {path}, which the control API does not serve: {text}"
        );
    }
    server.shutdown().await;
}
