//! A small blocking Chrome DevTools Protocol client: launches headless Chromium with a fresh
//! profile and drives one page over a websocket.

use crate::support::DEADLINE;
use anyhow::{Context as _, bail};
use base64::Engine as _;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use tungstenite::WebSocket;

const CHROMIUM: &str = "/usr/bin/chromium";

/// Headless Chromium with one page, driven over the DevTools protocol.
pub(crate) struct Browser {
    child: Child,
    page: WebSocket<TcpStream>,
    next_id: u64,
    /// Events that arrived while waiting for a command's answer, oldest first.
    events: Vec<Value>,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Launches Chromium with a fresh profile and opens a page on `url`.
    pub(crate) fn launch(url: &str) -> anyhow::Result<Browser> {
        let profile = tempfile::tempdir()?;
        let mut child = Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--remote-debugging-port=0",
                "--window-size=1440,900",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {CHROMIUM}"))?;
        let stderr = child.stderr.take().context("chromium stderr")?;
        let browser_ws = match devtools_url(stderr) {
            Ok(u) => u,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        };
        let mut browser = Browser {
            child,
            page: connect(&browser_ws)?,
            next_id: 0,
            events: Vec::new(),
            _profile: profile,
        };
        let target = browser.call("Target.createTarget", json!({ "url": "about:blank" }))?;
        let target_id = target["targetId"].as_str().context("a target id")?;
        let (base, _) = browser_ws
            .split_once("/devtools/")
            .context("a devtools url")?;
        browser.page = connect(&format!("{base}/devtools/page/{target_id}"))?;
        browser.call("Page.enable", json!({}))?;
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 1440, "height": 900, "deviceScaleFactor": 1, "mobile": false }),
        )?;
        browser.call("Page.navigate", json!({ "url": url }))?;
        // Evaluating before the load would run in the blank page that is being replaced.
        browser.wait_event("Page.loadEventFired")?;
        Ok(browser)
    }

    /// The next message from the page, parsed.
    fn read(&mut self) -> anyhow::Result<Value> {
        loop {
            let message = self.page.read().context("reading from the page")?;
            if let tungstenite::Message::Text(text) = message {
                return Ok(serde_json::from_str(text.as_str())?);
            }
        }
    }

    /// Sends one command and returns its result; events in between are kept for
    /// [`Browser::wait_event`].
    pub(crate) fn call(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({ "id": id, "method": method, "params": params }).to_string();
        self.page.send(tungstenite::Message::text(msg))?;
        loop {
            let v = self
                .read()
                .with_context(|| format!("waiting for {method}"))?;
            if v.get("method").is_some() {
                self.events.push(v);
                continue;
            }
            if v["id"] != json!(id) {
                continue;
            }
            if let Some(err) = v.get("error") {
                bail!("{method} failed: {err}");
            }
            return Ok(v["result"].clone());
        }
    }

    /// Waits for the event `method` (already received or still to come).
    fn wait_event(&mut self, method: &str) -> anyhow::Result<Value> {
        if let Some(i) = self.events.iter().position(|e| e["method"] == method) {
            return Ok(self.events.remove(i));
        }
        loop {
            let v = self
                .read()
                .with_context(|| format!("waiting for {method}"))?;
            if v["method"] == method {
                return Ok(v);
            }
        }
    }

    /// Evaluates `expr` in the page, awaiting it if it is a promise.
    pub(crate) fn eval(&mut self, expr: &str) -> anyhow::Result<Value> {
        let params = json!({ "expression": expr, "awaitPromise": true, "returnByValue": true });
        let r = self.call("Runtime.evaluate", params)?;
        if let Some(ex) = r.get("exceptionDetails") {
            let text = ex["exception"]["description"]
                .as_str()
                .unwrap_or_else(|| ex["text"].as_str().unwrap_or("?"));
            bail!("page threw: {text}");
        }
        Ok(r["result"]["value"].clone())
    }

    /// Waits until the JavaScript expression `cond` is truthy, re-checking on every DOM change,
    /// for at most the suite's deadline; the error carries what the page showed.
    pub(crate) fn wait_for(&mut self, what: &str, cond: &str) -> anyhow::Result<Value> {
        let ms = DEADLINE.as_millis() - 1000;
        let what_js = serde_json::to_string(what)?;
        let expr = format!(
            "new Promise((resolve, reject) => {{
               const check = () => {{ let v = null; try {{ v = ({cond}); }} catch (_) {{}}
                 if (v) {{ obs.disconnect(); clearTimeout(t); resolve(v); }} }};
               const obs = new MutationObserver(check);
               obs.observe(document, {{ subtree: true, childList: true, attributes: true, characterData: true }});
               const t = setTimeout(() => {{ obs.disconnect();
                 reject(new Error('timed out waiting for ' + {what_js} + '; page shows:\\n' +
                   (document.body ? document.body.innerText : '').slice(0, 3000))); }}, {ms});
               check(); }})"
        );
        self.eval(&expr)
            .with_context(|| format!("waiting for {what}"))
    }

    /// Sets the files of the `<input type=file>` matching `selector`.
    pub(crate) fn set_file(&mut self, selector: &str, file: &Path) -> anyhow::Result<()> {
        let doc = self.call("DOM.getDocument", json!({}))?;
        let root = &doc["root"]["nodeId"];
        let node = self.call(
            "DOM.querySelector",
            json!({ "nodeId": root, "selector": selector }),
        )?;
        self.call(
            "DOM.setFileInputFiles",
            json!({ "nodeId": node["nodeId"], "files": [file] }),
        )?;
        Ok(())
    }

    /// A PNG of the whole page, 1440 pixels wide, once its transitions have settled.
    pub(crate) fn screenshot(&mut self) -> anyhow::Result<Vec<u8>> {
        self.eval("Promise.all(document.getAnimations().map((a) => a.finished)).then(() => true)")?;
        let height = self
            .eval("Math.max(900, document.documentElement.scrollHeight)")?
            .as_u64()
            .context("page height")?;
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 1440, "height": height, "deviceScaleFactor": 1, "mobile": false }),
        )?;
        let shot = self.call("Page.captureScreenshot", json!({ "format": "png" }))?;
        let data = shot["data"].as_str().context("screenshot data")?;
        Ok(base64::engine::general_purpose::STANDARD.decode(data)?)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads Chromium's stderr until it prints its DevTools websocket URL (a condition with a
/// deadline), then keeps draining it so the browser never blocks on a full pipe.
fn devtools_url(stderr: std::process::ChildStderr) -> anyhow::Result<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        let mut seen = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("DevTools listening on ")
                && !sent
            {
                sent = tx.send(Ok(rest.trim().to_owned())).is_ok();
            } else if !sent {
                seen.push_str(&line);
                seen.push('\n');
            }
        }
        if !sent {
            let _ = tx.send(Err(seen));
        }
    });
    match rx.recv_timeout(DEADLINE) {
        Ok(Ok(url)) => Ok(url),
        Ok(Err(log)) => bail!("chromium exited without a DevTools URL:\n{log}"),
        Err(_) => bail!("chromium printed no DevTools URL within {DEADLINE:?}"),
    }
}

/// Opens a websocket on loopback with read and write deadlines.
fn connect(ws_url: &str) -> anyhow::Result<WebSocket<TcpStream>> {
    let authority = ws_url
        .strip_prefix("ws://")
        .and_then(|r| r.split('/').next())
        .with_context(|| format!("a ws:// url: {ws_url}"))?;
    let tcp = TcpStream::connect(authority)?;
    tcp.set_read_timeout(Some(DEADLINE))?;
    tcp.set_write_timeout(Some(DEADLINE))?;
    let (ws, _) = tungstenite::client(ws_url, tcp).context("websocket handshake")?;
    Ok(ws)
}
