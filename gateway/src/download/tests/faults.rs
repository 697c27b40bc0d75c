//! Server faults and how each maps to a typed failure.

use std::num::NonZeroU32;

use super::*;

async fn fail_with(
    script: Vec<Reply>,
    config: DownloadConfig,
) -> (Fixture, DownloadError, Vec<Option<String>>) {
    let fx = Fixture::new(SIZE);
    let server = ScriptedServer::start(&fx.image, script).await;
    let error = fx.fetch(&server, config).await.expect_err("download fails");
    let ranges = server.ranges();
    server.shutdown().await;
    assert_no_image(fx.dir.path());
    (fx, error, ranges)
}

#[tokio::test]
async fn http_403_fails_at_once_as_signature_expired() {
    let (_fx, error, ranges) = fail_with(vec![Reply::Status(403)], config(5)).await;
    assert_eq!(error.kind(), FailureKind::SignatureExpired);
    assert_eq!(error.to_string(), "http 403 (url refused) on attempt 1");
    assert_eq!(ranges.len(), 1);
}

#[tokio::test]
async fn http_404_fails_at_once_as_file_not_exist() {
    let (_fx, error, ranges) = fail_with(vec![Reply::Status(404)], config(5)).await;
    assert_eq!(error.kind(), FailureKind::FileNotExist);
    assert_eq!(ranges.len(), 1);
    let DownloadError::FileNotExist { at } = error else {
        panic!("{error:?}")
    };
    assert!(
        at.url.ends_with("/fw_V100R0001") && !at.url.contains("sign"),
        "{}",
        at.url
    );
}

#[tokio::test]
async fn http_403_after_a_cut_reports_the_attempt_number() {
    let script = vec![Reply::CutAfter(3_000), Reply::Status(403)];
    let (fx, error, _) = fail_with(script, config(5)).await;
    assert_eq!(error.to_string(), "http 403 (url refused) on attempt 2");
    assert_eq!(fx.checkpoint().map(|c| c.durable_bytes), Some(3_000));
}

#[tokio::test]
async fn server_error_then_ok_is_retried() {
    let fx = Fixture::new(SIZE);
    let server =
        ScriptedServer::start(&fx.image, vec![Reply::Status(500), Reply::Status(503)]).await;
    let done = fx.assert_verified(
        &fx.fetch(&server, config(3))
            .await
            .expect("third attempt works"),
    );
    assert_eq!(done.attempts, 3);
    server.shutdown().await;
}

#[tokio::test]
async fn server_errors_past_the_budget_fail_as_upgrade_failed() {
    let (_fx, error, ranges) = fail_with(vec![Reply::Status(502); 3], config(2)).await;
    assert_eq!(error.to_string(), "http 502 on attempt 2");
    assert_eq!(error.kind(), FailureKind::UpgradeFailed);
    assert_eq!(ranges.len(), 2);
}

fn stall_config(attempts: u32) -> DownloadConfig {
    let timeouts = Timeouts::new(
        Duration::from_secs(10),
        Duration::from_secs(10),
        Duration::from_millis(400),
    )
    .expect("valid timeouts");
    DownloadConfig {
        timeouts,
        ..config(attempts)
    }
}

#[tokio::test]
async fn stalled_body_times_out_and_resumes() {
    let fx = Fixture::new(SIZE);
    let server = ScriptedServer::start(&fx.image, vec![Reply::StallAfter(8_000)]).await;
    let done = fx.assert_verified(&fx.fetch(&server, stall_config(2)).await.expect("succeeds"));
    assert_eq!(done.attempts, 2);
    assert_eq!(server.ranges()[1], range_from(8_000, SIZE));
    server.shutdown().await;
}

#[tokio::test]
async fn stall_past_the_budget_fails_as_download_timeout() {
    let (fx, error, _) = fail_with(vec![Reply::StallAfter(8_000)], stall_config(1)).await;
    assert_eq!(error.kind(), FailureKind::DownloadTimeout);
    assert_eq!(
        error.to_string(),
        "stalled body timeout after 400ms at byte 8000 of 29972 on attempt 1"
    );
    assert_eq!(fx.checkpoint().map(|c| c.durable_bytes), Some(8_000));
}

#[tokio::test]
async fn body_longer_than_the_image_fails_without_writing_past_its_size() {
    let (fx, error, _) = fail_with(vec![Reply::TooLong(100)], config(3)).await;
    let DownloadError::Protocol { violation, .. } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(
        *violation,
        Violation::BodyTooLong {
            file_size: SIZE as u64
        }
    );
    assert!(fx.part_len() <= SIZE as u64);
}

#[tokio::test]
async fn content_length_inconsistent_with_the_range_is_an_error() {
    let (_fx, error, ranges) = fail_with(vec![Reply::BadContentLength], config(3)).await;
    let expected = Violation::ContentLength {
        got: SIZE as u64 + 1,
        expected: SIZE as u64,
    };
    assert!(
        matches!(&error, DownloadError::Protocol { violation, .. } if *violation == expected),
        "{error}"
    );
    assert_eq!(ranges.len(), 1);
}

#[tokio::test]
async fn md5_mismatch_gives_typed_failure_and_no_image() {
    let (fx, error, _) = fail_with(vec![Reply::Corrupt], config(3)).await;
    assert_eq!(error.kind(), FailureKind::Md5Mismatch);
    let flipped: Vec<u8> = fx.image.iter().map(|b| !b).collect();
    let message = format!(
        "md5 mismatch: expected {}, got {}",
        hex::encode(md5_of(&fx.image)),
        hex::encode(md5_of(&flipped))
    );
    assert_eq!(error.to_string(), message);
    assert!(
        !fx.file("part").exists() && !fx.file("ckpt").exists(),
        "wrong data kept"
    );
}

#[tokio::test]
async fn refused_connection_is_retried_then_reported() {
    let fx = Fixture::new(SIZE);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let spec = ImageSpec {
        url: format!("http://{addr}/fw"),
        file_size: SIZE as u64,
        md5: md5_of(&fx.image),
    };
    let downloader = Downloader::new(fx.dir.path(), config(2));
    let error = downloader
        .fetch(&spec, |_| {}, &CancellationToken::new())
        .await
        .expect_err("refused");
    let DownloadError::Connect { at, .. } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(at.attempt, 2);
    assert_eq!(error.kind(), FailureKind::UpgradeFailed);
}

#[tokio::test]
async fn silent_server_fails_as_first_byte_timeout() {
    let timeouts = Timeouts::new(
        Duration::from_secs(10),
        Duration::from_millis(300),
        Duration::from_secs(10),
    )
    .expect("valid timeouts");
    let config = DownloadConfig {
        timeouts,
        ..config(1)
    };
    let (_fx, error, _) = fail_with(vec![Reply::Silent], config).await;
    assert!(
        matches!(
            error,
            DownloadError::Timeout {
                phase: TimeoutPhase::FirstByte,
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(error.kind(), FailureKind::DownloadTimeout);
}

#[tokio::test]
async fn total_budget_ends_a_stalled_download_as_a_timeout() {
    let retry = RetryPolicy::new(
        NonZeroU32::new(5).expect("not zero"),
        Duration::from_millis(300),
        Duration::from_millis(1),
        Duration::from_millis(5),
    )
    .expect("valid retry policy");
    let config = DownloadConfig { retry, ..config(5) };
    let (fx, error, ranges) = fail_with(vec![Reply::StallAfter(6_000)], config).await;
    assert!(
        matches!(
            error,
            DownloadError::Timeout {
                phase: TimeoutPhase::Total,
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(error.kind(), FailureKind::DownloadTimeout);
    assert_eq!(ranges.len(), 1, "the budget is not retried");
    assert_eq!(fx.checkpoint().map(|c| c.durable_bytes), Some(6_000));
}
