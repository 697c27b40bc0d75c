//! Firing rules at milestones and carrying out the actions any milestone can take.

use super::{HubFaultAction, Point};
use crate::core::{HubCore, State};
use tracing::{debug, info, warn};

impl HubCore {
    /// Counts the milestone; if a rule fires, records it and returns its action.
    pub(crate) fn fire(
        &self,
        state: &mut State,
        client_id: &str,
        point: Point<'_>,
    ) -> Option<HubFaultAction> {
        let (id, action) = state.faults.fire(point)?;
        let detail =
            serde_json::json!({ "rule": id, "at": format!("{point:?}"), "action": action });
        info!(client_id, rule = id.0, ?action, "fault fired");
        self.event(state, client_id, "fault", detail.to_string());
        Some(action)
    }

    /// Carries out an action that fits any milestone (`kick`, `push_task`); `client_id` is the
    /// client concerned.
    pub(crate) fn act(&self, state: &mut State, client_id: &str, action: HubFaultAction) {
        match action {
            HubFaultAction::Kick { client_id: named } => {
                let who = named.unwrap_or_else(|| client_id.to_owned());
                state.out.items.push(crate::core::Out::Kick(who));
            }
            HubFaultAction::PushTask { request } => {
                if let Err(e) = crate::tasks::create::push_locked(self, state, request) {
                    warn!(error = %e, "fault push_task refused");
                    self.event(state, client_id, "fault refused", e.to_string());
                }
            }
            other => debug!(?other, "action does not apply here"),
        }
    }
}
