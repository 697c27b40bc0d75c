//! Self-contained HTML pages: one per run (summary, failures with the first divergence, the
//! steps with the failing one highlighted, the SVG sequence diagram, the devices), and an index
//! page per set of runs with each verdict, its reason and a link to the run's page.

use super::svg::sequence_svg;
use crate::run::RunReport;
use std::fmt::Write as _;

const STYLE: &str = "body{font:13px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}\
h1{font-size:1.3em;margin:0}h2{font-size:1.05em;margin:1.2em 0 .4em}p.d{color:#555;margin:.2em 0 1em}\
.pass,.passed{color:#1a7f37}.fail,.failed,.error{color:#cf222e}.skipped{color:#9a6700}\
table{border-collapse:collapse}td,th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}\
tr.failing td{background:#ffebe9;font-weight:bold}li.first{background:#ffebe9;font-weight:bold}\
pre{background:#f6f8fa;padding:.6em;overflow:auto}.diagram{overflow:auto;border:1px solid #ddd}";

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A file name for a run's page: the scenario's name with anything unusual replaced.
pub fn page_name(name: &str) -> String {
    let stem: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{stem}.html")
}

/// The HTML page for one run.
pub fn html_timeline(report: &RunReport) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{name}</title><style>{STYLE}</style></head><body>\
<p><a href=\"index.html\">&larr; all runs</a></p>\
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
        out.push_str("<h2>What did not hold</h2><ol class=\"failures\">");
        for (i, f) in report.failures.iter().enumerate() {
            let class = if i == 0 { " class=\"first\"" } else { "" };
            let _ = write!(out, "<li{class}>{}</li>", esc(&f.to_string()));
        }
        let _ = write!(
            out,
            "</ol><p><a href=\"#divergence\">the first divergence in the diagram</a></p><pre>{}</pre>",
            esc(&report.context.join("\n"))
        );
    }
    if !report.adjustments.is_empty() {
        out.push_str("<h2>Judged with adjustments</h2><ul>");
        for a in &report.adjustments {
            let _ = write!(out, "<li>{}</li>", esc(a));
        }
        out.push_str("</ul>");
    }
    steps_table(&mut out, report);
    let _ = write!(
        out,
        "<h2>Sequence</h2><div class=\"diagram\">{}</div>",
        sequence_svg(report)
    );
    out.push_str("<h2>Devices</h2><table><tr><th>device</th><th>before</th><th>after</th><th>result</th><th>reports</th></tr>");
    for d in &report.devices {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&d.device),
            esc(&d.version_before),
            esc(d.version_after.as_deref().unwrap_or("-")),
            esc(&d.result),
            esc(&d.reports.join(", "))
        );
    }
    out.push_str("</table></body></html>\n");
    out
}

/// The runner's steps as they ran, the failing one highlighted.
fn steps_table(out: &mut String, report: &RunReport) {
    let steps: Vec<&crate::world::Note> =
        report.notes.iter().filter(|n| n.kind != "http").collect();
    out.push_str(
        "<h2>Steps</h2><table class=\"steps\"><tr><th>ms</th><th>what the runner did</th></tr>",
    );
    for n in steps {
        let _ = write!(
            out,
            "<tr><td>{:.0}</td><td>{}</td></tr>",
            n.at_ms,
            esc(&n.text)
        );
    }
    if let Some(f) = report
        .failures
        .iter()
        .find(|f| matches!(f, crate::failure::Failure::Step { .. }))
    {
        let _ = write!(
            out,
            "<tr class=\"failing\"><td>-</td><td>{}</td></tr>",
            esc(&f.to_string())
        );
    }
    out.push_str("</table>");
}

/// One line of an index page.
#[derive(Debug, Clone)]
pub struct IndexEntry {
    /// The scenario.
    pub name: String,
    /// `passed`, `failed`, `skipped` or `error`.
    pub verdict: String,
    /// Why (empty when passed).
    pub reason: String,
    /// The run's page, relative to the index (none when it did not run).
    pub link: Option<String>,
}

/// The index page of a set of runs: the summary, then each verdict, reason and link.
pub fn html_index(title: &str, summary: &str, entries: &[IndexEntry]) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{t}</title><style>{STYLE}</style></head><body>\
<h1>{t}</h1><p class=\"d\">{s}</p><table><tr><th>scenario</th><th>verdict</th><th>reason</th></tr>",
        t = esc(title),
        s = esc(summary)
    );
    for e in entries {
        let name = match &e.link {
            Some(l) => format!("<a href=\"{}\">{}</a>", esc(l), esc(&e.name)),
            None => esc(&e.name),
        };
        let _ = write!(
            out,
            "<tr><td>{name}</td><td class=\"{v}\">{v}</td><td>{}</td></tr>",
            esc(&e.reason),
            v = esc(&e.verdict)
        );
    }
    out.push_str("</table></body></html>\n");
    out
}
