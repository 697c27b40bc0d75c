//! The sendfile path against the exact one: a plain `GET` no rule touches is sent with
//! `sendfile(2)` on a fresh connection, and through hyper once a connection has been handed
//! over (here by a `HEAD` first); for any object and any range both send the same head, the
//! same body and journal the same outcome.

use std::time::Duration;

use fake_cos::{ConnEnd, CosConfig};
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::client::{DEADLINE, firmware};

const NAME: &str = "fw.bin";

/// One response as read off the wire: the head's bytes and the body.
#[derive(Debug, PartialEq, Eq)]
struct Wire {
    head: String,
    body: Vec<u8>,
}

/// Reads one response; the body is `Content-Length` bytes (none for a HEAD).
async fn read_one(stream: &mut TcpStream, buf: &mut Vec<u8>, head_only: bool) -> Wire {
    let end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let mut chunk = [0u8; 16 << 10];
        let n = stream.read(&mut chunk).await.expect("read a head");
        assert!(n > 0, "closed before the head ended: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf.drain(..end).collect()).expect("an ASCII head");
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .map_or(0, |v| v.trim().parse().expect("a number"));
    let length = if head_only { 0 } else { length };
    while buf.len() < length {
        let mut chunk = vec![0u8; 256 << 10];
        let n = stream.read(&mut chunk).await.expect("read a body");
        assert!(n > 0, "closed before the body ended");
        buf.extend_from_slice(&chunk[..n]);
    }
    Wire {
        head,
        body: buf.drain(..length).collect(),
    }
}

/// The head with what differs between any two responses (the date, the request number) masked.
fn masked(wire: Wire) -> Wire {
    let head = wire
        .head
        .lines()
        .map(|line| match line.split_once(": ") {
            Some(("Date" | "X-Cos-Request-Id", _)) => {
                format!("{}: *", &line[..line.find(':').unwrap_or(0)])
            }
            _ => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\r\n");
    let body = String::from_utf8(wire.body.clone())
        .ok()
        .filter(|text| text.contains("<RequestId>"))
        .map_or(wire.body, |text| {
            let at = text.find("<RequestId>").expect("checked") + "<RequestId>".len();
            let stop = text.find("</RequestId>").unwrap_or(at);
            format!("{}*{}", &text[..at], &text[stop..]).into_bytes()
        });
    Wire { head, body }
}

fn get(target: &str, range: Option<&str>, close: bool) -> String {
    let mut req = format!("GET {target} HTTP/1.1\r\nHost: cos.test\r\n");
    if let Some(range) = range {
        req.push_str(&format!("Range: {range}\r\n"));
    }
    if close {
        req.push_str("Connection: close\r\n");
    }
    req + "\r\n"
}

async fn both_paths(size: usize, range: Option<String>, close: bool) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let cos = fake_cos::start(listener, CosConfig::default())
        .await
        .expect("start");
    let bytes = firmware(size);
    cos.put_object(NAME, bytes.clone()).expect("valid name");
    let url = cos
        .signed_url(NAME, Duration::from_secs(3600))
        .expect("valid name");
    let target = url
        .strip_prefix(&format!("http://{}", cos.local_addr()))
        .expect("own host");
    let request = get(target, range.as_deref(), close);

    let mut fast = TcpStream::connect(cos.local_addr()).await.expect("connect");
    fast.write_all(request.as_bytes()).await.expect("send");
    let fast_wire = read_one(&mut fast, &mut Vec::new(), false).await;

    let mut exact = TcpStream::connect(cos.local_addr()).await.expect("connect");
    let head = format!("HEAD {target} HTTP/1.1\r\nHost: cos.test\r\n\r\n");
    exact.write_all(head.as_bytes()).await.expect("send");
    let mut buf = Vec::new();
    read_one(&mut exact, &mut buf, true).await;
    exact.write_all(request.as_bytes()).await.expect("send");
    let exact_wire = read_one(&mut exact, &mut buf, false).await;

    if let Some(range) = fast_wire
        .head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Range: bytes "))
        .and_then(|r| r.split_once('/'))
        .and_then(|(r, _)| r.split_once('-'))
    {
        let (first, last): (usize, usize) = (
            range.0.parse().expect("first"),
            range.1.parse().expect("last"),
        );
        assert_eq!(
            fast_wire.body,
            &bytes[first..=last],
            "the stored bytes of {range:?}"
        );
    } else if fast_wire.head.starts_with("HTTP/1.1 200") {
        assert_eq!(fast_wire.body, bytes, "the whole object");
    }
    assert_eq!(
        masked(fast_wire),
        masked(exact_wire),
        "range {range:?}, close {close}"
    );
    if close {
        for stream in [&mut fast, &mut exact] {
            let mut rest = Vec::new();
            let read = tokio::time::timeout(DEADLINE, stream.read_to_end(&mut rest)).await;
            assert!(
                matches!(read, Ok(Ok(0))),
                "closed after the response: {read:?}"
            );
        }
    }
    let journal = cos
        .wait_journal(DEADLINE, |j| {
            j.len() == 3 && j.iter().all(|e| e.end != ConnEnd::InProgress)
        })
        .await
        .expect("every request journaled and finished");
    let (f, e) = (&journal[0], &journal[2]);
    assert_eq!(
        (f.status, f.body_bytes_sent, f.end, &f.range),
        (e.status, e.body_bytes_sent, e.end, &e.range)
    );
    cos.shutdown().await;
}

fn range() -> impl Strategy<Value = Option<String>> {
    let at = 0u64..400_000;
    prop_oneof![
        Just(None),
        (at.clone(), at.clone()).prop_map(|(a, b)| Some(format!("bytes={a}-{b}"))),
        at.clone().prop_map(|a| Some(format!("bytes={a}-"))),
        at.prop_map(|n| Some(format!("bytes=-{n}"))),
    ]
}

fn size() -> impl Strategy<Value = usize> {
    prop_oneof![0usize..2_000, 0usize..300_000, Just(5 << 20)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn fast_and_exact_paths_send_identical_heads_and_bytes(
        size in size(),
        range in range(),
        close in any::<bool>(),
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        rt.block_on(both_paths(size, range, close));
    }
}

#[tokio::test]
async fn keep_alive_serves_many_ranges_on_one_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let cos = fake_cos::start(listener, CosConfig::default())
        .await
        .expect("start");
    let bytes = firmware(1 << 20);
    cos.put_object(NAME, bytes.clone()).expect("valid name");
    let url = cos
        .signed_url(NAME, Duration::from_secs(3600))
        .expect("valid name");
    let target = url
        .strip_prefix(&format!("http://{}", cos.local_addr()))
        .expect("own host");
    let mut stream = TcpStream::connect(cos.local_addr()).await.expect("connect");
    // Pipelined: every request is written before any answer is read.
    let mut all = String::new();
    for i in 0..16usize {
        all.push_str(&get(
            target,
            Some(&format!("bytes={}-{}", i << 16, ((i + 1) << 16) - 1)),
            false,
        ));
    }
    stream.write_all(all.as_bytes()).await.expect("send");
    let mut buf = Vec::new();
    for i in 0..16usize {
        let wire = read_one(&mut stream, &mut buf, false).await;
        assert!(
            wire.head.starts_with("HTTP/1.1 206 Partial Content\r\n"),
            "{}",
            wire.head
        );
        assert_eq!(wire.body, &bytes[i << 16..(i + 1) << 16]);
    }
    let journal = cos
        .wait_journal(DEADLINE, |j| {
            j.len() == 16 && j.iter().all(|e| e.end == ConnEnd::Complete)
        })
        .await
        .expect("16 complete entries");
    assert!(journal.iter().all(|e| e.body_bytes_sent == 1 << 16));
    cos.shutdown().await;
}

#[tokio::test]
async fn a_rule_firing_mid_connection_hands_over_and_every_body_stays_exact() {
    use fake_cos::{FaultRule, Fires, Selector, Verdict};
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let cos = fake_cos::start(listener, CosConfig::default())
        .await
        .expect("start");
    let bytes = firmware(3 << 20);
    cos.put_object(NAME, bytes.clone()).expect("valid name");
    // The third request of the instance gets one flipped byte, 100 bytes into its range.
    let corrupt_at = (2 << 20) + 100;
    let _rule = cos
        .add_rule(FaultRule {
            when: Selector {
                nth_request: Some(3),
                ..Selector::default()
            },
            verdict: Verdict::Corrupt {
                offset: corrupt_at,
                len: 1,
                xor: 0x5A,
            },
            fires: Fires::Always,
        })
        .expect("valid rule");
    let url = cos
        .signed_url(NAME, Duration::from_secs(3600))
        .expect("valid name");
    let target = url
        .strip_prefix(&format!("http://{}", cos.local_addr()))
        .expect("own host");
    let mut stream = TcpStream::connect(cos.local_addr()).await.expect("connect");
    let mut buf = Vec::new();
    // Two untouched ranges by sendfile, the faulted one and one after it by hyper.
    for (i, start) in [0usize, 1 << 20, 2 << 20, 1 << 19].into_iter().enumerate() {
        let end = start + (1 << 20);
        let range = format!("bytes={start}-{}", end - 1);
        stream
            .write_all(get(target, Some(&range), false).as_bytes())
            .await
            .expect("send");
        let wire = read_one(&mut stream, &mut buf, false).await;
        assert!(wire.head.starts_with("HTTP/1.1 206 "), "{}", wire.head);
        let mut expected = bytes[start..end].to_vec();
        if i == 2 {
            expected[100] ^= 0x5A;
        }
        assert!(wire.body == expected, "request {} ({range})", i + 1);
    }
    let journal = cos
        .wait_journal(DEADLINE, |j| {
            j.len() == 4 && j.iter().all(|e| e.end == ConnEnd::Complete)
        })
        .await
        .expect("four complete entries");
    let faulted: Vec<bool> = journal.iter().map(|e| e.fault.is_some()).collect();
    assert_eq!(faulted, [false, false, true, false]);
    assert!(journal.iter().all(|e| e.body_bytes_sent == 1 << 20));
    cos.shutdown().await;
}
