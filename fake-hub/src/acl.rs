//! The device topic space as the real Hub grants it: which topics a device may publish to and
//! which filters it may subscribe to, in its own space (and, for a gateway, in the spaces of its
//! bound and online subdevices; see [`crate::registry::Registry::may_act_for`]).
//!
//! `{pid}/{dn}/control` subscribe, `{pid}/{dn}/data` both, `{pid}/{dn}/event` publish, custom
//! `{pid}/{dn}/...` topics with the permission the product declares, `$shadow/operation` and
//! `$sys/operation` publish with their `result` topics subscribe, `$rrpc/rxd/{pid}/{dn}/+`
//! subscribe and `$rrpc/txd/{pid}/{dn}/{process_id}` publish, `$broadcast/rxd/{pid}/{dn}`
//! subscribe, `$ota/report` publish and `$ota/update` subscribe, `$gateway/operation` publish
//! and its `result` subscribe.

use otasim_protocol::DeviceId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a device may do with a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TopicAccess {
    /// Publish only.
    Publish,
    /// Subscribe only.
    Subscribe,
    /// Publish and subscribe.
    PublishSubscribe,
}

impl TopicAccess {
    fn publish(self) -> bool {
        matches!(self, TopicAccess::Publish | TopicAccess::PublishSubscribe)
    }

    fn subscribe(self) -> bool {
        matches!(self, TopicAccess::Subscribe | TopicAccess::PublishSubscribe)
    }
}

/// Which way a client uses a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Use {
    Publish,
    Subscribe,
}

/// Per-product custom topics: the part after `{pid}/{dn}/`, with its permission.
#[derive(Debug, Default, Clone)]
pub(crate) struct CustomTopics {
    by_product: BTreeMap<String, BTreeMap<String, TopicAccess>>,
}

impl CustomTopics {
    pub(crate) fn add(&mut self, product_id: &str, name: &str, access: TopicAccess) {
        self.by_product
            .entry(product_id.to_owned())
            .or_default()
            .insert(name.to_owned(), access);
    }

    pub(crate) fn list(&self) -> Vec<(String, String, TopicAccess)> {
        self.by_product
            .iter()
            .flat_map(|(p, t)| t.iter().map(move |(n, a)| (p.clone(), n.clone(), *a)))
            .collect()
    }
}

/// The device whose space `topic` (a topic or a filter) is in, if `usage` of it is granted
/// there. Wildcards are granted only where the Hub offers one: the last level of
/// `$rrpc/rxd/{pid}/{dn}/+`.
pub(crate) fn granted(topic: &str, usage: Use, custom: &CustomTopics) -> Option<DeviceId> {
    let levels: Vec<&str> = topic.split('/').collect();
    let (access, pid, dn) = match levels.as_slice() {
        ["$ota", "report", pid, dn] => (TopicAccess::Publish, *pid, *dn),
        ["$ota", "update", pid, dn] => (TopicAccess::Subscribe, *pid, *dn),
        ["$gateway", "operation", "result", pid, dn] => (TopicAccess::Subscribe, *pid, *dn),
        ["$gateway", "operation", pid, dn] => (TopicAccess::Publish, *pid, *dn),
        ["$shadow", "operation", "result", pid, dn] => (TopicAccess::Subscribe, *pid, *dn),
        ["$shadow", "operation", pid, dn] => (TopicAccess::Publish, *pid, *dn),
        ["$sys", "operation", "result", pid, dn] => (TopicAccess::Subscribe, *pid, *dn),
        ["$sys", "operation", pid, dn] => (TopicAccess::Publish, *pid, *dn),
        ["$broadcast", "rxd", pid, dn] => (TopicAccess::Subscribe, *pid, *dn),
        ["$rrpc", "rxd", pid, dn, last] if !last.is_empty() && !last.contains('#') => {
            (TopicAccess::Subscribe, *pid, *dn)
        }
        ["$rrpc", "txd", pid, dn, id] if plain(id) => (TopicAccess::Publish, *pid, *dn),
        [pid, dn, rest @ ..] if !pid.starts_with('$') && !rest.is_empty() => {
            let name = rest.join("/");
            let access = match name.as_str() {
                "control" => TopicAccess::Subscribe,
                "data" => TopicAccess::PublishSubscribe,
                "event" => TopicAccess::Publish,
                _ => *custom.by_product.get(*pid)?.get(&name)?,
            };
            if !rest.iter().all(|l| plain(l)) {
                return None;
            }
            (access, *pid, *dn)
        }
        _ => return None,
    };
    if !plain(pid) || !plain(dn) {
        return None;
    }
    let allowed = match usage {
        Use::Publish => access.publish(),
        Use::Subscribe => access.subscribe(),
    };
    if !allowed {
        return None;
    }
    DeviceId::new(pid, dn).ok()
}

/// A level with no wildcard and some text.
fn plain(level: &str) -> bool {
    !level.is_empty() && !level.contains(['+', '#'])
}

/// Products' custom topics.
impl crate::Hub {
    /// Declares a custom topic `{pid}/{dn}/{name}` for every device of `product_id`, with the
    /// permission devices get on it (the Hub console's product topics).
    pub fn add_product_topic(
        &self,
        product_id: &str,
        name: &str,
        access: crate::TopicAccess,
    ) -> Result<(), crate::HubError> {
        otasim_protocol::DeviceId::new(product_id, "x").map_err(|e| crate::HubError::Invalid {
            field: "product_id",
            reason: e.to_string(),
        })?;
        let levels_ok = !name.is_empty()
            && name.len() <= 64
            && name
                .split('/')
                .all(|l| !l.is_empty() && !l.contains(['+', '#']));
        if !levels_ok || ["control", "data", "event"].contains(&name) {
            return Err(crate::HubError::Invalid {
                field: "topic",
                reason: format!(
                    "{name:?}: 1 to 64 characters of non-empty levels without wildcards, \
                     and not control, data or event (the Hub defines those)"
                ),
            });
        }
        self.core.lock().custom_topics.add(product_id, name, access);
        Ok(())
    }

    /// The declared custom topics: product, name, permission.
    pub fn product_topics(&self) -> Vec<(String, String, crate::TopicAccess)> {
        self.core.lock().custom_topics.list()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const P: &str = "JR1WOKB7Q7";
    const D: &str = "gw_deng1";

    fn grant(topic: &str, usage: Use) -> bool {
        let mut custom = CustomTopics::default();
        custom.add(P, "custom/up", TopicAccess::Publish);
        granted(topic, usage, &custom).is_some()
    }

    #[test]
    fn the_device_topic_list_is_granted_each_way_it_is_meant() {
        let subscribe = [
            format!("{P}/{D}/control"),
            format!("{P}/{D}/data"),
            format!("$shadow/operation/result/{P}/{D}"),
            format!("$sys/operation/result/{P}/{D}"),
            format!("$rrpc/rxd/{P}/{D}/+"),
            format!("$broadcast/rxd/{P}/{D}"),
            format!("$ota/update/{P}/{D}"),
            format!("$gateway/operation/result/{P}/{D}"),
        ];
        let publish = [
            format!("{P}/{D}/data"),
            format!("{P}/{D}/event"),
            format!("{P}/{D}/custom/up"),
            format!("$shadow/operation/{P}/{D}"),
            format!("$sys/operation/{P}/{D}"),
            format!("$rrpc/txd/{P}/{D}/12345"),
            format!("$ota/report/{P}/{D}"),
            format!("$gateway/operation/{P}/{D}"),
        ];
        for t in &subscribe {
            assert!(grant(t, Use::Subscribe), "subscribe {t}");
        }
        for t in &publish {
            assert!(grant(t, Use::Publish), "publish {t}");
        }
        assert!(!grant(&format!("{P}/{D}/control"), Use::Publish));
        assert!(!grant(&format!("{P}/{D}/event"), Use::Subscribe));
        assert!(!grant(&format!("{P}/{D}/custom/up"), Use::Subscribe));
        assert!(!grant(&format!("$ota/update/{P}/{D}"), Use::Publish));
    }

    #[test]
    fn wildcards_and_unknown_topics_are_refused() {
        for t in [
            "#".to_owned(),
            format!("{P}/+/control"),
            format!("{P}/{D}/#"),
            format!("{P}/{D}/undeclared"),
            format!("$rrpc/rxd/{P}/{D}/#"),
            format!("$rrpc/txd/{P}/{D}/+"),
            format!("$ota/update/{P}/+"),
            "$SYS/broker".to_owned(),
        ] {
            assert!(
                !grant(&t, Use::Subscribe) && !grant(&t, Use::Publish),
                "{t}"
            );
        }
    }

    proptest! {
        #[test]
        fn any_topic_is_judged_without_panicking(t in "[a-zA-Z0-9$/+#_]{0,40}") {
            let _ = grant(&t, Use::Subscribe);
            let _ = grant(&t, Use::Publish);
        }
    }
}
