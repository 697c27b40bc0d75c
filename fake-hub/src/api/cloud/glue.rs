//! What the Cloud API needs of the hub beyond its public methods: the firmware store, secrets,
//! wall times of task events, and per-device task operations. Each takes the hub's lock for the
//! change only and notifies after releasing it, like the hub's own methods.

use super::error::{CloudError, Code};
use crate::registry::DeviceKind;
use crate::tasks::{self, DeviceUpdate, UpdateState};
use crate::{FirmwareInfo, FirmwareStore, Hub};
use otasim_protocol::DeviceId;

fn no_device_task(id: &DeviceId, task_id: u64) -> CloudError {
    CloudError::new(
        Code::DeviceFirmwareTaskNotExist,
        format!("device {id} has no update under task {task_id}"),
    )
}

impl Hub {
    /// The firmware store the hub signs URLs with.
    pub(crate) fn firmware_store(&self) -> &dyn FirmwareStore {
        self.core.store()
    }

    /// Registers firmware whose bytes are already in the store; false if that product and
    /// version exist already (nothing changes then).
    pub(crate) fn register_stored_firmware(&self, info: FirmwareInfo) -> bool {
        let mut state = self.core.lock();
        if state
            .registry
            .firmware(&info.product_id, &info.version)
            .is_some()
        {
            return false;
        }
        state.registry.put_firmware(info);
        drop(state);
        self.core.bump();
        true
    }

    /// The hub's wall clock, in Unix seconds, at the monotonic time `at_ms` of a task event.
    pub(crate) fn unix_secs_at(&self, at_ms: u64) -> i64 {
        let now_ms = u64::try_from(self.core.elapsed().as_millis()).unwrap_or(u64::MAX);
        let ago_ms = i64::try_from(now_ms.saturating_sub(at_ms)).unwrap_or(i64::MAX);
        self.now_unix_ms().saturating_sub(ago_ms).div_euclid(1000)
    }

    /// A device's secret (its PSK, base64 for a real device).
    pub(crate) fn device_secret(&self, id: &DeviceId) -> Option<String> {
        self.core.lock().registry.get(id).map(|r| r.secret.clone())
    }

    /// Deletes a device, as the real Hub allows it: not a gateway with bound subdevices, not a
    /// bound subdevice, not a device with an update in progress. A connected gateway is
    /// disconnected.
    pub(crate) fn delete_device(&self, id: &DeviceId) -> Result<(), CloudError> {
        let mut state = self.core.lock();
        let rec = state.registry.get(id).ok_or_else(|| {
            CloudError::new(Code::DeviceNotExist, format!("device {id} does not exist"))
        })?;
        if rec.kind == DeviceKind::Gateway && !state.registry.bound_to(id).is_empty() {
            return Err(CloudError::new(
                Code::GatewayHasBoundDevices,
                format!("gateway {id} has bound subdevices: unbind them first"),
            ));
        }
        if let Some(gw) = &rec.bound_to {
            return Err(CloudError::new(
                Code::DeviceHasAlreadyBindGateway,
                format!("device {id} is bound to gateway {gw}: unbind it first"),
            ));
        }
        if let Some(u) = state.updates.get(id).filter(|u| !u.state.is_final()) {
            return Err(CloudError::new(
                Code::DeviceOtaTaskInProgress,
                format!(
                    "device {id} has an update in progress under task {}",
                    u.task_id
                ),
            ));
        }
        state.registry.remove(id);
        drop(state);
        self.core.kick(&id.client_id());
        self.core.bump();
        Ok(())
    }

    /// Cancels one device's update under `task_id`.
    pub(crate) fn cancel_device_update(
        &self,
        task_id: u64,
        id: &DeviceId,
    ) -> Result<(), CloudError> {
        let mut state = self.core.lock();
        let current = state.updates.get(id).filter(|u| u.task_id == task_id);
        match current.map(|u| &u.state) {
            None => return Err(no_device_task(id, task_id)),
            Some(s) if s.is_final() => {
                return Err(CloudError::new(
                    Code::DeviceFirmwareTaskAlreadyDone,
                    format!(
                        "the update of {id} under task {task_id} is already {}",
                        s.label()
                    ),
                ));
            }
            Some(_) => {}
        }
        let at = self.core.elapsed();
        self.core.update_event(&mut state, id, |u| {
            u.cancel("cancelled through the Cloud API".to_owned(), at);
            tasks::Effect::None
        });
        drop(state);
        self.core.bump();
        Ok(())
    }

    /// Starts a failed or cancelled device update of `task_id` again, with the task's options.
    pub(crate) fn retry_device_update(
        &self,
        task_id: u64,
        id: &DeviceId,
    ) -> Result<(), CloudError> {
        let mut state = self.core.lock();
        let task = state.tasks.get(&task_id).ok_or_else(|| {
            CloudError::new(
                Code::FirmwareTaskNotExist,
                format!("task {task_id} does not exist"),
            )
        })?;
        if task.cancelled {
            return Err(CloudError::new(
                Code::FailedOperation,
                format!("task {task_id} was cancelled"),
            ));
        }
        let policy = task.options.policy();
        let old = match state.updates.get(id) {
            Some(u) if u.task_id == task_id => u,
            Some(u)
                if state
                    .past_updates
                    .get(&task_id)
                    .is_some_and(|past| past.iter().any(|p| &p.device == id)) =>
            {
                return Err(CloudError::new(
                    Code::DeviceRunningOtherOtaTask,
                    format!("device {id} is now under task {}", u.task_id),
                ));
            }
            _ => return Err(no_device_task(id, task_id)),
        };
        match &old.state {
            UpdateState::Failed { .. } | UpdateState::Cancelled { .. } => {}
            UpdateState::Succeeded => {
                return Err(CloudError::new(
                    Code::DeviceFirmwareTaskAlreadyDone,
                    format!("the update of {id} under task {task_id} succeeded"),
                ));
            }
            s => {
                return Err(CloudError::new(
                    Code::DeviceOtaTaskInProgress,
                    format!("the update of {id} under task {task_id} is {}", s.label()),
                ));
            }
        }
        let at = self.core.elapsed();
        let fresh = DeviceUpdate::new(
            task_id,
            id.clone(),
            old.from_version.clone(),
            old.target_version.clone(),
            policy,
            at,
            at,
        );
        state.put_update(fresh);
        self.core.update_event(&mut state, id, |u| u.on_tick(at));
        drop(state);
        self.core.bump();
        Ok(())
    }

    /// Publishes `payload` to `id` on one of its own topics and records it, as the console's
    /// (and the Cloud API's) message sending does. False when the device is not online.
    pub(crate) fn publish_to_device(
        &self,
        id: &DeviceId,
        topic: &str,
        payload: Vec<u8>,
        qos: u8,
    ) -> Result<(), CloudError> {
        let mut state = self.core.lock();
        let rec = state.registry.get(id).ok_or_else(|| {
            CloudError::new(Code::DeviceNotExist, format!("device {id} does not exist"))
        })?;
        // A subdevice receives through its gateway's connection.
        let client_id = match (&rec.kind, &rec.bound_to) {
            (DeviceKind::Subdevice, Some(gw)) if rec.online => gw.client_id(),
            (DeviceKind::Gateway, _) if rec.online => id.client_id(),
            _ => {
                return Err(CloudError::new(
                    Code::DeviceOffline,
                    format!("device {id} is offline"),
                ));
            }
        };
        self.core
            .send_text(&mut state, &client_id, topic, payload, qos);
        Ok(())
    }
}
