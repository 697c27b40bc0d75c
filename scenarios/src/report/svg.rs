//! The sequence diagram of one run as SVG: a lifeline per gateway, per subdevice, for the hub
//! and for COS; an arrow per MQTT message and per HTTP request; runner steps as bands; faults
//! marked where they fired; the first divergence outlined in red.

use crate::judge::Record;
use crate::run::RunReport;
use crate::timeline::{describe_cos, describe_entry};
use fake_hub::{Direction, TranscriptEntry};
use otasim_protocol::Topic;
use svg::Document;
use svg::node::element::{Definitions, Group, Line, Marker, Path, Rectangle, Text, Title};

const LANE_W: f64 = 170.0;
const ROW_H: f64 = 22.0;
const TOP: f64 = 50.0;
const LEFT: f64 = 70.0;
/// Rows drawn at most; a longer run says how many were left out.
const MAX_ROWS: usize = 3000;

struct Lanes {
    keys: Vec<String>,
    names: Vec<String>,
}

impl Lanes {
    fn of(report: &RunReport) -> Lanes {
        let mut keys = Vec::new();
        let mut names = Vec::new();
        for e in &report.transcript {
            if let Ok(Topic::GatewayOperation(g)) = e.topic.parse::<Topic>()
                && !keys.contains(&g.client_id())
            {
                keys.push(g.client_id());
                names.push(format!("gateway {}", g.device_name()));
            }
        }
        if keys.is_empty() {
            keys.push("gateway".into());
            names.push("gateway".into());
        }
        for d in &report.devices {
            keys.push(d.device.clone());
            names.push(d.device.rsplit('/').next().unwrap_or(&d.device).to_owned());
        }
        keys.extend(["hub".to_owned(), "cos".to_owned()]);
        names.extend(["hub".to_owned(), "COS".to_owned()]);
        Lanes { keys, names }
    }

    fn x(&self, i: usize) -> f64 {
        LEFT + LANE_W * (i as f64 + 0.5)
    }

    fn hub(&self) -> usize {
        self.keys.len() - 2
    }

    fn cos(&self) -> usize {
        self.keys.len() - 1
    }

    fn of_entry(&self, e: &TranscriptEntry) -> usize {
        let device = e
            .topic
            .parse::<Topic>()
            .ok()
            .map(|t| t.device().to_string());
        device
            .and_then(|d| self.keys.iter().position(|k| *k == d))
            .or_else(|| self.keys.iter().position(|k| *k == e.client_id))
            .unwrap_or(0)
    }
}

enum Row<'a> {
    Mqtt(&'a TranscriptEntry),
    Note(&'a crate::world::Note),
}

fn rows(report: &RunReport) -> Vec<Row<'_>> {
    let mut out = Vec::new();
    let mut notes = report.notes.iter().peekable();
    for e in &report.transcript {
        while let Some(n) = notes.next_if(|n| n.after_seq <= e.seq) {
            out.push(Row::Note(n));
        }
        out.push(Row::Mqtt(e));
    }
    out.extend(notes.map(Row::Note));
    out
}

fn arrow(from: f64, to: f64, y: f64, class: &str, label: &str) -> Group {
    let mid = (from + to) / 2.0;
    Group::new()
        .set("class", class)
        .add(Title::new(label.to_owned()))
        .add(
            Line::new()
                .set("x1", from)
                .set("y1", y)
                .set("x2", to)
                .set("y2", y)
                .set("marker-end", "url(#head)"),
        )
        .add(
            Text::new(label.to_owned())
                .set("x", mid)
                .set("y", y - 4.0)
                .set("text-anchor", "middle"),
        )
}

/// The SVG of one run.
pub(crate) fn sequence_svg(report: &RunReport) -> String {
    let lanes = Lanes::of(report);
    let all = rows(report);
    let shown = all.len().min(MAX_ROWS);
    let width = LEFT + LANE_W * lanes.keys.len() as f64 + 20.0;
    let height = TOP + ROW_H * (shown as f64 + 2.0);
    let style = "text{font:11px system-ui,sans-serif;fill:#222}.lane{stroke:#bbb;stroke-dasharray:4 3}\
.head{font-weight:bold}.in line{stroke:#0969da}.out line{stroke:#bc4c00}.refused line{stroke:#cf222e;stroke-dasharray:3 2}\
.http line{stroke:#555}.fault line{stroke:#cf222e;stroke-width:2}.fault text{fill:#cf222e}\
.event text{fill:#777;font-style:italic}.step rect{fill:#fffbdd}.step text{font-style:italic}\
.t{fill:#888;text-anchor:end}.diverged{fill:none;stroke:#cf222e;stroke-width:2}";
    let marker = Marker::new()
        .set("id", "head")
        .set("markerWidth", 8)
        .set("markerHeight", 8)
        .set("refX", 7)
        .set("refY", 3)
        .set("orient", "auto")
        .add(Path::new().set("d", "M0,0 L7,3 L0,6 z").set("fill", "#555"));
    let mut doc = Document::new()
        .set("width", width)
        .set("height", height)
        .set("viewBox", (0.0, 0.0, width, height))
        .add(svg::node::element::Style::new(style))
        .add(Definitions::new().add(marker));
    for (i, name) in lanes.names.iter().enumerate() {
        let x = lanes.x(i);
        doc = doc
            .add(
                Text::new(name.clone())
                    .set("class", "head")
                    .set("x", x)
                    .set("y", 30)
                    .set("text-anchor", "middle"),
            )
            .add(
                Line::new()
                    .set("class", "lane")
                    .set("x1", x)
                    .set("y1", 38)
                    .set("x2", x)
                    .set("y2", height - 10.0),
            );
    }
    for (i, row) in all.iter().take(shown).enumerate() {
        let y = TOP + ROW_H * (i as f64 + 1.0);
        let (group, ms, diverged) = match row {
            Row::Mqtt(e) => (
                mqtt_row(&lanes, e, y),
                e.at.as_secs_f64() * 1000.0,
                report.diverged_at == Some(Record::Transcript(e.seq)),
            ),
            Row::Note(n) => note_row(report, &lanes, n, y, width),
        };
        doc = doc.add(
            Text::new(format!("{ms:.0} ms"))
                .set("class", "t")
                .set("x", LEFT - 8.0)
                .set("y", y),
        );
        doc = doc.add(group);
        if diverged {
            doc = doc.add(
                Rectangle::new()
                    .set("class", "diverged")
                    .set("id", "divergence")
                    .set("x", LEFT - 4.0)
                    .set("y", y - ROW_H + 6.0)
                    .set("width", width - LEFT - 16.0)
                    .set("height", ROW_H),
            );
        }
    }
    if shown < all.len() {
        let y = TOP + ROW_H * (shown as f64 + 1.0);
        doc = doc.add(
            Text::new(format!(
                "... {} more rows in the JSON report",
                all.len() - shown
            ))
            .set("x", LEFT)
            .set("y", y),
        );
    }
    doc.to_string()
}

fn mqtt_row(lanes: &Lanes, e: &TranscriptEntry, y: f64) -> Group {
    let lane = lanes.of_entry(e);
    let text = describe_entry(e);
    let label = text
        .split_once("  ")
        .map_or(text.as_str(), |(_, rest)| rest.trim())
        .to_owned();
    let (a, b) = (lanes.x(lane), lanes.x(lanes.hub()));
    match e.direction {
        Direction::In => arrow(a, b, y, "in", &label),
        Direction::Out => arrow(b, a, y, "out", &label),
        Direction::Refused => arrow(a, b, y, "refused", &format!("refused: {label}")),
        // A COS request the hub recorded (a world whose COS is the hub's own).
        Direction::Http => arrow(a, lanes.x(lanes.cos()), y, "http", &label),
        Direction::Event => Group::new().set("class", "event").add(
            Text::new(format!("{} {} {}", e.client_id, e.topic, e.payload))
                .set("x", a + 6.0)
                .set("y", y),
        ),
    }
}

fn note_row(
    report: &RunReport,
    lanes: &Lanes,
    n: &crate::world::Note,
    y: f64,
    width: f64,
) -> (Group, f64, bool) {
    let journal = n
        .cos_seq
        .and_then(|s| report.cos_journal.iter().find(|j| j.seq == s));
    match journal {
        Some(j) => {
            let label = describe_cos(j);
            let class = if j.fault.is_some() { "fault" } else { "http" };
            let mut g = arrow(lanes.x(0), lanes.x(lanes.cos()), y, class, &label);
            if j.fault.is_some() {
                // The fault fired here: a cross on the COS lifeline.
                let (x, s) = (lanes.x(lanes.cos()), 5.0);
                g = g.add(
                    Path::new()
                        .set(
                            "d",
                            format!(
                                "M{},{} L{},{} M{},{} L{},{}",
                                x - s,
                                y - s,
                                x + s,
                                y + s,
                                x - s,
                                y + s,
                                x + s,
                                y - s
                            ),
                        )
                        .set("stroke", "#cf222e")
                        .set("stroke-width", 2),
                );
            }
            let diverged = report.diverged_at == Some(Record::Cos(j.seq));
            (g, n.at_ms, diverged)
        }
        None => {
            let g = Group::new()
                .set("class", "step")
                .add(
                    Rectangle::new()
                        .set("x", LEFT)
                        .set("y", y - ROW_H + 8.0)
                        .set("width", width - LEFT - 20.0)
                        .set("height", ROW_H - 4.0),
                )
                .add(Text::new(n.text.clone()).set("x", LEFT + 6.0).set("y", y));
            (g, n.at_ms, false)
        }
    }
}
