//! Property: whatever cuts happen, resuming with `bytes={offset}-{size}` like the SDKs
//! reassembles the exact object.

use fake_cos::{FaultRule, Fires, Selector, Verdict};
use proptest::prelude::*;

use crate::client::{fixture_sized, request};

async fn download_through_cuts(size: usize, cuts: Vec<u64>) {
    let fx = fixture_sized(size).await;
    let addr = fx.cos.local_addr();
    let mut rules = Vec::new();
    for (i, bytes) in cuts.iter().enumerate() {
        let rule = FaultRule {
            when: Selector {
                attempt: Some(u32::try_from(i + 1).expect("few cuts")),
                ..Selector::default()
            },
            verdict: Verdict::CutAfter { bytes: *bytes },
            fires: Fires::Once,
        };
        rules.push(fx.cos.add_rule(rule).expect("valid"));
    }
    let mut got: Vec<u8> = Vec::new();
    for _ in 0..=cuts.len() {
        let range = format!("bytes={}-{size}", got.len());
        let resp = request(addr, "GET", &fx.target, &[("Range", &range)]).await;
        if resp.status() == 416 {
            break;
        }
        assert_eq!(resp.status(), 206, "{range}");
        got.extend_from_slice(&resp.body);
    }
    assert_eq!(got.len(), size);
    assert!(got == fx.bytes, "reassembled bytes differ");
    fx.cos.shutdown().await;
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn cuts_then_sdk_resumes_reassemble_the_exact_object(
        size in 1usize..70_000,
        cuts in proptest::collection::vec(0u64..80_000, 0..5),
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        runtime.block_on(download_through_cuts(size, cuts));
    }
}
