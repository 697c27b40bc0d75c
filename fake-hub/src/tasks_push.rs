//! Creating tasks from console pushes, cancelling them, and reporting on them.

use crate::HubError;
use crate::core::{HubCore, State, TaskRecord};
use crate::registry::DeviceKind;
use crate::tasks::{
    self, DeviceUpdate, PushMethod, PushRequest, TaskRequest, TaskStatus, UpdateState,
};
use otasim_protocol::DeviceId;
use std::collections::BTreeMap;

pub(crate) fn push(core: &HubCore, request: TaskRequest) -> Result<u64, HubError> {
    let mut state = core.lock();
    let id = push_locked(core, &mut state, request)?;
    drop(state);
    core.wake.notify_one();
    core.bump();
    Ok(id)
}

/// The devices of the product a push selects, with their versions, in id order.
fn targets(
    state: &State,
    request: &PushRequest,
) -> Result<Vec<(DeviceId, Option<String>)>, HubError> {
    let product: Vec<(DeviceId, Option<String>)> = state
        .registry
        .devices()
        .filter(|d| d.id.product_id() == request.product_id && d.kind == DeviceKind::Subdevice)
        .map(|d| (d.id.clone(), d.version.clone()))
        .collect();
    let named = |names: &[String]| -> Result<(), HubError> {
        match names
            .iter()
            .find(|n| !product.iter().any(|(id, _)| id.device_name() == n.as_str()))
        {
            Some(n) => Err(HubError::UnknownDevice(format!(
                "{}/{n}",
                request.product_id
            ))),
            None => Ok(()),
        }
    };
    let in_set = |v: &Option<String>, set: &[String]| v.as_ref().is_some_and(|v| set.contains(v));
    let listed = |id: &DeviceId, names: &[String]| names.iter().any(|n| n == id.device_name());
    let chosen: Vec<_> = match &request.method {
        PushMethod::Versions { from_versions } => product
            .into_iter()
            .filter(|(_, v)| in_set(v, from_versions))
            .collect(),
        PushMethod::DevicesAndVersions {
            devices,
            from_versions,
        } => {
            named(devices)?;
            product
                .into_iter()
                .filter(|(id, v)| listed(id, devices) && in_set(v, from_versions))
                .collect()
        }
        PushMethod::Devices { devices } => {
            named(devices)?;
            product
                .into_iter()
                .filter(|(id, _)| listed(id, devices))
                .collect()
        }
    };
    Ok(chosen)
}

/// Creates the task under the caller's lock. A device with a pending update under another task
/// is skipped (listed in the task) unless the task overrides running ones; the older update of
/// a device taken over is cancelled (`superseded by task N`). A device that reported `done` is
/// not pending any more: a new task takes it over.
pub(crate) fn push_locked(
    core: &HubCore,
    state: &mut State,
    request: TaskRequest,
) -> Result<u64, HubError> {
    let TaskRequest { push, options } = request;
    if state
        .registry
        .firmware(&push.product_id, &push.version)
        .is_none()
    {
        return Err(HubError::UnknownFirmware {
            product_id: push.product_id,
            version: push.version,
        });
    }
    // Options built in Rust or carried by a fault rule skipped the parse-time checks.
    options.validate()?;
    let chosen = targets(state, &push)?;
    if chosen.is_empty() {
        return Err(HubError::NoTargets);
    }
    state.next_task_id += 1;
    let task_id = state.next_task_id;
    let at = core.elapsed();
    let mut skipped = BTreeMap::new();
    let mut started = 0;
    for (id, version) in chosen {
        if let Some(old) = state.updates.get(&id).filter(|u| !u.state.is_final()) {
            // After `done` the device's part is over (the Hub only awaits its version), so a
            // new task takes it over like an override.
            let device_busy = old.state != UpdateState::Done;
            if device_busy && !options.override_running {
                skipped.insert(id.to_string(), old.task_id);
                continue;
            }
            let reason = format!("superseded by task {task_id}");
            core.update_event(state, &id, |u| {
                u.cancel(reason, at);
                tasks::Effect::None
            });
        }
        let start_at = at.saturating_add(options.start_offset(started));
        started += 1;
        let update = DeviceUpdate::new(
            task_id,
            id.clone(),
            version,
            push.version.clone(),
            options.policy(),
            at,
            start_at,
        );
        if let Some(old) = state.updates.insert(id.clone(), update) {
            state.past_updates.push(old);
        }
        // Devices due now start at once; the scheduler starts the others.
        core.update_event(state, &id, |u| u.on_tick(at));
    }
    state.tasks.insert(
        task_id,
        TaskRecord {
            request: push,
            options,
            skipped,
            cancelled: false,
        },
    );
    Ok(task_id)
}

/// Cancels every unfinished update of the task; false for an unknown task.
pub(crate) fn cancel(core: &HubCore, task_id: u64) -> bool {
    let mut state = core.lock();
    let Some(task) = state.tasks.get_mut(&task_id) else {
        return false;
    };
    task.cancelled = true;
    let at = core.elapsed();
    let devices: Vec<DeviceId> = state
        .updates
        .values()
        .filter(|u| u.task_id == task_id)
        .map(|u| u.device.clone())
        .collect();
    for id in devices {
        core.update_event(&mut state, &id, |u| {
            u.cancel("task cancelled".to_owned(), at);
            tasks::Effect::None
        });
    }
    drop(state);
    core.bump();
    true
}

pub(crate) fn status(core: &HubCore, task_id: u64) -> Option<TaskStatus> {
    let state = core.lock();
    let task = state.tasks.get(&task_id)?.clone();
    let devices: Vec<&DeviceUpdate> = state
        .updates
        .values()
        .chain(state.past_updates.iter())
        .filter(|u| u.task_id == task_id)
        .collect();
    let (summary, failures) = tasks::summarize(devices.iter().copied());
    let warnings = devices
        .iter()
        .filter_map(|d| Some((d.device.to_string(), d.warning.clone()?)))
        .collect();
    Some(TaskStatus {
        id: task_id,
        request: task.request,
        options: task.options,
        devices: devices
            .into_iter()
            .map(|d| (d.device.to_string(), d.clone()))
            .collect(),
        skipped: task.skipped,
        summary,
        failures,
        warnings,
        cancelled: task.cancelled,
    })
}
