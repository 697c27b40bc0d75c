//! `otasim demo`: the seed scenario, run with a live timeline and a final table.

use super::table;
use anyhow::Context as _;
use clap::Args;
use scenarios::{Plan, describe_entry};
use std::path::Path;
use std::process::ExitCode;
use tokio::sync::mpsc;

/// Arguments of `otasim demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Print the result as JSON (devices, failures, transcript, COS journal) instead of a timeline.
    #[arg(long)]
    json: bool,
}

pub(super) async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let plan = Plan::parse(
        Path::new("scenarios/catalog/seed-demo.toml"),
        scenarios::SEED_DEMO,
    )
    .context("the built-in seed demo scenario")?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let printer = (!args.json).then(|| {
        tokio::spawn(async move {
            while let Some(entry) = rx.recv().await {
                let entry: scenarios::TranscriptEntry = entry;
                println!(
                    "{:>9.1} ms  {}",
                    entry.at.as_secs_f64() * 1000.0,
                    describe_entry(&entry)
                );
            }
        })
    });
    if !args.json {
        println!("otasim demo: {}\n", plan.description);
    }
    let report = scenarios::run(&plan, (!args.json).then_some(tx)).await?;
    if let Some(p) = printer {
        // The sender went away with the world; the printer drains what is left and ends.
        let _ = p.await;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!();
        print!("{}", table::devices(&report.devices));
        if report.passed {
            println!("\nexpected outcome held ({} ms)", report.elapsed_ms);
        } else {
            println!("\nexpected outcome did NOT hold:");
            for f in &report.failures {
                println!("  - {f}");
            }
        }
    }
    Ok(if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
