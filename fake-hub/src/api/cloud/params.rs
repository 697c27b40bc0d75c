//! Decoding an action's parameters and the checks every action shares: ids, ranges, paging,
//! search filters. Each refusal names the parameter.

use super::error::{CloudError, Code};
use crate::Hub;
use otasim_protocol::DeviceId;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What an action answers: the response's fields, without `RequestId`.
pub(crate) type Answer = Result<Value, CloudError>;

/// Decodes `params` into the action's request type (unknown, missing and mistyped parameters
/// get their own codes).
pub(crate) fn decode<T: DeserializeOwned>(params: Value) -> Result<T, CloudError> {
    serde_json::from_value(params).map_err(|e| CloudError::from_params(&e))
}

/// Serializes an action's response fields.
pub(crate) fn answer<T: Serialize>(response: &T) -> Answer {
    Ok(serde_json::to_value(response).expect("response types serialize to JSON"))
}

/// A device id from its parameters.
pub(crate) fn device(product_id: &str, device_name: &str) -> Result<DeviceId, CloudError> {
    DeviceId::new(product_id, device_name).map_err(|e| {
        CloudError::value(
            "ProductId/DeviceName",
            format!("{e} (a product id is 1-32 letters and digits, a device name 1-48 of [a-zA-Z0-9:_-])"),
        )
    })
}

/// Checks a product id's form and that the hub knows the product (a device or firmware of it).
pub(crate) fn known_product(hub: &Hub, param: &str, product_id: &str) -> Result<(), CloudError> {
    let valid = (1..=32).contains(&product_id.len())
        && product_id.bytes().all(|b| b.is_ascii_alphanumeric());
    if !valid {
        return Err(CloudError::value(
            param,
            format!("{product_id:?} is not a product id"),
        ));
    }
    let known = hub
        .devices()
        .iter()
        .any(|d| d.device.product_id() == product_id)
        || hub.firmware().iter().any(|f| f.product_id == product_id);
    if known {
        Ok(())
    } else {
        Err(CloudError::new(
            Code::ProductNotExist,
            format!("product {product_id} does not exist"),
        ))
    }
}

/// A firmware version's form: 1 to 32 characters, as the Hub takes them.
pub(crate) fn version(param: &str, version: &str) -> Result<(), CloudError> {
    if version.is_empty() || version.chars().count() > 32 {
        return Err(CloudError::value(param, "a version is 1 to 32 characters"));
    }
    Ok(())
}

/// `value` within `lo..=hi`.
pub(crate) fn in_range(param: &str, value: i64, lo: i64, hi: i64) -> Result<i64, CloudError> {
    if (lo..=hi).contains(&value) {
        Ok(value)
    } else {
        Err(CloudError::value(
            param,
            format!("{value} is not within {lo} to {hi}"),
        ))
    }
}

/// A page of `items` from `offset`, at most `limit` long.
pub(crate) fn page<T>(items: Vec<T>, offset: i64, limit: i64) -> Vec<T> {
    let offset = usize::try_from(offset).unwrap_or(usize::MAX);
    let limit = usize::try_from(limit).unwrap_or(0);
    items.into_iter().skip(offset).take(limit).collect()
}

/// A search condition (`SearchKeyword`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(crate) struct SearchKeyword {
    pub(crate) key: String,
    pub(crate) value: String,
}

/// Checks that every filter's key is one of `allowed`.
pub(crate) fn filters<'a>(
    filters: &'a Option<Vec<SearchKeyword>>,
    allowed: &[&str],
) -> Result<&'a [SearchKeyword], CloudError> {
    let list = filters.as_deref().unwrap_or(&[]);
    if list.len() > 16 {
        return Err(CloudError::value("Filters", "at most 16 conditions"));
    }
    if let Some(f) = list.iter().find(|f| !allowed.contains(&f.key.as_str())) {
        return Err(CloudError::value(
            "Filters",
            format!("the key {:?} is not one of {}", f.key, allowed.join(", ")),
        ));
    }
    Ok(list)
}
