//! A self-contained HTML sequence diagram of one run: lanes for the gateways, the subdevices,
//! the hub and COS; one row per MQTT message, HTTP request or runner action, in order.

use crate::run::RunReport;
use crate::timeline::describe_entry;
use fake_hub::{Direction, TranscriptEntry};
use otasim_protocol::Topic;
use std::fmt::Write as _;

const STYLE: &str = "body{font:13px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}\
h1{font-size:1.3em;margin:0}p.d{color:#555;margin:.2em 0 1em}\
.pass{color:#1a7f37}.fail{color:#cf222e}\
table{border-collapse:collapse;width:100%;table-layout:fixed}\
th{position:sticky;top:0;background:#f6f8fa;border-bottom:2px solid #888;padding:4px;font-size:12px}\
td{padding:2px 4px;border-left:1px dashed #ccc;vertical-align:middle;font-size:12px;overflow:hidden}\
td.t{color:#888;text-align:right;border-left:none;width:6em;font-variant-numeric:tabular-nums}\
td.r{background:#eef6ff;border-radius:3px;text-align:center}\
td.l{background:#fff4e5;border-radius:3px;text-align:center}\
td.h{background:#f0f0f0;text-align:center;color:#555}\
td.e{text-align:center;color:#777;font-style:italic}\
td.s{background:#fffbdd;font-style:italic;text-align:center}\
td.x{background:#ffebe9}\
pre{background:#f6f8fa;padding:.6em;overflow:auto}";

/// The HTML page for one run.
pub fn html_timeline(report: &RunReport) -> String {
    let lanes = Lanes::of(report);
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{name}</title><style>{STYLE}</style></head><body>\
<h1>{name} <span class=\"{cls}\">{verdict}</span></h1><p class=\"d\">{desc}<br>seed {seed} · {ms} ms · replay: <code>otasim replay {seed} {path}</code></p>",
        name = esc(&report.name),
        cls = if report.passed { "pass" } else { "fail" },
        verdict = if report.passed { "passed" } else { "FAILED" },
        desc = esc(&report.description),
        seed = report.seed,
        ms = report.elapsed_ms,
        path = esc(&report.path),
    );
    if !report.passed {
        let _ = write!(
            out,
            "<pre>{}\n\n{}</pre>",
            esc(&report.failure_lines().join("\n")),
            esc(&report.context.join("\n"))
        );
    }
    out.push_str("<table><tr><th style=\"width:6em\">ms</th>");
    for name in &lanes.names {
        let _ = write!(out, "<th>{}</th>", esc(name));
    }
    out.push_str("</tr>");
    let mut notes = report.notes.iter().peekable();
    for e in &report.transcript {
        while let Some(n) = notes.next_if(|n| n.after_seq <= e.seq) {
            note_row(&mut out, report, &lanes, n);
        }
        entry_row(&mut out, &lanes, e);
    }
    for n in notes {
        note_row(&mut out, report, &lanes, n);
    }
    out.push_str("</table><h2>Devices</h2><pre>");
    for d in &report.devices {
        let _ = writeln!(
            out,
            "{}  {} -> {}  {}  [{}]",
            esc(&d.device),
            esc(&d.version_before),
            esc(d.version_after.as_deref().unwrap_or("-")),
            esc(&d.result),
            esc(&d.reports.join(", "))
        );
    }
    out.push_str("</pre></body></html>\n");
    out
}

struct Lanes {
    names: Vec<String>,
    keys: Vec<String>,
}

impl Lanes {
    fn of(report: &RunReport) -> Lanes {
        let mut keys = Vec::new();
        let mut names = Vec::new();
        for e in &report.transcript {
            if let Ok(Topic::GatewayOperation(g)) = e.topic.parse::<Topic>()
                && !keys.contains(&g.to_string())
            {
                keys.insert(0, g.to_string());
                names.insert(0, format!("gateway {}", g.device_name()));
            }
        }
        for d in &report.devices {
            keys.push(d.device.clone());
            names.push(d.device.rsplit('/').next().unwrap_or(&d.device).to_owned());
        }
        keys.extend(["hub".to_owned(), "cos".to_owned()]);
        names.extend(["hub".to_owned(), "COS".to_owned()]);
        Lanes { names, keys }
    }

    fn index(&self, key: &str) -> usize {
        self.keys.iter().position(|k| k == key).unwrap_or(0)
    }

    fn hub(&self) -> usize {
        self.keys.len() - 2
    }
}

fn entry_row(out: &mut String, lanes: &Lanes, e: &TranscriptEntry) {
    let device = e
        .topic
        .parse::<Topic>()
        .ok()
        .map(|t| t.device().to_string());
    let lane = device
        .as_deref()
        .map_or_else(|| gateway_lane(lanes, &e.client_id), |d| lanes.index(d));
    let text = describe_entry(e);
    let label = text
        .split_once("  ")
        .map_or(text.as_str(), |(_, rest)| rest.trim());
    let (from, to, class) = match e.direction {
        Direction::In => (lane, lanes.hub(), "r"),
        Direction::Out => (lanes.hub(), lane, "l"),
        Direction::Refused => (lane, lanes.hub(), "x"),
        Direction::Event => (lane, lane, "e"),
    };
    let label = if e.direction == Direction::Event {
        text.as_str()
    } else {
        label
    };
    span_row(
        out,
        lanes,
        e.at.as_secs_f64() * 1000.0,
        from,
        to,
        class,
        label,
    );
}

fn gateway_lane(lanes: &Lanes, client_id: &str) -> usize {
    lanes
        .keys
        .iter()
        .position(|k| k.replace('/', "") == client_id)
        .unwrap_or(0)
}

fn note_row(out: &mut String, report: &RunReport, lanes: &Lanes, n: &crate::world::Note) {
    let cos = lanes.keys.len() - 1;
    match n
        .cos_seq
        .and_then(|s| report.cos_journal.iter().find(|j| j.seq == s))
    {
        Some(j) => {
            let mut label = format!(
                "{} {} {} → {} · {} B · {:?}",
                j.method,
                j.object.as_deref().unwrap_or(&j.path),
                j.range
                    .as_deref()
                    .map(|r| format!("Range: {r}"))
                    .unwrap_or_default(),
                j.status,
                j.body_bytes_sent,
                j.end
            );
            if let Some(f) = &j.fault {
                let _ = write!(
                    label,
                    " · fault: {}",
                    serde_json::to_string(f).unwrap_or_default()
                );
            }
            let class = if j.fault.is_some() { "x" } else { "h" };
            span_row(out, lanes, n.at_ms, 0, cos, class, &label);
        }
        None => span_row(out, lanes, n.at_ms, 0, cos, "s", &n.text),
    }
}

fn span_row(
    out: &mut String,
    lanes: &Lanes,
    ms: f64,
    from: usize,
    to: usize,
    class: &str,
    label: &str,
) {
    let (lo, hi) = (from.min(to), from.max(to));
    let arrow = match from.cmp(&to) {
        _ if class == "s" => esc(label),
        std::cmp::Ordering::Less => format!("{} →", esc(label)),
        std::cmp::Ordering::Greater => format!("← {}", esc(label)),
        std::cmp::Ordering::Equal => esc(label),
    };
    let _ = write!(out, "<tr><td class=\"t\">{ms:.1}</td>");
    for _ in 0..lo {
        out.push_str("<td></td>");
    }
    let _ = write!(
        out,
        "<td class=\"{class}\" colspan=\"{}\" title=\"{}\">{arrow}</td>",
        hi - lo + 1,
        esc(label)
    );
    for _ in hi + 1..lanes.keys.len() {
        out.push_str("<td></td>");
    }
    out.push_str("</tr>");
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
