//! Subcommands, one module each.

/// `println!` that gives up quietly when stdout is closed (`otasim demo --json | head`): the
/// command goes on and its exit code still says whether the expected outcome held.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `print!`, quiet on a broken pipe.
macro_rules! say_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

mod bench;
mod cos;
mod ctl;
mod demo;
mod fdlimit;
mod gateway;
mod hub;
mod scenario;
mod signal;
mod table;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Offline simulator and end-to-end test harness for gateway OTA updates on Tencent Cloud IoT Hub.
#[derive(Debug, Parser)]
#[command(name = "otasim", version, about)]
pub struct Cli {
    /// More logs on stderr (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the seed demo: three lights updated through a gateway, everything embedded.
    Demo(demo::DemoArgs),
    /// Serve a folder of firmware files as fake COS, with the control API.
    Cos(cos::CosArgs),
    /// Run fake hub and fake COS as a server for gateways we did not write.
    Hub(hub::HubArgs),
    /// Drive a running `otasim hub` from the shell: status, watch, push, firmware, faults, clock.
    Ctl(ctl::CtlArgs),
    /// Run the gateway OTA client against any hub.
    Gateway(gateway::GatewayArgs),
    /// Run scenario files or folders.
    Run(scenario::RunArgs),
    /// List the scenarios in files or folders.
    List(scenario::ListArgs),
    /// Validate scenario files without running them.
    Check(scenario::CheckArgs),
    /// Run one scenario again with a given seed.
    Replay(scenario::ReplayArgs),
    /// Turn a C SDK gateway log into a scenario that reproduces it.
    Import(scenario::ImportArgs),
    /// Qualify a gateway: the whole catalog against it, one report (HTML, JUnit, JSON).
    Qualify(scenario::QualifyArgs),
    /// Measure throughput and latency against a reference in the same run.
    Bench(bench::BenchArgs),
}

/// Runs a parsed command; the exit code says whether the expected outcome held.
pub async fn execute(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Demo(args) => demo::run(args).await,
        Command::Cos(args) => cos::run(args).await,
        Command::Hub(args) => hub::run(args).await,
        Command::Ctl(args) => ctl::run(args).await,
        Command::Gateway(args) => gateway::run(args).await,
        Command::Run(args) => scenario::run(args).await,
        Command::List(args) => scenario::list(args).await,
        Command::Check(args) => scenario::check(args).await,
        Command::Replay(args) => scenario::replay(args).await,
        Command::Import(args) => scenario::import(args).await,
        Command::Qualify(args) => scenario::qualify(args).await,
        Command::Bench(args) => bench::run(args).await,
    }
}

/// A size as people read it: `29,972 bytes`, `200.0 MiB (209,715,200 bytes)`.
pub(crate) fn human_bytes(n: u64) -> String {
    let exact = {
        let digits = n.to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    };
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 * 1024 {
        return format!("{exact} bytes");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = UNITS[0];
    for u in &UNITS[1..] {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = u;
    }
    format!("{value:.1} {unit} ({exact} bytes)")
}

/// Checks, before any work, that each output file named by a flag can be written, so that a
/// typo in `--junit out/x.xml` fails at once rather than after a long run. The file is opened
/// for writing (created if missing, its contents left alone until the real write).
pub(crate) fn ensure_writable(outputs: &[(&str, Option<&std::path::Path>)]) -> anyhow::Result<()> {
    for (flag, path) in outputs {
        let Some(path) = path else { continue };
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| {
                anyhow::anyhow!(
                    "{flag} {}: cannot write there ({e}); create its folder or pick another path",
                    path.display()
                )
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_bytes(0), "0 bytes");
        assert_eq!(human_bytes(29_972), "29,972 bytes");
        assert_eq!(human_bytes(209_715_200), "200.0 MiB (209,715,200 bytes)");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB (3,221,225,472 bytes)");
    }
}
