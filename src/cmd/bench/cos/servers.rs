//! The two servers under test, each its own process so its peak RSS is its own: `otasim cos`
//! (this executable) and nginx with a generated config, both on loopback over one folder.

use anyhow::{Context, bail};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long a server may take to come up.
const STARTUP: Duration = Duration::from_secs(20);

/// A folder removed when dropped.
pub(super) struct Scratch {
    pub(super) path: PathBuf,
}

impl Scratch {
    /// A fresh folder under the system temp dir, readable by nginx's unprivileged workers.
    pub(super) fn new() -> anyhow::Result<Scratch> {
        use std::os::unix::fs::PermissionsExt;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!("otasim-bench-cos-{}-{nanos}", std::process::id());
        let path = std::env::temp_dir().join(name);
        for dir in [path.clone(), path.join("www"), path.join("tmp")] {
            std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
        }
        Ok(Scratch { path })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            eprintln!("warning: could not remove {}: {e}", self.path.display());
        }
    }
}

/// Asks a process to stop with SIGTERM (no libc: `kill` is in every base system).
async fn terminate(pid: u32) {
    let sent = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await;
    if let Err(e) = sent {
        eprintln!("warning: could not signal process {pid}: {e}");
    }
}

/// Waits for `child` to exit after SIGTERM, killing it if it takes too long.
async fn stop(child: &mut Child, what: &str) {
    if let Some(pid) = child.id() {
        terminate(pid).await;
    }
    if tokio::time::timeout(STARTUP, child.wait()).await.is_err() {
        eprintln!("warning: {what} ignored SIGTERM; killing it");
        if let Err(e) = child.kill().await {
            eprintln!("warning: could not kill {what}: {e}");
        }
    }
}

/// Peak resident set (VmHWM) of a process and of its children, in KiB.
pub(super) fn peak_rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let own = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .context("no VmHWM line")?;
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    let mut total = own;
    for child in children.split_whitespace().filter_map(|c| c.parse().ok()) {
        total += peak_rss_kib(child)?;
    }
    Ok(total)
}

/// CPU time (user plus system, on any core) that `pid`'s threads (and with `children`, its
/// children's) have run so far, in nanoseconds, from each thread's `schedstat`: finer than
/// `stat`'s clock ticks, which would blur a one-second measurement by a percent or more.
pub(super) fn cpu_ns(pid: u32, children: bool) -> anyhow::Result<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .with_context(|| format!("listing the threads of {pid}"))?;
    let mut total = 0;
    for task in tasks {
        let task = task?.path();
        // A thread that exits meanwhile takes its time with it; the rest still count.
        let Ok(stat) = std::fs::read_to_string(task.join("schedstat")) else {
            continue;
        };
        total += stat
            .split_whitespace()
            .next()
            .and_then(|ns| ns.parse::<u64>().ok())
            .context("schedstat without a run time")?;
        if !children {
            continue;
        }
        let kids = std::fs::read_to_string(task.join("children")).unwrap_or_default();
        for child in kids.split_whitespace().filter_map(|c| c.parse().ok()) {
            total += cpu_ns(child, true)?;
        }
    }
    Ok(total)
}

/// `otasim cos` serving the folder, as a child process.
pub(super) struct FakeCos {
    child: Child,
    pub(super) addr: SocketAddr,
    pub(super) admin: SocketAddr,
    /// Path and query of the object's signed URL.
    pub(super) target: String,
}

impl FakeCos {
    pub(super) async fn start(www: &Path, object: &str) -> anyhow::Result<FakeCos> {
        let exe = std::env::current_exe().context("finding the otasim executable")?;
        let mut child = Command::new(exe)
            .args(["cos", "--quiet", "--dir"])
            .arg(www)
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting otasim cos")?;
        let stdout = child.stdout.take().context("child stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let (mut addr, mut admin, mut url) = (None, None, None);
        let deadline = Instant::now() + STARTUP;
        while addr.is_none() || admin.is_none() || url.is_none() {
            let line = tokio::time::timeout_at(deadline.into(), lines.next_line())
                .await
                .context("otasim cos did not print its addresses in time")??
                .context("otasim cos exited before printing its addresses")?;
            if let Some(a) = line.strip_prefix("cos: http://") {
                addr = Some(a.parse::<SocketAddr>()?);
            } else if let Some(a) = line.strip_prefix("admin: http://") {
                admin = Some(a.parse::<SocketAddr>()?);
            } else if line.starts_with(&format!("object {object} ")) {
                url = line.split_once(" url=").map(|(_, u)| u.to_owned());
            }
        }
        // The live request log is drained so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let (addr, admin, url) = (
            addr.context("address")?,
            admin.context("admin")?,
            url.context("url")?,
        );
        let target = url
            .strip_prefix(&format!("http://{addr}"))
            .context("signed URL of another host")?
            .to_owned();
        Ok(FakeCos {
            child,
            addr,
            admin,
            target,
        })
    }

    pub(super) fn peak_rss_kib(&self) -> anyhow::Result<u64> {
        peak_rss_kib(self.child.id().context("otasim cos already exited")?)
    }

    pub(super) fn cpu_ns(&self) -> anyhow::Result<u64> {
        cpu_ns(self.child.id().context("otasim cos already exited")?, true)
    }

    pub(super) async fn stop(mut self) {
        stop(&mut self.child, "otasim cos").await;
    }
}

/// nginx (master and workers) serving the folder on a loopback port.
pub(super) struct Nginx {
    child: Child,
    pub(super) addr: SocketAddr,
}

/// Where nginx is, if installed.
pub(super) fn find_nginx() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join("nginx"))
        .find(|p| p.is_file())
}

impl Nginx {
    pub(super) async fn start(
        nginx: &Path,
        scratch: &Path,
        sendfile: bool,
    ) -> anyhow::Result<Nginx> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let conf = scratch.join("nginx.conf");
        std::fs::write(&conf, config(scratch, addr, sendfile))?;
        let log = scratch.join("error.log");
        let child = Command::new(nginx)
            .arg("-p")
            .arg(scratch)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(&log)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting nginx")?;
        let mut server = Nginx { child, addr };
        let deadline = Instant::now() + STARTUP;
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            if let Some(status) = server.child.try_wait()? {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                bail!("nginx exited with {status}: {log}");
            }
            if Instant::now() > deadline {
                bail!("nginx did not listen on {addr} within {STARTUP:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(server)
    }

    pub(super) fn peak_rss_kib(&self) -> anyhow::Result<u64> {
        peak_rss_kib(self.child.id().context("nginx already exited")?)
    }

    /// The master's and its workers' CPU time.
    pub(super) fn cpu_ns(&self) -> anyhow::Result<u64> {
        cpu_ns(self.child.id().context("nginx already exited")?, true)
    }

    pub(super) async fn stop(mut self) {
        stop(&mut self.child, "nginx").await;
    }
}

/// A static-file config tuned as a production nginx would be: sendfile (unless turned off),
/// one worker per CPU, no access log, unlimited keep-alive requests.
fn config(scratch: &Path, addr: SocketAddr, sendfile: bool) -> String {
    let dir = scratch.display();
    let sendfile = if sendfile { "on" } else { "off" };
    format!(
        "daemon off;\nworker_processes auto;\npid {dir}/nginx.pid;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n  access_log off;\n  sendfile {sendfile};\n  tcp_nopush on;\n  tcp_nodelay on;\n  \
         keepalive_requests 1000000;\n  \
         client_body_temp_path {dir}/tmp/body;\n  proxy_temp_path {dir}/tmp/proxy;\n  \
         fastcgi_temp_path {dir}/tmp/fastcgi;\n  uwsgi_temp_path {dir}/tmp/uwsgi;\n  \
         scgi_temp_path {dir}/tmp/scgi;\n  \
         server {{ listen {addr}; root {dir}/www; location / {{ }} }}\n}}\n"
    )
}
