//! `otasim demo`: the seed scenario, run with a live timeline and a final table.

use super::table;
use anyhow::Context as _;
use clap::Args;
use scenarios::{Plan, describe_entry};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Arguments of `otasim demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Print the result as JSON (devices, failures, transcript, COS journal) instead of a timeline.
    #[arg(long)]
    json: bool,
    /// Keep the demo's world running afterwards and serve the web console and control API on
    /// this loopback port (8080 if PORT is left out; 0 picks a free one), until Ctrl-C.
    #[arg(long, value_name = "PORT", num_args = 0..=1, default_missing_value = "8080")]
    serve: Option<u16>,
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
                say!(
                    "{:>9.1} ms  {}",
                    entry.at.as_secs_f64() * 1000.0,
                    describe_entry(&entry)
                );
            }
        })
    });
    if !args.json {
        say!("otasim demo: {}\n", plan.description);
    }
    let (report, world) =
        scenarios::run_keeping_world(&plan, plan.seed, (!args.json).then_some(tx)).await?;
    if let Some(p) = printer {
        // The sender went away with the world; the printer drains what is left and ends.
        let _ = p.await;
    }
    if args.json {
        say!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        say!();
        say_raw!("{}", table::devices(&report.devices));
        if report.passed {
            say!("\nexpected outcome held ({} ms)", report.elapsed_ms);
        } else {
            say!("\nexpected outcome did NOT hold:");
            for f in &report.failures {
                say!("  - {f}");
            }
        }
    }
    match args.serve {
        Some(port) => serve(world, port).await?,
        None => world.shutdown().await,
    }
    Ok(if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Serves the finished demo's hub through the control API and the web console until Ctrl-C.
async fn serve(world: scenarios::World, port: u16) -> anyhow::Result<()> {
    let stop = super::signal::stop_signal()?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| {
            format!(
                "binding the console on 127.0.0.1:{port} (pass another PORT, or 0 for a free one)"
            )
        })?;
    let api = fake_hub::api::serve_with(listener, Arc::clone(&world.hub), crate::console::router())
        .context("starting the control API")?;
    say!("\nlistening api={}", api.local_addr());
    say!("console: http://{}/  (Ctrl-C to stop)", api.local_addr());
    stop.await;
    api.shutdown().await;
    world.shutdown().await;
    Ok(())
}
