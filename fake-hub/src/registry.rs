//! Devices, secrets, gateway bindings and firmware: what the Hub's console holds.

use otasim_protocol::DeviceId;
use serde::Serialize;
use std::collections::BTreeMap;

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

#[derive(Debug, Default)]
pub(crate) struct Registry {
    devices: BTreeMap<DeviceId, DeviceRecord>,
    by_client_id: BTreeMap<String, DeviceId>,
    firmware: BTreeMap<(String, String), FirmwareInfo>,
}

impl Registry {
    pub(crate) fn add(&mut self, record: DeviceRecord) {
        self.by_client_id
            .insert(record.id.client_id(), record.id.clone());
        self.devices.insert(record.id.clone(), record);
    }

    /// Removes a device (the Cloud API's DeleteDevice); answers its record.
    pub(crate) fn remove(&mut self, id: &DeviceId) -> Option<DeviceRecord> {
        self.by_client_id.remove(&id.client_id());
        self.devices.remove(id)
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

    pub(crate) fn devices_mut(&mut self) -> impl Iterator<Item = &mut DeviceRecord> {
        self.devices.values_mut()
    }

    /// The subdevices bound to `gateway`.
    pub(crate) fn bound_to(&self, gateway: &DeviceId) -> Vec<DeviceId> {
        self.devices
            .values()
            .filter(|d| d.bound_to.as_ref() == Some(gateway))
            .map(|d| d.id.clone())
            .collect()
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
