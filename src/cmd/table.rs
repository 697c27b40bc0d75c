//! The final table per device.

use scenarios::DeviceRow;
use std::fmt::Write as _;

/// Renders rows as an aligned text table.
pub(super) fn devices(rows: &[DeviceRow]) -> String {
    let header = ["device", "before", "after", "result", "bytes", "time"];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.device.clone(),
                r.version_before.clone(),
                r.version_after.clone().unwrap_or_else(|| "-".into()),
                r.result.clone(),
                r.bytes_downloaded.to_string(),
                r.update_ms
                    .map_or_else(|| "-".into(), |ms| format!("{ms} ms")),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cols: &[String]| {
        let parts: Vec<String> = cols
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", parts.join("  ").trim_end());
    };
    line(&mut out, &header.map(String::from));
    line(&mut out, &widths.map(|w| "-".repeat(w)));
    for row in &cells {
        line(&mut out, row);
    }
    out
}
