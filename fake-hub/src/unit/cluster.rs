//! The owner's side of the cluster stream: an edge's calls decided as on one node, in order;
//! a bad batch refused whole; a stale disconnect from a node the client left ignored.

use super::*;
use crate::cluster::wire::{Call, Connect, Verdict};
use crate::cluster::{Answer, Batch, Owner};
use proptest::prelude::*;

fn owner() -> (Kit, Owner) {
    let kit = Kit::new();
    kit.gateway(&gw());
    let owner = Owner::new(Arc::clone(&kit.core), 1);
    (kit, owner)
}

fn batch(node: u64, calls: Vec<Call>) -> Batch {
    Batch { node, calls }
}

fn online(kit: &Kit) -> bool {
    kit.core
        .lock()
        .registry
        .get(&gw())
        .is_some_and(|r| r.online)
}

#[test]
fn an_edges_connect_subscribe_and_publish_are_decided_as_on_one_node() {
    let (kit, owner) = owner();
    let info = kit.connect_info(&gw(), GW_SECRET, u64::MAX >> 1, SignMethod::HmacSha1);
    let mut wrong = Connect::from_info(&info);
    wrong.password = Some(b"not the password".to_vec());
    let client_id = gw().client_id();
    let answers = owner
        .apply(batch(
            2,
            vec![
                Call::Authenticate(wrong),
                Call::Authenticate(Connect::from_info(&info)),
                Call::Connected {
                    client_id: client_id.clone(),
                },
                Call::Subscribe {
                    client_id: client_id.clone(),
                    topic_filter: format!("$gateway/operation/result/{}", gw()),
                },
                Call::Subscribe {
                    client_id: client_id.clone(),
                    topic_filter: "$gateway/operation/result/OTHERPRODU/x".into(),
                },
                Call::Publish {
                    client_id: client_id.clone(),
                    topic: "$ota/report/OTHERPRODU/x".into(),
                    payload: b"{}".to_vec(),
                    qos: 1,
                },
            ],
        ))
        .expect("a valid batch");
    let verdict = |v| Answer::Verdict {
        verdict: v,
        connack_hold: false,
    };
    let allow = |a| Answer::Allow {
        allow: a,
        hold: false,
    };
    assert_eq!(
        answers,
        [
            verdict(Verdict::BadCredentials),
            verdict(Verdict::Accept),
            Answer::Done,
            allow(true),
            allow(false),
            allow(false),
        ]
    );
    assert!(online(&kit), "the edge's connected event reached the Hub");
    let refused: Vec<_> = kit
        .transcript()
        .into_iter()
        .filter(|e| e.direction == Direction::Refused)
        .map(|e| e.topic)
        .collect();
    assert_eq!(refused, ["$ota/report/OTHERPRODU/x"], "recorded as refused");
}

#[test]
fn a_late_disconnect_from_the_node_a_client_left_does_not_mark_it_offline() {
    let (kit, owner) = owner();
    let client_id = gw().client_id();
    let connected = |node| {
        owner
            .apply(batch(
                node,
                vec![Call::Connected {
                    client_id: client_id.clone(),
                }],
            ))
            .expect("valid")
    };
    let disconnected = |node| {
        owner
            .apply(batch(
                node,
                vec![Call::Disconnected {
                    client_id: client_id.clone(),
                    reason: "kicked".into(),
                }],
            ))
            .expect("valid")
    };
    connected(2);
    connected(3);
    disconnected(2);
    assert!(
        online(&kit),
        "node 2's end is stale: the client is on node 3"
    );
    disconnected(3);
    assert!(!online(&kit), "node 3's end is the client's");
}

#[test]
fn a_batch_with_one_bad_call_or_from_the_owners_own_id_changes_nothing() {
    let (kit, owner) = owner();
    let client_id = gw().client_id();
    let calls = vec![
        Call::Connected {
            client_id: client_id.clone(),
        },
        Call::Publish {
            client_id: client_id.clone(),
            topic: format!("$ota/report/{}", gw()),
            payload: b"{}".to_vec(),
            qos: 99,
        },
    ];
    let err = owner.apply(batch(2, calls)).expect_err("refused");
    assert!(err.contains("qos 99"), "{err}");
    assert!(!online(&kit), "nothing of a refused batch is applied");
    // A payload that is not base64 refuses the whole body at parse, before anything applies.
    let body = format!(
        r#"{{"node":2,"calls":[{{"call":"connected","client_id":"{client_id}"}},
            {{"call":"publish","client_id":"{client_id}","topic":"t","payload":"not base64!","qos":1}}]}}"#
    );
    let err = serde_json::from_str::<Batch>(&body).expect_err("refused at parse");
    assert!(err.to_string().contains("base64"), "{err}");
    let err = owner
        .apply(batch(1, Vec::new()))
        .expect_err("the owner's own id");
    assert!(err.contains("owner"), "{err}");
    let too_many = (0..=crate::cluster::wire::MAX_BATCH)
        .map(|_| Call::Violation {
            client_id: "x".into(),
            detail: "y".into(),
        })
        .collect();
    assert!(owner.apply(batch(2, too_many)).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any JSON an edge (or anyone reaching the API) sends is a batch with one answer per call,
    /// or refused; never a panic.
    #[test]
    fn any_batch_body_is_answered_call_for_call_or_refused(
        body in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..256),
            "\\{\"node\":[0-9]{1,3},\"calls\":\\[(\\{\"call\":\"(connected|publish|subscribe|will|authenticate|disconnected)\",\"client_id\":\"[a-z]{0,8}\"(,\"topic\":\"[a-z/$#+]{0,12}\")?(,\"payload\":\"[A-Za-z0-9+/=]{0,8}\")?(,\"qos\":[0-9]{1,3})?\\},?){0,4}\\]\\}"
                .prop_map(String::into_bytes),
        ]
    ) {
        let (_kit, owner) = owner();
        if let Ok(batch) = serde_json::from_slice::<Batch>(&body) {
            let calls = batch.calls.len();
            if let Ok(answers) = owner.apply(batch) {
                prop_assert_eq!(answers.len(), calls);
            }
        }
    }
}
