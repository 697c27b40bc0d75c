//! Creating tasks from console pushes, cancelling them, and reporting on them.

use crate::HubError;
use crate::core::{HubCore, State, TaskRecord};
use crate::registry::DeviceKind;
use crate::tasks::{
    self, DeviceUpdate, PushMethod, PushRequest, TaskRequest, TaskStatus, UpdateState,
};
use otasim_protocol::DeviceId;
use std::collections::{BTreeMap, BTreeSet};

pub(crate) fn push(core: &HubCore, request: TaskRequest) -> Result<u64, HubError> {
    let mut state = core.lock();
    let id = push_locked(core, &mut state, request)?;
    // Dropping the step releases the lock, then sends the commands (signing their URLs),
    // and wakes the scheduler if a timer came before the others.
    drop(state);
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
    // Sets, so a push naming the whole fleet costs the fleet, not its square.
    let names_in_product: BTreeSet<&str> = product.iter().map(|(id, _)| id.device_name()).collect();
    let named = |names: &[String]| -> Result<(), HubError> {
        match names
            .iter()
            .find(|n| !names_in_product.contains(n.as_str()))
        {
            Some(n) => Err(HubError::UnknownDevice(format!(
                "{}/{n}",
                request.product_id
            ))),
            None => Ok(()),
        }
    };
    let set = |items: &[String]| -> BTreeSet<String> { items.iter().cloned().collect() };
    let in_set =
        |v: &Option<String>, set: &BTreeSet<String>| v.as_ref().is_some_and(|v| set.contains(v));
    let listed = |id: &DeviceId, names: &BTreeSet<String>| names.contains(id.device_name());
    let chosen: Vec<_> = match &request.method {
        PushMethod::Versions { from_versions } => {
            let from = set(from_versions);
            product
                .into_iter()
                .filter(|(_, v)| in_set(v, &from))
                .collect()
        }
        PushMethod::DevicesAndVersions {
            devices,
            from_versions,
        } => {
            named(devices)?;
            let (names, from) = (set(devices), set(from_versions));
            product
                .into_iter()
                .filter(|(id, v)| listed(id, &names) && in_set(v, &from))
                .collect()
        }
        PushMethod::Devices { devices } => {
            named(devices)?;
            let names = set(devices);
            product
                .into_iter()
                .filter(|(id, _)| listed(id, &names))
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
    // The task is listed before its devices, so each update is indexed under it.
    state.tasks.insert(
        task_id,
        TaskRecord {
            request: push.clone(),
            options: options.clone(),
            skipped: BTreeMap::new(),
            cancelled: false,
            devices: BTreeSet::new(),
        },
    );
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
        state.put_update(update);
        // Devices due now start at once; the scheduler starts the others.
        core.update_event(state, &id, |u| u.on_tick(at));
    }
    if let Some(task) = state.tasks.get_mut(&task_id) {
        task.skipped = skipped;
    }
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
    let devices: Vec<DeviceId> = task.devices.iter().cloned().collect();
    for id in devices {
        // A device another task took over since is left to that task.
        if state.updates.get(&id).is_none_or(|u| u.task_id != task_id) {
            continue;
        }
        core.update_event(&mut state, &id, |u| {
            u.cancel("task cancelled".to_owned(), at);
            tasks::Effect::None
        });
    }
    drop(state);
    core.bump();
    true
}

/// The task's status, from the state as it is (the caller holds the lock once for a snapshot).
pub(crate) fn status_of(state: &State, task_id: u64) -> Option<TaskStatus> {
    let task = state.tasks.get(&task_id)?;
    let devices: Vec<&DeviceUpdate> = state.task_updates(task_id);
    let (summary, failures) = tasks::summarize(devices.iter().copied());
    let warnings = devices
        .iter()
        .filter_map(|d| Some((d.device.to_string(), d.warning.clone()?)))
        .collect();
    Some(TaskStatus {
        id: task_id,
        request: task.request.clone(),
        options: task.options.clone(),
        devices: devices
            .into_iter()
            .map(|d| (d.device.to_string(), d.clone()))
            .collect(),
        skipped: task.skipped.clone(),
        summary,
        failures,
        warnings,
        cancelled: task.cancelled,
    })
}

/// Tasks with options, and cancelling them.
impl crate::Hub {
    /// Creates a task with options (timeout, retries, rate limit, start delay, override);
    /// returns its id.
    pub fn create_task(&self, request: TaskRequest) -> Result<u64, HubError> {
        push(&self.core, request)
    }

    /// Cancels a task: its unfinished devices become `cancelled`. False for an unknown task.
    pub fn cancel_task(&self, task_id: u64) -> bool {
        cancel(&self.core, task_id)
    }
}
