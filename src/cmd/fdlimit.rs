//! The open-file limit, raised for commands that hold a connection per device.
//!
//! Every MQTT connection costs the hub three descriptors (the device's socket, and both ends of
//! the front's link to the embedded broker), and a downloading gateway one more on COS: a fleet
//! of 10,000 gateways needs over 30,000, where a login shell's soft limit is often 1,024. Like
//! most servers, `otasim hub` raises its soft limit to the hard one at start, and further when
//! the process may (root, or CAP_SYS_RESOURCE); what it got is said when it is short.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Descriptors a hub needs beyond its connections: listeners, files, the runtime's own.
const BASE: u64 = 256;

/// The descriptors a hub holding `connections` MQTT connections per listener needs.
pub(super) fn wanted_for_hub(connections: usize) -> u64 {
    // 3 per MQTT connection, 1 per COS connection (capped like MQTT).
    (connections as u64).saturating_mul(4).saturating_add(BASE)
}

/// Raises the soft limit to at least `wanted` (up to the hard limit, and the hard limit too
/// where the process is allowed to); answers the soft limit in force afterwards.
pub(super) fn raise_to(wanted: u64) -> u64 {
    let now = getrlimit(Resource::Nofile);
    let soft = now.current.unwrap_or(u64::MAX);
    let hard = now.maximum.unwrap_or(u64::MAX);
    if soft >= wanted {
        return soft;
    }
    if wanted > hard {
        // Only a privileged process may raise the hard limit; an error leaves it as it was.
        let both = Rlimit {
            current: Some(wanted),
            maximum: Some(wanted),
        };
        if setrlimit(Resource::Nofile, both).is_ok() {
            return wanted;
        }
    }
    let target = wanted.min(hard);
    let raised = Rlimit {
        current: Some(target),
        maximum: now.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => target,
        Err(_) => soft,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_already_high_enough_is_left_alone_and_a_raise_never_lowers_it() {
        let before = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
        assert_eq!(raise_to(16), before);
        let after = raise_to(before.saturating_add(1));
        assert!(after >= before, "{after} < {before}");
        assert_eq!(
            getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX),
            after
        );
    }

    #[test]
    fn the_hub_asks_for_four_descriptors_per_connection_plus_its_own() {
        assert_eq!(wanted_for_hub(10_000), 40_256);
        assert_eq!(wanted_for_hub(usize::MAX), u64::MAX);
    }
}
