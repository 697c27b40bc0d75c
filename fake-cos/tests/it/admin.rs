//! The control API over real HTTP on loopback.

use std::time::Duration;

use fake_cos::{Admin, ConnEnd};
use tokio::net::TcpListener;

use crate::admin_client::call;
use crate::client::{FW_NAME, Fixture, fixture, get, request};

async fn admin(fx: &Fixture) -> Admin {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    fx.cos
        .serve_admin(listener)
        .await
        .expect("control API starts")
}

#[tokio::test]
async fn objects_can_be_put_listed_signed_and_deleted_over_http() {
    let fx = fixture().await;
    let api = admin(&fx).await;
    let addr = api.local_addr();
    let put = call(addr, "PUT", "/objects/new.bin", b"hello firmware").await;
    assert_eq!(put.status, 201);
    assert_eq!(put.json()["size"], 14);
    assert_eq!(put.json()["md5_hex"], fake_cos_md5(b"hello firmware"));
    let listed = call(addr, "GET", "/objects", b"").await.json();
    let names: Vec<&str> = listed
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|o| o["name"].as_str())
        .collect();
    assert_eq!(names, [FW_NAME, "new.bin"]);
    let url = call(addr, "GET", "/objects/new.bin/url?valid_secs=60", b"").await;
    let url = url.json()["url"].as_str().expect("url").to_owned();
    let target = url
        .strip_prefix(&format!("http://{}", fx.cos.local_addr()))
        .expect("URL of the firmware listener");
    let fetched = request(fx.cos.local_addr(), "GET", target, &[]).await;
    assert_eq!(
        (fetched.status(), fetched.body.as_slice()),
        (200, &b"hello firmware"[..])
    );
    assert_eq!(
        call(addr, "DELETE", "/objects/new.bin", b"").await.status,
        204
    );
    assert_eq!(
        call(addr, "DELETE", "/objects/new.bin", b"").await.status,
        404
    );
    assert_eq!(
        request(fx.cos.local_addr(), "GET", target, &[])
            .await
            .status(),
        404
    );
    api.shutdown().await;
    fx.cos.shutdown().await;
}

fn fake_cos_md5(bytes: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(bytes))
}

#[tokio::test]
async fn a_rule_added_over_http_fires_is_listed_with_its_count_and_can_be_removed() {
    let fx = fixture().await;
    let api = admin(&fx).await;
    let addr = api.local_addr();
    let rule = r#"{"when":{"object":"100003908905_E69UADXUYY_V100R0001"},
        "verdict":{"kind":"status","code":404},"fires":"always"}"#;
    let added = call(addr, "POST", "/rules", rule.as_bytes()).await;
    assert_eq!(added.status, 201);
    let id = added.json()["id"].as_u64().expect("numeric id");
    assert_eq!(get(&fx, &[]).await.status(), 404);
    let rules = call(addr, "GET", "/rules", b"").await.json();
    assert_eq!(rules[0]["id"], id);
    assert_eq!(rules[0]["fired"], 1);
    assert_eq!(rules[0]["rule"]["verdict"]["kind"], "status");
    let path = format!("/rules/{id}");
    assert_eq!(call(addr, "DELETE", &path, b"").await.status, 204);
    assert_eq!(call(addr, "DELETE", &path, b"").await.status, 404);
    assert_eq!(get(&fx, &[]).await.status(), 200);
    api.shutdown().await;
    fx.cos.shutdown().await;
}

#[tokio::test]
async fn malformed_or_invalid_rules_get_400_naming_the_field() {
    let fx = fixture().await;
    let api = admin(&fx).await;
    let addr = api.local_addr();
    let cases: [(&str, &str); 6] = [
        ("{not json", "rule:"),
        (
            r#"{"verdict":{"kind":"cut_after","byte":1},"fires":"once"}"#,
            "byte",
        ),
        (r#"{"verdict":{"kind":"cut_after","bytes":1}}"#, "fires"),
        (
            r#"{"verdict":{"kind":"teleport"},"fires":"once"}"#,
            "teleport",
        ),
        (
            r#"{"verdict":{"kind":"status","code":200},"fires":"once"}"#,
            "verdict.code",
        ),
        (
            r#"{"when":{"attempt":0},"verdict":{"kind":"gzip"},"fires":"always"}"#,
            "when.attempt",
        ),
    ];
    for (body, field) in cases {
        let answer = call(addr, "POST", "/rules", body.as_bytes()).await;
        assert_eq!(answer.status, 400, "{body}");
        assert!(answer.error().contains(field), "{body}: {}", answer.error());
    }
    let bad_id = call(addr, "DELETE", "/rules/abc", b"").await;
    assert_eq!(
        (bad_id.status, bad_id.error().starts_with("id:")),
        (400, true)
    );
    let bad_since = call(addr, "GET", "/journal?since=-1", b"").await;
    assert_eq!(
        (bad_since.status, bad_since.error().starts_with("since:")),
        (400, true)
    );
    let bad_name = call(addr, "PUT", "/objects/..", b"x").await;
    assert_eq!(
        (bad_name.status, bad_name.error().starts_with("name:")),
        (400, true)
    );
    let unknown = call(addr, "GET", "/nowhere", b"").await;
    assert_eq!(unknown.status, 404);
    assert!(
        call(addr, "GET", "/rules", b"")
            .await
            .json()
            .as_array()
            .expect("list")
            .is_empty()
    );
    api.shutdown().await;
    fx.cos.shutdown().await;
}

#[tokio::test]
async fn journal_since_returns_only_later_requests() {
    let fx = fixture().await;
    let api = admin(&fx).await;
    for _ in 0..3 {
        get(&fx, &[("Range", "bytes=0-9")]).await;
    }
    let later = call(api.local_addr(), "GET", "/journal?since=1", b"")
        .await
        .json();
    let seqs: Vec<u64> = later
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|e| e["seq"].as_u64())
        .collect();
    assert_eq!(seqs, [2, 3]);
    assert_eq!(later[0]["end"], "complete");
    assert_eq!(later[0]["range"], "bytes=0-9");
    api.shutdown().await;
    fx.cos.shutdown().await;
}

#[tokio::test]
async fn moving_the_clock_over_http_expires_signed_urls() {
    let fx = fixture().await;
    let api = admin(&fx).await;
    let addr = api.local_addr();
    let moved = call(addr, "POST", "/clock", br#"{"advance_secs": 7200}"#).await;
    assert_eq!(
        (moved.status, moved.json()["offset_ms"].as_i64()),
        (200, Some(7_200_000))
    );
    let expired = get(&fx, &[]).await;
    assert_eq!(expired.status(), 403);
    assert!(expired.text().contains("Request has expired"));
    let both = call(
        addr,
        "POST",
        "/clock",
        br#"{"advance_secs":1,"offset_ms":0}"#,
    )
    .await;
    assert_eq!(both.status, 400);
    assert!(both.error().contains("advance_secs"), "{}", both.error());
    let back = call(addr, "POST", "/clock", br#"{"offset_ms": 0}"#).await;
    assert_eq!(back.json()["offset_ms"], 0);
    assert_eq!(get(&fx, &[]).await.status(), 200);
    api.shutdown().await;
    fx.cos.shutdown().await;
}

#[tokio::test]
async fn reset_over_http_forgets_rules_journal_and_clock_and_keeps_objects() {
    let fx = fixture().await;
    let api = admin(&fx).await;
    let addr = api.local_addr();
    let rule = br#"{"verdict":{"kind":"status","code":500},"fires":"always"}"#;
    assert_eq!(call(addr, "POST", "/rules", rule).await.status, 201);
    call(addr, "POST", "/clock", br#"{"advance_secs": 60}"#).await;
    get(&fx, &[]).await;
    assert_eq!(call(addr, "POST", "/reset", b"").await.status, 204);
    assert!(fx.cos.rules().is_empty());
    assert_eq!(fx.cos.list_objects().len(), 1, "the served object stays");
    assert_eq!(fx.cos.clock().offset_ms(), 0);
    let journal = call(addr, "GET", "/journal", b"").await.json();
    assert_eq!(journal.as_array().map(Vec::len), Some(0));
    assert_eq!(get(&fx, &[]).await.status(), 200);
    api.shutdown().await;
    fx.cos.shutdown().await;
}

#[tokio::test]
async fn the_control_api_stops_with_the_instance() {
    let fx = fixture().await;
    let api = admin(&fx).await;
    let addr = api.local_addr();
    assert_eq!(call(addr, "GET", "/", b"").await.status, 200);
    fx.cos.shutdown().await;
    let refused = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::TcpStream::connect(addr),
    )
    .await
    .expect("connect answers at once");
    assert!(refused.is_err(), "listener closed with the instance");
    api.shutdown().await;
}

#[tokio::test]
async fn live_journal_feed_sees_each_request_start_and_end() {
    let fx = fixture().await;
    let mut live = fx.cos.subscribe_journal();
    get(&fx, &[("Range", "bytes=0-29972")]).await;
    let first = live.recv().await.expect("start of the request");
    assert_eq!((first.seq, first.end), (1, ConnEnd::InProgress));
    let done = live.recv().await.expect("end of the request");
    assert_eq!(
        (done.seq, done.end, done.body_bytes_sent),
        (1, ConnEnd::Complete, 29_972)
    );
    request(fx.cos.local_addr(), "GET", "/a/b", &[]).await;
    let refused = live
        .recv()
        .await
        .expect("a refused request, complete at once");
    assert_eq!(
        (refused.seq, refused.status, refused.end),
        (2, 400, ConnEnd::Complete)
    );
    fx.cos.shutdown().await;
}

#[tokio::test]
async fn every_verdict_kind_can_be_installed_over_http() {
    let fx = fixture().await;
    let api = admin(&fx).await;
    let verdicts = [
        r#"{"kind":"status","code":503,"retry_after_secs":2}"#,
        r#"{"kind":"cut_after","bytes":10}"#,
        r#"{"kind":"ignore_range"}"#,
        r#"{"kind":"corrupt","offset":5,"len":2,"xor":1}"#,
        r#"{"kind":"stall_after","bytes":10,"for_ms":5}"#,
        r#"{"kind":"throttle","bytes_per_sec":1000}"#,
        r#"{"kind":"wrong_content_length","delta":-3}"#,
        r#"{"kind":"chunked"}"#,
        r#"{"kind":"gzip"}"#,
        r#"{"kind":"redirect","location":"/elsewhere","status":307}"#,
        r#"{"kind":"reset","after_bytes":0}"#,
        r#"{"kind":"replace_object","with_object":"other.bin"}"#,
    ];
    for (i, verdict) in verdicts.iter().enumerate() {
        let rule = format!(
            r#"{{"when":{{"nth_request":{}}},"verdict":{verdict},"fires":{{"times":2}}}}"#,
            i + 1
        );
        let added = call(api.local_addr(), "POST", "/rules", rule.as_bytes()).await;
        assert_eq!(
            added.status,
            201,
            "{verdict}: {}",
            String::from_utf8_lossy(&added.body)
        );
    }
    let listed = call(api.local_addr(), "GET", "/rules", b"").await.json();
    let kinds: Vec<&str> = listed
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|r| r["rule"]["verdict"]["kind"].as_str())
        .collect();
    assert_eq!(kinds.len(), 12);
    assert_eq!(fx.cos.rules().len(), 12);
    api.shutdown().await;
    fx.cos.shutdown().await;
}
