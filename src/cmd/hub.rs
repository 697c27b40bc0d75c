//! `otasim hub`: fake hub, fake COS and the control API as a server, for gateways we did not
//! write (the official SDKs, a customer's firmware).
//!
//! The first line printed is `listening mqtt=IP:PORT cos=IP:PORT api=IP:PORT` (and
//! `tls=IP:PORT` unless `--tls-port off`), then `cloud=IP:PORT` (the Tencent Cloud API 3.0 endpoint)
//! and `cos_tls=IP:PORT` with `--cos-tls-port` (HTTPS COS under the TLS port's CA),
//! so that scripts can pass port 0 and read the bound ports
//! back. Then one line per transcript entry, as it happens. Firmware URLs carry no port when COS listens on 80 (the C SDK ignores URL ports).
//!
//! The fleet file (`--fleet`, TOML; `otasim hub --example-fleet` prints this example):
//!
//! ```toml
#![doc = include_str!("../../examples/fleet.toml")]
//! ```
//!
//! Every table rejects unknown keys; `gateway` in a subdevice binds it (`PID/name`, unless
//! `bound = false`); `version` is what the Hub believes it runs until it reports; `burner` is
//! for `otasim gateway --subdevices` and ignored here; `file` in a firmware is relative to the
//! fleet file. The tables and keys are those of scenario files (see [`fleet`]).

use anyhow::Context as _;
use clap::Args;
use fake_cos::{Cos, CosConfig};
use fake_hub::{Hub, HubConfig, TranscriptEntry};
use scenarios::HubCos;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::broadcast;

mod banner;
mod cluster;
mod fleet;
use banner::print_banner;
use fleet::{FirmwareSource, Fleet, load_fleet};

/// A firmware image read from its file before anything listens: product, version, path, bytes.
type FirmwareImage = (String, String, PathBuf, Vec<u8>);

/// The default of `--max-connections` (the library's, which fits in a `u32`).
const DEFAULT_MAX_CONNECTIONS: u32 = fake_hub::DEFAULT_MAX_CONNECTIONS as u32;

const EXAMPLE_FLEET: &str = include_str!("../../examples/fleet.toml");

/// Arguments of `otasim hub`.
#[derive(Debug, Args)]
pub struct HubArgs {
    /// The address every listener binds (loopback unless you mean it).
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// MQTT port (0: any free port).
    #[arg(long, default_value_t = 1883)]
    mqtt_port: u16,
    /// Fake COS port (0: any free port). URLs carry no port only on 80.
    #[arg(long, default_value_t = 80)]
    cos_port: u16,
    /// Control API port (0: any free port).
    #[arg(long, default_value_t = 8080)]
    api_port: u16,
    /// Tencent Cloud API 3.0 (`iotcloud`) port, for the official SDKs (0: any free port).
    #[arg(long, default_value_t = 0)]
    cloud_port: u16,
    /// MQTT over TLS, as the Hub's 8883 (0: any free port; `off`: none): TLS-PSK for the C
    /// SDK's key auth, server-certificate TLS with a password, and mutual TLS with a device
    /// certificate. The CA is at `GET /api/tls/ca` (`?format=c` for the C SDK's array).
    #[arg(long, value_name = "PORT|off", default_value = "8883", value_parser = parse_tls_port)]
    tls_port: TlsPort,
    /// Write the TLS port's CA here as PEM, and as PATH.c the C array to paste as the C SDK's
    /// `iot_https_ca_crt` (not with `--tls-port off`).
    #[arg(long, value_name = "PATH")]
    ca_file: Option<PathBuf>,
    /// Also serve the fake COS over HTTPS on this port (the SDKs' HTTPS downloads use 443; 0:
    /// any free port), with a certificate from the TLS port's CA naming
    /// `*.cos.ap-guangzhou.myqcloud.com` (and ap-shanghai, ap-beijing, ap-singapore),
    /// `--public-host`, `localhost` and 127.0.0.1 (not with `--tls-port off`: that port's CA is
    /// the one devices trust).
    #[arg(long, value_name = "PORT")]
    cos_tls_port: Option<u16>,
    /// The scheme of firmware URLs: `https` points them at --cos-tls-port.
    #[arg(long, value_enum, default_value_t = UrlScheme::Http)]
    cos_url_scheme: UrlScheme,
    /// Warn (in the transcript) when a hub message would break a real C SDK device.
    #[arg(long)]
    strict: bool,
    /// Host written into firmware URLs instead of the COS listener's address.
    #[arg(long)]
    public_host: Option<String>,
    /// Fleet file: gateways, subdevices, secrets, bindings and firmware (TOML).
    #[arg(long)]
    fleet: Option<PathBuf>,
    /// Upload firmware at start: PRODUCT_ID:VERSION:FILE (repeatable).
    #[arg(long, value_name = "PRODUCT:VERSION:FILE")]
    firmware: Vec<String>,
    /// Write the transcript here as JSON lines, as it happens (the whole record, however
    /// long the hub runs).
    #[arg(long)]
    transcript: Option<PathBuf>,
    /// How much transcript the hub keeps in memory, in MiB (the oldest entries go first; the
    /// `--transcript` file keeps everything).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=4096))]
    transcript_max_mb: u16,
    /// Do not print transcript lines.
    #[arg(long)]
    quiet: bool,
    /// How many connections each MQTT listener and the fake COS hold at once; more are closed
    /// at accept. Raise it for fleets over 4,000 gateways (the open-file limit is raised to
    /// match where the system allows).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_CONNECTIONS,
          value_parser = clap::value_parser!(u32).range(1..=65_536))]
    max_connections: u32,
    /// A bearer token the control API requires (`Authorization: Bearer TOKEN`; the console
    /// takes it once as `/?token=TOKEN`). Without one on a non-loopback `--host`, a random
    /// token is made and printed.
    #[arg(long)]
    api_token: Option<String>,
    /// A host name that reaches this hub, besides its IP addresses and `localhost` (requests
    /// naming any other Host are refused, against DNS rebinding; repeatable).
    #[arg(long, value_name = "NAME")]
    api_host_name: Vec<String>,
    /// Print an example fleet file and exit.
    #[arg(long)]
    example_fleet: bool,
    #[command(flatten)]
    cluster: cluster::ClusterArgs,
}

/// The scheme firmware URLs are written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum UrlScheme {
    /// `http://`, to the plain COS port.
    Http,
    /// `https://`, to the HTTPS COS port.
    Https,
}

/// COS host names the HTTPS certificate names: the real Hub's firmware URLs are on
/// `{bucket}.cos.{region}.myqcloud.com`.
const COS_TLS_NAMES: &[&str] = &[
    "*.cos.ap-guangzhou.myqcloud.com",
    "*.cos.ap-shanghai.myqcloud.com",
    "*.cos.ap-beijing.myqcloud.com",
    "*.cos.ap-singapore.myqcloud.com",
];

/// The `--tls-port` value: a port (0 for any free one) or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TlsPort(Option<u16>);

fn parse_tls_port(text: &str) -> Result<TlsPort, String> {
    if text == "off" {
        return Ok(TlsPort(None));
    }
    text.parse::<u16>()
        .map(|p| TlsPort(Some(p)))
        .map_err(|_| format!("{text:?} is not a port (0 to 65535, 0 for any free one) or `off`"))
}

fn parse_firmware_flag(flag: &str) -> anyhow::Result<FirmwareSource> {
    let mut parts = flag.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(p), Some(v), Some(f)) if !p.is_empty() && !v.is_empty() && !f.is_empty() => {
            Ok((p.to_owned(), v.to_owned(), PathBuf::from(f)))
        }
        _ => anyhow::bail!("--firmware {flag:?}: expected PRODUCT_ID:VERSION:FILE"),
    }
}

/// Reads every firmware file, so that a missing one fails before anything listens.
fn read_firmware(sources: &[FirmwareSource]) -> anyhow::Result<Vec<FirmwareImage>> {
    sources
        .iter()
        .map(|(product, version, path)| {
            let bytes = std::fs::read(path).with_context(|| {
                format!(
                    "reading firmware {product}/{version} from {}: check the path (a fleet \
                     file's `file` is relative to the fleet file; `examples/README.md` shows \
                     how to make an image)",
                    path.display()
                )
            })?;
            Ok((product.clone(), version.clone(), path.clone(), bytes))
        })
        .collect()
}

/// Registers the fleet and uploads the firmware; returns one line per image to print.
fn register(hub: &Hub, fleet: &Fleet, images: Vec<FirmwareImage>) -> anyhow::Result<Vec<String>> {
    for (id, secret) in &fleet.gateways {
        hub.add_gateway(id, secret);
    }
    for (id, secret, gateway, version) in &fleet.subdevices {
        hub.add_subdevice(id, secret, gateway.as_ref(), version.as_deref());
    }
    for (product, name, access) in &fleet.topics {
        hub.add_product_topic(product, name, *access)
            .with_context(|| format!("declaring the topic {product}/${{deviceName}}/{name}"))?;
    }
    let mut lines = Vec::new();
    for (product, version, path, bytes) in images {
        let info = hub
            .upload_firmware(&product, &version, bytes)
            .with_context(|| {
                format!(
                    "uploading firmware {product}/{version} from {}",
                    path.display()
                )
            })?;
        lines.push(format!(
            "firmware {}/{}: {}, md5 {}",
            info.product_id,
            info.version,
            super::human_bytes(info.size_bytes),
            info.md5
        ));
    }
    Ok(lines)
}

async fn bind(host: IpAddr, port: u16, what: &str, flag: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(SocketAddr::new(host, port))
        .await
        .map_err(|e| {
            let hint = match e.kind() {
                std::io::ErrorKind::PermissionDenied if port < 1024 => format!(
                    ": ports below 1024 need root; pass {flag} 8081 (or 0 for a free one), or let \
                     otasim bind low ports with `sudo setcap cap_net_bind_service=+ep $(command -v otasim)`"
                ),
                std::io::ErrorKind::AddrInUse if flag == "--tls-port" => format!(
                    ": another program listens there (another otasim hub?); pass {flag} with a \
                     free port, 0 for any, or off for no TLS listener"
                ),
                std::io::ErrorKind::AddrInUse => {
                    format!(": another program listens there; pass {flag} with a free port, or 0")
                }
                _ => String::new(),
            };
            anyhow::Error::new(e).context(format!("binding the {what} port {host}:{port}{hint}"))
        })
}

/// Everything `otasim hub` runs.
struct Served {
    /// The host (and port, unless 80) firmware URLs carry.
    public_host: String,
    hub: Arc<Hub>,
    cos: Cos,
    api: fake_hub::api::ApiServer,
    /// The control API's token, if it needs one.
    token: Option<String>,
    cloud: fake_hub::api::cloud::CloudServer,
    /// The default SecretId/SecretKey pair, when the fleet declares none.
    default_key: bool,
    /// The HTTPS COS listener, with `--cos-tls-port`.
    cos_tls: Option<SocketAddr>,
}

/// The host names the TLS certificate names for a fleet: each product's MQTT host.
fn product_hosts(fleet: &Fleet) -> Vec<String> {
    let products = fleet
        .gateways
        .iter()
        .map(|(id, _)| id.product_id().to_owned())
        .chain(fleet.subdevices.iter().map(|s| s.0.product_id().to_owned()));
    let mut hosts: Vec<String> = products
        .map(|p| format!("{p}.iotcloud.tencentdevices.com"))
        .collect();
    hosts.sort();
    hosts.dedup();
    hosts
}

/// Writes the CA as PEM to `path` and as the C SDK's array to `path.c`.
fn write_ca(hub: &Hub, path: &std::path::Path) -> anyhow::Result<()> {
    let pem = hub
        .ca_pem()
        .context("--ca-file needs the TLS port: the hub has no CA with --tls-port off")?;
    std::fs::write(path, &pem).with_context(|| format!("writing the CA to {}", path.display()))?;
    let mut c_path = path.as_os_str().to_owned();
    c_path.push(".c");
    let c_path = PathBuf::from(c_path);
    std::fs::write(&c_path, fake_hub::ca_as_c_array(&pem))
        .with_context(|| format!("writing the CA array to {}", c_path.display()))
}

/// The token given, or a random one when the API listens beyond loopback.
fn api_token(args: &HubArgs) -> anyhow::Result<Option<String>> {
    if let Some(t) = &args.api_token {
        anyhow::ensure!(
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)),
            "--api-token: use letters, digits and -._~ only"
        );
        return Ok(Some(t.clone()));
    }
    if args.host.is_loopback() {
        return Ok(None);
    }
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).context("making a random API token")?;
    Ok(Some(bytes.iter().map(|b| format!("{b:02x}")).collect()))
}

async fn start(args: &HubArgs, fleet: &Fleet) -> anyhow::Result<Served> {
    let cos_listener = bind(args.host, args.cos_port, "COS", "--cos-port").await?;
    let cos_addr = cos_listener.local_addr()?;
    let public_host = args
        .public_host
        .clone()
        .or_else(|| (cos_addr.port() == 80).then(|| args.host.to_string()));
    let shown_host = public_host.clone().unwrap_or_else(|| cos_addr.to_string());
    let cos = fake_cos::start(
        cos_listener,
        CosConfig {
            public_host,
            // Every gateway the MQTT listener holds may download at once when a task reaches
            // the whole fleet: the COS takes as many connections as the listener does.
            max_connections: Some(args.max_connections as usize),
            ..CosConfig::default()
        },
    )
    .await
    .context("starting fake COS")?;
    if let Some(port) = args.tls_port.0.filter(|p| *p != 0) {
        // The hub binds it itself; trying it here first names the flag when it is taken.
        drop(bind(args.host, port, "TLS", "--tls-port").await?);
    }
    let mut config = HubConfig::loopback();
    config.mqtt_addr = SocketAddr::new(args.host, args.mqtt_port);
    config.tls_addr = args.tls_port.0.map(|p| SocketAddr::new(args.host, p));
    config.strict = args.strict;
    config.max_connections_per_listener = args.max_connections as usize;
    config.cluster = args.cluster.config()?;
    config.tls_names = product_hosts(fleet);
    if args.cos_tls_port.is_some() {
        config
            .tls_names
            .extend(COS_TLS_NAMES.iter().map(|n| (*n).to_owned()));
        config
            .tls_names
            .extend(args.public_host.iter().map(|h| host_of(h).to_owned()));
    }
    config.transcript_limits.max_bytes = usize::from(args.transcript_max_mb) << 20;
    let mqtt = config.mqtt_addr;
    let hub_cos = Arc::new(HubCos::new(cos.clone()));
    let hub = Hub::start(config, hub_cos.clone()).await.with_context(|| {
        format!(
            "starting the fake hub with MQTT on {mqtt} (a port in use or below 1024 as \
                 non-root? pass --mqtt-port with a free port, or 0)"
        )
    })?;
    if let Some(path) = &args.ca_file {
        write_ca(&hub, path)?;
    }
    let cos_tls = serve_cos_tls(args, &cos, &hub_cos).await?;
    let hub = Arc::new(hub);
    let token = api_token(args)?;
    let access = fake_hub::api::ApiAccess {
        token: token.clone(),
        host_names: args.api_host_name.clone(),
    };
    let api = fake_hub::api::serve_guarded(
        bind(args.host, args.api_port, "API", "--api-port").await?,
        hub.clone(),
        crate::console::router(),
        access,
    )
    .context("starting the control API")?;
    let default_key = fleet.api_keys.is_empty();
    let keys = if default_key {
        fake_hub::api::cloud::CloudKeys::default_pair()
    } else {
        fleet.api_keys.clone()
    };
    let cloud = fake_hub::api::cloud::serve(
        bind(args.host, args.cloud_port, "Cloud API", "--cloud-port").await?,
        hub.clone(),
        keys,
    )
    .context("starting the Cloud API")?;
    Ok(Served {
        public_host: shown_host,
        hub,
        cos,
        api,
        token,
        cloud,
        default_key,
        cos_tls,
    })
}

/// `host` of `host` or `host:port` (an IPv6 address stays whole).
fn host_of(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

/// The HTTPS COS listener of `--cos-tls-port`, under the hub's CA; with `--cos-url-scheme
/// https`, firmware URLs point at it (no port on 443, as the SDKs dial 443 for https).
async fn serve_cos_tls(
    args: &HubArgs,
    cos: &Cos,
    hub_cos: &HubCos,
) -> anyhow::Result<Option<SocketAddr>> {
    let Some(port) = args.cos_tls_port else {
        anyhow::ensure!(
            args.cos_url_scheme == UrlScheme::Http,
            "--cos-url-scheme https needs --cos-tls-port (and --tls-port, whose CA it uses)"
        );
        return Ok(None);
    };
    let identity = hub_cos
        .hub_tls_identity()
        .context("--cos-tls-port needs --tls-port: the hub has no CA without it")?
        .context("loading the hub's certificate for HTTPS COS")?;
    let listener = bind(args.host, port, "COS HTTPS", "--cos-tls-port").await?;
    let addr = cos
        .serve_https(listener, &identity)
        .context("starting HTTPS COS")?;
    if args.cos_url_scheme == UrlScheme::Https {
        let host = match &args.public_host {
            Some(host) => host.clone(),
            None if addr.port() == 443 => args.host.to_string(),
            None => addr.to_string(),
        };
        cos.sign_https_urls(host);
    }
    Ok(Some(addr))
}

pub(super) async fn run(args: HubArgs) -> anyhow::Result<ExitCode> {
    if args.example_fleet {
        say_raw!("{EXAMPLE_FLEET}");
        return Ok(ExitCode::SUCCESS);
    }
    let cluster_config = args.cluster.config()?;
    if let (Some(config), Some(owner)) = (cluster_config.clone(), args.cluster.cluster_owner) {
        return cluster::run_edge(&args, config, owner).await;
    }
    let mut fleet = match &args.fleet {
        Some(path) => load_fleet(path)?,
        None => Fleet::default(),
    };
    if let Some(path) = &args.fleet {
        for warning in &fleet.deprecations {
            eprintln!("warning: {}: {warning}", path.display());
        }
    }
    for flag in &args.firmware {
        fleet.firmware.push(parse_firmware_flag(flag)?);
    }
    let transcript_file = match &args.transcript {
        Some(path) => Some(
            std::fs::File::create(path)
                .with_context(|| format!("creating the transcript file {}", path.display()))?,
        ),
        None => None,
    };
    anyhow::ensure!(
        args.ca_file.is_none() || args.tls_port.0.is_some(),
        "--ca-file needs the TLS port: drop --tls-port off, or --ca-file"
    );
    anyhow::ensure!(
        args.cos_tls_port.is_none() || args.tls_port.0.is_some(),
        "--cos-tls-port needs the TLS port, whose CA signs its certificate: drop --tls-port off, \
         or --cos-tls-port"
    );
    let images = read_firmware(&fleet.firmware)?;
    let wanted = super::fdlimit::wanted_for_hub(args.max_connections as usize);
    let limit = super::fdlimit::raise_to(wanted);
    // The default fits most shells' limits well enough to stay quiet about it.
    if limit < wanted && args.max_connections != DEFAULT_MAX_CONNECTIONS {
        eprintln!(
            "warning: the open-file limit is {limit}, and --max-connections {} may need {wanted} \
             (raise it with `ulimit -n {wanted}`, or lower --max-connections)",
            args.max_connections
        );
    }
    let stop = super::signal::stop_signal()?;
    let served = start(&args, &fleet).await?;
    let live = served.hub.watch_transcript();
    // Everything that can fail is done before the `listening` line, which scripts wait for.
    let firmware_lines = register(&served.hub, &fleet, images)?;
    print_banner(&served);
    for line in firmware_lines {
        say!("{line}");
    }
    let printer = tokio::spawn(follow(
        served.hub.clone(),
        live,
        transcript_file,
        !args.quiet,
    ));
    stop.await;
    say!("stopping");
    printer.abort();
    served.api.shutdown().await;
    served.cloud.shutdown().await;
    if let Ok(hub) = Arc::try_unwrap(served.hub) {
        hub.shutdown().await;
    }
    served.cos.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// Prints and records every transcript entry in order; entries missed by a lagging receiver
/// are fetched back from the hub, so the file has no gaps.
async fn follow(
    hub: Arc<Hub>,
    mut live: broadcast::Receiver<TranscriptEntry>,
    mut file: Option<std::fs::File>,
    print: bool,
) {
    let mut next = 0u64;
    // Remembers each device's last refused COS request, so its `fail -3` says which refusal.
    let mut narrator = scenarios::Narrator::default();
    loop {
        let batch = match live.recv().await {
            Ok(e) if e.seq == next => vec![e],
            Ok(e) if e.seq < next => continue,
            // Only what was missed is copied; the hub keeps far more than a lag can skip.
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                hub.transcript_since(next, usize::MAX)
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        for e in batch {
            next = e.seq + 1;
            if print {
                say!(
                    "{:>10.1} ms  {}",
                    e.at.as_secs_f64() * 1000.0,
                    narrator.describe(&e)
                );
            }
            if let Some(f) = file.as_mut() {
                let line = serde_json::to_string(&e).expect("transcript entries serialize");
                if let Err(err) = writeln!(f, "{line}").and_then(|_| f.flush()) {
                    eprintln!("otasim hub: writing the transcript: {err}");
                    file = None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tls_port_flag;
