//! The hub under attack, each attack of the hardening issue pinned by a test: wills past the
//! ACL, numbers that overflow, records that grow without bound, cross-site and rebinding
//! requests to the control API, replayed binds, protocol violations, and all of it at once
//! beside a normal update (the soak test). Loopback only, every loop bounded.

mod limits;
mod records;
mod wills;
mod wire;

use fake_hub::{FirmwareStore, Hub, HubConfig};
use otasim_protocol::DeviceId;
use std::sync::Arc;
use std::time::Duration;

/// The seed's gateway secret; the second gateway's is another.
pub(crate) const GW1_SECRET: &str = "1RRdhkwmZ45wYXjuPfygeA==";
pub(crate) const GW2_SECRET: &str = "c2Vjb25kIGdhdGV3YXk=";
pub(crate) const LIGHT_SECRET: &str = "bGlnaHQgc2VjcmV0";

/// Keeps nothing; URLs point at a closed port (these tests download nothing).
pub(crate) struct NullStore;

impl FirmwareStore for NullStore {
    fn put(&self, _object: &str, _bytes: Vec<u8>) -> Result<(), fake_hub::StoreError> {
        Ok(())
    }

    fn signed_url(
        &self,
        object: &str,
        _valid_for: Duration,
    ) -> Result<String, fake_hub::StoreError> {
        Ok(format!("http://127.0.0.1:9/{object}"))
    }
}

pub(crate) fn gw1() -> DeviceId {
    DeviceId::new("JR1WOKB7Q7", "gw_deng1").expect("valid id")
}

pub(crate) fn gw2() -> DeviceId {
    DeviceId::new("GW2PROD000", "gw2").expect("valid id")
}

pub(crate) fn light(n: u32) -> DeviceId {
    DeviceId::new("E69UADXUYY", format!("light{n}")).expect("valid id")
}

/// A hub with two gateways: `gw1` with light1 and light2 bound on 0.1, `gw2` with none; and
/// light3, unbound.
pub(crate) async fn two_gateway_hub(config: HubConfig) -> Arc<Hub> {
    let hub = Hub::start(config, Arc::new(NullStore))
        .await
        .expect("hub starts");
    hub.add_gateway(&gw1(), GW1_SECRET);
    hub.add_gateway(&gw2(), GW2_SECRET);
    for n in [1, 2] {
        hub.add_subdevice(&light(n), LIGHT_SECRET, Some(&gw1()), Some("0.1"));
    }
    hub.add_subdevice(&light(3), LIGHT_SECRET, None, Some("0.1"));
    Arc::new(hub)
}

/// An HTTP/1.1 answer: status, lower-cased header lines, body.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: String,
}

impl Answer {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// One request on a fresh connection with exactly the header lines given (no `Host` unless
/// given: the tests forge it).
pub(crate) async fn request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to the API");
    let mut head = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    tcp.write_all(head.as_bytes()).await.expect("send head");
    tcp.write_all(body).await.expect("send body");
    let mut raw = Vec::new();
    crate::support::within("an HTTP answer", tcp.read_to_end(&mut raw))
        .await
        .expect("read the answer");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete answer");
    let mut lines = head.lines();
    let status = lines.next().expect("a status line")[9..12]
        .parse()
        .expect("a status code");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// The resident set size of process `pid`, in KiB, from `/proc/PID/status`.
pub(crate) fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line")
}
