//! `otasim bench gateway`: one large image downloaded, hashed and burned (simulated) by the
//! gateway's downloader from fake-cos, against `curl -o FILE URL && md5sum FILE` on the same
//! URL, in alternating rounds of one run, and `openssl md5 FILE` alone on the same bytes (the
//! hash's own speed, which bounds both). Both write to the same file system; fake-cos runs in
//! this process for both.

use anyhow::{Context as _, ensure};
use fake_cos::{Cos, CosConfig};
use gateway::download::{CheckpointPolicy, DownloadConfig, DownloadOutcome, Downloader, ImageSpec};
use gateway::{BurnRequest, Burner as _, CancellationToken, SimulatedBurner};
use otasim_protocol::DeviceId;
use std::num::{NonZeroU64, NonZeroUsize};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// Arguments of `otasim bench gateway`.
#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Image size in MiB.
    #[arg(long, default_value_t = 256)]
    size_mib: u64,
    /// Measured rounds per side (order alternates between rounds).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Directory for the downloaded files (default: the system temp dir).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    /// Checkpoint every this many MiB (default: the gateway's default policy).
    #[arg(long)]
    checkpoint_mib: Option<u64>,
    /// Bytes gathered per write, in KiB (default: the gateway's default).
    #[arg(long)]
    buffer_kib: Option<usize>,
}

const OBJECT: &str = "bench_fw.bin";

pub(super) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    ensure!(
        args.size_mib > 0 && args.rounds > 0,
        "size and rounds must be positive"
    );
    if which("curl").is_none() || which("md5sum").is_none() {
        eprintln!(
            "otasim bench gateway: curl and md5sum are the reference (Debian: apt-get install -y curl coreutils)"
        );
        return Ok(ExitCode::FAILURE);
    }
    let size = args.size_mib << 20;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let cos = fake_cos::start(listener, CosConfig::default()).await?;
    let info = cos.put_object(OBJECT, image_bytes(size))?;
    let md5 = parse_md5(&info.md5_hex).context("fake-cos gave a malformed md5")?;
    let scratch = match &args.dir {
        Some(dir) => tempfile::tempdir_in(dir)?,
        None => tempfile::tempdir()?,
    };
    let result = rounds(&args, &cos, scratch.path(), size, md5).await;
    cos.shutdown().await;
    let (ours, curl, openssl) = result?;
    report(&args, &ours, &curl, &openssl);
    Ok(ExitCode::SUCCESS)
}

async fn rounds(
    args: &Args,
    cos: &Cos,
    dir: &Path,
    size: u64,
    md5: [u8; 16],
) -> anyhow::Result<(Vec<f64>, Vec<f64>, Vec<f64>)> {
    let (mut ours, mut curl, mut openssl) = (Vec::new(), Vec::new(), Vec::new());
    let has_openssl = which("openssl").is_some();
    for round in 0..args.rounds {
        let url = cos.signed_url(OBJECT, Duration::from_secs(3600))?;
        let work = dir.join(format!("round{round}"));
        std::fs::create_dir_all(&work)?;
        if round % 2 == 0 {
            ours.push(mib_per_s(
                size,
                gateway_once(args, &work, &url, size, md5).await?,
            ));
            curl.push(mib_per_s(size, curl_once(&work, &url, md5).await?));
        } else {
            curl.push(mib_per_s(size, curl_once(&work, &url, md5).await?));
            ours.push(mib_per_s(
                size,
                gateway_once(args, &work, &url, size, md5).await?,
            ));
        }
        if has_openssl {
            let hashed = openssl_md5_once(&work.join("curl.bin"), md5).await?;
            openssl.push(mib_per_s(size, hashed));
        }
        std::fs::remove_dir_all(&work)?;
        eprintln!(
            "round {}: gateway {:.0} MiB/s, curl+md5sum {:.0} MiB/s, openssl md5 {}",
            round + 1,
            ours[round],
            curl[round],
            openssl
                .get(round)
                .map_or("-".to_owned(), |r| format!("{r:.0} MiB/s"))
        );
    }
    Ok((ours, curl, openssl))
}

/// `openssl md5 FILE` on bytes already in the page cache: the hash alone.
async fn openssl_md5_once(file: &Path, md5: [u8; 16]) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let out = tokio::process::Command::new("openssl")
        .arg("md5")
        .arg(file)
        .output()
        .await
        .context("running openssl md5")?;
    let elapsed = start.elapsed();
    ensure!(out.status.success(), "openssl md5 failed");
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        text.trim_end().ends_with(&hex_of(&md5)),
        "openssl md5 disagrees: {text}"
    );
    Ok(elapsed)
}

/// Download, verify and burn with the simulated burner; returns the elapsed time.
async fn gateway_once(
    args: &Args,
    dir: &Path,
    url: &str,
    size: u64,
    md5: [u8; 16],
) -> anyhow::Result<Duration> {
    let mut config = DownloadConfig::default();
    if let Some(every) = args.checkpoint_mib.and_then(|m| NonZeroU64::new(m << 20)) {
        config.checkpoint = CheckpointPolicy::EveryBytes(every);
    }
    if let Some(kib) = args.buffer_kib.and_then(|k| NonZeroUsize::new(k << 10)) {
        config.write_buffer_bytes = kib;
    }
    let start = Instant::now();
    let downloader = Downloader::new(dir.join("images"), config);
    let spec = ImageSpec {
        url: url.to_owned(),
        file_size: size,
        md5,
    };
    let outcome = downloader
        .fetch(&spec, |_| {}, &CancellationToken::new())
        .await?;
    let DownloadOutcome::Verified(done) = outcome else {
        anyhow::bail!("download cancelled");
    };
    let downloaded = start.elapsed();
    let burner = SimulatedBurner::new(dir.join("flash"));
    let device = DeviceId::new("BENCHPROD1", "dev1")?;
    burner
        .burn(BurnRequest {
            device: &device,
            image: &done.path,
            version: "2.0",
            progress: &|_| {},
            cancel: &CancellationToken::new(),
        })
        .await?;
    let total = start.elapsed();
    eprintln!(
        "  gateway: download+md5 {downloaded:.2?}, burn {:.2?}",
        total - downloaded
    );
    Ok(total)
}

/// `curl -o FILE URL && md5sum FILE`; checks the digest; returns the elapsed time.
async fn curl_once(dir: &Path, url: &str, md5: [u8; 16]) -> anyhow::Result<Duration> {
    let file = dir.join("curl.bin");
    let start = Instant::now();
    let status = tokio::process::Command::new("curl")
        .args(["-sS", "-o"])
        .arg(&file)
        .arg(url)
        .status()
        .await
        .context("running curl")?;
    ensure!(status.success(), "curl failed: {status}");
    let out = tokio::process::Command::new("md5sum")
        .arg(&file)
        .output()
        .await
        .context("running md5sum")?;
    let elapsed = start.elapsed();
    ensure!(out.status.success(), "md5sum failed");
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        text.starts_with(&hex_of(&md5)),
        "curl fetched another image: {text}"
    );
    Ok(elapsed)
}

fn report(args: &Args, ours: &[f64], curl: &[f64], openssl: &[f64]) {
    let (ob, om) = (best(ours), median(ours));
    let (cb, cm) = (best(curl), median(curl));
    println!(
        "otasim bench gateway: {} MiB image, {} rounds each, fake-cos on loopback",
        args.size_mib, args.rounds
    );
    println!("{:<34} {:>10} {:>10}", "", "best MiB/s", "median");
    println!("{:<34} {ob:>10.0} {om:>10.0}", "gateway download+md5+burn");
    println!("{:<34} {cb:>10.0} {cm:>10.0}", "curl -o && md5sum");
    if !openssl.is_empty() {
        let (sb, sm) = (best(openssl), median(openssl));
        println!("{:<34} {sb:>10.0} {sm:>10.0}", "openssl md5 (hash alone)");
        println!(
            "ratio gateway/openssl md5: best {:.2}, median {:.2}",
            ob / sb,
            om / sm
        );
    }
    println!(
        "ratio gateway/curl: best {:.2}, median {:.2} (goal >= 1.0)",
        ob / cb,
        om / cm
    );
}

fn mib_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / elapsed.as_secs_f64().max(1e-9)
}

fn best(v: &[f64]) -> f64 {
    v.iter().copied().fold(0.0, f64::max)
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(program))
            .find(|p| p.is_file())
    })
}

/// Deterministic incompressible-looking bytes, made fast (xorshift, 8 bytes a step).
fn image_bytes(len: u64) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::with_capacity(len as usize);
    while (out.len() as u64) < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len as usize);
    out
}

fn parse_md5(text: &str) -> Option<[u8; 16]> {
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
