//! Resume, restart, crash recovery and cancellation.

use std::io::Write;

use proptest::prelude::*;

use super::*;

#[tokio::test]
async fn resume_after_cut_requests_remaining_range() {
    let fx = Fixture::new(SIZE);
    let server = ScriptedServer::start(&fx.image, vec![Reply::CutAfter(12_000)]).await;
    let outcome = fx
        .fetch(&server, config(3))
        .await
        .expect("download succeeds");
    let done = fx.assert_verified(&outcome);
    assert_eq!(
        (done.attempts, done.restarts, done.bytes_fetched),
        (2, 0, SIZE as u64)
    );
    assert_eq!(
        server.ranges(),
        vec![range_from(0, SIZE), range_from(12_000, SIZE)]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn cut_without_retry_budget_keeps_durable_prefix_for_the_next_run() {
    let fx = Fixture::new(SIZE);
    let server = ScriptedServer::start(&fx.image, vec![Reply::CutAfter(12_000)]).await;
    let error = fx
        .fetch(&server, config(1))
        .await
        .expect_err("one attempt, cut");
    assert_eq!(
        error.to_string(),
        "connection cut at byte 12000 of 29972 on attempt 1"
    );
    assert_eq!(error.kind(), FailureKind::UpgradeFailed);
    let ckpt = fx.checkpoint().expect("checkpoint kept");
    assert_eq!((ckpt.durable_bytes, fx.part_len()), (12_000, 12_000));
    assert_eq!(ckpt.etag.as_deref(), Some("\"v1\""));

    let outcome = fx
        .fetch(&server, config(1))
        .await
        .expect("resumed download succeeds");
    let done = fx.assert_verified(&outcome);
    assert_eq!(
        (done.resumed_from, done.bytes_fetched),
        (12_000, SIZE as u64 - 12_000)
    );
    assert_eq!(server.ranges()[1], range_from(12_000, SIZE));
    server.shutdown().await;
}

#[tokio::test]
async fn unsynced_bytes_past_the_checkpoint_are_dropped_on_resume() {
    let fx = Fixture::new(SIZE);
    let server = ScriptedServer::start(&fx.image, vec![Reply::CutAfter(9_000)]).await;
    fx.fetch(&server, config(1)).await.expect_err("cut");
    // A crash after writing but before syncing leaves bytes the checkpoint does not vouch for.
    let mut part = std::fs::OpenOptions::new()
        .append(true)
        .open(fx.file("part"))
        .expect("open part");
    part.write_all(&[0xee; 3_000]).expect("append garbage");
    drop(part);
    let outcome = fx.fetch(&server, config(1)).await.expect("resume succeeds");
    fx.assert_verified(&outcome);
    assert_eq!(server.ranges()[1], range_from(9_000, SIZE));
    server.shutdown().await;
}

#[tokio::test]
async fn checkpoint_ahead_of_data_restarts_from_zero() {
    let fx = Fixture::new(SIZE);
    let server = ScriptedServer::start(&fx.image, vec![Reply::CutAfter(5_000)]).await;
    fx.fetch(&server, config(1)).await.expect_err("cut");
    let ckpt = Checkpoint {
        durable_bytes: 20_000,
        ..fx.checkpoint().expect("checkpoint")
    };
    std::fs::write(fx.file("ckpt"), serde_json::to_vec(&ckpt).expect("json")).expect("write");
    let outcome = fx
        .fetch(&server, config(1))
        .await
        .expect("download succeeds");
    assert_eq!(fx.assert_verified(&outcome).resumed_from, 0);
    assert_eq!(server.ranges()[1], range_from(0, SIZE));
    server.shutdown().await;
}

#[tokio::test]
async fn garbage_checkpoint_restarts_from_zero() {
    let fx = Fixture::new(SIZE);
    std::fs::write(fx.file("part"), &fx.image[..7_000]).expect("write part");
    std::fs::write(fx.file("ckpt"), b"{\"version\":\"../../x\"}").expect("write ckpt");
    let server = ScriptedServer::start(&fx.image, vec![]).await;
    fx.assert_verified(
        &fx.fetch(&server, config(1))
            .await
            .expect("download succeeds"),
    );
    assert_eq!(server.ranges(), vec![range_from(0, SIZE)]);
    server.shutdown().await;
}

#[tokio::test]
async fn checkpoint_is_never_ahead_of_the_data_file() {
    let fx = Fixture::new(SIZE);
    let server = ScriptedServer::start(&fx.image, vec![Reply::CutAfter(17_000)]).await;
    let config = DownloadConfig {
        checkpoint: CheckpointPolicy::EveryChunk,
        ..config(3)
    };
    let downloader = Downloader::new(fx.dir.path(), config);
    let mut checks = 0;
    let check = |_: Progress| {
        if let Some(ckpt) = fx.checkpoint() {
            assert!(
                ckpt.durable_bytes <= fx.part_len(),
                "checkpoint {ckpt:?} ahead of data"
            );
            checks += 1;
        }
    };
    let outcome = downloader
        .fetch(&fx.spec(&server), check, &CancellationToken::new())
        .await;
    fx.assert_verified(&outcome.expect("download succeeds"));
    assert!(checks > 0);
    server.shutdown().await;
}

#[tokio::test]
async fn resume_answered_200_restarts_from_zero_and_ends_with_the_right_image() {
    let fx = Fixture::new(SIZE);
    let script = vec![Reply::CutAfter(12_000), Reply::FullIgnoringRange];
    let server = ScriptedServer::start(&fx.image, script).await;
    let done = fx.assert_verified(
        &fx.fetch(&server, config(3))
            .await
            .expect("download succeeds"),
    );
    // The 200 carries the whole image, so it is used instead of asking again.
    assert_eq!((done.attempts, done.restarts), (2, 1));
    assert_eq!(done.bytes_fetched, 12_000 + SIZE as u64);
    assert_eq!(
        server.ranges(),
        vec![range_from(0, SIZE), range_from(12_000, SIZE)]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn wrong_content_range_on_resume_restarts_from_zero() {
    for wrong in [Reply::WrongStart, Reply::WrongTotal] {
        let fx = Fixture::new(SIZE);
        let server = ScriptedServer::start(&fx.image, vec![Reply::CutAfter(5_000), wrong]).await;
        let done = fx.assert_verified(&fx.fetch(&server, config(4)).await.expect("succeeds"));
        assert_eq!((done.attempts, done.restarts), (3, 1));
        let expected = vec![
            range_from(0, SIZE),
            range_from(5_000, SIZE),
            range_from(0, SIZE),
        ];
        assert_eq!(server.ranges(), expected);
        server.shutdown().await;
    }
}

#[tokio::test]
async fn changed_etag_on_resume_restarts_from_zero() {
    let fx = Fixture::new(SIZE);
    let script = vec![Reply::CutAfter(5_000), Reply::Etag("v2")];
    let server = ScriptedServer::start(&fx.image, script).await;
    let done = fx.assert_verified(&fx.fetch(&server, config(4)).await.expect("succeeds"));
    assert_eq!((done.attempts, done.restarts), (3, 1));
    assert_eq!(server.ranges()[2], range_from(0, SIZE));
    server.shutdown().await;
}

#[tokio::test]
async fn restarts_count_against_the_attempt_budget() {
    let fx = Fixture::new(SIZE);
    let script = vec![Reply::CutAfter(5_000), Reply::WrongStart];
    let server = ScriptedServer::start(&fx.image, script).await;
    let error = fx
        .fetch(&server, config(2))
        .await
        .expect_err("budget spent");
    assert!(
        matches!(error, DownloadError::RestartBudget { .. }),
        "{error}"
    );
    assert_no_image(fx.dir.path());
    server.shutdown().await;
}

#[tokio::test]
async fn cancel_stops_promptly_and_leaves_a_valid_checkpoint() {
    let fx = Fixture::new(SIZE);
    // The stall makes sure only the cancellation can end the first call.
    let server = ScriptedServer::start(&fx.image, vec![Reply::StallAfter(20_000)]).await;
    let downloader = Downloader::new(fx.dir.path(), config(3));
    let cancel = CancellationToken::new();
    let stop = |p: Progress| {
        if p.downloaded_bytes >= 10_000 {
            cancel.cancel();
        }
    };
    let outcome = downloader
        .fetch(&fx.spec(&server), stop, &cancel)
        .await
        .expect("no error");
    let DownloadOutcome::Cancelled { durable_bytes } = outcome else {
        panic!("{outcome:?}")
    };
    assert!((10_000..=20_000).contains(&durable_bytes));
    let ckpt = fx.checkpoint().expect("checkpoint");
    assert_eq!(
        (ckpt.durable_bytes, fx.part_len()),
        (durable_bytes, durable_bytes)
    );

    let outcome = fx.fetch(&server, config(1)).await.expect("resume succeeds");
    assert_eq!(fx.assert_verified(&outcome).resumed_from, durable_bytes);
    server.shutdown().await;
}

#[tokio::test]
async fn dropped_download_future_leaves_a_resumable_state() {
    let fx = Fixture::new(SIZE);
    let server = ScriptedServer::start(&fx.image, vec![Reply::StallAfter(20_000)]).await;
    let downloader = Downloader::new(fx.dir.path(), config(3));
    let halfway = tokio::sync::Notify::new();
    let signal = |p: Progress| {
        if p.downloaded_bytes >= 10_000 {
            halfway.notify_one();
        }
    };
    let (spec, never) = (fx.spec(&server), CancellationToken::new());
    tokio::select! {
        _ = downloader.fetch(&spec, signal, &never) => panic!("the stall never ends"),
        _ = halfway.notified() => {}
    }
    // The dropped future may leave a write job running; the image lock makes this one wait.
    let outcome = downloader
        .fetch(&spec, |_| {}, &CancellationToken::new())
        .await;
    fx.assert_verified(&outcome.expect("download succeeds"));
    server.shutdown().await;
}

/// One scripted answer for the proptest: cuts anywhere, refused resumes, honest answers.
fn reply() -> impl Strategy<Value = Reply> {
    prop_oneof![
        3 => (0..SIZE as u64).prop_map(Reply::CutAfter),
        1 => Just(Reply::FullIgnoringRange),
        1 => Just(Reply::WrongStart),
        1 => Just(Reply::Honest),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn any_cut_and_refusal_sequence_ends_with_the_exact_image_or_a_typed_failure(
        script in prop::collection::vec(reply(), 0..7),
        attempts in 1u32..9,
        crash_between_calls in any::<bool>(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let fx = Fixture::new(SIZE);
            let server = ScriptedServer::start(&fx.image, script).await;
            let mut result = fx.fetch(&server, config(attempts)).await;
            if result.is_err() && crash_between_calls {
                // Reboot on the same disk and try again with what the checkpoint kept.
                result = fx.fetch(&server, config(attempts)).await;
            }
            match result {
                Ok(outcome) => { fx.assert_verified(&outcome); }
                Err(error) => {
                    assert_no_image(fx.dir.path());
                    // A cut past the budget, a restart past the budget, or a wrong range
                    // from offset 0 (nothing to restart from): all -5, never an image.
                    let expected = matches!(
                        error,
                        DownloadError::Cut { .. }
                            | DownloadError::RestartBudget { .. }
                            | DownloadError::Protocol { violation: Violation::ContentRange { .. }, .. }
                    );
                    assert!(expected, "unexpected failure: {error}");
                    assert_eq!(error.kind(), FailureKind::UpgradeFailed);
                    if let Some(ckpt) = fx.checkpoint() {
                        assert!(ckpt.durable_bytes <= fx.part_len());
                    }
                }
            }
            server.shutdown().await;
        });
    }
}
