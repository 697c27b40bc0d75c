//! A gateway OTA client for Tencent Cloud IoT Hub subdevices.
//!
//! The gateway connects to the Hub over MQTT for its subdevices, brings them online, reports
//! their versions, and on `update_firmware` downloads the image (resumable, crash-safe, one
//! download shared by every subdevice that needs it), verifies it, burns it through a
//! [`Burner`] and reports progress honestly. It sits between the Hub (here usually `fake-hub`)
//! and the subdevices, and speaks only the wire types of `otasim-protocol`.
//!
//! Build one with [`Gateway::start`] from a [`GatewayConfig`] and a state directory; starting
//! again on the same directory after [`Gateway::kill`] is a reboot. [`GatewayOptions`] add the
//! concurrency limit, the storage quota, the burner and TLS.

mod burner;
mod config;
pub mod download;
mod images;
mod outbox;
mod quota;
mod session;
mod subdevice;
mod subdevs_file;
mod tls;
mod update;
mod validate;

pub use burner::{
    BurnError, BurnFuture, BurnRequest, Burner, CommandBurner, SimulatedBurn, SimulatedBurner,
};
pub use config::{
    BurnerChoice, GatewayConfig, GatewayOptions, HubAddress, MAX_ONLINE_RETRY, PartialRetention,
    SubdeviceConfig,
};
pub use subdevs_file::{SubdevicesFile, SubdevicesFileError};
pub use tls::{TlsError, TlsSettings};
pub use tokio_util::sync::CancellationToken;
pub use update::Failure;
pub use validate::{Rejection, Target, Version};

use download::Downloader;
use images::ImageCache;
use otasim_protocol::{Credentials, DeviceId, ProgressReport, SignMethod};
use outbox::Outbound;
use rumqttc::{AsyncClient, MqttOptions, NetworkOptions, TlsConfiguration, Transport};
use session::Session;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;
use subdevice::SubdeviceDriver;
use tokio::sync::{broadcast, mpsc};
use tokio_util::task::TaskTracker;

/// Something the gateway did, for observers (tests, scenario runners, the CLI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayEvent {
    /// The MQTT connection is up.
    Connected,
    /// The MQTT connection dropped; the gateway will reconnect.
    Disconnected {
        /// Why, as the client saw it.
        reason: String,
    },
    /// The Hub answered `online` for a subdevice.
    Online {
        /// The subdevice.
        device: DeviceId,
        /// The integer result (0 is success).
        result: i64,
    },
    /// A progress report was published for a subdevice.
    Report {
        /// The subdevice.
        device: DeviceId,
        /// The report.
        report: ProgressReport,
    },
    /// A burn progressed (0 to 100); not sent to the Hub, which only knows `burning`.
    BurnProgress {
        /// The subdevice.
        device: DeviceId,
        /// Percent burned.
        percent: u8,
    },
    /// Bytes of an image stored so far, at most ten times a second per download (for progress
    /// bars; the Hub gets percentages at most once a second).
    DownloadProgress {
        /// The subdevice whose command started the download.
        device: DeviceId,
        /// Bytes stored and hashed.
        stored_bytes: u64,
        /// The image's size.
        total_bytes: u64,
    },
    /// An image finished downloading (or was found complete on disk).
    ImageFetched {
        /// The subdevice whose command started the download.
        device: DeviceId,
        /// The image's MD5, hex.
        md5: String,
        /// Body bytes received over HTTP for it, over all attempts.
        bytes_transferred: u64,
    },
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The device secret or identity is unusable.
    #[error("gateway credentials: {0}")]
    Credentials(#[from] otasim_protocol::AuthError),
    /// The TLS settings are unusable.
    #[error("{0}")]
    Tls(#[from] TlsError),
    /// The state directory could not be prepared.
    #[error("state directory {path}: {source}")]
    StateDir {
        /// The directory.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Another gateway (in this process or another) runs on the state directory: two would
    /// write the same part files. Stop it (`kill` or `shutdown` waits for its last write) first.
    #[error("state directory {path} is in use by another running gateway; stop that one first")]
    StateDirInUse {
        /// The directory.
        path: std::path::PathBuf,
    },
}

/// What the session and the subdevice drivers share.
pub(crate) struct Shared {
    outbox: mpsc::Sender<Outbound>,
    /// Shutdown: stop taking work, let downloads checkpoint.
    cancel: CancellationToken,
    /// Power cut: every task stops at its next await, nothing more is written.
    killed: CancellationToken,
    /// Every task the gateway starts, so `kill` and `shutdown` can wait for the last one.
    tasks: TaskTracker,
    events: broadcast::Sender<GatewayEvent>,
    max_image_bytes: u64,
    burn_timeout: std::time::Duration,
    online_retry: std::time::Duration,
    started: Instant,
}

impl Shared {
    fn emit(&self, event: GatewayEvent) {
        // No receiver is fine: events are for observers only.
        let _ = self.events.send(event);
    }

    /// Spawns a tracked task that a power cut drops at its next await (`None` then).
    pub(crate) fn spawn<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> tokio::task::JoinHandle<Option<T>> {
        let killed = self.killed.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                // Checked first on every wakeup, so nothing runs once the power is cut (not a
                // report about a download the cut ended, say). Dropping `work` is the cut.
                biased;
                _ = killed.cancelled() => None,
                out = work => Some(out),
            }
        })
    }
}

/// A running gateway.
pub struct Gateway {
    shared: Arc<Shared>,
    /// Held until every task has ended: the state directory has one writer at a time.
    _state_lock: std::fs::File,
}

impl Gateway {
    /// Starts the gateway on the current tokio runtime with default [`GatewayOptions`]: the
    /// simulated burner, whose flash lives in `{state_dir}/flash`.
    pub fn start(config: GatewayConfig) -> Result<Gateway, GatewayError> {
        Self::start_with(config, GatewayOptions::new())
    }

    /// Starts the gateway with the burner the options choose, provisioning every subdevice
    /// with its factory version on first start.
    pub fn start_with(
        config: GatewayConfig,
        options: GatewayOptions,
    ) -> Result<Gateway, GatewayError> {
        let state_err = |source| GatewayError::StateDir {
            path: config.state_dir.clone(),
            source,
        };
        let burner: Arc<dyn Burner> = match &options.burner {
            BurnerChoice::Simulated(behaviours) => {
                let mut burner = SimulatedBurner::new(config.state_dir.join("flash"));
                for (device, behaviour) in behaviours {
                    burner.set_behaviour(device.clone(), behaviour.clone());
                }
                for sub in &config.subdevices {
                    burner
                        .provision(&sub.id, &sub.factory_version)
                        .map_err(state_err)?;
                }
                Arc::new(burner)
            }
            BurnerChoice::Command(program) => {
                let burner = CommandBurner::new(program, config.state_dir.join("burned"));
                for sub in &config.subdevices {
                    burner
                        .provision(&sub.id, &sub.factory_version)
                        .map_err(state_err)?;
                }
                Arc::new(burner)
            }
        };
        Self::start_with_burner(config, options, burner)
    }

    /// Starts the gateway with a burner of the caller's choice (`options.burner` is ignored).
    pub fn start_with_burner(
        config: GatewayConfig,
        options: GatewayOptions,
        burner: Arc<dyn Burner>,
    ) -> Result<Gateway, GatewayError> {
        let images_dir = config.state_dir.join("images");
        std::fs::create_dir_all(&images_dir).map_err(|source| GatewayError::StateDir {
            path: images_dir.clone(),
            source,
        })?;
        let state_lock = lock_state_dir(&config.state_dir)?;
        let (client, eventloop) = connect_options(&config, &options)?;
        let (events, _) = broadcast::channel(1024);
        let (outbox, outbound) = mpsc::channel(1024);
        let shared = Arc::new(Shared {
            outbox,
            cancel: CancellationToken::new(),
            killed: CancellationToken::new(),
            tasks: TaskTracker::new(),
            events,
            max_image_bytes: config.max_image_bytes,
            burn_timeout: options.burn_timeout,
            online_retry: options.online_retry,
            started: Instant::now(),
        });
        let mut downloader =
            Downloader::new(images_dir, config.download).with_tracker(shared.tasks.clone());
        if let Some(https) = &options.https_ca {
            downloader = downloader.with_tls(https.client_config()?);
        }
        let images = Arc::new(ImageCache::new(
            downloader,
            options.max_concurrent.get(),
            options.storage_quota_bytes,
            options.partials,
            Arc::clone(&shared),
        ));
        images.prune_partials();
        let mut inputs = BTreeMap::new();
        for sub in &config.subdevices {
            let (tx, rx) = mpsc::channel(16);
            inputs.insert(sub.id.clone(), tx);
            let running = burner
                .running_version(&sub.id)
                .unwrap_or_else(|| sub.factory_version.clone());
            let driver = SubdeviceDriver::new(
                sub.id.clone(),
                running,
                Arc::clone(&shared),
                Arc::clone(&burner),
                Arc::clone(&images),
            );
            shared.spawn(driver.run(rx));
        }
        let session = Session::new(config.device.clone(), Arc::clone(&shared), inputs, client);
        shared.spawn(session.run(eventloop, outbound));
        Ok(Gateway {
            shared,
            _state_lock: state_lock,
        })
    }

    /// Subscribes to what the gateway does from now on.
    pub fn events(&self) -> broadcast::Receiver<GatewayEvent> {
        self.shared.events.subscribe()
    }

    /// Stops cleanly: disconnects from the Hub and waits for every task (downloads write their
    /// checkpoints, burns are cancelled). Nothing in the state directory changes afterwards.
    pub async fn shutdown(self) {
        self.shared.cancel.cancel();
        self.shared.tasks.close();
        self.shared.tasks.wait().await;
    }

    /// Stops at once, as a power cut would: every task is dropped at its next await and
    /// nothing more is flushed. Returns once the last file job already running on a blocking
    /// thread has ended, so nothing in the state directory changes afterwards and a reboot on
    /// the same directory (start again) is its only writer.
    pub async fn kill(self) {
        self.shared.killed.cancel();
        self.shared.cancel.cancel();
        self.shared.tasks.close();
        self.shared.tasks.wait().await;
    }
}

/// Takes the state directory's lock file for the life of the gateway.
fn lock_state_dir(dir: &std::path::Path) -> Result<std::fs::File, GatewayError> {
    let path = dir.join("gateway.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| GatewayError::StateDir {
            path: path.clone(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(GatewayError::StateDirInUse {
            path: dir.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(GatewayError::StateDir { path, source }),
    }
}

fn connect_options(
    config: &GatewayConfig,
    options: &GatewayOptions,
) -> Result<(AsyncClient, rumqttc::EventLoop), GatewayError> {
    let conn_id: String = (0..5)
        .map(|_| {
            char::from(
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                    [rand::random_range(0..62)],
            )
        })
        .collect();
    // Like the C SDK: an expiry that never comes, so a gateway with a wrong clock still connects.
    let creds = Credentials::make(
        &config.device,
        &config.secret,
        &conn_id,
        i64::MAX as u64,
        SignMethod::HmacSha1,
    )?;
    let mut opts = MqttOptions::new(creds.client_id, config.hub.host.clone(), config.hub.port);
    opts.set_credentials(creds.username, creds.password);
    opts.set_keep_alive(config.keepalive);
    // The Hub's commands carry long signed URLs; its own packet limit is the one to meet.
    opts.set_max_packet_size(options.max_incoming_bytes.get(), 64 << 10);
    opts.set_clean_session(true);
    if let Some(tls) = &options.mqtt_tls {
        let config = tls.client_config()?;
        opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(config)));
    }
    let (client, mut eventloop) = AsyncClient::new(opts, 256);
    let mut net = NetworkOptions::new();
    net.set_tcp_nodelay(true);
    net.set_connection_timeout(config.download.timeouts.connect().as_secs().max(1));
    eventloop.set_network_options(net);
    Ok((client, eventloop))
}
