//! `otasim ctl`: a command-line client for a running `otasim hub`, over its control API.
//!
//! Everything the console does, from a shell or a CI script: status, the live transcript,
//! pushes, firmware upload and deletion, hub and COS faults, the clock. Answers print as
//! readable lines, or as the API's JSON with `--json`; a refused request exits non-zero with
//! the API's message.

mod client;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use client::Api;
use serde_json::{Value, json};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Prints a line; a closed stdout (`| head`) ends quietly.
macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// Arguments of `otasim ctl`.
#[derive(Debug, Args)]
pub struct CtlArgs {
    /// The hub's control API, HOST:PORT (what `otasim hub` prints as `api=`).
    #[arg(long, env = "OTASIM_API", default_value = "127.0.0.1:8080")]
    api: String,
    /// Print the API's JSON answers instead of readable lines.
    #[arg(long, global = true)]
    json: bool,
    /// What to do.
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Health, devices, tasks and armed faults.
    Status,
    /// Follow the live transcript (MQTT and COS requests) until interrupted.
    Watch {
        /// Only entries about this device (PRODUCT_ID/DEVICE_NAME).
        #[arg(long)]
        device: Option<String>,
        /// Stop after this many entries.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Push a firmware version to devices of its product (a task); prints the task id.
    Push {
        /// The product.
        product_id: String,
        /// The firmware version (uploaded before).
        version: String,
        /// Device names to update, comma-separated.
        #[arg(long, value_delimiter = ',')]
        devices: Vec<String>,
        /// Only devices running one of these versions, comma-separated.
        #[arg(long, value_delimiter = ',')]
        from_versions: Vec<String>,
    },
    /// Upload, list or delete firmware.
    #[command(subcommand)]
    Firmware(FirmwareAction),
    /// Arm, list and remove hub faults, or COS faults with `--cos`.
    #[command(subcommand)]
    Faults(FaultsAction),
    /// Show or move the one clock of hub and COS.
    #[command(subcommand)]
    Clock(ClockAction),
}

#[derive(Debug, Subcommand)]
enum FirmwareAction {
    /// Upload FILE as VERSION of PRODUCT_ID.
    Upload {
        /// The product.
        product_id: String,
        /// The version.
        version: String,
        /// The image.
        file: PathBuf,
        /// Overwrite the version if it exists with other bytes (refused otherwise).
        #[arg(long)]
        replace: bool,
    },
    /// List uploaded firmware.
    List,
    /// Delete a version: URLs already signed for it then get 404.
    Delete {
        /// The product.
        product_id: String,
        /// The version.
        version: String,
    },
}

#[derive(Debug, Subcommand)]
enum FaultsAction {
    /// Arm a rule: JSON text, or @FILE (.json or .toml). Prints its id.
    Add {
        /// A COS rule (fake COS's format, as `otasim cos`) instead of a hub rule.
        #[arg(long)]
        cos: bool,
        /// The rule.
        rule: String,
    },
    /// List armed rules with how often each fired.
    List {
        /// COS rules instead of hub rules.
        #[arg(long)]
        cos: bool,
    },
    /// Remove a rule by id.
    Remove {
        /// A COS rule instead of a hub rule.
        #[arg(long)]
        cos: bool,
        /// The id `add` printed.
        id: u64,
    },
    /// Remove every rule.
    Clear {
        /// COS rules instead of hub rules.
        #[arg(long)]
        cos: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ClockAction {
    /// The clock's time and offset from real time.
    Show,
    /// Move the clock forward (`90s`, `2h`, `1500ms`): credentials, task timers and firmware
    /// URLs expire as if that much time had passed.
    Advance {
        /// How far: a number with `ms`, `s`, `m`, `h` or `d`.
        by: String,
    },
}

pub(super) async fn run(args: CtlArgs) -> anyhow::Result<ExitCode> {
    let api = Api {
        addr: args.api.clone(),
    };
    let out = Out { json: args.json };
    match args.action {
        Action::Status => status(&api, &out).await?,
        Action::Watch { device, count } => watch(&api, &out, device, count).await?,
        Action::Push {
            product_id,
            version,
            devices,
            from_versions,
        } => push(&api, &out, product_id, version, devices, from_versions).await?,
        Action::Firmware(action) => firmware(&api, &out, action).await?,
        Action::Faults(action) => faults(&api, &out, action).await?,
        Action::Clock(action) => clock(&api, &out, action).await?,
    }
    Ok(ExitCode::SUCCESS)
}

struct Out {
    json: bool,
}

impl Out {
    /// The JSON with `--json`, else the readable text.
    fn show(&self, value: &Value, text: impl FnOnce() -> String) {
        if self.json {
            say!("{value}");
        } else {
            say!("{}", text());
        }
    }
}

async fn status(api: &Api, out: &Out) -> anyhow::Result<()> {
    let health = api.get("/api/health").await?;
    let devices = api.get("/api/devices").await?;
    let tasks = api.get("/api/tasks").await?;
    let hub_faults = api.get("/api/faults").await?;
    let cos_faults = api.get("/api/cos/faults").await?;
    let all = json!({"health": health, "devices": devices, "tasks": tasks,
        "faults": hub_faults, "cos_faults": cos_faults});
    out.show(&all, || {
        let mut text = format!("hub {} (mqtt {})\n", health["status"], health["mqtt"]);
        for d in devices.as_array().into_iter().flatten() {
            let update = d["update"]["state"]["state"].as_str().unwrap_or("-");
            let id = format!(
                "{}/{}",
                d["device"]["product_id"].as_str().unwrap_or("?"),
                d["device"]["device_name"].as_str().unwrap_or("?")
            );
            text.push_str(&format!(
                "device {id:<32} {:<9} {:<7} version {:<10} update {update}\n",
                d["kind"].as_str().unwrap_or("?"),
                if d["online"] == true {
                    "online"
                } else {
                    "offline"
                },
                d["version"].as_str().unwrap_or("-"),
            ));
        }
        for t in tasks.as_array().into_iter().flatten() {
            text.push_str(&format!(
                "task {} {} {}: {}\n",
                t["id"],
                t["request"]["product_id"].as_str().unwrap_or("?"),
                t["request"]["version"].as_str().unwrap_or("?"),
                t["summary"]
            ));
        }
        let count = |v: &Value| v.as_array().map_or(0, Vec::len);
        text.push_str(&format!(
            "faults armed: {} hub, {} cos",
            count(&hub_faults),
            count(&cos_faults)
        ));
        text
    });
    Ok(())
}

/// Whether a transcript entry (JSON) is about `device` (`PID/name`).
fn entry_is_about(entry: &Value, device: &str) -> bool {
    if entry["direction"] == "http" {
        let record: Value = entry["payload"]
            .as_str()
            .and_then(|p| serde_json::from_str(p).ok())
            .unwrap_or(Value::Null);
        return record["devices"]
            .as_array()
            .is_some_and(|d| d.iter().any(|d| d == device));
    }
    let topic = entry["topic"].as_str().unwrap_or_default();
    topic.ends_with(&format!("/{device}"))
        || entry["client_id"].as_str() == Some(&device.replacen('/', "", 1))
}

/// One readable line: time, direction, client, topic and the payload cut to fit.
fn entry_line(entry: &Value) -> String {
    let payload: String = entry["payload"]
        .as_str()
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect();
    format!(
        "{:>10.1} ms  {:<7} {:<28} {}  {payload}",
        entry["at"].as_f64().unwrap_or_default(),
        entry["direction"].as_str().unwrap_or("?"),
        entry["client_id"].as_str().unwrap_or("?"),
        entry["topic"].as_str().unwrap_or("?"),
    )
}

async fn watch(
    api: &Api,
    out: &Out,
    device: Option<String>,
    count: Option<u64>,
) -> anyhow::Result<()> {
    let mut pending = String::new();
    let mut shown = 0u64;
    if count == Some(0) {
        return Ok(());
    }
    api.stream("/api/events", |chunk| {
        pending.push_str(&String::from_utf8_lossy(chunk));
        // Events end with a blank line; a partial one waits for the next chunk.
        while let Some(end) = pending.find("\n\n") {
            let event: String = pending.drain(..end + 2).collect();
            let Some(data) = event
                .lines()
                .skip_while(|l| *l != "event: transcript")
                .find_map(|l| l.strip_prefix("data: "))
            else {
                continue;
            };
            let Ok(entry) = serde_json::from_str::<Value>(data) else {
                continue;
            };
            if device
                .as_deref()
                .is_some_and(|d| !entry_is_about(&entry, d))
            {
                continue;
            }
            out.show(&entry, || entry_line(&entry));
            shown += 1;
            if count.is_some_and(|c| shown >= c) {
                return false;
            }
        }
        true
    })
    .await
}

async fn push(
    api: &Api,
    out: &Out,
    product_id: String,
    version: String,
    devices: Vec<String>,
    from_versions: Vec<String>,
) -> anyhow::Result<()> {
    let body = match (devices.is_empty(), from_versions.is_empty()) {
        (false, true) => json!({"method": "devices", "devices": devices}),
        (false, false) => json!({"method": "devices_and_versions", "devices": devices,
            "from_versions": from_versions}),
        (true, false) => json!({"method": "versions", "from_versions": from_versions}),
        (true, true) => anyhow::bail!("push: give --devices, --from-versions or both"),
    };
    let mut body = body;
    body["product_id"] = json!(product_id);
    body["version"] = json!(version);
    let created = api.post("/api/tasks", &body).await?;
    out.show(&created, || format!("task {}", created["task_id"]));
    Ok(())
}

fn query_escape(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn firmware_line(f: &Value) -> String {
    format!(
        "firmware {}/{}: {} bytes, md5 {}, object {}",
        f["product_id"].as_str().unwrap_or("?"),
        f["version"].as_str().unwrap_or("?"),
        f["size_bytes"],
        f["md5"].as_str().unwrap_or("?"),
        f["object"].as_str().unwrap_or("?"),
    )
}

async fn firmware(api: &Api, out: &Out, action: FirmwareAction) -> anyhow::Result<()> {
    match action {
        FirmwareAction::Upload {
            product_id,
            version,
            file,
            replace,
        } => {
            let bytes = std::fs::read(&file)
                .with_context(|| format!("reading the firmware file {}", file.display()))?;
            let path = format!(
                "/api/firmware?product_id={}&version={}&replace={replace}",
                query_escape(&product_id),
                query_escape(&version)
            );
            let info = api
                .call("POST", &path, "application/octet-stream", bytes)
                .await?;
            out.show(&info, || firmware_line(&info));
        }
        FirmwareAction::List => {
            let list = api.get("/api/firmware").await?;
            out.show(&list, || {
                let lines: Vec<String> = list
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(firmware_line)
                    .collect();
                lines.join("\n")
            });
        }
        FirmwareAction::Delete {
            product_id,
            version,
        } => {
            let path = format!(
                "/api/firmware/{}/{}",
                query_escape(&product_id),
                query_escape(&version)
            );
            let info = api.delete(&path).await?;
            out.show(&info, || format!("deleted {}", firmware_line(&info)));
        }
    }
    Ok(())
}

/// A rule from the command line: JSON text, or `@FILE` holding JSON or TOML.
fn read_rule(text: &str) -> anyhow::Result<Value> {
    let Some(path) = text.strip_prefix('@') else {
        return serde_json::from_str(text)
            .context("the rule is not JSON (give JSON text, or @FILE with JSON or TOML)");
    };
    let body = std::fs::read_to_string(path).with_context(|| format!("reading the rule {path}"))?;
    if path.ends_with(".toml") {
        let value: toml::Value =
            toml::from_str(&body).with_context(|| format!("the rule file {path}"))?;
        serde_json::to_value(value).with_context(|| format!("the rule file {path}"))
    } else {
        serde_json::from_str(&body).with_context(|| format!("the rule file {path} is not JSON"))
    }
}

async fn faults(api: &Api, out: &Out, action: FaultsAction) -> anyhow::Result<()> {
    let base = |cos: bool| {
        if cos {
            "/api/cos/faults"
        } else {
            "/api/faults"
        }
    };
    match action {
        FaultsAction::Add { cos, rule } => {
            let created = api.post(base(cos), &read_rule(&rule)?).await?;
            out.show(&created, || format!("armed {}", created["id"]));
        }
        FaultsAction::List { cos } => {
            let list = api.get(base(cos)).await?;
            out.show(&list, || {
                let lines: Vec<String> = list
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|f| {
                        let mut rule = f.clone();
                        let id = rule.as_object_mut().and_then(|o| o.remove("id"));
                        let fired = rule.as_object_mut().and_then(|o| o.remove("fired"));
                        let shown = rule.get("rule").cloned().unwrap_or(rule);
                        format!(
                            "{} fired {}: {shown}",
                            id.unwrap_or(Value::Null),
                            fired.unwrap_or(Value::Null)
                        )
                    })
                    .collect();
                lines.join("\n")
            });
        }
        FaultsAction::Remove { cos, id } => {
            api.delete(&format!("{}/{id}", base(cos))).await?;
            out.show(&json!({"removed": id}), || format!("removed {id}"));
        }
        FaultsAction::Clear { cos } => {
            api.delete(base(cos)).await?;
            out.show(&json!({"cleared": true}), || "cleared".to_owned());
        }
    }
    Ok(())
}

/// `90s`, `2h`, `1500ms`, `10m`, `1d`: a whole number and a unit.
fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .with_context(|| format!("{text:?}: expected a whole number then ms, s, m, h or d"))?;
    let ms_per = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => anyhow::bail!("{text:?}: the unit must be ms, s, m, h or d"),
    };
    let ms = n
        .checked_mul(ms_per)
        .with_context(|| format!("{text:?} is too long"))?;
    Ok(Duration::from_millis(ms))
}

async fn clock(api: &Api, out: &Out, action: ClockAction) -> anyhow::Result<()> {
    let now = match action {
        ClockAction::Show => api.get("/api/clock").await?,
        ClockAction::Advance { by } => {
            let by = parse_duration(&by)?;
            let ms = u64::try_from(by.as_millis()).context("too long")?;
            api.post("/api/clock", &json!({"advance_ms": ms})).await?
        }
    };
    out.show(&now, || {
        format!(
            "clock {} ms since the epoch, {} ms from real time",
            now["now_unix_ms"], now["offset_ms"]
        )
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn durations_need_a_unit_and_a_whole_number() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(
            parse_duration("1500ms").unwrap(),
            Duration::from_millis(1500)
        );
        for bad in [
            "",
            "s",
            "10",
            "1.5h",
            "-1s",
            "10 s",
            "3w",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn duration_parser_never_panics_and_round_trips(n in 0u64..1_000_000, unit in 0usize..5, junk in ".{0,12}") {
            let (suffix, ms) = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)][unit];
            prop_assert_eq!(parse_duration(&format!("{n}{suffix}")).unwrap(), Duration::from_millis(n * ms));
            let _ = parse_duration(&junk);
        }
    }

    #[test]
    fn entries_are_about_their_topic_client_or_http_devices() {
        let http = json!({"direction": "http", "client_id": "E69UADXUYYlight1", "topic": "GET /E69UADXUYY_2.0",
            "payload": r#"{"devices":["E69UADXUYY/light1","E69UADXUYY/light2"]}"#});
        assert!(entry_is_about(&http, "E69UADXUYY/light2"));
        assert!(!entry_is_about(&http, "E69UADXUYY/light3"));
        let mqtt = json!({"direction": "in", "client_id": "JR1WOKB7Q7gw_deng1", "topic": "$ota/report/E69UADXUYY/light1", "payload": "{}"});
        assert!(entry_is_about(&mqtt, "E69UADXUYY/light1"));
        assert!(entry_is_about(&mqtt, "JR1WOKB7Q7/gw_deng1"));
    }

    #[test]
    fn rules_are_json_text_or_a_file() {
        assert_eq!(read_rule(r#"{"a":1}"#).unwrap()["a"], 1);
        assert!(read_rule("{nope").is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rule.toml");
        std::fs::write(
            &path,
            "fires = \"once\"\n[verdict]\nkind = \"cut_after\"\nbytes = 10\n",
        )
        .unwrap();
        let rule = read_rule(&format!("@{}", path.display())).unwrap();
        assert_eq!(rule["verdict"]["bytes"], 10);
    }
}
