//! The journal, reset and shutdown.

use fake_cos::{ConnEnd, FaultRule, Fires, Selector, Verdict};

use crate::client::{DEADLINE, FW_NAME, fixture, get, request};

#[tokio::test]
async fn journal_records_each_request_with_attempts_ranges_faults_and_endings() {
    let fx = fixture().await;
    let rule = FaultRule {
        when: Selector {
            attempt: Some(1),
            ..Selector::default()
        },
        verdict: Verdict::CutAfter { bytes: 4999 },
        fires: Fires::Once,
    };
    let guard = fx.cos.add_rule(rule).expect("valid");
    get(&fx, &[("Range", "bytes=0-29972")]).await;
    get(&fx, &[("Range", "bytes=4999-29972")]).await;
    request(fx.cos.local_addr(), "GET", "/..", &[]).await;
    let journal = fx.cos.journal();
    assert_eq!(journal.len(), 3);
    let (first, second, third) = (&journal[0], &journal[1], &journal[2]);
    assert_eq!((first.seq, first.attempt, first.status), (1, 1, 206));
    assert_eq!(first.range.as_deref(), Some("bytes=0-29972"));
    assert_eq!(first.object.as_deref(), Some(FW_NAME));
    assert_eq!((first.body_bytes_sent, first.end), (4999, ConnEnd::Cut));
    assert_eq!(first.fault.as_ref().map(|f| f.id), Some(guard.id()));
    assert_eq!((second.seq, second.attempt), (2, 2));
    assert_eq!(
        (second.body_bytes_sent, second.end),
        (29_972 - 4999, ConnEnd::Complete)
    );
    assert!(second.fault.is_none());
    assert_eq!(second.client.ip(), first.client.ip());
    assert_eq!(
        (third.status, third.attempt, third.object.as_deref()),
        (400, 0, None)
    );
    assert_eq!(third.path, "/..");
    fx.cos.shutdown().await;
}

#[tokio::test]
async fn reset_forgets_rules_journal_and_attempts_but_keeps_served_objects() {
    let fx = fixture().await;
    let rule = FaultRule {
        when: Selector::default(),
        verdict: Verdict::Status {
            code: 500,
            retry_after_secs: None,
        },
        fires: Fires::Always,
    };
    let guard = fx.cos.add_rule(rule).expect("valid").keep();
    get(&fx, &[]).await;
    fx.cos.reset();
    assert!(fx.cos.journal().is_empty());
    assert!(!fx.cos.remove_rule(guard), "reset removed the rule");
    let after = get(&fx, &[]).await;
    assert_eq!(after.status(), 200, "the object is still served");
    assert_eq!(after.body, fx.bytes);
    let journal = fx.cos.journal();
    assert_eq!((journal[0].seq, journal[0].attempt), (1, 1));
    fx.cos.shutdown().await;
}

#[tokio::test]
async fn wait_journal_times_out_when_the_condition_never_holds() {
    let fx = fixture().await;
    let short = std::time::Duration::from_millis(20);
    let result = fx.cos.wait_journal(short, |j| !j.is_empty()).await;
    assert!(matches!(result, Err(fake_cos::CosError::JournalTimeout(_))));
    get(&fx, &[]).await;
    let journal = fx
        .cos
        .wait_journal(DEADLINE, |j| j.len() == 1)
        .await
        .expect("one entry");
    assert_eq!(journal[0].end, ConnEnd::Complete);
    fx.cos.shutdown().await;
}

#[tokio::test]
async fn journal_serializes_to_json_for_transcripts() {
    let fx = fixture().await;
    get(&fx, &[("Range", "bytes=0-29972")]).await;
    let json = serde_json::to_value(fx.cos.journal()).expect("serializable");
    assert_eq!(json[0]["end"], "complete");
    assert_eq!(json[0]["status"], 206);
    fx.cos.shutdown().await;
}

#[tokio::test]
async fn a_client_leaving_mid_body_is_journaled_as_client_gone() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fx = crate::client::fixture_sized(32 << 20).await;
    let mut stream = tokio::net::TcpStream::connect(fx.cos.local_addr())
        .await
        .expect("connect");
    let request = format!("GET {} HTTP/1.1\r\nHost: cos\r\n\r\n", fx.target);
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut first = [0u8; 1024];
    let n = stream.read(&mut first).await.expect("head arrives");
    assert!(first[..n].starts_with(b"HTTP/1.1 200 OK\r\n"));
    drop(stream);
    let journal = fx
        .cos
        .wait_journal(DEADLINE, |j| {
            j.first().is_some_and(|e| e.end != ConnEnd::InProgress)
        })
        .await
        .expect("the body ends");
    assert_eq!(journal[0].end, ConnEnd::ClientGone);
    assert!(journal[0].body_bytes_sent < 32 << 20);
    fx.cos.shutdown().await;
}
