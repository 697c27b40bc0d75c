//! OTA on the Hub: `report_version` and `report_progress` from devices, `report_version_rsp`
//! and `update_firmware` to them.

use crate::core::{HubCore, Out, State, UpdateFirmwareOut};
use crate::faults::{HubFaultAction, Point};
use crate::tasks::Effect;
use otasim_protocol::{
    DeviceId, DeviceOtaMessage, HubOtaMessage, MessageError, Topic, UpdateFirmware,
};

/// The `result_code` of a `report_version_rsp` refusing a version outside 1 to 32 characters
/// (the SDKs only test for non-zero).
const REFUSED_VERSION_CODE: i64 = 1;
use tracing::warn;

impl HubCore {
    /// A message on `$ota/report/{device}`; `action` is the fault that fired on it, if any.
    pub(crate) fn on_ota_report(
        &self,
        state: &mut State,
        client_id: &str,
        device: &DeviceId,
        payload: &[u8],
        action: Option<HubFaultAction>,
    ) {
        let msg = match DeviceOtaMessage::parse(payload) {
            Ok(m) => m,
            // Out-of-range values are kept as sent and refused, never coerced.
            Err(e @ (MessageError::PercentOutOfRange(_) | MessageError::FailWithoutCode(_))) => {
                let detail = format!("ota report for {device}: {e}; not applied");
                return self.event(state, client_id, "malformed", detail);
            }
            Err(e) => {
                return self.event(state, client_id, "ignored", format!("ota report: {e}"));
            }
        };
        let at = self.elapsed();
        let mut rsp_fault = None;
        match action {
            Some(HubFaultAction::ReportVersionRsp {
                result_code,
                result_msg,
            }) => rsp_fault = Some((result_code, result_msg)),
            Some(other) => self.act(state, client_id, other),
            None => {}
        }
        match msg {
            DeviceOtaMessage::ReportVersion { version } => {
                if let Err(e) = otasim_protocol::check_version(&version) {
                    return self.refuse_version(state, client_id, device, &version, &e);
                }
                if let Some(rec) = state.registry.get_mut(device) {
                    rec.version = Some(version.clone());
                }
                let (result_code, result_msg) = rsp_fault.unwrap_or((0, "success".to_owned()));
                let rsp = HubOtaMessage::ReportVersionRsp {
                    result_code,
                    result_msg,
                    version: version.clone(),
                };
                self.send(state, &Topic::OtaUpdate(device.clone()), rsp.encode(), 1);
                self.update_event(state, device, |u| u.on_version(&version, at));
            }
            DeviceOtaMessage::ReportProgress(report) => {
                let before = state.updates.get(device).map(|u| u.state.label());
                if self.update_event(state, device, |u| u.on_progress(&report, at))
                    == Effect::NotApplied
                {
                    let detail = format!(
                        "late {:?} report for {device} after {}: recorded, not applied",
                        report.state,
                        before.unwrap_or("?")
                    );
                    self.event(state, client_id, "not applied", detail);
                }
            }
        }
    }

    /// A `report_version` outside the Hub's version rule: answered with a non-zero
    /// `result_code`, recorded, and neither stored nor applied to an update.
    fn refuse_version(
        &self,
        state: &mut State,
        client_id: &str,
        device: &DeviceId,
        version: &str,
        why: &otasim_protocol::VersionError,
    ) {
        let detail = format!("report_version {version:?} for {device}: {why}");
        self.event(state, client_id, "refused", detail);
        let rsp = HubOtaMessage::ReportVersionRsp {
            result_code: REFUSED_VERSION_CODE,
            result_msg: why.to_string(),
            version: version.to_owned(),
        };
        self.send(state, &Topic::OtaUpdate(device.clone()), rsp.encode(), 1);
    }

    /// Applies an event to the device's current update, sends what it asks for, moves its
    /// timer, and fires the task-state milestone when its state changes.
    pub(crate) fn update_event(
        &self,
        state: &mut State,
        device: &DeviceId,
        event: impl FnOnce(&mut crate::tasks::DeviceUpdate) -> Effect,
    ) -> Effect {
        let Some(u) = state.updates.get_mut(device) else {
            return Effect::None;
        };
        let (before, due_before) = (u.state.label(), u.wake_at);
        let effect = event(u);
        let (after, task_id, due_after) = (u.state.label(), u.task_id, u.wake_at);
        state.set_timer(device, due_before, due_after);
        if effect == Effect::Send {
            self.send_update(state, device);
        }
        if after != before {
            self.on_task_state(state, device, task_id, after);
        }
        effect
    }

    fn on_task_state(&self, state: &mut State, device: &DeviceId, task_id: u64, label: &str) {
        let client = state
            .registry
            .get(device)
            .and_then(|r| r.bound_to.clone())
            .unwrap_or_else(|| device.clone())
            .client_id();
        let point = Point::TaskState {
            device,
            task_id,
            state: label,
        };
        if let Some(action) = self.fire(state, &client, point) {
            self.act(state, &client, action);
        }
    }

    /// Sends `update_firmware` for the device's current update with a freshly signed URL, if the
    /// device is online (an offline device gets it when it reports its version). The URL is
    /// signed when the step ends, outside the lock (see [`HubCore::send_update_now`]).
    pub(crate) fn send_update(&self, state: &mut State, device: &DeviceId) {
        let Some(update) = state.updates.get(device) else {
            return;
        };
        if !state.registry.get(device).is_some_and(|r| r.online) {
            return;
        }
        let target = update.target_version.clone();
        let Some(fw) = state
            .registry
            .firmware(device.product_id(), &target)
            .cloned()
        else {
            return warn!(%device, version = %target, "firmware vanished from the registry");
        };
        let mut out = UpdateFirmwareOut {
            device: device.clone(),
            object: fw.object.clone(),
            command: UpdateFirmware {
                file_size: i64::try_from(fw.size_bytes).unwrap_or(i64::MAX),
                md5sum: fw.md5.clone(),
                url: String::new(),
                version: fw.version.clone(),
            },
            url: None,
            raw: None,
            copies: 1,
        };
        let client = device.client_id();
        match self.fire(state, &client, Point::UpdateFirmware { device }) {
            Some(HubFaultAction::RawUpdate { payload }) => out.raw = Some(payload.into_bytes()),
            Some(HubFaultAction::DuplicateUpdate) => out.copies = 2,
            Some(HubFaultAction::WrongMd5 { md5 }) => {
                out.command.md5sum = md5.unwrap_or_else(|| flip_hex(&out.command.md5sum));
            }
            Some(HubFaultAction::WrongSize { file_size }) => out.command.file_size = file_size,
            Some(HubFaultAction::WrongUrl { url }) => out.url = Some(url),
            Some(other) => self.act(state, &client, other),
            None => {}
        }
        if let Some(u) = state.updates.get_mut(device) {
            for _ in 0..out.copies {
                u.sent();
            }
        }
        state.out.items.push(Out::UpdateFirmware(out));
    }

    /// Signs the URL (outside the state lock), then records and publishes the command. A
    /// store that cannot sign leaves the command unsent, and its count is taken back.
    pub(crate) fn send_update_now(&self, out: UpdateFirmwareOut) {
        let UpdateFirmwareOut {
            device,
            object,
            mut command,
            url,
            raw,
            copies,
        } = out;
        match self.store().signed_url(&object, self.url_validity) {
            Ok(signed) => {
                self.issued.note(&device, &object);
                command.url = url.unwrap_or(signed);
            }
            Err(e) => {
                warn!(%device, %object, error = %e, "cannot sign a firmware url");
                let mut state = self.lock();
                if let Some(u) = state.updates.get_mut(&device) {
                    u.commands_sent = u.commands_sent.saturating_sub(copies);
                }
                return;
            }
        }
        let payload = raw.unwrap_or_else(|| HubOtaMessage::UpdateFirmware(command).encode());
        let topic = Topic::OtaUpdate(device.clone()).to_string();
        for _ in 0..copies {
            self.publish_now(&device.client_id(), &topic, payload.clone(), 1);
        }
    }
}

/// Every hex digit replaced by its complement: same shape, certainly another digest.
fn flip_hex(md5: &str) -> String {
    md5.chars()
        .map(|c| match c.to_digit(16) {
            Some(d) => char::from_digit(15 - d, 16).unwrap_or(c),
            None => c,
        })
        .collect()
}
