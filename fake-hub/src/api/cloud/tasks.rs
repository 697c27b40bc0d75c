//! Update actions: `BatchUpdateFirmware` by the console's three methods (source version; chosen
//! devices and source version; chosen devices), the task list and details, per-device progress
//! and statistics, and per-device cancel and retry.
//!
//! Device states as `DeviceUpdateStatus.Status` numbers them (the Hub's OTA status codes):
//! 0 offline (pushed while the device is offline), 1 pending (queued or waiting for a retry),
//! 2 command sent, 3 downloading, 4 burning, 5 failed (also cancelled, with the reason in
//! `ErrMsg`), 6 succeeded, 7 processing (`done` reported, waiting for the new version). Task
//! states: 0 waiting to start, 1 running, 2 finished, 6 cancelled (`UpdateOtaTaskStatus` with
//! `Status` 6 cancels).

use super::CloudState;
use super::error::{CloudError, Code};
use super::params::{self, Answer, SearchKeyword, answer, decode};
use crate::tasks::{
    DeviceUpdate, PushMethod, PushRequest, TaskOptions, TaskRequest, TaskStatus, UpdateState,
};
use crate::{DeviceStatus, HubError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// The `UpdateOtaTaskStatus` status that cancels a task, and a cancelled task's status.
const TASK_CANCELLED: i64 = 6;

fn task_error(e: HubError) -> CloudError {
    match e {
        HubError::UnknownFirmware {
            product_id,
            version,
        } => CloudError::new(
            Code::FirmwareNotExist,
            format!("firmware {version} of product {product_id} does not exist"),
        ),
        HubError::UnknownDevice(d) => {
            CloudError::new(Code::DeviceNotExist, format!("device {d} does not exist"))
        }
        HubError::NoTargets => CloudError::new(
            Code::FailedOperation,
            "the update selects no device: no device of the product runs the source version",
        ),
        HubError::Invalid { field, reason } => CloudError::value(field, reason),
        other => CloudError::new(Code::InternalError, other),
    }
}

/// A device's state as the API numbers it.
pub(crate) fn device_status(u: &DeviceUpdate, online: bool) -> i64 {
    match &u.state {
        UpdateState::Pushed if !online => 0,
        UpdateState::Queued | UpdateState::WaitingRetry { .. } => 1,
        UpdateState::Pushed => 2,
        UpdateState::Downloading { .. } => 3,
        UpdateState::Burning => 4,
        UpdateState::Failed { .. } | UpdateState::Cancelled { .. } => 5,
        UpdateState::Succeeded => 6,
        UpdateState::Done => 7,
    }
}

fn task_state(t: &TaskStatus) -> i64 {
    if t.cancelled {
        TASK_CANCELLED
    } else if t.is_finished() {
        2
    } else if t.devices.values().all(|d| d.state == UpdateState::Queued) {
        0
    } else {
        1
    }
}

fn tasks_of(state: &CloudState, product_id: &str, version: &str) -> Vec<TaskStatus> {
    state
        .hub
        .tasks()
        .into_iter()
        .filter(|t| t.request.product_id == product_id && t.request.version == version)
        .collect()
}

fn task(state: &CloudState, product_id: &str, task_id: i64) -> Result<TaskStatus, CloudError> {
    u64::try_from(task_id)
        .ok()
        .and_then(|id| state.hub.task(id))
        .filter(|t| t.request.product_id == product_id)
        .ok_or_else(|| {
            CloudError::new(
                Code::FirmwareTaskNotExist,
                format!("task {task_id} of product {product_id} does not exist"),
            )
        })
}

fn created_unix(state: &CloudState, t: &TaskStatus) -> Option<i64> {
    t.devices
        .values()
        .filter_map(|d| d.history.first().map(|(at, _)| *at))
        .min()
        .map(|at| state.hub.unix_secs_at(at))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct BatchUpdateFirmwareRequest {
    product_id: String,
    firmware_version: String,
    firmware_ori_version: Option<String>,
    upgrade_method: Option<i64>,
    file_name: Option<String>,
    file_md5: Option<String>,
    file_size: Option<i64>,
    device_names: Option<Vec<String>>,
    timeout_interval: Option<i64>,
    #[serde(rename = "Type")]
    kind: Option<i64>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct BatchUpdateFirmwareResponse {
    task_id: u64,
}

fn push_method(r: &BatchUpdateFirmwareRequest) -> Result<PushMethod, CloudError> {
    let from = r
        .firmware_ori_version
        .as_deref()
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_owned())
                .collect::<Vec<_>>()
        });
    let devices = r.device_names.clone().filter(|d| !d.is_empty());
    if let Some(d) = &devices
        && d.len() > 1000
    {
        return Err(CloudError::value("DeviceNames", "at most 1000 devices"));
    }
    match (from, devices) {
        (Some(from_versions), None) => Ok(PushMethod::Versions { from_versions }),
        (Some(from_versions), Some(devices)) => Ok(PushMethod::DevicesAndVersions {
            devices,
            from_versions,
        }),
        (None, Some(devices)) => Ok(PushMethod::Devices { devices }),
        (None, None) => Err(CloudError::new(
            Code::MissingParameter,
            "the request is missing `FirmwareOriVersion` or `DeviceNames`: name the source \
             version, the devices, or both",
        )),
    }
}

pub(crate) fn batch_update_firmware(state: &CloudState, params: Value) -> Answer {
    let r: BatchUpdateFirmwareRequest = decode(params)?;
    params::known_product(&state.hub, "ProductId", &r.product_id)?;
    params::version("FirmwareVersion", &r.firmware_version)?;
    if r.file_name.is_some() || r.file_md5.is_some() || r.file_size.is_some() {
        return Err(CloudError::new(
            Code::UnsupportedOperation,
            "updates by a device list file are not simulated: pass DeviceNames",
        ));
    }
    match r
        .upgrade_method
        .map(|m| params::in_range("UpgradeMethod", m, 0, 1))
    {
        Some(Ok(1)) => {
            return Err(CloudError::new(
                Code::UnsupportedOperation,
                "UpgradeMethod 1 (user-confirmed updates) is not simulated: use 0 (silent)",
            ));
        }
        Some(Err(e)) => return Err(e),
        _ => {}
    }
    match r.kind {
        None | Some(1) => {}
        Some(7) => {
            return Err(CloudError::new(
                Code::UnsupportedOperation,
                "Type 7 (dynamic updates) is not simulated: use 1 (static)",
            ));
        }
        Some(other) => return Err(CloudError::value("Type", format!("{other} is not 1 or 7"))),
    }
    let timeout = r
        .timeout_interval
        .map(|t| params::in_range("TimeoutInterval", t, 60, 3600))
        .transpose()?
        .map(|secs| Duration::from_secs(secs.unsigned_abs()));
    let push = PushRequest {
        product_id: r.product_id.clone(),
        version: r.firmware_version.clone(),
        method: push_method(&r)?,
    };
    let options = TaskOptions {
        timeout,
        ..TaskOptions::default()
    };
    let task_id = state
        .hub
        .create_task(TaskRequest { push, options })
        .map_err(task_error)?;
    answer(&BatchUpdateFirmwareResponse { task_id })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DescribeFirmwareTasksRequest {
    product_id: String,
    firmware_version: String,
    offset: Option<i64>,
    limit: Option<i64>,
    filters: Option<Vec<SearchKeyword>>,
}

/// `FirmwareTaskInfo` of the SDK's models.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct FirmwareTaskInfo {
    task_id: u64,
    status: i64,
    #[serde(rename = "Type")]
    kind: i64,
    create_time: Option<i64>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DescribeFirmwareTasksResponse {
    task_infos: Vec<FirmwareTaskInfo>,
    total: usize,
}

fn offset_limit(
    offset: Option<i64>,
    limit: Option<i64>,
    max: i64,
) -> Result<(i64, i64), CloudError> {
    let offset = params::in_range("Offset", offset.unwrap_or(0), 0, i64::from(u32::MAX))?;
    let limit = params::in_range("Limit", limit.unwrap_or(20), 1, max)?;
    Ok((offset, limit))
}

pub(crate) fn describe_firmware_tasks(state: &CloudState, params: Value) -> Answer {
    let r: DescribeFirmwareTasksRequest = decode(params)?;
    let (offset, limit) = offset_limit(r.offset, r.limit, 100)?;
    let filters = params::filters(&r.filters, &["TaskId", "Status"])?;
    let infos: Vec<FirmwareTaskInfo> = tasks_of(state, &r.product_id, &r.firmware_version)
        .iter()
        .map(|t| FirmwareTaskInfo {
            task_id: t.id,
            status: task_state(t),
            kind: 1,
            create_time: created_unix(state, t),
        })
        .filter(|i| {
            filters.iter().all(|f| match f.key.as_str() {
                "TaskId" => f.value == i.task_id.to_string(),
                _ => f.value == i.status.to_string(),
            })
        })
        .collect();
    let total = infos.len();
    answer(&DescribeFirmwareTasksResponse {
        task_infos: params::page(infos, offset, limit),
        total,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct TaskKey {
    product_id: String,
    firmware_version: String,
    task_id: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DescribeFirmwareTaskResponse {
    task_id: u64,
    status: i64,
    create_time: Option<i64>,
    #[serde(rename = "Type")]
    kind: i64,
    product_name: String,
    upgrade_mode: String,
    product_id: String,
    original_version: Option<String>,
}

fn keyed_task(state: &CloudState, key: &TaskKey) -> Result<TaskStatus, CloudError> {
    let t = task(state, &key.product_id, key.task_id)?;
    if t.request.version != key.firmware_version {
        return Err(CloudError::new(
            Code::FirmwareTaskNotExist,
            format!(
                "task {} updates to {}, not {}",
                t.id, t.request.version, key.firmware_version
            ),
        ));
    }
    Ok(t)
}

pub(crate) fn describe_firmware_task(state: &CloudState, params: Value) -> Answer {
    let key: TaskKey = decode(params)?;
    let t = keyed_task(state, &key)?;
    let (mode, original) = match &t.request.method {
        PushMethod::Versions { from_versions } => {
            ("originalVersion", Some(from_versions.join(",")))
        }
        PushMethod::DevicesAndVersions { from_versions, .. } => {
            ("devicenames", Some(from_versions.join(",")))
        }
        PushMethod::Devices { .. } => ("devicenames", None),
    };
    answer(&DescribeFirmwareTaskResponse {
        task_id: t.id,
        status: task_state(&t),
        create_time: created_unix(state, &t),
        kind: 1,
        product_name: t.request.product_id.clone(),
        upgrade_mode: mode.to_owned(),
        product_id: t.request.product_id.clone(),
        original_version: original,
    })
}

/// `DeviceUpdateStatus` of the SDK's models.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DeviceUpdateStatus {
    device_name: String,
    last_process_time: i64,
    status: i64,
    err_msg: String,
    retcode: i64,
    dst_version: String,
    percent: i64,
    ori_version: Option<String>,
    task_id: u64,
}

fn online_map(state: &CloudState) -> BTreeMap<String, bool> {
    state
        .hub
        .devices()
        .into_iter()
        .map(|d: DeviceStatus| (d.device.to_string(), d.online))
        .collect()
}

fn update_status(state: &CloudState, u: &DeviceUpdate, online: bool) -> DeviceUpdateStatus {
    let (retcode, err_msg) = match &u.state {
        UpdateState::Failed { code, message } | UpdateState::WaitingRetry { code, message } => {
            (i64::from(*code), message.clone())
        }
        UpdateState::Cancelled { reason } => (0, format!("cancelled: {reason}")),
        _ => (0, String::new()),
    };
    let percent = match &u.state {
        UpdateState::Downloading { percent } => i64::from(*percent),
        UpdateState::Burning | UpdateState::Done | UpdateState::Succeeded => 100,
        _ => 0,
    };
    let last = u.history.last().map_or(0, |(at, _)| *at);
    DeviceUpdateStatus {
        device_name: u.device.device_name().to_owned(),
        last_process_time: state.hub.unix_secs_at(last),
        status: device_status(u, online),
        err_msg,
        retcode,
        dst_version: u.target_version.clone(),
        percent,
        ori_version: u.from_version.clone(),
        task_id: u.task_id,
    }
}

/// Every device update of the product's tasks to `version`, by task then device.
fn updates(state: &CloudState, product_id: &str, version: &str) -> Vec<DeviceUpdateStatus> {
    let online = online_map(state);
    tasks_of(state, product_id, version)
        .iter()
        .flat_map(|t| t.devices.values())
        .map(|u| {
            let on = online.get(&u.device.to_string()).copied().unwrap_or(false);
            update_status(state, u, on)
        })
        .collect()
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DescribeFirmwareTaskDevicesRequest {
    product_id: String,
    firmware_version: Option<String>,
    filters: Option<Vec<SearchKeyword>>,
    offset: Option<i64>,
    limit: Option<i64>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DescribeFirmwareTaskDevicesResponse {
    total: usize,
    devices: Vec<DeviceUpdateStatus>,
}

pub(crate) fn describe_firmware_task_devices(state: &CloudState, params: Value) -> Answer {
    let r: DescribeFirmwareTaskDevicesRequest = decode(params)?;
    let (offset, limit) = offset_limit(r.offset, r.limit, 250)?;
    let filters = params::filters(&r.filters, &["TaskId", "DeviceName", "Status"])?;
    let versions: Vec<String> = match &r.firmware_version {
        Some(v) => vec![v.clone()],
        None => state
            .hub
            .firmware()
            .into_iter()
            .filter(|f| f.product_id == r.product_id)
            .map(|f| f.version)
            .collect(),
    };
    let all: Vec<DeviceUpdateStatus> = versions
        .iter()
        .flat_map(|v| updates(state, &r.product_id, v))
        .filter(|d| {
            filters.iter().all(|f| match f.key.as_str() {
                "TaskId" => f.value == d.task_id.to_string(),
                "DeviceName" => d.device_name.contains(&f.value),
                _ => f.value == d.status.to_string(),
            })
        })
        .collect();
    let total = all.len();
    answer(&DescribeFirmwareTaskDevicesResponse {
        total,
        devices: params::page(all, offset, limit),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct FirmwareKey {
    product_id: String,
    firmware_version: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DescribeFirmwareTaskStatisticsResponse {
    success_total: usize,
    failure_total: usize,
    upgrading_total: usize,
}

pub(crate) fn describe_firmware_task_statistics(state: &CloudState, params: Value) -> Answer {
    let r: FirmwareKey = decode(params)?;
    let all = updates(state, &r.product_id, &r.firmware_version);
    let count = |codes: &[i64]| all.iter().filter(|d| codes.contains(&d.status)).count();
    answer(&DescribeFirmwareTaskStatisticsResponse {
        success_total: count(&[6]),
        failure_total: count(&[5]),
        upgrading_total: count(&[0, 1, 2, 3, 4, 7]),
    })
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct StatusStatistic {
    status: i64,
    total: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DescribeFirmwareTaskDistributionResponse {
    status_infos: Vec<StatusStatistic>,
}

pub(crate) fn describe_firmware_task_distribution(state: &CloudState, params: Value) -> Answer {
    let key: TaskKey = decode(params)?;
    let t = keyed_task(state, &key)?;
    let online = online_map(state);
    let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
    for u in t.devices.values() {
        let on = online.get(&u.device.to_string()).copied().unwrap_or(false);
        *counts.entry(device_status(u, on)).or_insert(0) += 1;
    }
    answer(&DescribeFirmwareTaskDistributionResponse {
        status_infos: counts
            .into_iter()
            .map(|(status, total)| StatusStatistic { status, total })
            .collect(),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DeviceTaskKey {
    product_id: String,
    device_name: String,
    firmware_version: String,
    task_id: i64,
}

fn device_task(
    state: &CloudState,
    r: DeviceTaskKey,
) -> Result<(u64, otasim_protocol::DeviceId), CloudError> {
    let id = params::device(&r.product_id, &r.device_name)?;
    let t = keyed_task(
        state,
        &TaskKey {
            product_id: r.product_id,
            firmware_version: r.firmware_version,
            task_id: r.task_id,
        },
    )?;
    Ok((t.id, id))
}

pub(crate) fn cancel_device_firmware_task(state: &CloudState, params: Value) -> Answer {
    let (task_id, id) = device_task(state, decode(params)?)?;
    state.hub.cancel_device_update(task_id, &id)?;
    answer(&serde_json::Map::new())
}

pub(crate) fn retry_device_firmware_task(state: &CloudState, params: Value) -> Answer {
    let (task_id, id) = device_task(state, decode(params)?)?;
    state.hub.retry_device_update(task_id, &id)?;
    answer(&serde_json::Map::new())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct UpdateOtaTaskStatusRequest {
    product_id: String,
    task_id: i64,
    status: i64,
}

pub(crate) fn update_ota_task_status(state: &CloudState, params: Value) -> Answer {
    let r: UpdateOtaTaskStatusRequest = decode(params)?;
    let t = task(state, &r.product_id, r.task_id)?;
    if r.status != TASK_CANCELLED {
        return Err(CloudError::value(
            "Status",
            format!(
                "{} is not {TASK_CANCELLED} (cancel), the one change a task allows",
                r.status
            ),
        ));
    }
    if t.is_finished() {
        return Err(CloudError::new(
            Code::DeviceFirmwareTaskAlreadyDone,
            format!("task {} has finished", t.id),
        ));
    }
    state.hub.cancel_task(t.id);
    answer(&serde_json::Map::new())
}
