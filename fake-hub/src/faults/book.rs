//! The installed rules of one hub, and the milestone counters they match against.

use super::{FaultId, HubFaultAction, HubFaultRule, Milestone};
use otasim_protocol::DeviceId;
use serde::Serialize;
use std::collections::BTreeMap;

/// A milestone as it happens.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Point<'a> {
    Connect {
        client_id: &'a str,
    },
    Subscribe {
        client_id: &'a str,
        topic_filter: &'a str,
    },
    Message {
        device: &'a DeviceId,
        message_type: &'a str,
    },
    UpdateFirmware {
        device: &'a DeviceId,
    },
    TaskState {
        device: &'a DeviceId,
        task_id: u64,
        state: &'a str,
    },
}

/// An installed rule as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstalledFault {
    /// Its id.
    pub id: FaultId,
    /// The rule.
    pub rule: HubFaultRule,
    /// How many times it fired.
    pub fired: u32,
}

/// Rules in order, and how often each milestone has happened.
#[derive(Debug, Default)]
pub(crate) struct FaultBook {
    rules: Vec<InstalledFault>,
    next_id: u64,
    counts: BTreeMap<String, u32>,
}

impl FaultBook {
    pub(crate) fn add(&mut self, rule: HubFaultRule) -> FaultId {
        self.next_id += 1;
        let id = FaultId(self.next_id);
        self.rules.push(InstalledFault { id, rule, fired: 0 });
        id
    }

    pub(crate) fn remove(&mut self, id: FaultId) -> bool {
        let before = self.rules.len();
        self.rules.retain(|r| r.id != id);
        self.rules.len() != before
    }

    pub(crate) fn list(&self) -> Vec<InstalledFault> {
        self.rules.clone()
    }

    pub(crate) fn clear(&mut self) {
        self.rules.clear();
    }

    fn count(&mut self, key: String) -> u32 {
        let n = self.counts.entry(key).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    /// Counts the milestone, then returns the first rule that matches it and may still fire.
    pub(crate) fn fire(&mut self, point: Point<'_>) -> Option<(FaultId, HubFaultAction)> {
        let counts = match point {
            Point::Connect { client_id } => (self.count(format!("connect {client_id}")), 0),
            Point::Subscribe {
                client_id,
                topic_filter,
            } => (
                self.count(format!("subscribe {client_id}")),
                self.count(format!("subscribe {client_id} {topic_filter}")),
            ),
            Point::Message {
                device,
                message_type,
            } => (self.count(format!("message {device} {message_type}")), 0),
            Point::UpdateFirmware { device } => (self.count(format!("update {device}")), 0),
            Point::TaskState { .. } => (0, 0),
        };
        let rule = self
            .rules
            .iter_mut()
            .find(|r| r.rule.fires.allows(r.fired) && matches(&r.rule.when, point, counts))?;
        rule.fired = rule.fired.saturating_add(1);
        Some((rule.id, rule.rule.action.clone()))
    }
}

/// `counts`: the milestone's count, and for a subscription the count of its exact filter.
fn matches(when: &Milestone, point: Point<'_>, counts: (u32, u32)) -> bool {
    let nth_ok = |nth: &Option<u32>, n: u32| nth.is_none_or(|want| want == n);
    match (when, point) {
        (Milestone::Connect { client_id, nth }, Point::Connect { client_id: c }) => {
            client_id == c && nth_ok(nth, counts.0)
        }
        (
            Milestone::Subscribe {
                client_id,
                topic_filter,
                nth,
            },
            Point::Subscribe {
                client_id: c,
                topic_filter: f,
            },
        ) => {
            client_id == c
                && match topic_filter {
                    Some(want) => want == f && nth_ok(nth, counts.1),
                    None => nth_ok(nth, counts.0),
                }
        }
        (
            Milestone::Message {
                device,
                message_type,
                nth,
            },
            Point::Message {
                device: d,
                message_type: t,
            },
        ) => device == d && message_type == t && nth_ok(nth, counts.0),
        (Milestone::UpdateFirmware { device, nth }, Point::UpdateFirmware { device: d }) => {
            device == d && nth_ok(nth, counts.0)
        }
        (
            Milestone::TaskState {
                device,
                task_id,
                state,
            },
            Point::TaskState {
                device: d,
                task_id: t,
                state: s,
            },
        ) => {
            device.as_ref().is_none_or(|want| want == d)
                && task_id.is_none_or(|want| want == t)
                && state == s
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::Fires;

    fn light() -> DeviceId {
        DeviceId::new("E69UADXUYY", "light1").expect("valid id")
    }

    fn rsp_rule(nth: Option<u32>, fires: Fires, code: i64) -> HubFaultRule {
        HubFaultRule {
            when: Milestone::Message {
                device: light(),
                message_type: "report_version".into(),
                nth,
            },
            action: HubFaultAction::ReportVersionRsp {
                result_code: code,
                result_msg: "x".into(),
            },
            fires,
        }
    }

    fn report(book: &mut FaultBook) -> Option<HubFaultAction> {
        let d = light();
        book.fire(Point::Message {
            device: &d,
            message_type: "report_version",
        })
        .map(|(_, a)| a)
    }

    #[test]
    fn nth_message_fires_only_on_that_message() {
        let mut book = FaultBook::default();
        book.add(rsp_rule(Some(2), Fires::Always, -1));
        assert_eq!(report(&mut book), None);
        assert!(report(&mut book).is_some());
        assert_eq!(report(&mut book), None);
    }

    #[test]
    fn first_matching_rule_decides_and_exhausted_rules_step_aside() {
        let mut book = FaultBook::default();
        book.add(rsp_rule(None, Fires::Once, -1));
        book.add(rsp_rule(None, Fires::Times(2), -2));
        let code = |a: Option<HubFaultAction>| match a {
            Some(HubFaultAction::ReportVersionRsp { result_code, .. }) => Some(result_code),
            _ => None,
        };
        assert_eq!(code(report(&mut book)), Some(-1));
        assert_eq!(code(report(&mut book)), Some(-2));
        assert_eq!(code(report(&mut book)), Some(-2));
        assert_eq!(code(report(&mut book)), None);
    }

    #[test]
    fn removed_rule_no_longer_fires() {
        let mut book = FaultBook::default();
        let id = book.add(rsp_rule(None, Fires::Always, -1));
        assert!(book.remove(id));
        assert!(!book.remove(id));
        assert_eq!(report(&mut book), None);
    }
}
