//! Creating tasks from console pushes and reporting on them.

use crate::HubError;
use crate::core::HubCore;
use crate::registry::DeviceKind;
use crate::tasks::{DeviceUpdate, PushMethod, PushRequest, TaskStatus};
use otasim_protocol::DeviceId;

pub(crate) fn push(core: &HubCore, request: PushRequest) -> Result<u64, HubError> {
    let mut state = core.lock();
    if state
        .registry
        .firmware(&request.product_id, &request.version)
        .is_none()
    {
        return Err(HubError::UnknownFirmware {
            product_id: request.product_id,
            version: request.version,
        });
    }
    let product_devices: Vec<(DeviceId, Option<String>, bool)> = state
        .registry
        .devices()
        .filter(|d| d.id.product_id() == request.product_id && d.kind == DeviceKind::Subdevice)
        .map(|d| (d.id.clone(), d.version.clone(), d.online))
        .collect();
    let named = |names: &[String]| -> Result<(), HubError> {
        for n in names {
            if !product_devices.iter().any(|(id, ..)| id.device_name() == n) {
                return Err(HubError::UnknownDevice(format!(
                    "{}/{n}",
                    request.product_id
                )));
            }
        }
        Ok(())
    };
    let in_versions =
        |v: &Option<String>, set: &[String]| v.as_ref().is_some_and(|v| set.contains(v));
    let targets: Vec<_> = match &request.method {
        PushMethod::Versions { from_versions } => product_devices
            .iter()
            .filter(|(_, v, _)| in_versions(v, from_versions))
            .collect(),
        PushMethod::DevicesAndVersions {
            devices,
            from_versions,
        } => {
            named(devices)?;
            product_devices
                .iter()
                .filter(|(id, v, _)| {
                    devices.iter().any(|n| n == id.device_name()) && in_versions(v, from_versions)
                })
                .collect()
        }
        PushMethod::Devices { devices } => {
            named(devices)?;
            product_devices
                .iter()
                .filter(|(id, ..)| devices.iter().any(|n| n == id.device_name()))
                .collect()
        }
    };
    if targets.is_empty() {
        return Err(HubError::NoTargets);
    }
    state.next_task_id += 1;
    let task_id = state.next_task_id;
    let at = core.elapsed();
    for (id, version, online) in targets {
        let update = DeviceUpdate::new(
            task_id,
            id.clone(),
            version.clone(),
            request.version.clone(),
            at,
        );
        // One pending update per device: a new push supersedes the old one.
        if let Some(old) = state.updates.insert(id.clone(), update) {
            state.past_updates.push(old);
        }
        if *online {
            core.send_update(&mut state, id);
        }
    }
    state.tasks.insert(task_id, request);
    drop(state);
    core.bump();
    Ok(task_id)
}

pub(crate) fn status(core: &HubCore, task_id: u64) -> Option<TaskStatus> {
    let state = core.lock();
    let request = state.tasks.get(&task_id)?.clone();
    let devices = state
        .updates
        .values()
        .chain(state.past_updates.iter())
        .filter(|u| u.task_id == task_id)
        .cloned()
        .collect();
    Some(TaskStatus::summarize(task_id, request, devices))
}
