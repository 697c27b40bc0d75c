//! Several faults on one request (`steps`) and a mislabelled `Content-Range`, on the wire.

use fake_cos::{ConnEnd, FaultRule, Fires, Selector, Verdict};
use proptest::prelude::*;

use crate::client::{Ending, FW_NAME, FW_SIZE, fixture, get};

fn once_on_fw(verdict: Verdict) -> FaultRule {
    FaultRule {
        when: Selector {
            object: Some(FW_NAME.into()),
            ..Selector::default()
        },
        verdict,
        fires: Fires::Once,
    }
}

fn throttle_then_cut(bytes_per_sec: u64, cut: u64) -> Verdict {
    Verdict::Steps {
        steps: vec![
            Verdict::Throttle { bytes_per_sec },
            Verdict::CutAfter { bytes: cut },
        ],
    }
}

/// A throttled body cut at `cut`: exactly the first `cut` bytes, then FIN, one rule fired;
/// the resume from `cut` gets the rest, untouched.
async fn throttled_cut_then_resume(bytes_per_sec: u64, cut: u64) {
    let fx = fixture().await;
    let rule = fx
        .cos
        .add_rule(once_on_fw(throttle_then_cut(bytes_per_sec, cut)))
        .expect("a throttle and a cut compose");
    let first = get(&fx, &[("Range", "bytes=0-")]).await;
    assert_eq!(first.status(), 206);
    assert_eq!(first.ending, Ending::Eof);
    let cut_at = usize::try_from(cut).expect("small").min(FW_SIZE);
    assert!(first.body == fx.bytes[..cut_at], "cut at {cut}");
    let entry = fx.cos.journal().pop().expect("an entry");
    let expected_end = if cut_at == FW_SIZE {
        ConnEnd::Complete
    } else {
        ConnEnd::Cut
    };
    assert_eq!(
        (entry.end, entry.body_bytes_sent),
        (expected_end, cut_at as u64)
    );
    let label = entry.to_string();
    assert!(label.contains(":throttle+cut_after"), "{label}");
    let resume = get(&fx, &[("Range", &format!("bytes={cut_at}-"))]).await;
    if cut_at < FW_SIZE {
        assert_eq!(resume.status(), 206);
        assert!(resume.body == fx.bytes[cut_at..]);
    }
    assert_eq!(rule.fired(), 1);
    fx.cos.shutdown().await;
}

#[tokio::test]
async fn throttle_then_cut_sends_a_paced_body_up_to_the_exact_byte() {
    throttled_cut_then_resume(100_000, 12_345).await;
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn any_throttled_cut_sends_exactly_the_bytes_before_it(
        bytes_per_sec in 200_000u64..2_000_000,
        cut in 0u64..(FW_SIZE as u64 + 100),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        runtime.block_on(throttled_cut_then_resume(bytes_per_sec, cut));
    }
}

#[tokio::test]
async fn corrupt_and_cut_on_one_request_flip_a_byte_of_the_bytes_sent() {
    let fx = fixture().await;
    let verdict = Verdict::Steps {
        steps: vec![
            Verdict::CutAfter { bytes: 200 },
            Verdict::Corrupt {
                offset: 150,
                len: 1,
                xor: 0x0F,
            },
        ],
    };
    let _rule = fx.cos.add_rule(once_on_fw(verdict)).expect("valid");
    let resp = get(&fx, &[("Range", "bytes=100-")]).await;
    let mut expected = fx.bytes[100..300].to_vec();
    expected[50] ^= 0x0F;
    assert_eq!(resp.body, expected);
    assert_eq!(resp.ending, Ending::Eof);
    fx.cos.shutdown().await;
}

#[tokio::test]
async fn steps_round_trip_through_the_rule_json_of_both_control_apis() {
    let json = r#"{"when":{"object":"fw.bin","attempt":1},"verdict":{"kind":"steps","steps":[
        {"kind":"throttle","bytes_per_sec":20000},{"kind":"cut_after","bytes":30000}]},
        "fires":"once"}"#;
    let rule: FaultRule = serde_json::from_str(json).expect("valid rule json");
    assert_eq!(rule.verdict, throttle_then_cut(20_000, 30_000));
    rule.validate().expect("valid");
    let back: FaultRule =
        serde_json::from_str(&serde_json::to_string(&rule).expect("serializes")).expect("parses");
    assert_eq!(back, rule);
}

#[tokio::test]
async fn wrong_content_range_labels_the_asked_bytes_as_others() {
    let fx = fixture().await;
    let verdict = Verdict::WrongContentRange {
        shift: -1000,
        total: None,
    };
    let _rule = fx.cos.add_rule(once_on_fw(verdict)).expect("valid");
    let resp = get(&fx, &[("Range", "bytes=5000-")]).await;
    assert_eq!(resp.status(), 206);
    let last = FW_SIZE - 1;
    assert_eq!(
        resp.header("Content-Range"),
        Some(format!("bytes 4000-{}/{FW_SIZE}", last - 1000).as_str())
    );
    assert!(
        resp.body == fx.bytes[5000..],
        "the body is the bytes asked for"
    );
    let honest = get(&fx, &[("Range", "bytes=5000-")]).await;
    assert_eq!(
        honest.header("Content-Range"),
        Some(format!("bytes 5000-{last}/{FW_SIZE}").as_str())
    );
    fx.cos.shutdown().await;
}

#[tokio::test]
async fn wrong_content_range_total_declares_another_size_and_leaves_a_200_alone() {
    let fx = fixture().await;
    let verdict = Verdict::WrongContentRange {
        shift: 0,
        total: Some(40_000),
    };
    let _rule = fx
        .cos
        .add_rule(FaultRule {
            fires: Fires::Always,
            ..once_on_fw(verdict)
        })
        .expect("valid");
    let resp = get(&fx, &[("Range", "bytes=0-99")]).await;
    assert_eq!(resp.header("Content-Range"), Some("bytes 0-99/40000"));
    assert_eq!(resp.body, &fx.bytes[..100]);
    let whole = get(&fx, &[]).await;
    assert_eq!((whole.status(), whole.header("Content-Range")), (200, None));
    fx.cos.shutdown().await;
}
