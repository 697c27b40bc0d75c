use std::num::NonZeroU64;

use proptest::prelude::*;

use super::*;

const SIZE: u64 = 29_972;

fn every(n: u64) -> CheckpointPolicy {
    CheckpointPolicy::EveryBytes(NonZeroU64::new(n).expect("not zero"))
}

fn at(offset: u64) -> Transfer {
    Transfer::resume(SIZE, offset, Some("\"v1\"".into()), every(4096))
}

fn partial(first: u64, last: u64, total: u64) -> ResponseHead {
    ResponseHead {
        status: 206,
        content_length: Some(last + 1 - first),
        content_range: Some(format!("bytes {first}-{last}/{total}")),
        etag: Some("\"v1\"".into()),
        content_encoding: None,
    }
}

fn full(len: u64) -> ResponseHead {
    ResponseHead {
        status: 200,
        content_length: Some(len),
        ..ResponseHead::default()
    }
}

#[test]
fn range_header_asks_exactly_the_missing_bytes() {
    assert_eq!(at(0).range_header().as_deref(), Some("bytes=0-29971"));
    assert_eq!(
        at(12_000).range_header().as_deref(),
        Some("bytes=12000-29971")
    );
    assert_eq!(Transfer::resume(0, 0, None, every(1)).range_header(), None);
}

#[test]
fn honest_partial_answer_is_accepted() {
    let mut t = at(12_000);
    assert_eq!(
        t.on_head(&partial(12_000, SIZE - 1, SIZE)),
        HeadDecision::Accept
    );
    assert_eq!(t.stored(), 12_000);
}

#[test]
fn resume_answered_200_restarts_with_that_body() {
    let mut t = at(12_000);
    let decision = t.on_head(&full(SIZE));
    assert_eq!(
        decision,
        HeadDecision::RestartWithBody(RestartReason::FullBodyOnResume)
    );
    assert_eq!((t.stored(), t.durable()), (0, 0));
}

#[test]
fn content_range_not_at_the_offset_restarts_a_resume_and_fails_a_fresh_start() {
    for head in [
        partial(12_001, SIZE - 1, SIZE),
        partial(12_000, SIZE - 1, SIZE + 1),
    ] {
        let mut t = at(12_000);
        assert!(
            matches!(t.on_head(&head), HeadDecision::RestartNewRequest(_)),
            "{head:?}"
        );
        assert_eq!(t.stored(), 0);
    }
    let mut t = at(0);
    let decision = t.on_head(&partial(0, SIZE - 1, SIZE + 1));
    assert!(matches!(
        decision,
        HeadDecision::Fail(Violation::ContentRange { .. })
    ));
}

#[test]
fn missing_content_range_on_206_is_not_accepted() {
    let head = ResponseHead {
        content_range: None,
        ..partial(12_000, SIZE - 1, SIZE)
    };
    assert!(matches!(
        at(12_000).on_head(&head),
        HeadDecision::RestartNewRequest(_)
    ));
    assert!(matches!(at(0).on_head(&head), HeadDecision::Fail(_)));
}

#[test]
fn changed_etag_restarts_a_resume() {
    let mut t = at(100);
    let head = ResponseHead {
        etag: Some("\"v2\"".into()),
        ..partial(100, SIZE - 1, SIZE)
    };
    let expected = RestartReason::EtagChanged {
        old: "\"v1\"".into(),
        new: "\"v2\"".into(),
    };
    assert_eq!(t.on_head(&head), HeadDecision::RestartNewRequest(expected));
}

#[test]
fn content_length_inconsistent_with_the_range_fails() {
    let head = ResponseHead {
        content_length: Some(5),
        ..partial(100, SIZE - 1, SIZE)
    };
    let expected = Violation::ContentLength {
        got: 5,
        expected: SIZE - 100,
    };
    assert_eq!(at(100).on_head(&head), HeadDecision::Fail(expected));
    assert!(matches!(
        at(0).on_head(&full(SIZE + 1)),
        HeadDecision::Fail(_)
    ));
}

#[test]
fn statuses_map_to_decisions() {
    let status = |s| ResponseHead {
        status: s,
        ..ResponseHead::default()
    };
    assert_eq!(at(0).on_head(&status(404)), HeadDecision::NotFound);
    assert_eq!(at(0).on_head(&status(403)), HeadDecision::Forbidden);
    assert_eq!(at(0).on_head(&status(503)), HeadDecision::Retry(503));
    assert_eq!(
        at(0).on_head(&status(416)),
        HeadDecision::Fail(Violation::UnexpectedStatus(416))
    );
    assert!(matches!(
        at(10).on_head(&status(416)),
        HeadDecision::RestartNewRequest(_)
    ));
    assert_eq!(
        at(0).on_head(&status(302)),
        HeadDecision::Fail(Violation::UnexpectedStatus(302))
    );
}

#[test]
fn encoded_bodies_are_refused() {
    let head = ResponseHead {
        content_encoding: Some("gzip".into()),
        ..full(SIZE)
    };
    assert_eq!(
        at(0).on_head(&head),
        HeadDecision::Fail(Violation::ContentEncoding("gzip".into()))
    );
    let mut t = at(50);
    assert!(matches!(t.on_head(&head), HeadDecision::Fail(_)));
    assert_eq!(t.stored(), 50, "a refused head must not forget the partial");
}

#[test]
fn data_past_the_image_size_is_refused_before_it_is_stored() {
    let mut t = at(SIZE - 10);
    assert_eq!(
        t.on_data(11),
        Err(Violation::BodyTooLong { file_size: SIZE })
    );
    assert_eq!(t.stored(), SIZE - 10);
    assert!(t.on_data(10).is_ok());
    assert_eq!(t.on_end(), BodyEnd::Complete);
}

#[test]
fn checkpoint_is_due_only_after_the_configured_bytes() {
    let mut t = Transfer::resume(SIZE, 0, None, every(1000));
    assert_eq!(t.on_data(600), Ok(false));
    assert_eq!(t.on_data(600), Ok(true));
    assert_eq!(
        t.on_durable(),
        CheckpointRecord {
            durable_bytes: 1200,
            etag: None
        }
    );
    assert_eq!(t.on_data(999), Ok(false));
    let mut t = Transfer::resume(SIZE, 0, None, CheckpointPolicy::EveryChunk);
    assert_eq!(t.on_data(1), Ok(true));
    assert_eq!(t.on_data(0), Ok(true), "still pending");
}

#[test]
fn body_ending_early_is_a_cut() {
    let mut t = at(0);
    t.on_data(12_000).expect("fits");
    assert_eq!(t.on_end(), BodyEnd::Cut);
}

#[test]
fn content_range_parser_is_strict() {
    assert_eq!(
        parse_content_range("bytes 0-29971/29972"),
        Some((0, 29_971, 29_972))
    );
    assert_eq!(parse_content_range(" Bytes 5-9/10 "), Some((5, 9, 10)));
    for bad in [
        "bytes 0-29971/*",
        "bytes */29972",
        "bytes 9-5/10",
        "bytes 0-10/10",
        "bytes -1-5/10",
        "items 0-1/2",
        "bytes 0-+1/2",
        "",
    ] {
        assert_eq!(parse_content_range(bad), None, "{bad}");
    }
}

fn head_strategy() -> impl Strategy<Value = ResponseHead> {
    let status = prop_oneof![
        Just(200u16),
        Just(206),
        Just(403),
        Just(404),
        Just(416),
        Just(500),
        100u16..600
    ];
    let number = prop_oneof![0..SIZE + 2, Just(SIZE - 1), Just(SIZE)];
    let range = prop::option::of((number.clone(), number.clone(), number.clone()));
    let etag = prop::option::of(prop_oneof![
        Just("\"v1\"".to_owned()),
        Just("\"v2\"".to_owned())
    ]);
    (status, prop::option::of(number), range, etag).prop_map(|(status, len, range, etag)| {
        ResponseHead {
            status,
            content_length: len,
            content_range: range.map(|(a, b, c)| format!("bytes {a}-{b}/{c}")),
            etag,
            content_encoding: None,
        }
    })
}

proptest! {
    /// Whatever heads and chunks arrive: checkpoint ≤ stored ≤ size, an accepted head always
    /// continues at the stored offset, and a restart forgets everything.
    #[test]
    fn machine_invariants_hold_for_any_heads_and_chunks(
        start in 0..=SIZE,
        steps in prop::collection::vec((head_strategy(), prop::collection::vec(0u64..9000, 0..6)), 1..8),
    ) {
        let mut t = Transfer::resume(SIZE, start, Some("\"v1\"".into()), every(3000));
        for (head, chunks) in steps {
            let before = t.stored();
            let decision = t.on_head(&head);
            match &decision {
                HeadDecision::Accept => {
                    prop_assert_eq!(t.stored(), before);
                    let (status, range) = (head.status, head.content_range.as_deref());
                    prop_assert!(status == 200 && before == 0 || range.and_then(parse_content_range) == Some((before, SIZE - 1, SIZE)));
                }
                HeadDecision::RestartWithBody(_) | HeadDecision::RestartNewRequest(_) => {
                    prop_assert_eq!((t.stored(), t.durable()), (0, 0));
                }
                _ => { prop_assert_eq!(t.stored(), before); continue; }
            }
            if matches!(decision, HeadDecision::RestartNewRequest(_)) { continue; }
            for len in chunks {
                let was = t.stored();
                match t.on_data(len) {
                    Ok(true) => { t.on_durable(); }
                    Ok(false) => {}
                    Err(_) => prop_assert!(was + len > SIZE && t.stored() == was),
                }
                prop_assert!(t.durable() <= t.stored() && t.stored() <= SIZE);
            }
            t.on_durable();
        }
    }
}
