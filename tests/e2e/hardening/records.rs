//! Attack 3: memory grew without bound with no credentials. Every CONNECT added a transcript
//! entry with its client id: 5,000 CONNECTs with 16 KB ids took the hub from 28 to 103 MB RSS.
//! The transcript is now a bounded ring, oversize fields are kept truncated with their
//! length, and readers page through it.

use super::wire::{Connect, Raw};
use super::{request, rss_kib, two_gateway_hub};
use crate::hub::serve_hub;
use fake_hub::{Direction, HubConfig, TranscriptLimits};
use std::net::SocketAddr;

/// `count` CONNECTs with `id_len`-byte client ids, `parallel` at a time; every one must be
/// answered with CONNACK 5 (nobody is registered under such an id).
async fn connect_flood(mqtt: SocketAddr, count: usize, id_len: usize, parallel: usize) {
    let mut tasks = Vec::new();
    for worker in 0..parallel {
        tasks.push(tokio::spawn(async move {
            for i in (worker..count).step_by(parallel) {
                let id = format!("{i:08}{}", "x".repeat(id_len - 8));
                let c = Connect {
                    client_id: &id,
                    username: Some("u"),
                    password: Some("p"),
                    will: None,
                    level: 4,
                };
                let (_raw, code) = Raw::connect(mqtt, &c).await;
                assert_eq!(code, Some(5), "CONNECT {i}");
            }
        }));
    }
    for t in tasks {
        t.await.expect("a flood worker");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_connects_with_16_kb_client_ids_leave_the_hub_rss_bounded() {
    let hub = serve_hub(&["--quiet"]).await;
    let pid = hub._child.id().expect("the hub runs");
    // Warm the allocator and the broker up first, so the growth measured is what the flood keeps.
    connect_flood(hub.mqtt, 200, 16_000, 20).await;
    let before = rss_kib(pid);
    connect_flood(hub.mqtt, 5_000, 16_000, 50).await;
    let after = rss_kib(pid);
    eprintln!("hub RSS before {before} KiB, after 5,000 CONNECTs with 16 KB ids {after} KiB");
    // Unbounded, the ids alone are 80 MB.
    assert!(
        after < before + 20 * 1024,
        "RSS grew from {before} to {after} KiB"
    );
    let page = request(
        hub.api,
        "GET",
        "/api/transcript?limit=5",
        &[("Host", "127.0.0.1")],
        b"",
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let entries = page.json();
    let first = &entries[0];
    let id = first["client_id"].as_str().expect("a client id");
    assert!(id.len() < 300 && id.ends_with("…[16000 bytes]"), "{id:.80}");
    assert!(page.header("x-next-since").is_some(), "more pages follow");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcript_ring_keeps_the_newest_entries_and_readers_page_through_them() {
    let mut config = HubConfig::loopback();
    config.transcript_limits = TranscriptLimits {
        max_entries: 100,
        max_bytes: 1 << 20,
    };
    let hub = two_gateway_hub(config).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = fake_hub::api::serve(listener, hub.clone()).expect("api serves");
    connect_flood(hub.local_addr(), 250, 10, 10).await;
    let kept = hub.transcript();
    assert_eq!(kept.len(), 100);
    let next = hub.transcript_next_seq();
    assert!(next >= 250, "{next} entries recorded");
    assert_eq!(kept[0].seq, next - 100);
    assert!(kept.windows(2).all(|w| w[1].seq == w[0].seq + 1));
    let host = [("Host", "127.0.0.1")];
    let mut since = 0;
    let mut read = Vec::new();
    loop {
        let page = request(
            api.local_addr(),
            "GET",
            &format!("/api/transcript?since={since}&limit=30"),
            &host,
            b"",
        )
        .await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert_eq!(
            page.header("x-first-seq"),
            Some(kept[0].seq.to_string().as_str())
        );
        let entries = page.json();
        let entries = entries.as_array().expect("an array");
        assert!(entries.len() <= 30);
        read.extend(entries.iter().map(|e| e["seq"].as_u64().unwrap()));
        match page.header("x-next-since") {
            Some(n) => since = n.parse().unwrap(),
            None => break,
        }
    }
    let want: Vec<u64> = kept.iter().map(|e| e.seq).collect();
    assert_eq!(read, want);
    let too_many = request(
        api.local_addr(),
        "GET",
        "/api/transcript?limit=10001",
        &host,
        b"",
    )
    .await;
    assert_eq!(too_many.status, 400);
    assert_eq!(too_many.json()["field"], "limit");
    assert!(kept.iter().all(|e| e.direction == Direction::Event));
    api.shutdown().await;
}
