//! `otasim bench cos`: one large object served to concurrent Range clients by fake-cos (an
//! `otasim cos` child process) and by nginx on the same file, in alternating rounds of one run;
//! then the same with a list of fault rules that never match, to price the rule scan.

mod http;
mod servers;

use anyhow::{Context, ensure};
use servers::{FakeCos, Nginx, Scratch};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

/// Arguments of `otasim bench cos`.
#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Object size in MiB.
    #[arg(long, default_value_t = 64)]
    size_mib: u64,
    /// Concurrent clients, each fetching the whole object over one keep-alive connection.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Size of each Range request in KiB.
    #[arg(long, default_value_t = 1024)]
    range_kib: u64,
    /// Measured rounds per server (each round runs every server once, order alternating).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Times each client fetches the whole object per measurement.
    #[arg(long, default_value_t = 4)]
    passes: u64,
    /// Let nginx use sendfile (its production setting); `--nginx-sendfile false` makes it copy
    /// from user memory as fake-cos must.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    nginx_sendfile: bool,
    /// Rules (that never match) installed for the rule-cost measurement.
    #[arg(long, default_value_t = 100)]
    rules: usize,
}

const OBJECT: &str = "fw.bin";

/// One server as the load sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    FakeCos,
    Nginx,
    FakeCosRules,
}

pub(super) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Some(nginx_bin) = servers::find_nginx() else {
        eprintln!(
            "otasim bench cos: nginx is not installed; it is the reference this benchmark \
             compares against (Debian: apt-get install -y nginx)"
        );
        return Ok(ExitCode::FAILURE);
    };
    ensure!(args.size_mib > 0 && args.clients > 0 && args.range_kib > 0 && args.rounds > 0);
    let scratch = Scratch::new()?;
    let www = scratch.path.join("www");
    let data = Arc::new(object_bytes(args.size_mib << 20));
    std::fs::write(www.join(OBJECT), data.as_slice()).context("writing the object")?;
    let cos = FakeCos::start(&www, OBJECT).await?;
    let nginx = match Nginx::start(&nginx_bin, &scratch.path, args.nginx_sendfile).await {
        Ok(n) => n,
        Err(e) => {
            cos.stop().await;
            return Err(e);
        }
    };
    let load_before = load_average();
    let result = measure(&args, &cos, &nginx, &data).await;
    let load_after = load_average();
    let rss = (cos.peak_rss_kib(), nginx.peak_rss_kib());
    cos.stop().await;
    nginx.stop().await;
    let rounds = result?;
    print_report(&args, &rounds, rss.0?, rss.1?);
    say!(
        "load average (1 min) before {load_before}, after {load_after}: other work on the machine moves MiB/s more than CPU per GiB"
    );
    Ok(ExitCode::SUCCESS)
}

/// The 1-minute load average, as text (`?` where unreadable).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// One measurement of one server.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    /// Body MiB received per second of wall time.
    mib_s: f64,
    /// The server's CPU time (all its threads and processes) per GiB served, in seconds.
    server_s_gib: f64,
    /// This process's (the clients', not the servers' it started) CPU time per GiB received, in
    /// seconds.
    client_s_gib: f64,
}

/// One round: fake-cos, nginx, fake-cos with rules.
type Round = [Sample; 3];

async fn measure(
    args: &Args,
    cos: &FakeCos,
    nginx: &Nginx,
    data: &Arc<Vec<u8>>,
) -> anyhow::Result<Vec<Round>> {
    let nginx_target = format!("/{OBJECT}");
    let range = args.range_kib << 10;
    // Warm-up, with every byte checked: both servers must serve the same object.
    load(cos.addr, &cos.target, range, 1, 1, Some(data)).await?;
    load(nginx.addr, &nginx_target, range, 1, 1, Some(data)).await?;
    let own = std::process::id();
    let mut rounds = Vec::new();
    for round in 0..args.rounds {
        let mut order = [Target::FakeCos, Target::Nginx, Target::FakeCosRules];
        if round % 2 == 1 {
            order.reverse();
        }
        let mut row = Round::default();
        for target in order {
            let (addr, path, slot) = match target {
                Target::FakeCos => (cos.addr, cos.target.as_str(), 0),
                Target::Nginx => (nginx.addr, nginx_target.as_str(), 1),
                Target::FakeCosRules => (cos.addr, cos.target.as_str(), 2),
            };
            if target == Target::FakeCosRules {
                install_rules(cos.admin, args.rules).await?;
            }
            let server_cpu = || match target {
                Target::Nginx => nginx.cpu_ns(),
                Target::FakeCos | Target::FakeCosRules => cos.cpu_ns(),
            };
            let (server_before, client_before) = (server_cpu()?, servers::cpu_ns(own, false)?);
            let started = Instant::now();
            let bytes = load(addr, path, range, args.clients, args.passes, None).await?;
            let secs = started.elapsed().as_secs_f64();
            let (server_after, client_after) = (server_cpu()?, servers::cpu_ns(own, false)?);
            let gib = bytes as f64 / (1u64 << 30) as f64;
            let per_gib = |before: u64, after: u64| after.saturating_sub(before) as f64 / 1e9 / gib;
            row[slot] = Sample {
                mib_s: bytes as f64 / (1 << 20) as f64 / secs,
                server_s_gib: per_gib(server_before, server_after),
                client_s_gib: per_gib(client_before, client_after),
            };
            if target == Target::FakeCosRules {
                let (status, body) = http::call(cos.admin, "DELETE", "/rules", "").await?;
                ensure!(status == 204, "clearing rules: {status} {body}");
            }
        }
        rounds.push(row);
    }
    Ok(rounds)
}

async fn install_rules(admin: SocketAddr, count: usize) -> anyhow::Result<()> {
    for i in 0..count {
        let rule = format!(
            r#"{{"when":{{"object":"never-{i}.bin"}},"verdict":{{"kind":"status","code":500}},"fires":"always"}}"#
        );
        let (status, body) = http::call(admin, "POST", "/rules", &rule).await?;
        ensure!(status == 201, "adding rule {i}: {status} {body}");
    }
    Ok(())
}

/// `clients` connections each fetch the whole object `passes` times in `range`-byte requests
/// (starting at different offsets); returns the body bytes received. With `check`, compares
/// every byte.
async fn load(
    addr: SocketAddr,
    target: &str,
    range: u64,
    clients: usize,
    passes: u64,
    check: Option<&Arc<Vec<u8>>>,
) -> anyhow::Result<u64> {
    let size = check.map_or(0, |d| d.len() as u64);
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..clients {
        let (target, check) = (target.to_owned(), check.cloned());
        let spread = Spread { client, clients };
        tasks.spawn(async move { fetch_all(addr, &target, range, spread, passes, check).await });
    }
    let mut total = 0;
    while let Some(done) = tasks.join_next().await {
        total += done.context("client task")??;
    }
    ensure!(check.is_none() || total == size * clients as u64 * passes);
    Ok(total)
}

/// Which client of how many: clients start at evenly spread offsets.
#[derive(Debug, Clone, Copy)]
struct Spread {
    client: usize,
    clients: usize,
}

async fn fetch_all(
    addr: SocketAddr,
    target: &str,
    range: u64,
    spread: Spread,
    passes: u64,
    check: Option<Arc<Vec<u8>>>,
) -> anyhow::Result<u64> {
    let size = object_size(addr, target).await?;
    let pieces = size.div_ceil(range);
    let first = pieces * spread.client as u64 / spread.clients as u64;
    let mut conn = http::Client::connect(addr).await?;
    let mut body = Vec::with_capacity(usize::try_from(range)?);
    for i in 0..pieces * passes {
        let start = ((first + i) % pieces) * range;
        let end = (start + range).min(size);
        conn.get_range(target, start, end, &mut body).await?;
        if let Some(data) = &check {
            let expected = &data[usize::try_from(start)?..usize::try_from(end)?];
            ensure!(body == expected, "{addr} served wrong bytes at {start}");
        }
    }
    Ok(size * passes)
}

/// The object size, from a one-byte request's `Content-Range`.
async fn object_size(addr: SocketAddr, target: &str) -> anyhow::Result<u64> {
    let mut conn = http::Client::connect(addr).await?;
    conn.size_of(target).await
}

/// Deterministic, incompressible bytes.
fn object_bytes(len: u64) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}

fn print_report(args: &Args, rounds: &[Round], cos_rss: u64, nginx_rss: u64) {
    say!(
        "otasim bench cos: {} MiB object, {} clients x {} passes, {} KiB ranges, {} rounds \
         (order alternating)",
        args.size_mib,
        args.clients,
        args.passes,
        args.range_kib,
        args.rounds
    );
    say!(
        "nginx sendfile {}",
        if args.nginx_sendfile { "on" } else { "off" }
    );
    say!(
        "{:>5}  {:>14}  {:>14}  {:>22}",
        "round",
        "fake-cos MiB/s",
        "nginx MiB/s",
        format!("fake-cos+{} rules", args.rules)
    );
    for (i, r) in rounds.iter().enumerate() {
        say!(
            "{:>5}  {:>14.1}  {:>14.1}  {:>22.1}",
            i + 1,
            r[0].mib_s,
            r[1].mib_s,
            r[2].mib_s
        );
    }
    let column =
        |k: usize, of: fn(&Sample) -> f64| median(rounds.iter().map(|r| of(&r[k])).collect());
    let mib_s = |s: &Sample| s.mib_s;
    let (cos, nginx, ruled) = (column(0, mib_s), column(1, mib_s), column(2, mib_s));
    say!("{:>5}  {cos:>14.1}  {nginx:>14.1}  {ruled:>22.1}", "median");
    say!(
        "throughput ratio fake-cos/nginx: {:.3} (goal >= 0.9)",
        cos / nginx
    );
    say!(
        "cost of {} never-matching rules: {:.1}% (goal < 5%)",
        args.rules,
        (1.0 - ruled / cos) * 100.0
    );
    // CPU time per byte does not depend on what else the machine runs, as throughput does.
    let server = |s: &Sample| s.server_s_gib * 1e3;
    let client = |s: &Sample| s.client_s_gib * 1e3;
    let (cos_cpu, nginx_cpu, ruled_cpu) = (column(0, server), column(1, server), column(2, server));
    say!(
        "server CPU ms per GiB (median): fake-cos {cos_cpu:.0}, nginx {nginx_cpu:.0}, \
         fake-cos+{} rules {ruled_cpu:.0}; ratio fake-cos/nginx {:.3}",
        args.rules,
        cos_cpu / nginx_cpu
    );
    say!(
        "client CPU ms per GiB (median): against fake-cos {:.0}, against nginx {:.0}",
        column(0, client),
        column(1, client)
    );
    say!(
        "peak RSS (VmHWM): fake-cos {:.1} MiB, nginx {:.1} MiB (master + workers); \
         ratio {:.2} (goal <= 2)",
        cos_rss as f64 / 1024.0,
        nginx_rss as f64 / 1024.0,
        cos_rss as f64 / nginx_rss.max(1) as f64
    );
}
