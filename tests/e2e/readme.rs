//! The README is tested: every command of every ```sh block of README.md runs against the
//! built `otasim`, so an example can never rot.
//!
//! The convention, for whoever adds a block:
//! - Commands run with `sh -c` from a copy of the repository (its tracked and new files), with
//!   the built `otasim` first on `PATH`; lines ending in `\` continue; `#` comments are fine.
//! - Ports are replaced by free ones, the same everywhere in the README: the value after any
//!   `--...port` flag or `--serve`, and `127.0.0.1:PORT` / `localhost:PORT` in any argument.
//! - A command either ends by itself with status 0, or prints a line starting with
//!   `listening` (a server): the test then moves on, and stops it with SIGTERM when the block
//!   ends (it must then exit 0). A command ending in `&` runs in the background until the end
//!   of its block; the test waits for its first line of output (a server's is its
//!   `listening` line, printed once everything that can fail was checked). Each block is a
//!   session of its own.
//! - Not run, and printed as skipped: `cargo ...` and `bash .ci/run` (the build and the suite
//!   itself) and `otasim bench ...` (benchmarks are measured, not tested). Commands that cannot
//!   run here (root, /etc/hosts, other machines) belong in ```text blocks.

use crate::procs::{Proc, shell};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// How long one command may take to end, or a server to print its `listening` line.
const COMMAND_DEADLINE: Duration = Duration::from_secs(180);
/// How long a server may take to exit after SIGTERM.
const STOP_DEADLINE: Duration = Duration::from_secs(30);

/// One command of a block, with the README line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    pub(crate) at: usize,
    pub(crate) text: String,
}

/// The commands of every ```sh block, in order, one `Vec` per block.
pub(crate) fn sh_blocks(readme: &str) -> Vec<Vec<Line>> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<Line>> = None;
    let mut pending: Option<Line> = None;
    for (i, raw) in readme.lines().enumerate() {
        let trimmed = raw.trim();
        match &mut current {
            None => {
                if trimmed == "```sh" {
                    current = Some(Vec::new());
                }
            }
            Some(block) => {
                if trimmed.starts_with("```") {
                    if let Some(p) = pending.take() {
                        block.push(p);
                    }
                    blocks.push(current.take().expect("inside a block"));
                    continue;
                }
                let (text, continues) = match trimmed.strip_suffix('\\') {
                    Some(t) => (t.trim_end(), true),
                    None => (trimmed, false),
                };
                let line = match pending.take() {
                    Some(mut p) => {
                        p.text.push(' ');
                        p.text.push_str(text);
                        p
                    }
                    None if text.is_empty() || text.starts_with('#') => continue,
                    None => Line {
                        at: i + 1,
                        text: text.to_owned(),
                    },
                };
                if continues {
                    pending = Some(line);
                } else {
                    block.push(line);
                }
            }
        }
    }
    blocks
}

/// Why a command is not run, if it is not.
pub(crate) fn skip_reason(text: &str) -> Option<&'static str> {
    let first = text.split_whitespace().next().unwrap_or("");
    if first == "cargo" {
        Some("the build and the suite themselves")
    } else if text.starts_with("bash .ci/run") {
        Some("CI itself")
    } else if text
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .any(|w| (w[0] == "otasim" || w[0].ends_with("/otasim")) && w[1] == "bench")
    {
        Some("benchmarks are measured, not tested")
    } else {
        None
    }
}

/// The ports a command names, where the convention says they are.
fn port_spots(text: &str) -> Vec<(usize, usize)> {
    let mut spots = Vec::new();
    let digits_at = |from: usize| {
        let end = text[from..]
            .find(|c: char| !c.is_ascii_digit())
            .map_or(text.len(), |n| from + n);
        (end > from).then_some((from, end))
    };
    for host in ["127.0.0.1:", "localhost:"] {
        for (i, _) in text.match_indices(host) {
            spots.extend(digits_at(i + host.len()));
        }
    }
    let mut offset = 0;
    let tokens: Vec<&str> = text.split(' ').collect();
    for (i, tok) in tokens.iter().enumerate() {
        let flag = tok.split('=').next().unwrap_or("");
        let is_port_flag = flag.starts_with("--") && (flag.ends_with("port") || flag == "--serve");
        if is_port_flag {
            if let Some(eq) = tok.find('=') {
                spots.extend(digits_at(offset + eq + 1));
            } else if let Some(next) = tokens.get(i + 1) {
                let start = offset + tok.len() + 1;
                if !next.is_empty() && next.chars().all(|c| c.is_ascii_digit()) {
                    spots.push((start, start + next.len()));
                }
            }
        }
        offset += tok.len() + 1;
    }
    spots.sort_unstable();
    spots.dedup();
    spots
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// The command with its ports replaced by free ones (port 0 stays: it already means "free").
pub(crate) fn with_free_ports(
    text: &str,
    ports: &mut BTreeMap<u16, u16>,
    mut pick: impl FnMut() -> u16,
) -> String {
    // New ports are picked in reading order, then put in from the end so offsets hold.
    let mut swaps = Vec::new();
    for (start, end) in port_spots(text) {
        let Ok(port) = text[start..end].parse::<u16>() else {
            continue;
        };
        if port == 0 {
            continue;
        }
        let new = *ports.entry(port).or_insert_with(&mut pick);
        swaps.push((start, end, new));
    }
    let mut out = text.to_owned();
    for (start, end, new) in swaps.into_iter().rev() {
        out.replace_range(start..end, &new.to_string());
    }
    out
}

/// A copy of the repository's tracked and new files, so that commands writing files leave
/// the checkout alone.
fn repo_copy() -> tempfile::TempDir {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(root)
        .output()
        .expect("git lists the repository's files (the README test runs from a checkout)");
    assert!(
        out.status.success(),
        "git ls-files failed in {}",
        root.display()
    );
    let dir = tempfile::tempdir().expect("temp dir");
    for name in out.stdout.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = String::from_utf8_lossy(name);
        let from = root.join(&*name);
        if !from.is_file() {
            continue; // deleted in the work tree
        }
        let to = dir.path().join(&*name);
        std::fs::create_dir_all(to.parent().expect("a file has a folder")).expect("mkdir");
        std::fs::copy(&from, &to).unwrap_or_else(|e| panic!("copying {name}: {e}"));
    }
    dir
}

/// Runs one block; servers and background commands are stopped when it ends.
fn run_block(block: &[Line], dir: &Path, ports: &mut BTreeMap<u16, u16>, log: &mut String) {
    let mut running: Vec<(Line, String, Proc)> = Vec::new();
    for line in block {
        if let Some(why) = skip_reason(&line.text) {
            log.push_str(&format!(
                "skip  README.md:{} {} ({why})\n",
                line.at, line.text
            ));
            continue;
        }
        let rewritten = with_free_ports(&line.text, ports, free_port);
        let (command, background) = match rewritten.strip_suffix('&') {
            Some(c) if !c.ends_with('&') => (c.trim_end().to_owned(), true),
            _ => (rewritten.clone(), false),
        };
        // `exec` so that SIGTERM reaches otasim itself, not the shell around it.
        let simple = !command.contains(['|', ';', '&', '>', '<']);
        let run = if simple {
            format!("exec {command}")
        } else {
            command.clone()
        };
        log.push_str(&format!("run   README.md:{} {command}\n", line.at));
        let what = format!(
            "README.md line {}: `{}` (run as `{command}`)",
            line.at, line.text
        );
        let mut proc = Proc::spawn(shell(&run, dir)).unwrap_or_else(|e| panic!("{what}: {e}"));
        if background {
            if let Err(why) = proc.wait_line("", COMMAND_DEADLINE) {
                panic!(
                    "{what}: printed nothing ({}); a background command must print a first line \
                     once it is ready\n{}",
                    why.map_or("its output closed".to_owned(), |w| format!("waited {w:?}")),
                    proc.tails()
                );
            }
            running.push((line.clone(), command, proc));
            continue;
        }
        match proc.wait_line("listening", COMMAND_DEADLINE) {
            Ok(_) => running.push((line.clone(), command, proc)),
            Err(Some(waited)) => panic!(
                "{what}: neither ended nor printed a `listening` line in {waited:?} (end the \
                 line with `&` if it runs until stopped)\n{}",
                proc.tails()
            ),
            Err(None) => {
                let status = proc.wait_exit(COMMAND_DEADLINE);
                assert!(
                    status.is_some_and(|s| s.success()),
                    "{what}: exited with {status:?}; README commands must work verbatim\n{}",
                    proc.tails()
                );
            }
        }
    }
    for (line, command, mut proc) in running.into_iter().rev() {
        let status = proc.stop(STOP_DEADLINE);
        assert!(
            status.is_some_and(|s| s.success()),
            "README.md line {}: `{command}` did not exit 0 on SIGTERM at the end of its block \
             ({status:?})\n{}",
            line.at,
            proc.tails()
        );
    }
}

#[test]
fn every_readme_sh_block_runs_verbatim() {
    let readme_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(&readme_path).expect("README.md");
    let blocks = sh_blocks(&readme);
    assert!(!blocks.is_empty(), "README.md has no ```sh block");
    let dir = repo_copy();
    let mut ports = BTreeMap::new();
    let mut log = String::new();
    for block in &blocks {
        run_block(block, dir.path(), &mut ports, &mut log);
    }
    println!("{log}");
    assert!(
        log.lines().any(|l| l.starts_with("run ")),
        "no README command ran:\n{log}"
    );
}

#[test]
fn blocks_join_continuations_and_drop_comments() {
    let text = "intro\n```sh\n# a comment\notasim hub --mqtt-port 1883 \\\n    --cos-port 8081 &\n\notasim list   # inline\n```\n```text\nnot run\n```\n";
    let blocks = sh_blocks(text);
    assert_eq!(
        blocks,
        vec![vec![
            Line {
                at: 4,
                text: "otasim hub --mqtt-port 1883 --cos-port 8081 &".into()
            },
            Line {
                at: 7,
                text: "otasim list   # inline".into()
            },
        ]]
    );
}

#[test]
fn ports_are_replaced_consistently_and_zero_stays() {
    let mut ports = BTreeMap::new();
    let mut next = 40000;
    let mut pick = || {
        next += 1;
        next
    };
    let a = with_free_ports(
        "otasim hub --mqtt-port 1883 --cos-port=8081 --api-port 0 --serve 8080",
        &mut ports,
        &mut pick,
    );
    assert_eq!(
        a,
        "otasim hub --mqtt-port 40001 --cos-port=40002 --api-port 0 --serve 40003"
    );
    let b = with_free_ports(
        "otasim gateway --hub 127.0.0.1:1883 && curl http://localhost:8080/api/devices",
        &mut ports,
        &mut pick,
    );
    assert_eq!(
        b,
        "otasim gateway --hub 127.0.0.1:40001 && curl http://localhost:40003/api/devices"
    );
    assert_eq!(
        skip_reason("cargo test --workspace"),
        Some("the build and the suite themselves")
    );
    assert!(skip_reason("./target/release/otasim bench cos").is_some());
    assert_eq!(skip_reason("otasim list"), None);
}
