//! `PublishMessage`: the backend sends a message to a device's own topic
//! (`${ProductId}/${DeviceName}/NAME`), base64-decoded first when asked; the hub publishes it
//! and records it in the transcript like its own messages.

use super::CloudState;
use super::error::{CloudError, Code};
use super::params::{self, Answer, answer, decode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::Value;

/// The largest payload the Hub forwards.
const MAX_PAYLOAD_BYTES: usize = 16 * 1024;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct PublishMessageRequest {
    topic: String,
    payload: String,
    product_id: String,
    device_name: String,
    qos: Option<i64>,
    payload_encoding: Option<String>,
}

pub(crate) fn publish_message(state: &CloudState, params: Value) -> Answer {
    let r: PublishMessageRequest = decode(params)?;
    let id = params::device(&r.product_id, &r.device_name)?;
    let prefix = format!("{}/{}/", r.product_id, r.device_name);
    let name_ok = r.topic.strip_prefix(&prefix).is_some_and(|name| {
        (1..=128).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b":_-".contains(&b))
    });
    if !name_ok {
        return Err(CloudError::new(
            Code::InvalidTopicName,
            format!(
                "topic {:?} is not {prefix}NAME with NAME 1 to 128 of [a-zA-Z0-9:_-]",
                r.topic
            ),
        ));
    }
    let qos = params::in_range("Qos", r.qos.unwrap_or(0), 0, 1)?;
    let payload = match r.payload_encoding.as_deref() {
        None | Some("") => r.payload.into_bytes(),
        Some("base64") => STANDARD
            .decode(r.payload.as_bytes())
            .map_err(|e| CloudError::value("Payload", format!("not base64: {e}")))?,
        Some(other) => {
            return Err(CloudError::value(
                "PayloadEncoding",
                format!("{other:?} is not base64 or empty"),
            ));
        }
    };
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(CloudError::new(
            Code::InvalidMsgLen,
            format!(
                "the payload is {} bytes, more than {MAX_PAYLOAD_BYTES}",
                payload.len()
            ),
        ));
    }
    state
        .hub
        .publish_to_device(&id, &r.topic, payload, u8::try_from(qos).unwrap_or(0))?;
    answer(&serde_json::Map::new())
}
