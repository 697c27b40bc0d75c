//! Misbehaviour on cue: an ordered list of rules, each fired on a typed milestone (the Nth
//! CONNECT of a client, the Nth message of a type about a device, the Nth `update_firmware`, a
//! device's update entering a state). At each milestone the first rule that matches and still
//! has firings left decides; every firing is recorded in the transcript (event `fault`).
//!
//! Rules are plain serde data, so the control API and scenario files carry them as JSON or
//! TOML. Installing one returns its [`FaultId`]; [`crate::Hub::remove_fault`] removes it.
//! Held acknowledgements and replies (a delay without `ms`) wait for
//! [`crate::Hub::release_held`]: `hold`/`release` come in a pair.

mod book;
mod fire;

pub use book::InstalledFault;
pub(crate) use book::{FaultBook, Point};

use crate::HubError;
use crate::tasks::TaskRequest;
use otasim_protocol::DeviceId;
use serde::{Deserialize, Serialize};

/// Identifies one installed rule of one hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FaultId(pub u64);

/// One fault: the milestone it waits for, what it does there, and how often.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubFaultRule {
    /// The milestone.
    pub when: Milestone,
    /// What happens there.
    pub action: HubFaultAction,
    /// How many matching milestones it fires on.
    pub fires: Fires,
}

/// How many times a rule fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fires {
    /// On the first matching milestone only.
    Once,
    /// On the first N matching milestones.
    Times(u32),
    /// On every matching milestone.
    Always,
}

impl Fires {
    pub(crate) fn allows(self, fired: u32) -> bool {
        match self {
            Fires::Once => fired < 1,
            Fires::Times(n) => fired < n,
            Fires::Always => true,
        }
    }
}

/// A typed point in the conversation. `nth` counts from 1 since the hub started; unset
/// matches every occurrence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "on", rename_all = "snake_case", deny_unknown_fields)]
pub enum Milestone {
    /// The Nth CONNECT with this client id (after its credentials were checked and accepted).
    Connect {
        /// The MQTT client id.
        client_id: String,
        /// Which CONNECT, from 1.
        #[serde(default)]
        nth: Option<u32>,
    },
    /// The Nth subscription (topic filter) a client asks for, of one filter if given.
    Subscribe {
        /// The MQTT client id.
        client_id: String,
        /// Only this exact filter.
        #[serde(default)]
        topic_filter: Option<String>,
        /// Which subscription, from 1.
        #[serde(default)]
        nth: Option<u32>,
    },
    /// The Nth message of a `type` published on a device's topic (`$ota/report/{device}`, or
    /// `$gateway/operation/{device}` for a gateway's operations).
    Message {
        /// The device whose topic it is.
        device: DeviceId,
        /// `report_version`, `report_progress`, `online`, `bind`, ...
        message_type: String,
        /// Which message of that type, from 1.
        #[serde(default)]
        nth: Option<u32>,
    },
    /// The hub is about to send its Nth `update_firmware` to a device.
    UpdateFirmware {
        /// The device.
        device: DeviceId,
        /// Which command, from 1.
        #[serde(default)]
        nth: Option<u32>,
    },
    /// A device's update enters a state (a label of [`crate::UpdateState`]: `pushed`,
    /// `downloading`, `burning`, `done`, `waiting_retry`, `succeeded`, `failed`, ...).
    TaskState {
        /// Only this device.
        #[serde(default)]
        device: Option<DeviceId>,
        /// Only this task.
        #[serde(default)]
        task_id: Option<u64>,
        /// The state label.
        state: String,
    },
}

/// What a fired rule does. Each action fits some milestones; [`HubFaultRule::validate`] says
/// which.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "do", rename_all = "snake_case", deny_unknown_fields)]
pub enum HubFaultAction {
    /// Disconnect a client: the one named, else the one concerned (the connecting or
    /// subscribing client, the publisher, or the gateway a device's update goes through).
    Kick {
        /// The client to kick.
        #[serde(default)]
        client_id: Option<String>,
    },
    /// Refuse the CONNECT with this return code (3, 4 or 5). `Connect` only.
    RefuseConnect {
        /// The CONNACK return code.
        code: u8,
    },
    /// Hold the CONNACK for `ms`, or until released. `Connect` only.
    DelayConnack {
        /// Milliseconds; unset holds until [`crate::Hub::release_held`].
        #[serde(default)]
        ms: Option<u64>,
    },
    /// Hold the SUBACK for `ms`, or until released. `Subscribe` only.
    DelaySuback {
        /// Milliseconds; unset holds until released.
        #[serde(default)]
        ms: Option<u64>,
    },
    /// Answer the subscription with failure (0x80). `Subscribe` only.
    FailSubscription,
    /// Answer `report_version` with this code. `Message` of `report_version` only.
    ReportVersionRsp {
        /// The `result_code` (non-zero wedges the C SDK's OTA handle).
        result_code: i64,
        /// The `result_msg`.
        #[serde(default = "default_rsp_msg")]
        result_msg: String,
    },
    /// Answer a gateway operation after `ms`, or when released. Gateway `Message` only.
    GatewayLate {
        /// Milliseconds; unset holds until released.
        #[serde(default)]
        ms: Option<u64>,
    },
    /// Never answer a gateway operation (the operation still takes effect).
    GatewayNever,
    /// Answer a gateway operation with this result, without applying it.
    GatewayResult {
        /// The integer result put on every device of the reply.
        result: i64,
    },
    /// Send the `update_firmware` twice. `UpdateFirmware` only.
    DuplicateUpdate,
    /// Send the `update_firmware` with another MD5. `UpdateFirmware` only.
    WrongMd5 {
        /// The MD5 to send; unset sends the real one with its bits flipped.
        #[serde(default)]
        md5: Option<String>,
    },
    /// Send the `update_firmware` with another size. `UpdateFirmware` only.
    WrongSize {
        /// The `file_size` to send.
        file_size: i64,
    },
    /// Send the `update_firmware` with another URL. `UpdateFirmware` only.
    WrongUrl {
        /// The URL to send.
        url: String,
    },
    /// Send these bytes instead of the `update_firmware` (fields of the wrong JSON type,
    /// missing fields, oversize commands). `UpdateFirmware` only.
    RawUpdate {
        /// The payload, as sent.
        payload: String,
    },
    /// Create another task (with `override_running` to push over the running one).
    PushTask {
        /// The task.
        request: TaskRequest,
    },
}

fn default_rsp_msg() -> String {
    "failed".to_owned()
}

impl HubFaultRule {
    /// Checks that the action fits the milestone and its values are in range.
    pub fn validate(&self) -> Result<(), HubError> {
        use HubFaultAction as A;
        use Milestone as M;
        let bad = |reason: String| {
            Err(HubError::Invalid {
                field: "action",
                reason,
            })
        };
        let gateway_ops = [
            "online",
            "offline",
            "bind",
            "unbind",
            "describe_sub_devices",
        ];
        if let A::DelayConnack { ms: Some(ms) }
        | A::DelaySuback { ms: Some(ms) }
        | A::GatewayLate { ms: Some(ms) } = &self.action
            && *ms > crate::tasks::options::MAX_DURATION_MS
        {
            return Err(HubError::Invalid {
                field: "action.ms",
                reason: format!(
                    "{ms} ms: at most {} (a year); leave it unset to hold until released",
                    crate::tasks::options::MAX_DURATION_MS
                ),
            });
        }
        if let A::PushTask { request } = &self.action {
            request.options.validate()?;
        }
        match (&self.when, &self.action) {
            (_, A::Kick { .. } | A::PushTask { .. }) => Ok(()),
            (M::Connect { .. }, A::RefuseConnect { code: 3..=5 }) => Ok(()),
            (M::Connect { .. }, A::RefuseConnect { code }) => {
                bad(format!("CONNACK code {code}: only 3, 4 or 5"))
            }
            (M::Connect { .. }, A::DelayConnack { .. }) => Ok(()),
            (M::Subscribe { .. }, A::DelaySuback { .. } | A::FailSubscription) => Ok(()),
            (M::Message { message_type, .. }, A::ReportVersionRsp { .. })
                if message_type == "report_version" =>
            {
                Ok(())
            }
            (
                M::Message { message_type, .. },
                A::GatewayLate { .. } | A::GatewayNever | A::GatewayResult { .. },
            ) if gateway_ops.contains(&message_type.as_str()) => Ok(()),
            (
                M::UpdateFirmware { .. },
                A::DuplicateUpdate
                | A::WrongMd5 { .. }
                | A::WrongSize { .. }
                | A::WrongUrl { .. }
                | A::RawUpdate { .. },
            ) => Ok(()),
            (when, action) => bad(format!("{action:?} cannot fire on {when:?}")),
        }
    }
}

/// Fault rules and holds.
impl crate::Hub {
    /// Installs a fault rule at the end of the list; returns its id.
    pub fn add_fault(&self, rule: HubFaultRule) -> Result<FaultId, crate::HubError> {
        rule.validate()?;
        let id = self.core.lock().faults.add(rule);
        Ok(id)
    }

    /// Removes a fault rule; false if it was not installed.
    pub fn remove_fault(&self, id: FaultId) -> bool {
        self.core.lock().faults.remove(id)
    }

    /// The installed fault rules, in order, with how often each fired.
    pub fn faults(&self) -> Vec<InstalledFault> {
        self.core.lock().faults.list()
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        self.core.lock().faults.clear();
    }

    /// Ends every hold (a CONNACK, SUBACK or gateway reply delayed without a duration).
    pub fn release_held(&self) {
        self.core.release_held();
    }
}
