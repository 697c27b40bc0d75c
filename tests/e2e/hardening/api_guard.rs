//! Attack 5: the control API accepted cross-site requests. A page on any site could
//! `POST /api/firmware` with `text/plain` and replace an image, reset the hub or kick devices,
//! and `Host: attacker.example` got 200 (DNS rebinding). Slow event-stream readers piled up
//! memory. Now: Origin must be the hub's own, Host must name the hub, an optional bearer token
//! (required beyond loopback) guards `/api`, and slow readers are dropped.

use super::wire::{Connect, Raw, credentials, publish_packet};
use super::{Answer, GW1_SECRET, gw1, request, two_gateway_hub};
use fake_hub::HubConfig;
use fake_hub::api::ApiAccess;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn api(access: ApiAccess) -> (std::sync::Arc<fake_hub::Hub>, fake_hub::api::ApiServer) {
    let hub = two_gateway_hub(HubConfig::loopback()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server =
        fake_hub::api::serve_guarded(listener, hub.clone(), otasim::console::router(), access)
            .expect("api serves");
    (hub, server)
}

/// Method, path, headers, the header the refusal names.
type Refused<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, &'a str);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_writes_and_foreign_host_names_are_refused() {
    let (hub, server) = api(ApiAccess::default()).await;
    let addr = server.local_addr();
    let own = addr.to_string();
    let own_origin = format!("http://{addr}");
    let upload = "/api/firmware?product_id=E69UADXUYY&version=V9";
    let refused: Vec<Refused> = vec![
        (
            "POST",
            upload,
            vec![
                ("Host", &own),
                ("Origin", "http://attacker.example"),
                ("Content-Type", "text/plain"),
            ],
            "Origin",
        ),
        (
            "POST",
            upload,
            vec![
                ("Host", &own),
                ("Origin", "null"),
                ("Content-Type", "text/plain"),
            ],
            "Origin",
        ),
        (
            "POST",
            upload,
            vec![
                ("Host", &own),
                ("Origin", "http://127.0.0.1:1"),
                ("Content-Type", "text/plain"),
            ],
            "Origin",
        ),
        (
            "POST",
            "/api/reset",
            vec![("Host", &own), ("Origin", "https://attacker.example")],
            "Origin",
        ),
        (
            "POST",
            "/api/clients/JR1WOKB7Q7gw_deng1/kick",
            vec![("Host", &own), ("Sec-Fetch-Site", "cross-site")],
            "Origin",
        ),
        (
            "GET",
            "/api/devices",
            vec![("Host", "attacker.example")],
            "Host",
        ),
        (
            "GET",
            "/api/devices",
            vec![("Host", "attacker.example:8080")],
            "Host",
        ),
        (
            "POST",
            upload,
            vec![
                ("Host", "attacker.example"),
                ("Origin", "http://attacker.example"),
            ],
            "Host",
        ),
        (
            "GET",
            "/",
            vec![("Host", "rebound.attacker.example")],
            "Host",
        ),
    ];
    for (method, path, headers, field) in refused {
        let a = request(addr, method, path, &headers, b"forged image").await;
        assert_eq!(
            a.status / 100,
            4,
            "{method} {path} {headers:?}: {} {}",
            a.status,
            a.body
        );
        assert_eq!(
            a.json()["field"],
            field,
            "{method} {path} {headers:?}: {}",
            a.body
        );
    }
    assert!(hub.firmware().is_empty(), "a cross-site upload got through");
    let ok: Vec<Vec<(&str, &str)>> = vec![
        vec![("Host", &own), ("Origin", &own_origin)],
        vec![("Host", &own)],
        vec![("Host", "localhost"), ("Sec-Fetch-Site", "same-origin")],
    ];
    for headers in ok {
        let a = request(addr, "POST", upload, &headers, b"image").await;
        assert_eq!(a.status, 201, "{headers:?}: {}", a.body);
    }
    let page = request(addr, "GET", "/", &[("Host", &own)], b"").await;
    assert_eq!(page.status, 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_guards_the_api_and_the_console_carries_it_in_a_cookie() {
    let access = ApiAccess {
        token: Some("s3cret-token".into()),
        host_names: vec!["hub.test".into()],
    };
    let (_hub, server) = api(access).await;
    let addr = server.local_addr();
    let host = ("Host", "hub.test:8080");
    let refused = request(addr, "GET", "/api/devices", &[host], b"").await;
    assert_eq!(
        (refused.status, refused.json()["field"].as_str()),
        (401, Some("Authorization"))
    );
    let wrong = request(
        addr,
        "GET",
        "/api/devices",
        &[host, ("Authorization", "Bearer nope")],
        b"",
    )
    .await;
    assert_eq!(wrong.status, 401);
    let bearer = request(
        addr,
        "GET",
        "/api/devices",
        &[host, ("Authorization", "Bearer s3cret-token")],
        b"",
    )
    .await;
    assert_eq!(bearer.status, 200, "{}", bearer.body);
    // The console: its page and scripts load without the token; opened with it, the page
    // sets the cookie its own requests and its event stream then carry.
    let script = request(addr, "GET", "/console/console.js", &[host], b"").await;
    assert_eq!(script.status, 200);
    let page = request(addr, "GET", "/?token=s3cret-token", &[host], b"").await;
    assert_eq!(page.status, 200);
    let cookie = page.header("set-cookie").expect("the console's cookie");
    assert!(
        cookie.contains("SameSite=Strict") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    let cookie = cookie.split(';').next().unwrap();
    let devices = request(
        addr,
        "GET",
        "/api/devices",
        &[host, ("Cookie", cookie)],
        b"",
    )
    .await;
    assert_eq!(devices.status, 200, "{}", devices.body);
    let mut events = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!("GET /api/events HTTP/1.1\r\nHost: hub.test\r\nCookie: {cookie}\r\n\r\n");
    events.write_all(head.as_bytes()).await.unwrap();
    let mut first = vec![0u8; 512];
    let n = crate::support::within("the event stream", events.read(&mut first))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&first[..n]);
    assert!(
        text.starts_with("HTTP/1.1 200") && text.contains("text/event-stream"),
        "{text}"
    );
    server.shutdown().await;
}

/// An event-stream request on a socket with a tiny receive buffer, never read.
async fn open_stream(addr: SocketAddr) -> (tokio::net::TcpStream, Answer) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut tcp = socket.connect(addr).await.unwrap();
    let head = format!("GET /api/events HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 256];
    let n = crate::support::within("an event stream answer", tcp.read(&mut buf))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (
        tcp,
        Answer {
            status,
            headers: vec![],
            body: text,
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_are_capped_and_readers_that_never_read_are_dropped() {
    let (_hub, server) = api(ApiAccess::default()).await;
    let mut streams = Vec::new();
    for _ in 0..fake_hub::api::MAX_EVENT_STREAMS {
        let (tcp, a) = open_stream(server.local_addr()).await;
        assert_eq!(a.status, 200, "{}", a.body);
        streams.push(tcp);
    }
    let (_, over) = open_stream(server.local_addr()).await;
    assert_eq!(over.status, 503, "{}", over.body);
    drop(streams);
    server.shutdown().await;

    let (hub, server) = api(ApiAccess::default()).await;
    let addr = server.local_addr();
    let mut slow = Vec::new();
    for _ in 0..3 {
        slow.push(open_stream(addr).await.0);
    }
    // 16 KB publishes: each is a transcript entry every stream must carry, 15 MB in all, far
    // more than a stream's buffer and its sockets hold.
    let creds = credentials(&gw1(), GW1_SECRET);
    let (mut gw, code) = Raw::connect(hub.local_addr(), &Connect::device(&creds)).await;
    assert_eq!(code, Some(0));
    let big = format!(
        "{{\"type\":\"report_version\",\"report\":{{\"version\":\"0.1\"}},\"pad\":\"{}\"}}",
        "p".repeat(15_000)
    );
    let publish = publish_packet("$ota/report/JR1WOKB7Q7/gw_deng1", big.as_bytes());
    for _ in 0..1000 {
        assert!(gw.send(&publish).await, "the gateway's connection stays up");
    }
    assert!(
        hub.wait_until(crate::support::DEADLINE, |h| h.transcript_next_seq() > 2000)
            .await,
        "the publishes are recorded"
    );
    // The hub drops readers that never read. Their sockets stay unread until it has: reading
    // one would make it a fast reader. A dropped stream ends before the last entry.
    let last = format!("\"seq\":{}", hub.transcript_next_seq() - 1);
    let mut interval = tokio::time::interval(std::time::Duration::from_millis(200));
    assert_eq!(server.open_event_streams(), 3);
    crate::support::within("the slow readers to be dropped", async {
        while server.open_event_streams() > 0 {
            interval.tick().await;
        }
    })
    .await;
    for mut tcp in slow {
        let mut got = Vec::new();
        crate::support::within("a dropped stream to end", tcp.read_to_end(&mut got))
            .await
            .expect("read the stream");
        let text = String::from_utf8_lossy(&got);
        assert!(
            text.ends_with("\r\n0\r\n\r\n"),
            "the stream ended: {:.100}",
            &text[text.len().saturating_sub(100)..]
        );
        assert!(
            !text.contains(&last),
            "a reader that never read got every entry"
        );
    }
    server.shutdown().await;
}
