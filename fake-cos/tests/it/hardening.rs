//! Attacks from a hostile client, bounded in count and time, on loopback: what must not grow,
//! hang, wrap or leak.

use std::time::Duration;

use fake_cos::{Cos, CosConfig, MAX_FIELD_BYTES};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::admin_client::call;
use crate::client::{DEADLINE, FW_NAME, firmware, request};

async fn start(config: CosConfig) -> Cos {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let cos = fake_cos::start(listener, config).await.expect("start");
    cos.put_object(FW_NAME, firmware(1000)).expect("valid name");
    cos
}

/// Reads until the server closes the connection; panics if it is still open at the deadline.
async fn closed_by_server(stream: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(DEADLINE, stream.read(&mut buf)).await {
            Err(_) => panic!("the server kept the connection open past {DEADLINE:?}"),
            Ok(Ok(0) | Err(_)) => return,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn slow_or_silent_request_heads_are_closed_at_the_header_deadline() {
    let cos = start(CosConfig {
        header_timeout: Some(Duration::from_millis(200)),
        ..CosConfig::default()
    })
    .await;
    let addr = cos.local_addr();
    let mut silent = TcpStream::connect(addr).await.expect("connect");
    let mut one_byte = TcpStream::connect(addr).await.expect("connect");
    one_byte.write_all(b"G").await.expect("write");
    let mut trickle = TcpStream::connect(addr).await.expect("connect");
    trickle
        .write_all(b"GET /x HTTP/1.1\r\nHost: a\r\n")
        .await
        .expect("write");
    for stream in [&mut silent, &mut one_byte, &mut trickle] {
        closed_by_server(stream).await;
    }
    cos.shutdown().await;
}

#[tokio::test]
async fn a_connection_flood_is_capped_and_the_control_api_keeps_answering() {
    let cos = start(CosConfig {
        max_connections: Some(4),
        header_timeout: Some(Duration::from_secs(600)),
        ..CosConfig::default()
    })
    .await;
    let admin = cos
        .serve_admin(TcpListener::bind("127.0.0.1:0").await.expect("bind"))
        .await
        .expect("admin");
    let addr = cos.local_addr();
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(addr).await.expect("connect"));
    }
    // Each of the 4 is admitted before the next accept; wait until they all are served by
    // checking that the next connections are the ones refused.
    for _ in 0..50 {
        let mut extra = TcpStream::connect(addr)
            .await
            .expect("the kernel still accepts");
        closed_by_server(&mut extra).await;
    }
    let objects = call(admin.local_addr(), "GET", "/objects", b"").await;
    assert_eq!(
        objects.status, 200,
        "the control API answers during the flood"
    );
    drop(held);
    let url = cos.signed_url(FW_NAME, DEADLINE).expect("valid");
    let target = url
        .strip_prefix(&format!("http://{addr}"))
        .expect("on the listener")
        .to_owned();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let served = tokio::time::timeout(DEADLINE, request(addr, "GET", &target, &[])).await;
        if served.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the firmware port never recovered after the flood"
        );
        tokio::task::yield_now().await;
    }
    admin.shutdown().await;
    cos.shutdown().await;
}

#[tokio::test]
async fn the_journal_is_a_bounded_ring_of_truncated_entries() {
    let cos = start(CosConfig {
        journal_capacity: Some(5),
        ..CosConfig::default()
    })
    .await;
    let addr = cos.local_addr();
    let long_path = format!("/{}", "a".repeat(60_000));
    let long_range = format!("bytes=0-{}", "9".repeat(5_000));
    for _ in 0..12 {
        request(addr, "GET", &long_path, &[("Range", &long_range)]).await;
    }
    let journal = cos.journal();
    let seqs: Vec<u64> = journal.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [8, 9, 10, 11, 12], "only the newest 5 are kept");
    for entry in &journal {
        assert_eq!(entry.path.len(), MAX_FIELD_BYTES);
        assert_eq!(entry.full_len["path"], 60_001);
        assert_eq!(entry.range.as_ref().map(String::len), Some(MAX_FIELD_BYTES));
        assert_eq!(entry.full_len["range"], long_range.len() as u64);
        assert_eq!(entry.status, 400);
    }
    let page = cos.journal_page(8, 2);
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [9, 10]);
    cos.shutdown().await;
}

#[tokio::test]
async fn the_control_api_pages_the_journal() {
    let cos = start(CosConfig::default()).await;
    let admin = cos
        .serve_admin(TcpListener::bind("127.0.0.1:0").await.expect("bind"))
        .await
        .expect("admin");
    for _ in 0..5 {
        request(cos.local_addr(), "GET", "/missing", &[]).await;
    }
    let api = admin.local_addr();
    let page = call(api, "GET", "/journal?since=1&limit=2", b"")
        .await
        .json();
    let seqs: Vec<u64> = page
        .as_array()
        .expect("a list")
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seqs, [2, 3]);
    for bad in [
        "limit=0",
        "limit=10001",
        "limit=18446744073709551615",
        "limit=x",
    ] {
        let resp = call(api, "GET", &format!("/journal?{bad}"), b"").await;
        assert_eq!(resp.status, 400, "{bad}");
        assert!(resp.error().starts_with("limit"), "{bad}: {}", resp.error());
    }
    admin.shutdown().await;
    cos.shutdown().await;
}

/// Every number the control API takes, at its extremes: a clean 2xx or a 400 naming the
/// field, never a panic, a wrapped clock or an already expired URL.
#[tokio::test]
async fn extremes_of_every_control_api_number_are_range_checked() {
    let cos = start(CosConfig::default()).await;
    let admin = cos
        .serve_admin(TcpListener::bind("127.0.0.1:0").await.expect("bind"))
        .await
        .expect("admin");
    let api = admin.local_addr();
    let max = u64::MAX;
    let refused: Vec<(String, String, &str)> = vec![
        (
            format!("/objects/{FW_NAME}/url?valid_secs={max}"),
            String::new(),
            "valid_secs",
        ),
        (
            format!("/objects/{FW_NAME}/url?valid_secs=1{max}"),
            String::new(),
            "valid_secs",
        ),
        ("/journal?since=-1".into(), String::new(), "since"),
        (
            "/clock".into(),
            format!(r#"{{"advance_secs":{max}}}"#),
            "advance_secs",
        ),
        (
            "/clock".into(),
            format!(r#"{{"offset_ms":{}}}"#, i64::MIN),
            "offset_ms",
        ),
        (
            "/clock".into(),
            format!(r#"{{"offset_ms":{}}}"#, i64::MAX),
            "offset_ms",
        ),
        (
            "/rules".into(),
            r#"{"verdict":{"kind":"status","code":65535},"fires":"once"}"#.into(),
            "verdict.code",
        ),
        (
            "/rules".into(),
            r#"{"verdict":{"kind":"throttle","bytes_per_sec":0},"fires":"once"}"#.into(),
            "verdict.bytes_per_sec",
        ),
        (
            "/rules".into(),
            r#"{"when":{"attempt":0},"verdict":{"kind":"chunked"},"fires":"once"}"#.into(),
            "when.attempt",
        ),
        (
            "/rules".into(),
            r#"{"verdict":{"kind":"chunked"},"fires":{"times":0}}"#.into(),
            "fires",
        ),
    ];
    for (path, body, field) in &refused {
        let method = if body.is_empty() { "GET" } else { "POST" };
        let resp = call(api, method, path, body.as_bytes()).await;
        assert_eq!(resp.status, 400, "{path} {body}");
        assert!(
            resp.error().contains(field),
            "{path} {body}: {}",
            resp.error()
        );
    }
    let accepted = [
        format!(
            r#"{{"when":{{"attempt":{},"nth_request":{max},"range_start":{max}}},"verdict":{{"kind":"cut_after","bytes":{max}}},"fires":{{"times":{}}}}}"#,
            u32::MAX,
            u32::MAX
        ),
        format!(
            r#"{{"verdict":{{"kind":"corrupt","offset":{max},"len":{max}}},"fires":"always"}}"#
        ),
        format!(r#"{{"verdict":{{"kind":"throttle","bytes_per_sec":{max}}},"fires":"always"}}"#),
        format!(
            r#"{{"verdict":{{"kind":"wrong_content_length","delta":{}}},"fires":"always"}}"#,
            i64::MIN
        ),
        format!(
            r#"{{"verdict":{{"kind":"status","code":503,"retry_after_secs":{max}}},"fires":"once"}}"#
        ),
    ];
    for rule in &accepted {
        let resp = call(api, "POST", "/rules", rule.as_bytes()).await;
        assert_eq!(resp.status, 201, "{rule}: {}", resp.error());
    }
    let resp = call(
        api,
        "GET",
        &format!("/objects/{FW_NAME}/url?valid_secs=3153600000"),
        b"",
    )
    .await;
    assert_eq!(resp.status, 200, "100 years is allowed");
    let url = resp.json()["url"].as_str().expect("url").to_owned();
    let expires: u64 = url
        .rsplit("t=")
        .next()
        .and_then(|t| t.parse().ok())
        .expect("t");
    assert!(
        expires > cos.clock().now_unix(),
        "not already expired: {url}"
    );
    let target = url
        .strip_prefix(&format!("http://{}", cos.local_addr()))
        .expect("on the listener");
    for _ in 0..3 {
        let resp = request(cos.local_addr(), "GET", target, &[("Range", "bytes=0-")]).await;
        assert!(resp.status() < 600, "answered under the extreme rules");
    }
    assert_eq!(
        call(api, "DELETE", &format!("/rules/{max}"), b"")
            .await
            .status,
        404
    );
    assert_eq!(
        call(api, "GET", "/objects", b"").await.status,
        200,
        "still alive"
    );
    admin.shutdown().await;
    cos.shutdown().await;
}
