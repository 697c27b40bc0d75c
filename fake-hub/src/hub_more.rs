//! The [`Hub`] methods added beyond the seed: clock, strict mode, certificates, task options,
//! faults and Hub-initiated topology changes.

use crate::faults::{FaultId, HubFaultRule, InstalledFault};
use crate::tasks::TaskRequest;
use crate::tls::DeviceCert;
use crate::{Hub, HubError, tasks_push, topology};
use otasim_protocol::DeviceId;
use std::net::SocketAddr;
use std::time::Duration;

impl Hub {
    /// The mutual-TLS listener's address, if the hub has one.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.broker.tls_addr()
    }

    /// The PEM of the CA that signs the TLS listener's certificate and device certificates.
    pub fn ca_pem(&self) -> Option<String> {
        self.core.ca.as_ref().map(|ca| ca.ca_pem().to_owned())
    }

    /// A client certificate for `device` (CN = its client id), signed by the hub's CA.
    pub fn issue_device_cert(&self, device: &DeviceId) -> Result<DeviceCert, HubError> {
        self.core.ca.as_ref().ok_or(HubError::NoTls)?.issue(device)
    }

    /// A client certificate with any common name, signed by the hub's CA (for refusal tests).
    pub fn issue_cert_with_cn(&self, common_name: &str) -> Result<DeviceCert, HubError> {
        self.core
            .ca
            .as_ref()
            .ok_or(HubError::NoTls)?
            .issue_cn(common_name)
    }

    /// Turns strict mode on or off: a `strict` transcript event and a warning whenever the hub
    /// publishes more than 2 KB (topic + payload) to a client, grants an 11th subscription, or
    /// uses an OTA topic over 64 bytes.
    pub fn set_strict(&self, on: bool) {
        self.core.set_strict(on);
    }

    /// Moves the hub's clocks forward: credentials and bind timestamps are judged, and task
    /// timers fire, as if `by` had passed.
    pub fn advance_clock(&self, by: Duration) {
        self.core.clock.advance(by);
        self.core
            .store()
            .set_clock_offset_ms(self.core.clock.wall_offset_ms());
        self.core.wake.notify_one();
    }

    /// Sets the hub's wall clock offset from real time, in milliseconds (negative is earlier).
    pub fn set_clock_offset_ms(&self, offset_ms: i64) {
        self.core.clock.set_wall_offset_ms(offset_ms);
        self.core.store().set_clock_offset_ms(offset_ms);
    }

    /// The hub's wall clock offset from real time, in milliseconds.
    pub fn clock_offset_ms(&self) -> i64 {
        self.core.clock.wall_offset_ms()
    }

    /// The hub's wall clock, in Unix milliseconds.
    pub fn now_unix_ms(&self) -> i64 {
        self.core.clock.now_unix_ms()
    }

    /// Enables or disables a device: a disabled gateway gets CONNACK 5, a disabled subdevice
    /// cannot be bound (-807).
    pub fn set_enabled(&self, id: &DeviceId, enabled: bool) -> Result<(), HubError> {
        let mut state = self.core.lock();
        let rec = state
            .registry
            .get_mut(id)
            .ok_or_else(|| HubError::UnknownDevice(id.to_string()))?;
        rec.enabled = enabled;
        drop(state);
        self.core.bump();
        Ok(())
    }

    /// Creates a task with options (timeout, retries, rate limit, start delay, override);
    /// returns its id.
    pub fn create_task(&self, request: TaskRequest) -> Result<u64, HubError> {
        tasks_push::push(&self.core, request)
    }

    /// Cancels a task: its unfinished devices become `cancelled`. False for an unknown task.
    pub fn cancel_task(&self, task_id: u64) -> bool {
        tasks_push::cancel(&self.core, task_id)
    }

    /// Installs a fault rule at the end of the list; returns its id.
    pub fn add_fault(&self, rule: HubFaultRule) -> Result<FaultId, HubError> {
        rule.validate()?;
        let id = self.core.lock().faults.add(rule);
        Ok(id)
    }

    /// Removes a fault rule; false if it was not installed.
    pub fn remove_fault(&self, id: FaultId) -> bool {
        self.core.lock().faults.remove(id)
    }

    /// The installed fault rules, in order, with how often each fired.
    pub fn faults(&self) -> Vec<InstalledFault> {
        self.core.lock().faults.list()
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        self.core.lock().faults.clear();
    }

    /// Ends every hold (a CONNACK, SUBACK or gateway reply delayed without a duration).
    pub fn release_held(&self) {
        self.core.release_held();
    }

    /// The console binds (`bound`) or unbinds `subdevice` to `gateway`; the Hub sends `change`.
    pub fn change_binding(
        &self,
        gateway: &DeviceId,
        subdevice: &DeviceId,
        bound: bool,
    ) -> Result<(), HubError> {
        let mut state = self.core.lock();
        for id in [gateway, subdevice] {
            if state.registry.get(id).is_none() {
                return Err(HubError::UnknownDevice(id.to_string()));
            }
        }
        topology::change(&self.core, &mut state, gateway, subdevice, bound);
        drop(state);
        self.core.bump();
        Ok(())
    }

    /// The console unbinds every subdevice of `gateway`; the Hub sends `unbind_all`.
    pub fn unbind_all(&self, gateway: &DeviceId) -> Result<(), HubError> {
        let mut state = self.core.lock();
        if state.registry.get(gateway).is_none() {
            return Err(HubError::UnknownDevice(gateway.to_string()));
        }
        topology::unbind_all(&self.core, &mut state, gateway);
        drop(state);
        self.core.bump();
        Ok(())
    }
}

impl Hub {
    /// Declares a custom topic `{pid}/{dn}/{name}` for every device of `product_id`, with the
    /// permission devices get on it (the Hub console's product topics).
    pub fn add_product_topic(
        &self,
        product_id: &str,
        name: &str,
        access: crate::TopicAccess,
    ) -> Result<(), HubError> {
        DeviceId::new(product_id, "x").map_err(|e| HubError::Invalid {
            field: "product_id",
            reason: e.to_string(),
        })?;
        let levels_ok = !name.is_empty()
            && name.len() <= 64
            && name
                .split('/')
                .all(|l| !l.is_empty() && !l.contains(['+', '#']));
        if !levels_ok || ["control", "data", "event"].contains(&name) {
            return Err(HubError::Invalid {
                field: "topic",
                reason: format!(
                    "{name:?}: 1 to 64 characters of non-empty levels without wildcards, \
                     and not control, data or event (the Hub defines those)"
                ),
            });
        }
        self.core.lock().custom_topics.add(product_id, name, access);
        Ok(())
    }

    /// The declared custom topics: product, name, permission.
    pub fn product_topics(&self) -> Vec<(String, String, crate::TopicAccess)> {
        self.core.lock().custom_topics.list()
    }
}
