//! `otasim run`, `list`, `check`, `replay`, `import` and `qualify`.
//!
//! The seed: every scenario has one (its `seed` key, 0 if unset) that fixes its firmware bytes;
//! `run --seed N` overrides it for every scenario run, and `replay SEED PATH` is
//! `run --seed SEED PATH` for one file with its live timeline. Each result line prints the seed.

use super::table;

/// `println!` that gives up quietly when stdout is closed (`otasim list | head`), instead of
/// panicking on a broken pipe.
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
use anyhow::Context as _;
use clap::Args;
use scenarios::{JsonReport, Plan, RunReport, describe_entry};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use tokio::sync::mpsc;

/// Arguments of `otasim run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Scenario files or folders (every `*.toml` below a folder).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Write JUnit XML here.
    #[arg(long)]
    junit: Option<PathBuf>,
    /// Write the JSON report (seed, every transcript event and HTTP request) here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write an index page and one HTML page (with its sequence diagram) per scenario into
    /// this folder.
    #[arg(long)]
    html: Option<PathBuf>,
    /// Seed for every scenario instead of each one's own.
    #[arg(long)]
    seed: Option<u64>,
    /// Scenarios run at once.
    #[arg(long, default_value_t = 4)]
    jobs: usize,
}
/// Arguments of `otasim list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Scenario files or folders.
    #[arg(default_value = "scenarios/catalog")]
    paths: Vec<PathBuf>,
}
/// Arguments of `otasim check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Scenario files or folders.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}
/// Arguments of `otasim replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The seed a run printed.
    seed: u64,
    /// The scenario file.
    path: PathBuf,
    /// Write the HTML timeline into this folder.
    #[arg(long)]
    html: Option<PathBuf>,
}
/// Arguments of `otasim import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// A gateway log in the C SDK's format (`LEVEL|time|file|function(line): message`).
    log: PathBuf,
    /// Where to write the scenario (stdout if unset).
    #[arg(short, long)]
    output: Option<PathBuf>,
}

/// Files that could not be loaded or run: `(path, why)`.
type Refused = Vec<(String, String)>;

/// Loads every file; the ones that do not validate come back as `(path, error)`.
fn load(paths: &[PathBuf]) -> anyhow::Result<(Vec<Plan>, Refused)> {
    let files = scenarios::discover(paths).with_context(|| {
        let named: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        format!(
            "finding scenario files in {}: check the path (scenario files and folders, e.g. \
             scenarios/catalog)",
            named.join(", ")
        )
    })?;
    let mut plans = Vec::new();
    let mut errors = Vec::new();
    for f in files {
        match Plan::load(&f) {
            Ok(p) => plans.push(p),
            Err(e) => errors.push((f.display().to_string(), e.to_string())),
        }
    }
    Ok((plans, errors))
}

pub(super) async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    super::ensure_writable(&[
        ("--junit", args.junit.as_deref()),
        ("--json", args.json.as_deref()),
    ])?;
    let (plans, mut errors) = load(&args.paths)?;
    for (_, e) in &errors {
        eprintln!("invalid: {e}");
    }
    let started = Instant::now();
    let reports: Vec<RunReport> = if plans.len() == 1 && errors.is_empty() {
        let seed = args.seed.unwrap_or(plans[0].seed);
        vec![run_live(&plans[0], seed).await?]
    } else {
        say!("running {} scenarios, {} at once", plans.len(), args.jobs);
        let results = scenarios::run_all(&plans, args.seed, args.jobs, |plan, r| match r {
            Ok(r) => say!(
                "{} {:<44} {:>6} ms  seed {}",
                if r.passed { "PASS" } else { "FAIL" },
                r.name,
                r.elapsed_ms,
                r.seed
            ),
            Err(e) => say!("ERR  {:<44} {e}", plan.name),
        })
        .await;
        let mut ok = Vec::new();
        for (plan, r) in plans.iter().zip(results) {
            match r {
                Ok(r) => ok.push(r),
                Err(e) => errors.push((plan.path.display().to_string(), e.to_string())),
            }
        }
        ok
    };
    let failed: Vec<&RunReport> = reports.iter().filter(|r| !r.passed).collect();
    for r in &failed {
        print_failure(r);
    }
    write_reports(&args, &reports, &errors)?;
    let passed = reports.len() - failed.len();
    say!(
        "\n{passed} passed, {} failed, {} invalid or not run, in {} ms",
        failed.len(),
        errors.len(),
        started.elapsed().as_millis()
    );
    Ok(if failed.is_empty() && errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runs one scenario with its transcript printed as it happens, then its table.
async fn run_live(plan: &Plan, seed: u64) -> anyhow::Result<RunReport> {
    say!("{} (seed {seed}): {}\n", plan.name, plan.description);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let printer = tokio::spawn(async move {
        while let Some(entry) = rx.recv().await {
            let entry: scenarios::TranscriptEntry = entry;
            say!(
                "{:>9.1} ms  {}",
                entry.at.as_secs_f64() * 1000.0,
                describe_entry(&entry)
            );
        }
    });
    let report = scenarios::run_seeded(plan, seed, Some(tx)).await?;
    let _ = printer.await;
    if !report.cos_journal.is_empty() {
        say!("\nCOS requests:");
        for j in &report.cos_journal {
            say!("  #{:<3} {}", j.seq, scenarios::describe_cos(j));
        }
    }
    say!();
    say_raw!("{}", table::devices(&report.devices));
    say!(
        "\n{} {} ({} ms, seed {})",
        if report.passed { "PASS" } else { "FAIL" },
        report.name,
        report.elapsed_ms,
        report.seed
    );
    Ok(report)
}

fn print_failure(r: &RunReport) {
    say!("\nFAIL {} ({})", r.name, r.path);
    for f in &r.failures {
        say!("  - {f}");
    }
    for a in &r.adjustments {
        say!("  ({a})");
    }
    if !r.context.is_empty() {
        say!("  around the first divergence:");
        for line in &r.context {
            say!("    {line}");
        }
    }
    say!("  replay: otasim replay {} {}", r.seed, r.path);
}

fn write_reports(
    args: &RunArgs,
    reports: &[RunReport],
    errors: &[(String, String)],
) -> anyhow::Result<()> {
    if let Some(path) = &args.junit {
        std::fs::write(path, scenarios::junit_xml(reports, errors))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.json {
        let passed = reports.iter().filter(|r| r.passed).count();
        let doc = JsonReport {
            seed: args.seed,
            jobs: args.jobs,
            passed,
            failed: reports.len() - passed + errors.len(),
            scenarios: reports,
            errors,
        };
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(dir) = &args.html {
        write_html(dir, reports)?;
    }
    Ok(())
}

fn write_html(dir: &std::path::Path, reports: &[RunReport]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut entries = Vec::new();
    for r in reports {
        let page = scenarios::page_name(&r.name);
        let path = dir.join(&page);
        std::fs::write(&path, scenarios::html_timeline(r))
            .with_context(|| format!("writing {}", path.display()))?;
        entries.push(scenarios::IndexEntry {
            name: r.name.clone(),
            verdict: if r.passed { "passed" } else { "failed" }.into(),
            reason: r
                .failures
                .first()
                .map(|f| f.to_string())
                .unwrap_or_default(),
            link: Some(page),
        });
    }
    let passed = reports.iter().filter(|r| r.passed).count();
    let summary = format!("{passed} passed, {} failed", reports.len() - passed);
    let index = dir.join("index.html");
    std::fs::write(
        &index,
        scenarios::html_index("otasim run", &summary, &entries),
    )
    .with_context(|| format!("writing {}", index.display()))?;
    Ok(())
}

pub(super) async fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let (plans, errors) = load(&args.paths)?;
    for p in &plans {
        say!(
            "{:<44} {:>2} steps  {}",
            p.name,
            p.steps.len(),
            p.path.display()
        );
        if !p.description.is_empty() {
            say!("    {}", p.description);
        }
    }
    for (_, e) in &errors {
        say!("invalid: {e}");
    }
    Ok(if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub(super) async fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let (plans, errors) = load(&args.paths)?;
    for p in &plans {
        say!("ok       {}", p.path.display());
    }
    for (_, e) in &errors {
        say!("invalid  {e}");
    }
    say!("\n{} valid, {} invalid", plans.len(), errors.len());
    Ok(if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub(super) async fn replay(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let plan = Plan::load(&args.path)?;
    let report = run_live(&plan, args.seed).await?;
    if !report.passed {
        print_failure(&report);
    }
    if let Some(dir) = &args.html {
        write_html(dir, std::slice::from_ref(&report))?;
    }
    Ok(if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub(super) async fn import(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let text =
        std::fs::read(&args.log).with_context(|| format!("reading {}", args.log.display()))?;
    let name = args.log.file_stem().map_or_else(
        || "imported".to_owned(),
        |s| s.to_string_lossy().into_owned(),
    );
    let imported = scenarios::import_log(&name, &String::from_utf8_lossy(&text))
        .with_context(|| format!("importing {}", args.log.display()))?;
    match &args.output {
        Some(path) => {
            std::fs::write(path, &imported.toml)
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {} ({})", path.display(), imported.summary);
        }
        None => say_raw!("{}", imported.toml),
    }
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `otasim qualify`.
#[derive(Debug, Args)]
pub struct QualifyArgs {
    /// Scenario files or folders (default: the catalog, `scenarios/catalog`).
    #[arg(long = "scenarios", value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// The gateway's profile: its known and accepted behaviours (TOML).
    #[arg(long, value_name = "FILE")]
    profile: Option<PathBuf>,
    /// Listen on MQTT 1883 and COS 80 with port-less URLs, one scenario at a time, for gateways
    /// that cannot be told a port.
    #[arg(long)]
    fixed_ports: bool,
    /// Where to write index.html, one page per scenario, junit.xml and report.json.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Scenarios run at once (1 with --fixed-ports).
    #[arg(long, default_value_t = 4)]
    jobs: usize,
    /// The gateway command and its arguments, after `--`, with placeholders (`{device_info}`,
    /// `{hub_host}`, `{hub_port}`, `{state_dir}`, `{sub.device_name}`, ...); our built-in
    /// gateway if none.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

/// `otasim qualify`: the catalog against one gateway, one report.
pub(super) async fn qualify(args: QualifyArgs) -> anyhow::Result<ExitCode> {
    use scenarios::{GatewayProfile, GatewayUnderTest, Qualification, Verdict};
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from("scenarios/catalog")]
    } else {
        args.paths.clone()
    };
    let (plans, errors) = load(&paths)?;
    if let Some((_, e)) = errors.first() {
        anyhow::bail!("invalid scenario: {e}");
    }
    let profile = match &args.profile {
        Some(p) => GatewayProfile::load(p)?,
        None => GatewayProfile::default(),
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {} (the --out folder)", args.out.display()))?;
    let gateway = match args.command.split_first() {
        None => GatewayUnderTest::Builtin,
        Some((program, rest)) => GatewayUnderTest::Command {
            program: program.clone(),
            args: rest.to_vec(),
        },
    };
    let q = Qualification {
        gateway,
        profile: profile.clone(),
        ports: if args.fixed_ports {
            scenarios::Ports::SDK
        } else {
            scenarios::Ports::Loopback
        },
        jobs: args.jobs,
    };
    say!(
        "qualifying {} against {} scenarios",
        profile.name,
        plans.len()
    );
    let results = q
        .run(&plans, |r| {
            let verdict = match r.verdict {
                Verdict::Passed => "PASS",
                Verdict::Failed => "FAIL",
                Verdict::Skipped => "SKIP",
                Verdict::Error => "ERR ",
            };
            say!("{verdict} {:<44} {}", r.name, r.reason);
        })
        .await;
    write_qualification(&args.out, &profile.name, &results)?;
    let count = |v: Verdict| results.iter().filter(|r| r.verdict == v).count();
    let (passed, failed, skipped, errors) = (
        count(Verdict::Passed),
        count(Verdict::Failed),
        count(Verdict::Skipped),
        count(Verdict::Error),
    );
    say!(
        "\n{passed} passed, {failed} failed, {skipped} skipped, {errors} errors; report: {}",
        args.out.join("index.html").display()
    );
    Ok(if failed + errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn write_qualification(
    dir: &std::path::Path,
    gateway: &str,
    results: &[scenarios::Qualified],
) -> anyhow::Result<()> {
    let mut entries = Vec::new();
    for q in results {
        let link = match &q.report {
            Some(r) => {
                let page = scenarios::page_name(&r.name);
                let path = dir.join(&page);
                std::fs::write(&path, scenarios::html_timeline(r))
                    .with_context(|| format!("writing {}", path.display()))?;
                Some(page)
            }
            None => None,
        };
        entries.push(scenarios::IndexEntry {
            name: q.name.clone(),
            verdict: serde_json::to_value(q.verdict)?
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            reason: q.reason.clone(),
            link,
        });
    }
    let count = |v: &str| entries.iter().filter(|e| e.verdict == v).count();
    let summary = format!(
        "{} passed, {} failed, {} skipped, {} errors",
        count("passed"),
        count("failed"),
        count("skipped"),
        count("error")
    );
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    };
    write(
        "index.html",
        scenarios::html_index(&format!("otasim qualify: {gateway}"), &summary, &entries),
    )?;
    write(
        "junit.xml",
        scenarios::junit_qualification(gateway, results),
    )?;
    let json = serde_json::json!({ "gateway": gateway, "summary": summary, "scenarios": results });
    write("report.json", serde_json::to_string_pretty(&json)?)?;
    Ok(())
}
