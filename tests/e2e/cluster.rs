//! `otasim hub` across three processes on rmqtt's broadcast cluster: an owner node with the
//! fleet and two edge nodes, a gateway on each node, one task that updates them all, auth on
//! every node, and the whole fleet seen through any node's control API.
//!
//! The cluster needs `--features cluster` (and protoc to build it). Without the feature this
//! test builds such an `otasim` itself, into `target/cluster`, so a plain
//! `cargo test -- --include-ignored` runs it too.

use crate::hub::{ServedHub, get, post, wait_api};
use crate::support::within;
use gateway::{Gateway, GatewayConfig, HubAddress, SubdeviceConfig};
use otasim_protocol::DeviceId;
use rumqttc::{AsyncClient, ConnectReturnCode, Event, MqttOptions, Packet};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const GW_PRODUCT: &str = "JR1WOKB7Q7";
const SUB_PRODUCT: &str = "E69UADXUYY";
const SECRET: &str = "1RRdhkwmZ45wYXjuPfygeA==";
const GATEWAYS: usize = 3;
const SUBS_PER_GATEWAY: usize = 2;

/// The `otasim` binary with cluster support.
fn cluster_binary() -> PathBuf {
    if cfg!(feature = "cluster") {
        return PathBuf::from(env!("CARGO_BIN_EXE_otasim"));
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target = root.join("target").join("cluster");
    let status = std::process::Command::new(env!("CARGO"))
        .args(["build", "--features", "cluster", "--bin", "otasim"])
        .arg("--target-dir")
        .arg(&target)
        .current_dir(&root)
        .status()
        .expect("cargo runs");
    assert!(
        status.success(),
        "building otasim with --features cluster failed (it needs protoc: Debian's \
         protobuf-compiler)"
    );
    target.join("debug").join("otasim")
}

/// Fixed ports for the nodes' cluster listeners (each node dials the others' from the start).
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    held.iter()
        .map(|l| l.local_addr().expect("bound").port())
        .collect()
}

fn fleet_toml() -> String {
    let mut out = String::new();
    for g in 0..GATEWAYS {
        let _ = writeln!(
            out,
            "[[gateways]]\nproduct_id = \"{GW_PRODUCT}\"\ndevice_name = \"gw{g}\"\n\
             secret = \"{SECRET}\"\n"
        );
        for s in 0..SUBS_PER_GATEWAY {
            let _ = writeln!(
                out,
                "[[subdevices]]\nproduct_id = \"{SUB_PRODUCT}\"\ndevice_name = \"light{g}_{s}\"\n\
                 secret = \"x\"\ngateway = \"{GW_PRODUCT}/gw{g}\"\nversion = \"1.0\"\n"
            );
        }
    }
    out
}

/// Starts a node and reads its `listening` line.
async fn start_node(bin: &PathBuf, args: &[String]) -> (Child, BTreeMap<String, SocketAddr>) {
    let mut child = Command::new(bin)
        .args(["hub", "--quiet", "--mqtt-port", "0", "--api-port", "0"])
        .args(["--tls-port", "off"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("otasim starts");
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let first = within("a node's listening line", lines.next_line())
        .await
        .expect("stdout")
        .expect("a listening line");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let addrs = first
        .strip_prefix("listening ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .split(' ')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect();
    (child, addrs)
}

fn served(child: Child, addrs: &BTreeMap<String, SocketAddr>) -> ServedHub {
    ServedHub {
        _child: child,
        mqtt: addrs["mqtt"],
        // An edge serves no COS; nothing here reads it.
        cos: addrs.get("cos").copied().unwrap_or(addrs["api"]),
        api: addrs["api"],
        tls: None,
        cloud: None,
        cos_tls: None,
    }
}

fn start_gateway(g: usize, mqtt: SocketAddr, state: PathBuf) -> Gateway {
    let config = GatewayConfig {
        device: DeviceId::new(GW_PRODUCT, format!("gw{g}")).expect("valid id"),
        secret: SECRET.into(),
        hub: HubAddress {
            host: "127.0.0.1".into(),
            port: mqtt.port(),
        },
        subdevices: (0..SUBS_PER_GATEWAY)
            .map(|s| SubdeviceConfig {
                id: DeviceId::new(SUB_PRODUCT, format!("light{g}_{s}")).expect("valid id"),
                factory_version: "1.0".into(),
            })
            .collect(),
        state_dir: state,
        max_image_bytes: 64 << 20,
        keepalive: Duration::from_secs(30),
        download: gateway::download::DownloadConfig::default(),
    };
    Gateway::start(config).expect("gateway starts")
}

/// The CONNACK code a CONNECT with a wrong password gets from `mqtt`.
async fn connack_with_a_wrong_password(mqtt: SocketAddr) -> ConnectReturnCode {
    let mut options = MqttOptions::new(
        format!("{GW_PRODUCT}gw0"),
        mqtt.ip().to_string(),
        mqtt.port(),
    );
    options.set_credentials(
        format!("{GW_PRODUCT}gw0;12010126;abcde;99999999999"),
        "wrong",
    );
    let (_client, mut event_loop) = AsyncClient::new(options, 8);
    within("the CONNACK to a wrong password", async {
        loop {
            match event_loop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => return ack.code,
                Ok(_) => {}
                Err(rumqttc::ConnectionError::ConnectionRefused(code)) => return code,
                Err(e) => panic!("no CONNACK: {e}"),
            }
        }
    })
    .await
}

fn subdevices_in(devices: &Value, check: impl Fn(&Value) -> bool) -> usize {
    devices
        .as_array()
        .map(|all| {
            all.iter()
                .filter(|d| d["device"]["product_id"] == SUB_PRODUCT && check(d))
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "cluster"),
    ignore = "needs protoc (Debian's protobuf-compiler): builds otasim with --features cluster"
)]
async fn one_task_updates_gateways_on_three_nodes_and_every_node_shows_the_whole_fleet() {
    let bin = cluster_binary();
    let dir = tempfile::tempdir().expect("temp dir");
    let fleet = dir.path().join("fleet.toml");
    std::fs::write(&fleet, fleet_toml()).expect("fleet file");
    let image = dir.path().join("fw.bin");
    std::fs::write(
        &image,
        (0..50_000u32).map(|i| (i % 253) as u8).collect::<Vec<_>>(),
    )
    .expect("image");
    let ports = free_ports(3);
    let nodes = ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{}@127.0.0.1:{p}", i + 1))
        .collect::<Vec<_>>()
        .join(",");

    let (child, addrs) = start_node(
        &bin,
        &[
            "--cos-port".into(),
            "0".into(),
            "--fleet".into(),
            fleet.display().to_string(),
            "--firmware".into(),
            format!("{SUB_PRODUCT}:2.0:{}", image.display()),
            "--cluster-node".into(),
            "1".into(),
            "--cluster-nodes".into(),
            nodes.clone(),
        ],
    )
    .await;
    let owner = served(child, &addrs);
    let mut edges = Vec::new();
    for node in 2..=3 {
        let (child, addrs) = start_node(
            &bin,
            &[
                "--cluster-node".into(),
                node.to_string(),
                "--cluster-nodes".into(),
                nodes.clone(),
                "--cluster-owner".into(),
                owner.api.to_string(),
            ],
        )
        .await;
        edges.push(served(child, &addrs));
    }

    // Auth holds on every node: the owner decides, whichever node the CONNECT reached.
    for node in [&owner, &edges[0], &edges[1]] {
        assert_eq!(
            connack_with_a_wrong_password(node.mqtt).await,
            ConnectReturnCode::BadUserNamePassword,
            "node with MQTT on {}",
            node.mqtt
        );
    }

    // A gateway on each node.
    let mqtt = [owner.mqtt, edges[0].mqtt, edges[1].mqtt];
    let gateways: Vec<Gateway> = (0..GATEWAYS)
        .map(|g| start_gateway(g, mqtt[g], dir.path().join(format!("gw{g}"))))
        .collect();
    let all = GATEWAYS * SUBS_PER_GATEWAY;
    wait_api(&owner, "/api/devices", |d| {
        subdevices_in(d, |s| s["online"] == true && s["version"] == "1.0") == all
    })
    .await;

    // One task over the whole fleet.
    let push: Value = serde_json::json!({
        "product_id": SUB_PRODUCT, "version": "2.0",
        "method": "versions", "from_versions": ["1.0"],
    });
    let (status, created) = post(owner.api, "/api/tasks", &push).await;
    assert_eq!(status, 201, "{created}");
    let done = wait_api(&owner, "/api/devices", |d| {
        subdevices_in(d, |s| s["version"] == "2.0") == all
    })
    .await;
    assert_eq!(
        subdevices_in(&done, |s| s["update"]["state"]["state"] == "succeeded"),
        all,
        "{done:#}"
    );

    // Every node's control API shows the whole fleet, updated, and the gateways online.
    for edge in &edges {
        let (status, seen) = get(edge.api, "/api/devices").await;
        assert_eq!(status, 200, "{seen}");
        assert_eq!(subdevices_in(&seen, |s| s["version"] == "2.0"), all);
        let online_gateways = seen
            .as_array()
            .expect("a list")
            .iter()
            .filter(|d| d["device"]["product_id"] == GW_PRODUCT && d["online"] == true)
            .count();
        assert_eq!(
            online_gateways, GATEWAYS,
            "through the edge at {}",
            edge.api
        );
    }

    // The owner's transcript holds each node's refused CONNECT and each gateway's reports.
    let (_, transcript) = get(owner.api, "/api/transcript").await;
    let refused = transcript
        .as_array()
        .expect("a transcript")
        .iter()
        .filter(|e| {
            e["topic"] == "connect"
                && e["payload"]
                    .as_str()
                    .is_some_and(|p| p.starts_with("BadCredentials"))
        })
        .count();
    assert_eq!(refused, 3, "one refused CONNECT per node");

    for gw in gateways {
        gw.shutdown().await;
    }
}
