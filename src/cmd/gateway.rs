//! `otasim gateway`: the gateway OTA client against any hub, until Ctrl-C.
//!
//! Reads the SDKs' `device_info.json` (the gateway's identity and its subdevices) and an
//! optional `subdevs.toml` (factory versions and simulated burner behaviours, see
//! [`gateway::SubdevicesFile`]). On a terminal each subdevice gets a progress bar on stderr;
//! otherwise one `key=value` line per event goes to stdout.

use anyhow::Context as _;
use clap::Args;
use gateway::{
    BurnerChoice, Gateway, GatewayConfig, GatewayEvent, GatewayOptions, HubAddress, SubdevicesFile,
    TlsSettings,
};
use otasim_protocol::{DeviceId, DeviceInfo, GatewayResult, ProgressReport, ProgressState};
use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::num::{NonZeroU64, NonZeroUsize};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tokio::sync::broadcast;

mod bars;
use bars::Bars;

/// Arguments of `otasim gateway`.
#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// The SDKs' device_info.json: the gateway's identity, secret and subdevices.
    #[arg(long, value_name = "FILE")]
    device_info: PathBuf,
    /// Factory versions and simulated burner behaviours per subdevice (TOML).
    #[arg(long, value_name = "FILE")]
    subdevices: Option<PathBuf>,
    /// Where images, checkpoints and simulated flash live; reuse it to resume after a crash.
    #[arg(long, value_name = "DIR")]
    state_dir: PathBuf,
    /// The hub's MQTT address (default: {product_id}.iotcloud.tencentdevices.com:1883).
    #[arg(long, value_name = "HOST:PORT")]
    hub: Option<String>,
    /// CA certificate (PEM) to verify the hub over TLS and https image URLs.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Device certificate (PEM) for mutual TLS; needs --key and --ca.
    #[arg(long, value_name = "FILE", requires = "key", requires = "ca")]
    cert: Option<PathBuf>,
    /// Device private key (PEM) for mutual TLS.
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,
    /// Updates (download and burn) running at once.
    #[arg(long, value_name = "N", default_value = "4")]
    max_concurrent: NonZeroUsize,
    /// Most bytes the images directory may hold.
    #[arg(long, value_name = "BYTES")]
    quota_bytes: Option<u64>,
    /// Burn with this program instead of the simulated burner:
    /// `CMD IMAGE PRODUCT_ID DEVICE_NAME VERSION`, exit 0 for success.
    #[arg(long, value_name = "CMD")]
    burner_command: Option<PathBuf>,
    /// Version of subdevices the subdevices file does not mention.
    #[arg(long, value_name = "VERSION", default_value = "0.1")]
    factory_version: String,
    /// Make downloads durable (checkpoint) every this many bytes.
    #[arg(long, value_name = "BYTES")]
    checkpoint_bytes: Option<NonZeroU64>,
    /// A burn taking longer fails with -5 and frees its subdevice.
    #[arg(long, value_name = "SECS", default_value = "600", value_parser = clap::value_parser!(u64).range(1..))]
    burn_timeout_secs: u64,
    /// Wait this long for the hub's answer to `online` before asking again (doubling, up to
    /// 5 minutes).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = clap::value_parser!(u64).range(1..))]
    online_retry_secs: u64,
    /// Largest MQTT packet accepted from the hub.
    #[arg(long, value_name = "BYTES", default_value = "262144")]
    max_incoming_bytes: NonZeroUsize,
    /// Partial downloads of failed updates kept for a resume.
    #[arg(long, value_name = "N", default_value = "3")]
    keep_partials: usize,
    /// A partial download untouched for longer is deleted.
    #[arg(long, value_name = "HOURS", default_value = "72")]
    partial_max_age_hours: u64,
    /// Redirects followed in a row per request (0: none).
    #[arg(long, value_name = "N", default_value = "5")]
    max_redirects: u8,
    /// The longest Retry-After honoured.
    #[arg(long, value_name = "SECS", default_value = "300")]
    retry_after_cap_secs: u64,
}

pub(super) async fn run(args: GatewayArgs) -> anyhow::Result<ExitCode> {
    let stop = super::signal::stop_signal()?;
    let (config, options) = build(&args)?;
    let hub = format!("{}:{}", config.hub.host, config.hub.port);
    let gateway_id = config.device.clone();
    let subdevices: Vec<DeviceId> = config.subdevices.iter().map(|s| s.id.clone()).collect();
    let gw = Gateway::start_with(config, options).context("starting the gateway")?;
    let events = gw.events();
    say!(
        "gateway {gateway_id} hub={hub} state_dir={} subdevices={}",
        args.state_dir.display(),
        subdevices.len()
    );
    let mut display = if std::io::stderr().is_terminal() {
        Display::Bars(Bars::new(&subdevices))
    } else {
        Display::Lines
    };
    tokio::select! {
        // Cancel-safe: a lost event only means one less redraw; the bars are ended below.
        _ = show(events, &mut display) => {}
        () = stop => {}
    }
    if let Display::Bars(bars) = &display {
        bars.stopped();
    }
    gw.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

fn build(args: &GatewayArgs) -> anyhow::Result<(GatewayConfig, GatewayOptions)> {
    let text = std::fs::read_to_string(&args.device_info).with_context(|| {
        format!(
            "reading {}: pass the SDKs' device_info.json (examples/device_info.json is one)",
            args.device_info.display()
        )
    })?;
    let info = DeviceInfo::parse(&text)
        .with_context(|| format!("parsing {}", args.device_info.display()))?;
    let product = info
        .device_id()
        .with_context(|| format!("{}: gateway identity", args.device_info.display()))?;
    let hub = hub_address(args.hub.as_deref(), product.product_id())?;
    let mut config =
        GatewayConfig::from_device_info(&info, hub, args.state_dir.clone(), &args.factory_version)
            .with_context(|| format!("{}", args.device_info.display()))?;
    if let Some(every) = args.checkpoint_bytes {
        config.download.checkpoint = gateway::download::CheckpointPolicy::EveryBytes(every);
    }
    config.download.max_redirects = args.max_redirects;
    config.download.retry_after_cap = Duration::from_secs(args.retry_after_cap_secs);
    let mut options = GatewayOptions::new();
    options.burn_timeout = Duration::from_secs(args.burn_timeout_secs);
    options.online_retry = Duration::from_secs(args.online_retry_secs);
    options.max_incoming_bytes = args.max_incoming_bytes;
    options.partials = gateway::PartialRetention {
        max_count: args.keep_partials,
        max_age: Duration::from_secs(args.partial_max_age_hours.saturating_mul(3600)),
    };
    let behaviours = match &args.subdevices {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the subdevices file {}", path.display()))?;
            let file = SubdevicesFile::parse(&text).with_context(|| path.display().to_string())?;
            for warning in file.deprecations() {
                eprintln!("warning: {}: {warning}", path.display());
            }
            file.apply(&mut config)
                .with_context(|| path.display().to_string())?
        }
        None => BTreeMap::new(),
    };
    options.burner = match &args.burner_command {
        Some(program) => BurnerChoice::Command(program.clone()),
        None => BurnerChoice::Simulated(behaviours),
    };
    options.max_concurrent = args.max_concurrent;
    options.storage_quota_bytes = args.quota_bytes;
    if let Some(ca) = &args.ca {
        let identity = args.cert.as_deref().zip(args.key.as_deref());
        let tls = TlsSettings::from_files(ca, identity)?;
        options.mqtt_tls = Some(tls.clone());
        options.https_ca = Some(tls);
    }
    Ok((config, options))
}

/// `HOST:PORT`, or the Tencent Cloud default for the product.
fn hub_address(arg: Option<&str>, product_id: &str) -> anyhow::Result<HubAddress> {
    let Some(text) = arg else {
        return Ok(HubAddress {
            host: format!("{product_id}.iotcloud.tencentdevices.com"),
            port: 1883,
        });
    };
    let (host, port) = text
        .rsplit_once(':')
        .with_context(|| format!("--hub {text:?}: expected HOST:PORT"))?;
    let port = port
        .parse::<u16>()
        .with_context(|| format!("--hub {text:?}: bad port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    anyhow::ensure!(!host.is_empty(), "--hub {text:?}: empty host");
    Ok(HubAddress {
        host: host.to_owned(),
        port,
    })
}

enum Display {
    Bars(Bars),
    Lines,
}

async fn show(mut events: broadcast::Receiver<GatewayEvent>, display: &mut Display) {
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                say!("event=lagged skipped={n}");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        match display {
            Display::Bars(bars) => bars.update(&event),
            // Byte counts come ten times a second: only bars show them.
            Display::Lines if matches!(event, GatewayEvent::DownloadProgress { .. }) => {}
            Display::Lines => say!("{}", line(&event)),
        }
    }
}

fn report_fields(report: &ProgressReport) -> String {
    let mut out = format!(
        "state={} version={}",
        state_name(report.state),
        report.version
    );
    if let Some(p) = report.percent {
        out.push_str(&format!(" percent={p}"));
    }
    if report.state == ProgressState::Fail {
        out.push_str(&format!(
            " code={} msg={:?}",
            report.result_code.code(),
            report.result_msg
        ));
    }
    out
}

fn state_name(state: ProgressState) -> &'static str {
    match state {
        ProgressState::Downloading => "downloading",
        ProgressState::Burning => "burning",
        ProgressState::Done => "done",
        ProgressState::Fail => "fail",
    }
}

/// One `key=value` line per event.
fn line(event: &GatewayEvent) -> String {
    match event {
        GatewayEvent::Connected => "event=connected".into(),
        GatewayEvent::Disconnected { reason } => format!("event=disconnected reason={reason:?}"),
        GatewayEvent::Online { device, result: 0 } => {
            format!("event=online device={device} result=0")
        }
        GatewayEvent::Online { device, result } => format!(
            "event=online device={device} result={result} why={:?}",
            online_refusal(device, *result)
        ),
        GatewayEvent::DownloadProgress {
            device,
            stored_bytes,
            total_bytes,
        } => format!("event=download device={device} bytes={stored_bytes} total={total_bytes}"),
        GatewayEvent::Report { device, report } => {
            format!("event=report device={device} {}", report_fields(report))
        }
        GatewayEvent::BurnProgress { device, percent } => {
            format!("event=burn device={device} percent={percent}")
        }
        GatewayEvent::ImageFetched {
            device,
            md5,
            bytes_transferred,
        } => format!("event=image device={device} md5={md5} bytes_fetched={bytes_transferred}"),
    }
}

/// Why the Hub refused to bring a subdevice online, and what to do about it.
pub(crate) fn online_refusal(device: &DeviceId, result: i64) -> String {
    let fix_binding = format!(
        "bind it on the hub: in the fleet file give {device} `gateway = \"PID/NAME\"`, or \
         POST /api/topology/bind {{\"gateway\": \"PID/NAME\", \"subdevice\": \"{device}\"}}"
    );
    match GatewayResult::from_code(result) {
        GatewayResult::Success => "online".into(),
        GatewayResult::NotBound => format!("not bound to this gateway: {fix_binding}"),
        GatewayResult::BindSubdeviceMissing => {
            format!("{device} does not exist on the hub: add it to the fleet file or POST /api/subdevices")
        }
        GatewayResult::BindToOtherGateway => {
            format!("bound to another gateway: unbind it there first, then {fix_binding}")
        }
        GatewayResult::BindBadSignature | GatewayResult::BindSignatureExpired => {
            "bind signature refused: the subdevice secret in device_info.json differs from the hub's"
                .into()
        }
        GatewayResult::BindSubdeviceForbidden | GatewayResult::BindOperationForbidden => {
            "the hub forbids it (the subdevice is disabled)".into()
        }
        other => format!("refused with code {}", other.code()),
    }
}
