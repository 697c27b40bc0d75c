//! Ranges, If-Range, HEAD, names and the exact bytes of the response head.

use crate::client::{Ending, FW_SIZE, fixture, get, request};

#[tokio::test]
async fn sdk_range_one_past_the_end_gets_206_clamped_to_last_byte() {
    let fx = fixture().await;
    let resp = get(&fx, &[("Range", "bytes=0-29972")]).await;
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.header("Content-Range"), Some("bytes 0-29971/29972"));
    assert_eq!(resp.header("Content-Length"), Some("29972"));
    assert_eq!(resp.body, fx.bytes);
    assert_eq!(resp.ending, Ending::Eof);
    fx.cos.shutdown().await;
}

#[tokio::test]
async fn resume_range_serves_the_rest_from_the_offset() {
    let fx = fixture().await;
    let resp = get(&fx, &[("Range", "bytes=4999-29972")]).await;
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.header("Content-Range"), Some("bytes 4999-29971/29972"));
    assert_eq!(resp.body, &fx.bytes[4999..]);
    fx.cos.shutdown().await;
}

#[tokio::test]
async fn open_ended_and_suffix_ranges_reach_the_last_byte() {
    let fx = fixture().await;
    let open = get(&fx, &[("Range", "bytes=29000-")]).await;
    assert_eq!(
        open.header("Content-Range"),
        Some("bytes 29000-29971/29972")
    );
    assert_eq!(open.body, &fx.bytes[29_000..]);
    let suffix = get(&fx, &[("Range", "bytes=-100")]).await;
    assert_eq!(suffix.status(), 206);
    assert_eq!(
        suffix.header("Content-Range"),
        Some("bytes 29872-29971/29972")
    );
    assert_eq!(suffix.body, &fx.bytes[FW_SIZE - 100..]);
    fx.cos.shutdown().await;
}

#[tokio::test]
async fn no_range_serves_the_whole_object_with_200() {
    let fx = fixture().await;
    let resp = get(&fx, &[]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.header("Content-Range"), None);
    assert_eq!(
        resp.header("ETag").or(resp.header("Etag")),
        Some(fx.info.etag.as_str())
    );
    assert_eq!(resp.body, fx.bytes);
    fx.cos.shutdown().await;
}

#[tokio::test]
async fn range_starting_at_or_past_the_end_is_416_with_star_content_range() {
    let fx = fixture().await;
    for range in ["bytes=29972-29972", "bytes=40000-"] {
        let resp = get(&fx, &[("Range", range)]).await;
        assert_eq!(resp.status(), 416, "{range}");
        assert_eq!(resp.header("Content-Range"), Some("bytes */29972"));
        assert!(resp.text().contains("<Code>InvalidRange</Code>"));
    }
    fx.cos.shutdown().await;
}

#[tokio::test]
async fn malformed_and_multiple_ranges_are_ignored_with_200_whole() {
    let fx = fixture().await;
    for range in ["bytes=5-3", "bytes=abc", "pages=0-1", "bytes=0-1,5-9"] {
        let resp = get(&fx, &[("Range", range)]).await;
        assert_eq!(resp.status(), 200, "{range}");
        assert_eq!(resp.body, fx.bytes, "{range}");
    }
    fx.cos.shutdown().await;
}

#[tokio::test]
async fn if_range_with_current_etag_honours_the_range_and_stale_one_gets_whole() {
    let fx = fixture().await;
    let etag = fx.info.etag.clone();
    let fresh = get(&fx, &[("Range", "bytes=100-"), ("If-Range", &etag)]).await;
    assert_eq!(fresh.status(), 206);
    assert_eq!(fresh.body, &fx.bytes[100..]);
    let stale = get(&fx, &[("Range", "bytes=100-"), ("If-Range", "\"0000\"")]).await;
    assert_eq!(stale.status(), 200);
    assert_eq!(stale.body, fx.bytes);
    let date = httpdate::fmt_http_date(fx.info.last_modified);
    let by_date = get(&fx, &[("Range", "bytes=100-"), ("If-Range", &date)]).await;
    assert_eq!(by_date.status(), 206);
    fx.cos.shutdown().await;
}

#[tokio::test]
async fn head_reports_length_and_range_without_a_body() {
    let fx = fixture().await;
    let addr = fx.cos.local_addr();
    let whole = request(addr, "HEAD", &fx.target, &[]).await;
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.header("Content-Length"), Some("29972"));
    assert!(whole.body.is_empty());
    let part = request(addr, "HEAD", &fx.target, &[("Range", "bytes=0-29972")]).await;
    assert_eq!(part.status(), 206);
    assert_eq!(part.header("Content-Range"), Some("bytes 0-29971/29972"));
    assert!(part.body.is_empty());
    fx.cos.shutdown().await;
}

/// The C SDK fails with `Could not parse header` on lower-case names, chunking or gzip.
#[tokio::test]
async fn wire_head_is_title_case_small_and_never_chunked_or_gzipped() {
    let fx = fixture().await;
    let sdk_headers = [
        (
            "Accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        ("Accept-Encoding", "gzip, deflate"),
        ("Range", "bytes=0-29972"),
    ];
    let resp = get(&fx, &sdk_headers).await;
    assert!(
        resp.head.starts_with("HTTP/1.1 206 Partial Content\r\n"),
        "{}",
        resp.head
    );
    assert_eq!(resp.header("Content-Length"), Some("29972"));
    assert_eq!(
        resp.header("Content-Type"),
        Some("application/octet-stream")
    );
    assert_eq!(resp.header("Accept-Ranges"), Some("bytes"));
    assert!(resp.header("Last-Modified").is_some());
    assert!(
        resp.header("Etag").is_some(),
        "hyper title-cases ETag as Etag"
    );
    let lower = resp.head.to_ascii_lowercase();
    assert!(!lower.contains("transfer-encoding"), "{}", resp.head);
    assert!(!lower.contains("content-encoding"), "{}", resp.head);
    for line in resp.head.lines().skip(1) {
        let first = line.chars().next().expect("no empty header line");
        assert!(first.is_ascii_uppercase(), "header not title-case: {line}");
    }
    assert!(resp.head.len() < 1024, "head is {} bytes", resp.head.len());
    assert_eq!(resp.body.len(), 29_972);
    fx.cos.shutdown().await;
}

#[tokio::test]
async fn traversal_and_multi_segment_paths_are_400_invalid_uri() {
    let fx = fixture().await;
    let addr = fx.cos.local_addr();
    for path in [
        "/../etc/passwd",
        "/%2e%2e",
        "/%2e%2e%2fetc",
        "/a/b",
        "/",
        "/..",
        "/fw%20a",
    ] {
        let resp = request(addr, "GET", path, &[]).await;
        assert_eq!(resp.status(), 400, "{path}");
        assert!(resp.text().contains("<Code>InvalidURI</Code>"), "{path}");
        assert_eq!(resp.header("Content-Type"), Some("application/xml"));
    }
    fx.cos.shutdown().await;
}

#[tokio::test]
async fn other_methods_are_405() {
    let fx = fixture().await;
    let resp = request(fx.cos.local_addr(), "DELETE", &fx.target, &[]).await;
    assert_eq!(resp.status(), 405);
    assert!(resp.text().contains("<Code>MethodNotAllowed</Code>"));
    fx.cos.shutdown().await;
}

#[tokio::test]
async fn deleted_object_is_404_no_such_key_with_cos_xml() {
    let fx = fixture().await;
    assert!(fx.cos.delete_object(&fx.info.name));
    let resp = get(&fx, &[]).await;
    assert_eq!(resp.status(), 404);
    let body = resp.text();
    assert!(
        body.starts_with("<?xml version='1.0' encoding='utf-8' ?>"),
        "{body}"
    );
    assert!(body.contains("<Code>NoSuchKey</Code>"));
    assert!(body.contains(&format!("<Resource>/{}</Resource>", fx.info.name)));
    assert!(body.contains("<RequestId>"));
    fx.cos.shutdown().await;
}

#[tokio::test]
async fn put_object_reports_size_md5_and_quoted_etag() {
    let fx = fixture().await;
    let info = fx
        .cos
        .put_object("fw.bin", bytes::Bytes::from_static(b"hello"))
        .expect("valid");
    assert_eq!(info.size, 5);
    assert_eq!(info.md5_hex, "5d41402abc4b2a76b9719d911017c592");
    assert_eq!(info.etag, "\"5d41402abc4b2a76b9719d911017c592\"");
    assert!(fx.cos.put_object("../x", bytes::Bytes::new()).is_err());
    fx.cos.shutdown().await;
}
