//! The Hub's topics for OTA and gateway operations.

use crate::ids::{DeviceId, IdError};
use std::fmt;
use std::str::FromStr;

/// A topic this protocol uses, with the device whose topic space it is in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Topic {
    /// `$ota/update/{pid}/{dn}`: Hub to device.
    OtaUpdate(DeviceId),
    /// `$ota/report/{pid}/{dn}`: device to Hub.
    OtaReport(DeviceId),
    /// `$gateway/operation/{pid}/{dn}`: gateway to Hub.
    GatewayOperation(DeviceId),
    /// `$gateway/operation/result/{pid}/{dn}`: Hub to gateway.
    GatewayOperationResult(DeviceId),
}

/// Why a topic string is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The topic does not have a known shape.
    #[error("unknown topic {0:?}")]
    Unknown(String),
    /// The shape is known but the device part is invalid.
    #[error("topic {topic:?}: {source}")]
    BadDevice {
        /// The topic as received.
        topic: String,
        /// What was wrong with its device part.
        source: IdError,
    },
}

impl Topic {
    /// The device whose topic space this topic is in.
    pub fn device(&self) -> &DeviceId {
        match self {
            Topic::OtaUpdate(d)
            | Topic::OtaReport(d)
            | Topic::GatewayOperation(d)
            | Topic::GatewayOperationResult(d) => d,
        }
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (prefix, d) = match self {
            Topic::OtaUpdate(d) => ("$ota/update", d),
            Topic::OtaReport(d) => ("$ota/report", d),
            Topic::GatewayOperation(d) => ("$gateway/operation", d),
            Topic::GatewayOperationResult(d) => ("$gateway/operation/result", d),
        };
        write!(f, "{prefix}/{}/{}", d.product_id(), d.device_name())
    }
}

impl FromStr for Topic {
    type Err = TopicError;

    fn from_str(topic: &str) -> Result<Self, TopicError> {
        let parts: Vec<&str> = topic.split('/').collect();
        let (kind, pid, dn): (fn(DeviceId) -> Topic, &str, &str) = match *parts.as_slice() {
            ["$ota", "update", pid, dn] => (Topic::OtaUpdate, pid, dn),
            ["$ota", "report", pid, dn] => (Topic::OtaReport, pid, dn),
            ["$gateway", "operation", "result", pid, dn] => {
                (Topic::GatewayOperationResult, pid, dn)
            }
            ["$gateway", "operation", pid, dn] => (Topic::GatewayOperation, pid, dn),
            _ => return Err(TopicError::Unknown(topic.to_owned())),
        };
        let id = DeviceId::new(pid, dn).map_err(|source| TopicError::BadDevice {
            topic: topic.to_owned(),
            source,
        })?;
        Ok(kind(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn light1() -> DeviceId {
        DeviceId::new("E69UADXUYY", "light1").unwrap()
    }

    #[test]
    fn topics_render_as_the_sdks_write_them() {
        assert_eq!(
            Topic::OtaUpdate(light1()).to_string(),
            "$ota/update/E69UADXUYY/light1"
        );
        assert_eq!(
            Topic::OtaReport(light1()).to_string(),
            "$ota/report/E69UADXUYY/light1"
        );
        let gw = DeviceId::new("JR1WOKB7Q7", "gw_deng1").unwrap();
        assert_eq!(
            Topic::GatewayOperation(gw.clone()).to_string(),
            "$gateway/operation/JR1WOKB7Q7/gw_deng1"
        );
        assert_eq!(
            Topic::GatewayOperationResult(gw).to_string(),
            "$gateway/operation/result/JR1WOKB7Q7/gw_deng1"
        );
    }

    #[test]
    fn result_topic_is_not_mistaken_for_an_operation_on_device_result() {
        let t: Topic = "$gateway/operation/result/JR1WOKB7Q7/gw_deng1"
            .parse()
            .unwrap();
        assert!(matches!(t, Topic::GatewayOperationResult(_)));
    }

    #[test]
    fn foreign_and_malformed_topics_are_refused() {
        for bad in [
            "$ota/update/E69UADXUYY",
            "$ota/update/E69UADXUYY/a/b",
            "$sys/x",
            "ota/update/P/D",
            "$ota/update/P/..",
        ] {
            assert!(bad.parse::<Topic>().is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn every_topic_parses_back_to_itself(pid in "[A-Z0-9]{1,12}", dn in "[a-zA-Z0-9_]{1,20}", kind in 0..4u8) {
            let id = DeviceId::new(pid, dn).unwrap();
            let t = match kind { 0 => Topic::OtaUpdate(id), 1 => Topic::OtaReport(id), 2 => Topic::GatewayOperation(id), _ => Topic::GatewayOperationResult(id) };
            prop_assert_eq!(t.to_string().parse::<Topic>().unwrap(), t);
        }
    }
}
