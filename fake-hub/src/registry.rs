//! Devices, secrets, gateway bindings and firmware: what the Hub's console holds.

use otasim_protocol::DeviceId;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// What role a device plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    /// A gateway that connects for subdevices.
    Gateway,
    /// A subdevice that reaches the Hub only through a gateway.
    Subdevice,
}

/// One registered device.
#[derive(Debug, Clone)]
pub(crate) struct DeviceRecord {
    pub(crate) id: DeviceId,
    pub(crate) secret: String,
    pub(crate) kind: DeviceKind,
    /// Written only through [`Registry::set_bound`] (or [`Registry::add`]), which keep the
    /// gateway index.
    pub(crate) bound_to: Option<DeviceId>,
    pub(crate) enabled: bool,
    /// The last version the device reported.
    pub(crate) version: Option<String>,
    /// Gateway: an MQTT connection is up. Subdevice: online through its gateway.
    pub(crate) online: bool,
}

/// A firmware image uploaded for a product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FirmwareInfo {
    /// The product it is for.
    pub product_id: String,
    /// Its version.
    pub version: String,
    /// Size in bytes.
    pub size_bytes: u64,
    /// Lower-case hex MD5.
    pub md5: String,
    /// The object name in the firmware store.
    pub object: String,
}

/// The devices and firmware, with indexes by client id and by gateway, so that no message
/// costs a search of the fleet. A binding changes only through [`Registry::set_bound`], which
/// keeps the gateway index.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    devices: BTreeMap<DeviceId, DeviceRecord>,
    by_client_id: BTreeMap<String, DeviceId>,
    /// The subdevices bound to each gateway.
    by_gateway: BTreeMap<DeviceId, BTreeSet<DeviceId>>,
    firmware: BTreeMap<(String, String), FirmwareInfo>,
}

impl Registry {
    pub(crate) fn add(&mut self, record: DeviceRecord) {
        let id = record.id.clone();
        let bound_to = record.bound_to.clone();
        self.unindex(&id);
        self.by_client_id.insert(id.client_id(), id.clone());
        self.devices.insert(id.clone(), record);
        if let Some(gw) = bound_to {
            self.by_gateway.entry(gw).or_default().insert(id);
        }
    }

    /// Removes a device (the Cloud API's DeleteDevice); answers its record.
    pub(crate) fn remove(&mut self, id: &DeviceId) -> Option<DeviceRecord> {
        self.unindex(id);
        self.by_client_id.remove(&id.client_id());
        self.devices.remove(id)
    }

    /// Takes the device out of the gateway index.
    fn unindex(&mut self, id: &DeviceId) {
        let Some(gw) = self.devices.get(id).and_then(|r| r.bound_to.clone()) else {
            return;
        };
        if let Some(subs) = self.by_gateway.get_mut(&gw) {
            subs.remove(id);
            if subs.is_empty() {
                self.by_gateway.remove(&gw);
            }
        }
    }

    /// Binds the device to `gateway`, or unbinds it (`None`, which also takes it offline);
    /// false for an unknown device.
    pub(crate) fn set_bound(&mut self, id: &DeviceId, gateway: Option<DeviceId>) -> bool {
        if !self.devices.contains_key(id) {
            return false;
        }
        self.unindex(id);
        if let Some(gw) = &gateway {
            self.by_gateway
                .entry(gw.clone())
                .or_default()
                .insert(id.clone());
        }
        if let Some(rec) = self.devices.get_mut(id) {
            if gateway.is_none() {
                rec.online = false;
            }
            rec.bound_to = gateway;
        }
        true
    }

    /// The device and every subdevice bound to it go offline (its connection ended).
    pub(crate) fn set_offline_with_subdevices(&mut self, id: &DeviceId) {
        let subs = self.by_gateway.get(id).cloned().unwrap_or_default();
        for d in std::iter::once(id).chain(subs.iter()) {
            if let Some(rec) = self.devices.get_mut(d) {
                rec.online = false;
            }
        }
    }

    pub(crate) fn get(&self, id: &DeviceId) -> Option<&DeviceRecord> {
        self.devices.get(id)
    }

    pub(crate) fn get_mut(&mut self, id: &DeviceId) -> Option<&mut DeviceRecord> {
        self.devices.get_mut(id)
    }

    pub(crate) fn by_client_id(&self, client_id: &str) -> Option<&DeviceRecord> {
        self.devices.get(self.by_client_id.get(client_id)?)
    }

    pub(crate) fn devices(&self) -> impl Iterator<Item = &DeviceRecord> {
        self.devices.values()
    }

    /// The subdevices bound to `gateway`, in id order.
    pub(crate) fn bound_to(&self, gateway: &DeviceId) -> Vec<DeviceId> {
        self.by_gateway
            .get(gateway)
            .map(|subs| subs.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether `client` may act in `target`'s topic space: its own, or that of a subdevice
    /// bound to it and online.
    pub(crate) fn may_act_for(&self, client: &DeviceRecord, target: &DeviceId) -> bool {
        if &client.id == target {
            return true;
        }
        client.kind == DeviceKind::Gateway
            && self
                .devices
                .get(target)
                .is_some_and(|t| t.online && t.bound_to.as_ref() == Some(&client.id))
    }

    pub(crate) fn put_firmware(&mut self, info: FirmwareInfo) {
        self.firmware
            .insert((info.product_id.clone(), info.version.clone()), info);
    }

    pub(crate) fn remove_firmware(
        &mut self,
        product_id: &str,
        version: &str,
    ) -> Option<FirmwareInfo> {
        self.firmware
            .remove(&(product_id.to_owned(), version.to_owned()))
    }

    pub(crate) fn firmware(&self, product_id: &str, version: &str) -> Option<&FirmwareInfo> {
        self.firmware
            .get(&(product_id.to_owned(), version.to_owned()))
    }

    pub(crate) fn all_firmware(&self) -> Vec<FirmwareInfo> {
        self.firmware.values().cloned().collect()
    }
}

/// Enabling and disabling devices.
impl crate::Hub {
    /// Enables or disables a device: a disabled gateway gets CONNACK 5, a disabled subdevice
    /// cannot be bound (-807).
    pub fn set_enabled(&self, id: &DeviceId, enabled: bool) -> Result<(), crate::HubError> {
        let mut state = self.core.lock();
        let rec = state
            .registry
            .get_mut(id)
            .ok_or_else(|| crate::HubError::UnknownDevice(id.to_string()))?;
        rec.enabled = enabled;
        drop(state);
        self.core.bump();
        Ok(())
    }
}
