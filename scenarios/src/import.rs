//! `otasim import`: a C SDK gateway log (`LEVEL|time|file|function(line): message`) turned into
//! a scenario that recreates its fleet, versions, firmware and commands and expects the report
//! sequence the log shows, translated where our gateway differs from the SDK on purpose.

use serde_json::Value;
use std::collections::BTreeMap;
use write::{expectations, firmware, fleet, header, steps};

mod write;

/// Why a log could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// No `iot_device_info_set` line names the gateway.
    #[error("no line names the gateway (iot_device_info_set ... Product_ID: P, Device_Name: D)")]
    NoGateway,
    /// No subdevice went online in the log.
    #[error("no subdevice `online` request in the log")]
    NoSubdevices,
}

/// A scenario written from a log.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The scenario, as TOML.
    pub toml: String,
    /// One line about what was found.
    pub summary: String,
}

/// One `update_firmware` the hub sent, with what the SDK logged while handling it.
#[derive(Debug, Clone, Default)]
struct Command {
    device: String,
    version: String,
    size: u64,
    md5: String,
    url: String,
    errors: Vec<String>,
    reports: Vec<String>,
    ignored: bool,
}

#[derive(Debug, Default)]
struct Log {
    gateway: Option<(String, String)>,
    online: BTreeMap<String, i64>,
    order: Vec<String>,
    versions: BTreeMap<String, String>,
    version_rsp: BTreeMap<String, i64>,
    commands: Vec<Command>,
    last_update_topic: Option<String>,
    /// The subdevice the SDK is processing (it handles one at a time), from lines that name
    /// it as `{pid}-{dn}` or `FW_{pid}{dn}`.
    current: Option<String>,
}

/// One parsed log line: level, source function, message.
fn split_line(line: &str) -> Option<(&str, &str, &str)> {
    let mut parts = line.splitn(4, '|');
    let level = parts.next()?;
    if !["DBG", "INF", "WRN", "ERR"].contains(&level) {
        return None;
    }
    let _time = parts.next()?;
    let _file = parts.next()?;
    let rest = parts.next()?;
    let (func, message) = rest.split_once("): ")?;
    Some((level, func, message))
}

fn device_of_topic(topic: &str, prefix: &str) -> Option<String> {
    topic.strip_prefix(prefix).map(str::to_owned)
}

impl Log {
    fn read(text: &str) -> Log {
        let mut log = Log::default();
        for line in text.lines() {
            if let Some((level, func, msg)) = split_line(line) {
                log.follow(msg);
                log.line(level, func, msg);
            }
        }
        log
    }

    fn follow(&mut self, msg: &str) {
        let named = self.order.iter().find(|id| {
            let (p, d) = id.split_once('/').unwrap_or((id, ""));
            msg.contains(&format!("{p}-{d}")) || msg.contains(&format!("FW_{p}{d}"))
        });
        if let Some(id) = named {
            self.current = Some(id.clone());
        }
    }

    fn line(&mut self, level: &str, func: &str, msg: &str) {
        if func.starts_with("iot_device_info_set") {
            let field = |k: &str| {
                msg.split(", ")
                    .find_map(|p| p.trim().strip_prefix(k))
                    .map(str::to_owned)
            };
            if let (Some(p), Some(d)) = (field("Product_ID: "), field("Device_Name: ")) {
                self.gateway = Some((p, d));
            }
        } else if let Some(json) = msg.strip_prefix("msg payload: ") {
            self.gateway_reply(json);
        } else if let Some(rest) = msg.split("topicName=").nth(1) {
            self.publish(rest);
        } else if let Some(topic) = msg.strip_prefix("topic=") {
            self.last_update_topic = device_of_topic(topic, "$ota/update/");
        } else if let Some(json) = msg.split("topic_msg=").nth(1) {
            self.hub_message(json);
        } else if msg.contains("In downloading or downloaded state") {
            if let Some(c) = self.commands.last_mut() {
                c.ignored = true;
            }
        } else if level == "ERR" || msg.contains("MD5 check") {
            let current = self.current.clone();
            let open = |c: &&mut Command| {
                !c.ignored
                    && c.reports.iter().all(|r| !is_final(r))
                    && current.as_ref().is_none_or(|d| &c.device == d)
            };
            if let Some(c) = self.commands.iter_mut().rev().find(open) {
                // Logs carry binary garbage (a body dumped on error): comments get printable ASCII.
                let clean: String = msg
                    .chars()
                    .take(100)
                    .map(|ch| {
                        if ch.is_ascii_graphic() || ch == ' ' {
                            ch
                        } else {
                            '?'
                        }
                    })
                    .collect();
                c.errors.push(format!("{func}): {clean}"));
            }
        }
    }

    fn gateway_reply(&mut self, json: &str) {
        let Ok(v) = serde_json::from_str::<Value>(json) else {
            return;
        };
        if v["type"] != "online" {
            return;
        }
        for d in v["payload"]["devices"].as_array().into_iter().flatten() {
            let id = format!(
                "{}/{}",
                d["product_id"].as_str().unwrap_or(""),
                d["device_name"].as_str().unwrap_or("")
            );
            if !self.order.contains(&id) {
                self.order.push(id.clone());
            }
            self.online.insert(id, d["result"].as_i64().unwrap_or(0));
        }
    }

    fn publish(&mut self, rest: &str) {
        let Some((topic, payload)) = rest.split_once("|payload=") else {
            return;
        };
        let Some(device) = device_of_topic(topic, "$ota/report/") else {
            return;
        };
        let Ok(v) = serde_json::from_str::<Value>(payload) else {
            return;
        };
        match v["type"].as_str() {
            Some("report_version") => {
                if let Some(ver) = v["report"]["version"].as_str() {
                    self.versions
                        .entry(device)
                        .or_insert_with(|| ver.to_owned());
                }
            }
            Some("report_progress") => {
                let p = &v["report"]["progress"];
                let text = match p["state"].as_str() {
                    Some("downloading") => format!("downloading {}", num(&p["percent"])),
                    Some("fail") => format!("fail {}", num(&p["result_code"])),
                    Some(other) => other.to_owned(),
                    None => return,
                };
                let version = v["report"]["version"].as_str().unwrap_or("");
                if let Some(c) = self
                    .commands
                    .iter_mut()
                    .rev()
                    .find(|c| c.device == device && c.version == version && !c.ignored)
                {
                    c.reports.push(text);
                }
            }
            _ => {}
        }
    }

    fn hub_message(&mut self, json: &str) {
        let Ok(v) = serde_json::from_str::<Value>(json) else {
            return;
        };
        let Some(device) = self.last_update_topic.clone() else {
            return;
        };
        match v["type"].as_str() {
            Some("report_version_rsp") => {
                let code = v["result_code"].as_i64().unwrap_or(0);
                self.version_rsp.insert(device, code);
            }
            Some("update_firmware") => self.commands.push(Command {
                device,
                version: v["version"].as_str().unwrap_or("").to_owned(),
                size: v["file_size"].as_u64().unwrap_or(0),
                md5: v["md5sum"].as_str().unwrap_or("").to_owned(),
                url: v["url"].as_str().unwrap_or("").to_owned(),
                ..Command::default()
            }),
            _ => {}
        }
    }
}

fn num(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn is_final(r: &str) -> bool {
    r == "done" || r.starts_with("fail")
}

/// Writes the scenario for a log; `name` becomes the scenario's name.
pub fn import_log(name: &str, text: &str) -> Result<Imported, ImportError> {
    let log = Log::read(text);
    let (gw_pid, gw_dn) = log.gateway.clone().ok_or(ImportError::NoGateway)?;
    if log.order.is_empty() {
        return Err(ImportError::NoSubdevices);
    }
    let mut t = String::new();
    header(&mut t, name, &log, &gw_pid, &gw_dn);
    fleet(&mut t, &log);
    let firmware = firmware(&mut t, &log);
    steps(&mut t, &log);
    expectations(&mut t, &log);
    let summary = format!(
        "{} subdevices, {} firmware images, {} update_firmware commands",
        log.order.len(),
        firmware,
        log.commands.len()
    );
    Ok(Imported { toml: t, summary })
}
