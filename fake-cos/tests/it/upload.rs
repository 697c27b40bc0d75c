//! `PUT Object` with COS XML API signatures: stored whole or not at all, bounded in size.

use std::time::Duration;

use base64::Engine;
use fake_cos::{Cos, CosConfig, CosKey};
use md5::{Digest, Md5};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use crate::client::{DEADLINE, read_response, request, request_with_body};

fn key() -> CosKey {
    CosKey::new("AKIDtest", "test-secret").expect("valid pair")
}

async fn start(max_object_bytes: Option<u64>) -> Cos {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let config = CosConfig {
        keys: vec![key()],
        max_object_bytes,
        ..CosConfig::default()
    };
    fake_cos::start(listener, config).await.expect("start")
}

/// The path and query of a presigned URL, as a raw client sends it.
fn target(cos: &Cos, url: &str) -> String {
    url.strip_prefix(&format!("http://{}", cos.local_addr()))
        .expect("URL on the listener")
        .to_owned()
}

fn put_target(cos: &Cos, name: &str) -> String {
    let url = cos
        .presigned_put_url(name, &key(), Duration::from_secs(600))
        .expect("configured key");
    target(cos, &url)
}

#[tokio::test]
async fn presigned_put_stores_and_a_presigned_get_reads_it_back() {
    let cos = start(None).await;
    let addr = cos.local_addr();
    let put = put_target(&cos, "fw.bin");
    let resp = request_with_body(addr, "PUT", &put, &[], b"firmware v1").await;
    assert_eq!(resp.status(), 200, "{}", resp.text());
    let info = cos.object_info("fw.bin").expect("stored");
    assert_eq!(resp.header("Etag"), Some(info.etag.as_str()));
    let get = cos
        .presigned_url(
            &axum::http::Method::GET,
            "fw.bin",
            &key(),
            Duration::from_secs(60),
        )
        .expect("configured key");
    let resp = request(addr, "GET", &target(&cos, &get), &[("Range", "bytes=9-")]).await;
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.body, b"v1");
    // The instance's own download URLs keep working next to q-sign ones.
    let legacy = cos
        .signed_url("fw.bin", Duration::from_secs(60))
        .expect("valid");
    assert_eq!(
        request(addr, "GET", &target(&cos, &legacy), &[])
            .await
            .status(),
        200
    );
    cos.shutdown().await;
}

#[tokio::test]
async fn put_without_q_sign_is_access_denied_even_with_a_download_url() {
    let cos = start(None).await;
    let addr = cos.local_addr();
    cos.put_object("fw.bin", b"original".to_vec())
        .expect("valid");
    let legacy = cos
        .signed_url("fw.bin", Duration::from_secs(60))
        .expect("valid");
    for target in [target(&cos, &legacy), "/fw.bin".to_owned()] {
        let resp = request_with_body(addr, "PUT", &target, &[], b"evil").await;
        assert_eq!(resp.status(), 403, "{target}");
        assert!(
            resp.text().contains("<Code>AccessDenied</Code>"),
            "{}",
            resp.text()
        );
    }
    let tampered = put_target(&cos, "fw.bin").replace("q-signature=", "q-signature=0");
    let resp = request_with_body(addr, "PUT", &tampered, &[], b"evil").await;
    assert_eq!(resp.status(), 403);
    assert!(resp.text().contains("<Code>SignatureDoesNotMatch</Code>"));
    let other_name = put_target(&cos, "other.bin").replace("/other.bin", "/fw.bin");
    let resp = request_with_body(addr, "PUT", &other_name, &[], b"evil").await;
    assert!(resp.text().contains("<Code>SignatureDoesNotMatch</Code>"));
    assert_eq!(cos.object_info("fw.bin").expect("kept").size, 8);
    cos.shutdown().await;
}

#[tokio::test]
async fn expired_presigned_put_is_request_has_expired() {
    let cos = start(None).await;
    let put = put_target(&cos, "fw.bin");
    cos.advance_clock(Duration::from_secs(601));
    let resp = request_with_body(cos.local_addr(), "PUT", &put, &[], b"late").await;
    assert_eq!(resp.status(), 403);
    assert!(
        resp.text()
            .contains("<Message>Request has expired</Message>")
    );
    assert!(cos.object_info("fw.bin").is_none());
    cos.shutdown().await;
}

#[tokio::test]
async fn oversize_put_is_entity_too_large_and_keeps_the_old_object() {
    let cos = start(Some(1000)).await;
    let addr = cos.local_addr();
    cos.put_object("fw.bin", vec![1u8; 10]).expect("valid");
    let put = put_target(&cos, "fw.bin");
    let resp = request_with_body(addr, "PUT", &put, &[], &[2u8; 1001]).await;
    assert_eq!(resp.status(), 400);
    assert!(resp.text().contains("<Code>EntityTooLarge</Code>"));
    // Chunked, so the size is only known while reading.
    let chunked = format!("3e9\r\n{}\r\n0\r\n\r\n", "x".repeat(1001));
    let resp = request_with_body(
        addr,
        "PUT",
        &put,
        &[("Transfer-Encoding", "chunked")],
        chunked.as_bytes(),
    )
    .await;
    assert_eq!(resp.status(), 400, "{}", resp.text());
    assert!(resp.text().contains("<Code>EntityTooLarge</Code>"));
    assert_eq!(cos.object_info("fw.bin").expect("kept").size, 10);
    let resp = request_with_body(addr, "PUT", &put, &[], &[3u8; 1000]).await;
    assert_eq!(resp.status(), 200, "exactly the limit is fine");
    cos.shutdown().await;
}

#[tokio::test]
async fn put_cut_mid_body_or_with_a_wrong_md5_stores_nothing() {
    let cos = start(None).await;
    let addr = cos.local_addr();
    cos.put_object("fw.bin", b"original".to_vec())
        .expect("valid");
    let put = put_target(&cos, "fw.bin");
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let head = format!("PUT {put} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 100000\r\n\r\n");
    stream.write_all(head.as_bytes()).await.expect("head");
    stream
        .write_all(&[9u8; 50_000])
        .await
        .expect("half the body");
    stream.shutdown().await.expect("half close");
    let resp = tokio::time::timeout(DEADLINE, read_response(&mut stream))
        .await
        .expect("an answer");
    assert_eq!(resp.status(), 400, "{}", resp.text());
    assert!(resp.text().contains("<Code>IncompleteBody</Code>"));
    let wrong = base64::engine::general_purpose::STANDARD.encode(Md5::digest(b"other"));
    let resp = request_with_body(addr, "PUT", &put, &[("Content-MD5", &wrong)], b"new").await;
    assert_eq!(resp.status(), 400);
    assert!(resp.text().contains("<Code>BadDigest</Code>"));
    assert_eq!(cos.object_info("fw.bin").expect("kept").size, 8);
    cos.shutdown().await;
}
