//! One test per fault verdict, showing its effect on the wire.

use std::io;

use fake_cos::{ConnEnd, FaultRule, Fires, Selector, Verdict};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::client::{DEADLINE, Ending, FW_NAME, FW_SIZE, Fixture, fixture, get};

fn on_fw(verdict: Verdict, fires: Fires) -> FaultRule {
    FaultRule {
        when: Selector {
            object: Some(FW_NAME.into()),
            ..Selector::default()
        },
        verdict,
        fires,
    }
}

const SDK_RANGE: (&str, &str) = ("Range", "bytes=0-29972");

fn last_entry(fx: &Fixture) -> fake_cos::JournalEntry {
    fx.cos.journal().pop().expect("a journal entry")
}

#[tokio::test]
async fn status_fault_answers_503_with_retry_after_once_then_serves() {
    let fx = fixture().await;
    let verdict = Verdict::Status {
        code: 503,
        retry_after_secs: Some(7),
    };
    let rule = fx
        .cos
        .add_rule(on_fw(verdict, Fires::Once))
        .expect("valid rule");
    let resp = get(&fx, &[SDK_RANGE]).await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.header("Retry-After"), Some("7"));
    assert!(resp.text().contains("<Code>ServiceUnavailable</Code>"));
    assert_eq!(get(&fx, &[SDK_RANGE]).await.status(), 206);
    assert_eq!(rule.fired(), 1);
    fx.cos.shutdown().await;
}

#[tokio::test]
async fn cut_after_sends_exactly_n_body_bytes_then_closes() {
    let fx = fixture().await;
    let _rule = fx
        .cos
        .add_rule(on_fw(Verdict::CutAfter { bytes: 9998 }, Fires::Once))
        .expect("valid");
    let resp = get(&fx, &[SDK_RANGE]).await;
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.header("Content-Length"), Some("29972"));
    assert_eq!(resp.ending, Ending::Eof);
    assert_eq!(resp.body, &fx.bytes[..9998]);
    let entry = last_entry(&fx);
    assert_eq!((entry.end, entry.body_bytes_sent), (ConnEnd::Cut, 9998));
    fx.cos.shutdown().await;
}

#[tokio::test]
async fn cut_after_zero_bytes_still_sends_the_head() {
    let fx = fixture().await;
    let _rule = fx
        .cos
        .add_rule(on_fw(Verdict::CutAfter { bytes: 0 }, Fires::Once))
        .expect("valid");
    let resp = get(&fx, &[SDK_RANGE]).await;
    assert_eq!(resp.status(), 206);
    assert!(resp.body.is_empty());
    fx.cos.shutdown().await;
}

#[tokio::test]
async fn ignore_range_answers_a_resume_with_200_and_the_whole_object() {
    let fx = fixture().await;
    let _rule = fx
        .cos
        .add_rule(on_fw(Verdict::IgnoreRange, Fires::Always))
        .expect("valid");
    let resp = get(&fx, &[("Range", "bytes=4999-29972")]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.header("Content-Range"), None);
    assert_eq!(resp.body, fx.bytes);
    fx.cos.shutdown().await;
}

#[tokio::test]
async fn corrupt_flips_the_byte_at_an_absolute_offset_inside_the_range() {
    let fx = fixture().await;
    let verdict = Verdict::Corrupt {
        offset: 5000,
        len: 1,
        xor: 0xFF,
    };
    let _rule = fx
        .cos
        .add_rule(on_fw(verdict, Fires::Always))
        .expect("valid");
    let resp = get(&fx, &[("Range", "bytes=4999-29972")]).await;
    let mut expected = fx.bytes[4999..].to_vec();
    expected[1] ^= 0xFF;
    assert_eq!(resp.body, expected);
    let outside = get(&fx, &[("Range", "bytes=6000-29972")]).await;
    assert_eq!(outside.body, &fx.bytes[6000..]);
    fx.cos.shutdown().await;
}

#[tokio::test]
async fn stall_after_bytes_holds_the_body_until_shutdown() {
    let fx = fixture().await;
    let verdict = Verdict::StallAfter {
        bytes: 4999,
        for_ms: None,
    };
    let _rule = fx.cos.add_rule(on_fw(verdict, Fires::Once)).expect("valid");
    let mut stream = TcpStream::connect(fx.cos.local_addr())
        .await
        .expect("connect");
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: x\r\nRange: bytes=0-29972\r\n\r\n",
        fx.target
    );
    stream.write_all(req.as_bytes()).await.expect("send");
    let stalled = fx
        .cos
        .wait_journal(DEADLINE, |j| {
            j.last().is_some_and(|e| e.end == ConnEnd::Stalled)
        })
        .await
        .expect("body stalls");
    assert_eq!(stalled[0].body_bytes_sent, 4999);
    drop(stream);
    // A stalled body survives the client; shutdown must still end it.
    tokio::time::timeout(DEADLINE, fx.cos.shutdown())
        .await
        .expect("shutdown ends the stall");
}

#[tokio::test]
async fn finite_stall_resumes_and_completes_the_body() {
    let fx = fixture().await;
    let verdict = Verdict::StallAfter {
        bytes: 100,
        for_ms: Some(20),
    };
    let _rule = fx.cos.add_rule(on_fw(verdict, Fires::Once)).expect("valid");
    let resp = get(&fx, &[SDK_RANGE]).await;
    assert_eq!(resp.body, fx.bytes);
    assert_eq!(last_entry(&fx).end, ConnEnd::Complete);
    fx.cos.shutdown().await;
}

#[tokio::test]
async fn throttle_delivers_the_exact_bytes_in_small_pieces() {
    let fx = fixture().await;
    let verdict = Verdict::Throttle {
        bytes_per_sec: 1_000_000,
    };
    let rule = fx.cos.add_rule(on_fw(verdict, Fires::Once)).expect("valid");
    let resp = get(&fx, &[SDK_RANGE]).await;
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.body, fx.bytes);
    assert_eq!(rule.fired(), 1);
    fx.cos.shutdown().await;
}

#[tokio::test]
async fn wrong_content_length_above_sends_real_body_then_closes() {
    let fx = fixture().await;
    let _rule = fx
        .cos
        .add_rule(on_fw(
            Verdict::WrongContentLength { delta: 10 },
            Fires::Once,
        ))
        .expect("valid");
    let resp = get(&fx, &[SDK_RANGE]).await;
    assert_eq!(resp.header("Content-Length"), Some("29982"));
    assert_eq!(resp.body, fx.bytes);
    assert_eq!(resp.ending, Ending::Eof);
    assert_eq!(last_entry(&fx).end, ConnEnd::Cut);
    fx.cos.shutdown().await;
}

#[tokio::test]
async fn wrong_content_length_below_sends_only_the_declared_bytes() {
    let fx = fixture().await;
    let _rule = fx
        .cos
        .add_rule(on_fw(
            Verdict::WrongContentLength { delta: -10 },
            Fires::Once,
        ))
        .expect("valid");
    let resp = get(&fx, &[SDK_RANGE]).await;
    assert_eq!(resp.header("Content-Length"), Some("29962"));
    assert_eq!(resp.header("Content-Range"), Some("bytes 0-29971/29972"));
    assert_eq!(resp.body, &fx.bytes[..FW_SIZE - 10]);
    fx.cos.shutdown().await;
}

#[tokio::test]
async fn chunked_fault_sends_transfer_encoding_chunked_without_length() {
    let fx = fixture().await;
    let _rule = fx
        .cos
        .add_rule(on_fw(Verdict::Chunked, Fires::Once))
        .expect("valid");
    let resp = get(&fx, &[SDK_RANGE]).await;
    assert_eq!(resp.header("Transfer-Encoding"), Some("chunked"));
    assert_eq!(resp.header("Content-Length"), None);
    assert!(resp.body.ends_with(b"0\r\n\r\n"));
    assert_eq!(dechunk(&resp.body), fx.bytes);
    fx.cos.shutdown().await;
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..eol]).expect("hex"), 16)
            .expect("hex size");
        raw = &raw[eol + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

#[tokio::test]
async fn redirect_fault_answers_302_with_location() {
    let fx = fixture().await;
    let verdict = Verdict::Redirect {
        location: "http://127.0.0.1:9/elsewhere".into(),
        status: 302,
    };
    let _rule = fx.cos.add_rule(on_fw(verdict, Fires::Once)).expect("valid");
    let resp = get(&fx, &[SDK_RANGE]).await;
    assert!(resp.head.starts_with("HTTP/1.1 302 Found\r\n"));
    assert_eq!(
        resp.header("Location"),
        Some("http://127.0.0.1:9/elsewhere")
    );
    fx.cos.shutdown().await;
}

#[tokio::test]
async fn reset_fault_resets_the_connection_mid_body() {
    let fx = fixture().await;
    let _rule = fx
        .cos
        .add_rule(on_fw(Verdict::Reset { after_bytes: 1000 }, Fires::Once))
        .expect("valid");
    let mut stream = TcpStream::connect(fx.cos.local_addr())
        .await
        .expect("connect");
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: x\r\nRange: bytes=0-29972\r\n\r\n",
        fx.target
    );
    stream.write_all(req.as_bytes()).await.expect("send");
    let mut read = Vec::new();
    let mut buf = [0u8; 4096];
    let ending = loop {
        use tokio::io::AsyncReadExt;
        match tokio::time::timeout(DEADLINE, stream.read(&mut buf))
            .await
            .expect("ends in time")
        {
            Ok(0) => break None,
            Ok(n) => read.extend_from_slice(&buf[..n]),
            Err(e) => break Some(e.kind()),
        }
    };
    assert_eq!(
        ending,
        Some(io::ErrorKind::ConnectionReset),
        "read {} bytes",
        read.len()
    );
    let entry = last_entry(&fx);
    assert_eq!((entry.end, entry.body_bytes_sent), (ConnEnd::Reset, 1000));
    fx.cos.shutdown().await;
}

#[tokio::test]
async fn replace_object_changes_the_etag_so_an_if_range_resume_gets_the_new_whole() {
    let fx = fixture().await;
    let new = fx
        .cos
        .put_object("V100R0002", bytes::Bytes::from_static(b"new firmware"))
        .expect("valid");
    let verdict = Verdict::ReplaceObject {
        with_object: "V100R0002".into(),
    };
    let _rule = fx.cos.add_rule(on_fw(verdict, Fires::Once)).expect("valid");
    let old_etag = fx.info.etag.clone();
    let resp = get(
        &fx,
        &[("Range", "bytes=4999-29972"), ("If-Range", &old_etag)],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.body, b"new firmware");
    assert_eq!(resp.header("Etag"), Some(new.etag.as_str()));
    let info = fx.cos.object_info(FW_NAME).expect("still stored");
    assert_eq!(info.md5_hex, new.md5_hex);
    fx.cos.shutdown().await;
}

#[tokio::test]
async fn selectors_pick_the_attempt_nth_request_and_range_start() {
    let fx = fixture().await;
    let status = |code| Verdict::Status {
        code,
        retry_after_secs: None,
    };
    let by_attempt = FaultRule {
        when: Selector {
            object: Some(FW_NAME.into()),
            attempt: Some(2),
            ..Selector::default()
        },
        verdict: status(500),
        fires: Fires::Always,
    };
    let by_start = FaultRule {
        when: Selector {
            range_start: Some(4999),
            ..Selector::default()
        },
        verdict: status(404),
        fires: Fires::Always,
    };
    let by_nth = FaultRule {
        when: Selector {
            nth_request: Some(4),
            ..Selector::default()
        },
        verdict: status(403),
        fires: Fires::Always,
    };
    let _guards = [by_attempt, by_start, by_nth].map(|r| fx.cos.add_rule(r).expect("valid"));
    let codes = [
        get(&fx, &[SDK_RANGE]).await.status(),
        get(&fx, &[SDK_RANGE]).await.status(),
        get(&fx, &[("Range", "bytes=4999-29972")]).await.status(),
        get(&fx, &[SDK_RANGE]).await.status(),
        get(&fx, &[SDK_RANGE]).await.status(),
    ];
    assert_eq!(codes, [206, 500, 404, 403, 206]);
    fx.cos.shutdown().await;
}

#[tokio::test]
async fn dropping_the_rule_guard_stops_the_fault() {
    let fx = fixture().await;
    let verdict = Verdict::Status {
        code: 500,
        retry_after_secs: None,
    };
    let rule = fx
        .cos
        .add_rule(on_fw(verdict, Fires::Always))
        .expect("valid");
    assert_eq!(get(&fx, &[]).await.status(), 500);
    drop(rule);
    assert_eq!(get(&fx, &[]).await.status(), 200);
    fx.cos.shutdown().await;
}

#[tokio::test]
async fn rules_from_json_scenario_text_install_and_fire() {
    let fx = fixture().await;
    let json = format!(
        r#"{{"when":{{"object":"{FW_NAME}"}},"verdict":{{"kind":"cut_after","bytes":4999}},"fires":{{"times":2}}}}"#
    );
    let rule: FaultRule = serde_json::from_str(&json).expect("valid JSON rule");
    let guard = fx.cos.add_rule(rule).expect("valid");
    for _ in 0..3 {
        get(&fx, &[SDK_RANGE]).await;
    }
    assert_eq!(guard.fired(), 2);
    let ends: Vec<_> = fx.cos.journal().iter().map(|e| e.end).collect();
    assert_eq!(ends, [ConnEnd::Cut, ConnEnd::Cut, ConnEnd::Complete]);
    fx.cos.shutdown().await;
}

/// Backpressure: hyper's buffer is full and unflushed when the cut comes; no byte may be lost.
#[tokio::test]
async fn cut_is_exact_when_the_socket_is_full() {
    let fx = crate::client::fixture_sized(4 << 20).await;
    let cut = 3_000_001;
    let _rule = fx
        .cos
        .add_rule(on_fw(Verdict::CutAfter { bytes: cut }, Fires::Once))
        .expect("valid");
    let mut stream = TcpStream::connect(fx.cos.local_addr())
        .await
        .expect("connect");
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        fx.target
    );
    stream.write_all(req.as_bytes()).await.expect("send");
    // Let the server fill the socket and its own buffer before reading anything.
    fx.cos
        .wait_journal(DEADLINE, |j| {
            j.last().is_some_and(|e| e.body_bytes_sent > 0)
        })
        .await
        .expect("body started");
    let mut raw = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        use tokio::io::AsyncReadExt;
        match tokio::time::timeout(DEADLINE, stream.read(&mut buf))
            .await
            .expect("ends in time")
        {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) => panic!("read failed after {} bytes: {e}", raw.len()),
        }
    }
    let at = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("head") + 4;
    assert_eq!(raw.len() - at, usize::try_from(cut).expect("fits"));
    assert!(raw[at..] == fx.bytes[..raw.len() - at]);
    fx.cos.shutdown().await;
}

#[tokio::test]
async fn gzip_fault_sends_a_gzip_encoded_body() {
    let fx = fixture().await;
    let _rule = fx
        .cos
        .add_rule(on_fw(Verdict::Gzip, Fires::Once))
        .expect("valid");
    let resp = get(&fx, &[SDK_RANGE, ("Accept-Encoding", "gzip, deflate")]).await;
    assert_eq!(resp.header("Content-Encoding"), Some("gzip"));
    assert_eq!(
        resp.header("Content-Length"),
        Some(resp.body.len().to_string().as_str())
    );
    let mut plain = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&resp.body[..]),
        &mut plain,
    )
    .expect("valid gzip");
    assert_eq!(plain, fx.bytes);
    fx.cos.shutdown().await;
}
