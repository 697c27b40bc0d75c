//! The ordered rule list and the guard that removes a rule when dropped.

use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;

use super::{FaultRule, FiredRule, RuleId};

/// An installed rule as listed by the control API: its id, the rule and how often it fired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstalledRule {
    /// The rule's id.
    pub id: RuleId,
    /// The rule as installed.
    pub rule: FaultRule,
    /// Requests it has fired on so far.
    pub fired: u32,
}

/// What a selector can see of a request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RuleInput<'a> {
    pub(crate) object: Option<&'a str>,
    pub(crate) attempt: u32,
    pub(crate) nth_request: u64,
    pub(crate) range_start: u64,
}

#[derive(Debug)]
struct Installed {
    id: RuleId,
    rule: FaultRule,
    fired: u32,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    rules: Vec<Installed>,
}

/// The rules of one instance, in installation order.
#[derive(Debug, Default)]
pub(crate) struct RuleSet {
    inner: Mutex<Inner>,
}

impl RuleSet {
    pub(crate) fn add(&self, rule: FaultRule) -> RuleId {
        let mut inner = self.lock();
        inner.next_id += 1;
        let id = RuleId(inner.next_id);
        inner.rules.push(Installed { id, rule, fired: 0 });
        id
    }

    pub(crate) fn remove(&self, id: RuleId) -> bool {
        let mut inner = self.lock();
        let before = inner.rules.len();
        inner.rules.retain(|r| r.id != id);
        inner.rules.len() != before
    }

    pub(crate) fn clear(&self) {
        self.lock().rules.clear();
    }

    pub(crate) fn list(&self) -> Vec<InstalledRule> {
        self.lock()
            .rules
            .iter()
            .map(|r| InstalledRule {
                id: r.id,
                rule: r.rule.clone(),
                fired: r.fired,
            })
            .collect()
    }

    pub(crate) fn fired(&self, id: RuleId) -> Option<u32> {
        self.lock()
            .rules
            .iter()
            .find(|r| r.id == id)
            .map(|r| r.fired)
    }

    /// Finds the first rule that matches and may still fire, and counts the firing.
    pub(crate) fn fire(&self, input: &RuleInput<'_>) -> Option<FiredRule> {
        let mut inner = self.lock();
        let hit = inner
            .rules
            .iter_mut()
            .find(|r| r.rule.fires.allows(r.fired) && matches(&r.rule, input))?;
        hit.fired += 1;
        Some(FiredRule {
            id: hit.id,
            verdict: hit.rule.verdict.clone(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .expect("rule lock is never held across a panic")
    }
}

fn matches(rule: &FaultRule, input: &RuleInput<'_>) -> bool {
    let when = &rule.when;
    when.object
        .as_deref()
        .is_none_or(|o| Some(o) == input.object)
        && when.attempt.is_none_or(|a| a == input.attempt)
        && when.nth_request.is_none_or(|n| n == input.nth_request)
        && when.range_start.is_none_or(|s| s == input.range_start)
}

/// An installed rule; dropping the guard (or calling [`RuleGuard::remove`]) uninstalls it,
/// [`RuleGuard::keep`] leaves it installed until `remove_rule` or `reset`.
#[derive(Debug)]
#[must_use = "dropping the guard removes the rule at once"]
pub struct RuleGuard {
    id: RuleId,
    rules: Option<Arc<RuleSet>>,
}

impl RuleGuard {
    pub(crate) fn new(id: RuleId, rules: Arc<RuleSet>) -> Self {
        Self {
            id,
            rules: Some(rules),
        }
    }

    /// The rule's id, as the journal names it.
    pub fn id(&self) -> RuleId {
        self.id
    }

    /// How many requests the rule has fired on so far.
    pub fn fired(&self) -> u32 {
        self.rules
            .as_ref()
            .and_then(|rules| rules.fired(self.id))
            .unwrap_or(0)
    }

    /// Uninstalls the rule now; true if it was still installed.
    pub fn remove(mut self) -> bool {
        self.rules.take().is_some_and(|rules| rules.remove(self.id))
    }

    /// Leaves the rule installed after the guard is gone.
    pub fn keep(mut self) -> RuleId {
        self.rules = None;
        self.id
    }
}

impl Drop for RuleGuard {
    fn drop(&mut self) {
        if let Some(rules) = self.rules.take() {
            rules.remove(self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::{Fires, Selector, Verdict};

    fn rule(attempt: Option<u32>, fires: Fires, code: u16) -> FaultRule {
        FaultRule {
            when: Selector {
                object: Some("fw.bin".into()),
                attempt,
                ..Selector::default()
            },
            verdict: Verdict::Status {
                code,
                retry_after_secs: None,
            },
            fires,
        }
    }

    fn input(attempt: u32) -> RuleInput<'static> {
        RuleInput {
            object: Some("fw.bin"),
            attempt,
            nth_request: 1,
            range_start: 0,
        }
    }

    #[test]
    fn first_matching_rule_with_firings_left_decides() {
        let set = Arc::new(RuleSet::default());
        let once = RuleGuard::new(set.add(rule(None, Fires::Once, 500)), Arc::clone(&set));
        let _always = RuleGuard::new(set.add(rule(None, Fires::Always, 503)), Arc::clone(&set));
        let code = |f: Option<FiredRule>| match f.map(|f| f.verdict) {
            Some(Verdict::Status { code, .. }) => Some(code),
            _ => None,
        };
        assert_eq!(code(set.fire(&input(1))), Some(500));
        assert_eq!(code(set.fire(&input(2))), Some(503));
        assert_eq!(once.fired(), 1);
    }

    #[test]
    fn dropping_the_guard_removes_the_rule_and_keep_does_not() {
        let set = Arc::new(RuleSet::default());
        drop(RuleGuard::new(
            set.add(rule(Some(2), Fires::Always, 500)),
            Arc::clone(&set),
        ));
        assert!(set.fire(&input(2)).is_none());
        let id =
            RuleGuard::new(set.add(rule(Some(2), Fires::Always, 500)), Arc::clone(&set)).keep();
        assert!(set.fire(&input(1)).is_none(), "attempt selector must match");
        assert_eq!(set.fire(&input(2)).map(|f| f.id), Some(id));
    }
}
