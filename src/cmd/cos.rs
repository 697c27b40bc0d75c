//! `otasim cos`: a folder of firmware files served by fake COS, with its control API, printing
//! each request as it happens until Ctrl-C.

use anyhow::Context;
use clap::Args;
use fake_cos::{Cos, CosConfig, JournalEntry, TlsIdentity};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::broadcast::{self, error::RecvError};

/// Arguments of `otasim cos`.
#[derive(Debug, Args)]
pub struct CosArgs {
    /// Folder whose regular files are served, each as an object named after the file.
    #[arg(long, value_name = "FOLDER")]
    dir: PathBuf,
    /// Address both listeners bind.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Firmware port (0: any free port). Real SDKs ignore URL ports: use 80, or 443 with --tls.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Control API port (0: any free port).
    #[arg(long, default_value_t = 0)]
    admin_port: u16,
    /// Host written into signed URLs instead of the listener's address, e.g. `127.0.0.1`.
    #[arg(long)]
    public_host: Option<String>,
    /// Serve HTTPS with a certificate made now, signed by a throwaway CA.
    #[arg(long)]
    tls: bool,
    /// With --tls, write the CA certificate (PEM) here instead of printing it.
    #[arg(long, value_name = "FILE", requires = "tls")]
    ca_out: Option<PathBuf>,
    /// How long the printed signed URLs stay valid, in seconds (default 30 days).
    #[arg(long, default_value_t = 30 * 24 * 3600)]
    url_valid_secs: u64,
    /// Do not print requests (the control API's journal still has them).
    #[arg(long)]
    quiet: bool,
}

pub(super) async fn run(args: CosArgs) -> anyhow::Result<ExitCode> {
    let stop = super::signal::stop_signal()?;
    let identity = if args.tls {
        let hosts: Vec<String> = [Some(args.host.clone()), args.public_host.clone()]
            .into_iter()
            .flatten()
            .collect();
        Some(TlsIdentity::generate(&hosts)?)
    } else {
        None
    };
    let listener = bind(&args.host, args.port, "firmware").await?;
    let admin_listener = bind(&args.host, args.admin_port, "control API").await?;
    let config = CosConfig {
        public_host: args.public_host.clone(),
        tls: identity.clone(),
        ..CosConfig::default()
    };
    let cos = fake_cos::start(listener, config).await?;
    let admin = cos.serve_admin(admin_listener).await?;
    let scheme = if args.tls { "https" } else { "http" };
    // Subscribed before any URL is printed, so no request made with one can be missed.
    let live = (!args.quiet).then(|| cos.subscribe_journal());
    // Everything that can fail comes before the `listening` line, which scripts wait for.
    let objects = load(&cos, &args)?;
    if let (Some(identity), Some(path)) = (&identity, &args.ca_out) {
        std::fs::write(path, identity.ca_pem())
            .with_context(|| format!("writing the CA certificate to {}", path.display()))?;
    }
    say!(
        "listening cos={} admin={}",
        cos.local_addr(),
        admin.local_addr()
    );
    say!("cos: {scheme}://{}", cos.local_addr());
    say!("admin: {}", admin.url());
    if let Some(identity) = &identity {
        match &args.ca_out {
            Some(path) => say!("ca: {}", path.display()),
            None => say_raw!("ca:\n{}", identity.ca_pem()),
        }
    }
    for line in objects {
        say!("{line}");
    }
    match live {
        Some(live) => print_requests(live, stop).await,
        None => stop.await,
    }
    admin.shutdown().await;
    cos.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// Prints each journal update until `stop` resolves.
async fn print_requests(
    mut live: broadcast::Receiver<JournalEntry>,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        // Cancel-safe: `recv` loses nothing when the stop branch wins, and we exit anyway.
        tokio::select! {
            () = &mut stop => break,
            entry = live.recv() => match entry {
                Ok(entry) => say!("{entry}"),
                Err(RecvError::Lagged(n)) => say!("({n} journal updates skipped)"),
                Err(RecvError::Closed) => break,
            },
        }
    }
}

async fn bind(host: &str, port: u16, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind((host, port))
        .await
        .with_context(|| format!("binding the {what} listener on {host}:{port}"))
}

/// Stores the folder's files; answers one line per object with its signed URL.
fn load(cos: &Cos, args: &CosArgs) -> anyhow::Result<Vec<String>> {
    let load = cos.put_dir(&args.dir).with_context(|| {
        format!(
            "serving {}: pass --dir with a folder of firmware files (examples/firmware is one)",
            args.dir.display()
        )
    })?;
    for (path, reason) in &load.skipped {
        eprintln!("warning: skipping {}: {reason}", path.display());
    }
    if load.loaded.is_empty() {
        eprintln!("warning: no objects in {}", args.dir.display());
    }
    let valid_for = Duration::from_secs(args.url_valid_secs);
    let mut lines = Vec::new();
    for info in &load.loaded {
        let url = cos.signed_url(&info.name, valid_for)?;
        lines.push(format!(
            "object {} size={} md5={} url={url}",
            info.name, info.size, info.md5_hex
        ));
    }
    Ok(lines)
}
