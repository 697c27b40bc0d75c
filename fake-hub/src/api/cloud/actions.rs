//! The action table: each action the simulator implements, by name, and the SDK's full list of
//! `iotcloud` 2021-04-08 actions, so that one it has but otasim does not simulate answers
//! `UnsupportedOperation` and a name the API lacks answers `InvalidAction`.

use super::CloudState;
use super::error::{CloudError, Code};
use super::params::Answer;
use super::{devices, firmware, messages, tasks};
use serde_json::Value;

type Action = fn(&CloudState, Value) -> Answer;

/// The actions otasim implements.
const IMPLEMENTED: &[(&str, Action)] = &[
    ("GetCOSURL", firmware::get_cos_url),
    ("UploadFirmware", firmware::upload_firmware),
    ("ListFirmwares", firmware::list_firmwares),
    ("DescribeFirmware", firmware::describe_firmware),
    ("EditFirmware", firmware::edit_firmware),
    ("GetAllVersion", firmware::get_all_version),
    ("BatchUpdateFirmware", tasks::batch_update_firmware),
    ("DescribeFirmwareTasks", tasks::describe_firmware_tasks),
    ("DescribeFirmwareTask", tasks::describe_firmware_task),
    (
        "DescribeFirmwareTaskDevices",
        tasks::describe_firmware_task_devices,
    ),
    (
        "DescribeFirmwareTaskStatistics",
        tasks::describe_firmware_task_statistics,
    ),
    (
        "DescribeFirmwareTaskDistribution",
        tasks::describe_firmware_task_distribution,
    ),
    (
        "CancelDeviceFirmwareTask",
        tasks::cancel_device_firmware_task,
    ),
    ("RetryDeviceFirmwareTask", tasks::retry_device_firmware_task),
    ("UpdateOtaTaskStatus", tasks::update_ota_task_status),
    ("CreateDevice", devices::create_device),
    ("DescribeDevice", devices::describe_device),
    ("DescribeDevices", devices::describe_devices),
    ("DeleteDevice", devices::delete_device),
    (
        "UpdateDevicesEnableState",
        devices::update_devices_enable_state,
    ),
    ("BindDevices", devices::bind_devices),
    ("UnbindDevices", devices::unbind_devices),
    (
        "DescribeGatewayBindDevices",
        devices::describe_gateway_bind_devices,
    ),
    ("PublishMessage", messages::publish_message),
];

/// Every action of `IotcloudClient` in tencentcloud-sdk-python-iotcloud 3.0.1459.
const SDK_ACTIONS: &[&str] = &[
    "BatchUpdateFirmware",
    "BindDevices",
    "CancelDeviceFirmwareTask",
    "CreateDevice",
    "CreateMultiDevicesTask",
    "CreatePrivateCA",
    "CreateProduct",
    "CreateTaskFileUrl",
    "CreateTopicPolicy",
    "CreateTopicRule",
    "DeleteDevice",
    "DeleteDeviceResource",
    "DeleteDeviceShadow",
    "DeletePrivateCA",
    "DeleteProduct",
    "DeleteProductPrivateCA",
    "DeleteTopicRule",
    "DescribeDevice",
    "DescribeDeviceClientKey",
    "DescribeDeviceResource",
    "DescribeDeviceResources",
    "DescribeDeviceShadow",
    "DescribeDevices",
    "DescribeFirmware",
    "DescribeFirmwareTask",
    "DescribeFirmwareTaskDevices",
    "DescribeFirmwareTaskDistribution",
    "DescribeFirmwareTaskStatistics",
    "DescribeFirmwareTasks",
    "DescribeGatewayBindDevices",
    "DescribePrivateCA",
    "DescribePrivateCABindedProducts",
    "DescribePrivateCAs",
    "DescribeProduct",
    "DescribeProductCA",
    "DescribeProductResource",
    "DescribeProductResources",
    "DescribeProductTask",
    "DescribeProductTasks",
    "DescribeProducts",
    "DescribePushResourceTaskStatistics",
    "DescribeResourceTasks",
    "DisableTopicRule",
    "DownloadDeviceResource",
    "EditFirmware",
    "EnableTopicRule",
    "GetAllVersion",
    "GetCOSURL",
    "GetUserResourceInfo",
    "ListFirmwares",
    "ListLog",
    "ListLogPayload",
    "ListSDKLog",
    "ListTopicRules",
    "PublishBroadcastMessage",
    "PublishMessage",
    "PublishRRPCMessage",
    "ReplaceTopicRule",
    "ResetDeviceState",
    "RetryDeviceFirmwareTask",
    "SetProductsForbiddenStatus",
    "UnbindDevices",
    "UpdateDeviceAvailableState",
    "UpdateDeviceLogLevel",
    "UpdateDevicePSK",
    "UpdateDeviceShadow",
    "UpdateDevicesEnableState",
    "UpdateOtaTaskStatus",
    "UpdatePrivateCA",
    "UpdateProductDynamicRegister",
    "UpdateProductPrivateCA",
    "UpdateTopicPolicy",
    "UploadFirmware",
];

/// Runs `action` with its parameters.
pub(crate) fn run(state: &CloudState, action: &str, params: Value) -> Answer {
    if let Some((_, run)) = IMPLEMENTED.iter().find(|(name, _)| *name == action) {
        return run(state, params);
    }
    if SDK_ACTIONS.contains(&action) {
        return Err(CloudError::new(
            Code::UnsupportedOperation,
            format!("the action {action} is not simulated by otasim"),
        ));
    }
    Err(CloudError::new(
        Code::InvalidAction,
        format!("the action {action:?} does not exist in iotcloud 2021-04-08"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_implemented_action_is_an_sdk_action() {
        for (name, _) in IMPLEMENTED {
            assert!(SDK_ACTIONS.contains(name), "{name} is not in the SDK");
        }
        assert_eq!(IMPLEMENTED.len(), 24);
    }
}
