//! Writing the scenario TOML of an imported log: fleet, firmware and faults, steps, and the
//! expected reports translated to what our gateway says.

use super::{Command, Log};
use std::fmt::Write as _;

pub(super) fn header(t: &mut String, name: &str, log: &Log, pid: &str, dn: &str) {
    let _ = writeln!(
        t,
        "# Imported by `otasim import` from a C SDK gateway log ({name})."
    );
    let _ = writeln!(
        t,
        "# Field failure: the sequence of commands and reports that gateway {pid}/{dn} logged,"
    );
    let _ = writeln!(
        t,
        "# replayed against our gateway. Where our gateway differs from the SDK on purpose:"
    );
    let _ = writeln!(
        t,
        "# - the SDK reports `fail -2` (or -3) then `fail -5`; ours reports the one honest code;"
    );
    let _ = writeln!(
        t,
        "# - the SDK drops an update_firmware while busy with another subdevice (\"In downloading"
    );
    let _ = writeln!(
        t,
        "#   or downloaded state\"); ours serves subdevices concurrently, so no reports are"
    );
    let _ = writeln!(t, "#   expected for such commands;");
    let _ = writeln!(
        t,
        "# - firmware bytes are generated: size as logged, MD5 differs (logged MD5 in a comment);"
    );
    let _ = writeln!(
        t,
        "# - SDK HTTP errors become COS faults; the codes expected are our gateway's for them."
    );
    if log.version_rsp.values().any(|c| *c != 0) {
        let _ = writeln!(
            t,
            "# - report_version_rsp with a non-zero result_code was seen; it is not replayed."
        );
    }
    let _ = writeln!(t, "name = {:?}", format!("imported-{name}"));
    let _ = writeln!(
        t,
        "description = \"Replays {pid}/{dn}'s log: fleet, versions, commands and reports\""
    );
    let _ = writeln!(t, "time_scale = 0.02\n");
    let _ = writeln!(
        t,
        "[[gateways]]\nproduct_id = {pid:?}\ndevice_name = {dn:?}"
    );
    let _ = writeln!(
        t,
        "# The log does not show the secret; any works offline.\nsecret = \"aW1wb3J0ZWQtc2VjcmV0\"\n"
    );
}

pub(super) fn fleet(t: &mut String, log: &Log) {
    for id in &log.order {
        let (pid, dn) = id.split_once('/').unwrap_or((id, ""));
        let version = log.versions.get(id).map_or("0.1", String::as_str);
        let _ = writeln!(
            t,
            "[[subdevices]]\nproduct_id = {pid:?}\ndevice_name = {dn:?}\nversion = {version:?}"
        );
        if log.online.get(id).is_some_and(|r| *r != 0) {
            let _ = writeln!(
                t,
                "# The hub answered online with {}: not bound to this gateway.\nbound = false",
                log.online[id]
            );
        }
        t.push('\n');
    }
}

pub(super) fn firmware(t: &mut String, log: &Log) -> usize {
    let mut seen: Vec<(String, String)> = Vec::new();
    for c in &log.commands {
        let pid = c.device.split('/').next().unwrap_or("").to_owned();
        if seen.contains(&(pid.clone(), c.version.clone())) {
            continue;
        }
        seen.push((pid.clone(), c.version.clone()));
        let _ = writeln!(
            t,
            "# Logged: {} bytes, MD5 {}, url {}",
            c.size,
            c.md5,
            c.url.split('?').next().unwrap_or("")
        );
        let _ = writeln!(
            t,
            "[[firmware]]\nproduct_id = {pid:?}\nversion = {:?}\nsize = {}\nseed = {}\n",
            c.version,
            c.size,
            seen.len()
        );
        if let Some(rule) = fault_for(c) {
            let object = format!("{pid}_{}", c.version).replace(
                |ch: char| !(ch.is_ascii_alphanumeric() || "._-".contains(ch)),
                "_",
            );
            for e in &c.errors {
                let _ = writeln!(t, "# The SDK logged: {e}");
            }
            let _ = writeln!(
                t,
                "[[cos_faults]]\nwhen = {{ object = {object:?} }}\nverdict = {rule}\nfires = \"always\"\n"
            );
        }
    }
    seen.len()
}

/// The COS fault that makes our gateway meet what the SDK met, if the log says.
fn fault_for(c: &Command) -> Option<&'static str> {
    let text = c.errors.join(" ");
    if c.reports.iter().any(|r| r == "fail -2") && text.contains("Format error") {
        // The SDK choked on a chunked body; our gateway decodes chunked, as HTTP/1.1 says.
        Some("{ kind = \"chunked\" }")
    } else if c.reports.iter().any(|r| r == "fail -2") {
        Some("{ kind = \"status\", code = 404 }")
    } else if c.reports.iter().any(|r| r == "fail -3") {
        Some("{ kind = \"status\", code = 403 }")
    } else if c.reports.iter().any(|r| r == "fail -4") {
        Some("{ kind = \"corrupt\", offset = 0 }")
    } else if c.reports.iter().any(|r| r == "fail -5") && !c.errors.is_empty() {
        // Unparsable headers or an unreachable server: the connection yields no response.
        Some("{ kind = \"cut_after\", bytes = 0 }")
    } else {
        None
    }
}

pub(super) fn steps(t: &mut String, log: &Log) {
    let _ = writeln!(t, "[[steps]]\naction = \"wait_online\"\n");
    steps_per_command(t, log);
    let _ = writeln!(t, "[[steps]]\naction = \"wait_tasks\"\n");
}

fn steps_per_command(t: &mut String, log: &Log) {
    for c in log.commands.iter().filter(|c| !c.ignored) {
        let (pid, dn) = c.device.split_once('/').unwrap_or((&c.device, ""));
        let _ = writeln!(
            t,
            "[[steps]]\naction = \"push\"\nproduct_id = {pid:?}\nversion = {:?}\nmethod = \"devices\"\ndevices = [{dn:?}]\n",
            c.version
        );
        let fin = if expected(c).last().is_some_and(|r| r == "done") {
            "done"
        } else {
            "fail"
        };
        let _ = writeln!(
            t,
            "[[steps]]\naction = \"wait_until\"\nuntil = {{ on = \"report\", device = {:?}, state = {fin:?}, count = {} }}\n",
            c.device,
            finals_before(log, c, fin)
        );
    }
}

/// How many final reports of `state` the device will have sent once `c` is over.
fn finals_before(log: &Log, c: &Command, state: &str) -> usize {
    let mut n = 0;
    for other in log
        .commands
        .iter()
        .filter(|o| o.device == c.device && !o.ignored)
    {
        if expected(other).last().is_some_and(|r| r.starts_with(state)) {
            n += 1;
        }
        if std::ptr::eq(other, c) {
            break;
        }
    }
    n.max(1)
}

/// The reports our gateway should send for `c`: the SDK's, with its trailing `fail -5` after
/// an honest code dropped, and a lone failure without `downloading 0` kept as it is.
fn expected(c: &Command) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in &c.reports {
        if r == "fail -5" && out.last().is_some_and(|l| l.starts_with("fail")) {
            continue;
        }
        if r.starts_with("downloading") && r != "downloading 0" && r != "downloading 100" {
            continue;
        }
        out.push(r.clone());
    }
    if fault_for(c) == Some("{ kind = \"chunked\" }") {
        return vec![
            "downloading 0".into(),
            "downloading*".into(),
            "downloading 100".into(),
            "burning".into(),
            "done".into(),
        ];
    }
    if let Some(pos) = out.iter().position(|r| r == "downloading 0") {
        out.insert(pos + 1, "downloading*".into());
        out.retain(|r| r != "downloading 100" || !out_has_fail(&c.reports));
    } else if out.last().is_some_and(|l| l.starts_with("fail")) {
        // Our gateway always says `downloading 0` when it starts, then tries.
        out.insert(0, "downloading 0".into());
        out.insert(1, "downloading*".into());
    }
    out
}

fn out_has_fail(reports: &[String]) -> bool {
    reports.iter().any(|r| r.starts_with("fail"))
}

pub(super) fn expectations(t: &mut String, log: &Log) {
    let _ = writeln!(t, "[expect.versions]");
    for id in log
        .order
        .iter()
        .filter(|id| log.online.get(*id) == Some(&0))
    {
        let factory = log.versions.get(id).map_or("0.1", String::as_str);
        let last_done = log
            .commands
            .iter()
            .rev()
            .filter(|c| &c.device == id && !c.ignored)
            .find(|c| expected(c).last().is_some_and(|r| r == "done"))
            .map_or(factory, |c| c.version.as_str());
        let _ = writeln!(t, "{id:?} = {last_done:?}");
    }
    let _ = writeln!(t, "\n[expect.online_results]");
    for (id, r) in &log.online {
        let _ = writeln!(t, "{id:?} = {r}");
    }
    let _ = writeln!(t, "\n[expect.reports]");
    for id in &log.order {
        let cmds: Vec<&Command> = log.commands.iter().filter(|c| &c.device == id).collect();
        if cmds.iter().any(|c| c.ignored) {
            let _ = writeln!(
                t,
                "# {id}: the SDK dropped its command while busy; ours would serve it."
            );
            continue;
        }
        let all: Vec<String> = cmds
            .iter()
            .flat_map(|c| expected(c))
            .map(|r| format!("{r:?}"))
            .collect();
        let _ = writeln!(t, "{id:?} = [{}]", all.join(", "));
    }
}
