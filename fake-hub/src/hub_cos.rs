//! The [`Hub`] methods over its COS: firmware upload (refusing to change a version's bytes
//! unless asked), deletion, and the store's fault rules and request journal.

use crate::registry::FirmwareInfo;
use crate::{Hub, HubError};
use md5::{Digest, Md5};
use otasim_protocol::DeviceId;

use otasim_protocol::firmware_object_name as object_name;

pub(crate) fn upload(
    hub: &Hub,
    product_id: &str,
    version: &str,
    bytes: Vec<u8>,
    replace: bool,
) -> Result<FirmwareInfo, HubError> {
    let id = DeviceId::new(product_id, "x").map_err(|e| HubError::Invalid {
        field: "product_id",
        reason: e.to_string(),
    })?;
    if let Err(e) = otasim_protocol::check_version(version) {
        return Err(HubError::Invalid {
            field: "version",
            reason: e.to_string(),
        });
    }
    let object = object_name(id.product_id(), version);
    let info = FirmwareInfo {
        product_id: product_id.to_owned(),
        version: version.to_owned(),
        size_bytes: bytes.len() as u64,
        md5: hex::encode(Md5::digest(&bytes)),
        object: object.clone(),
    };
    let existing = hub
        .core
        .lock()
        .registry
        .firmware(product_id, version)
        .cloned();
    match existing {
        Some(old) if old == info => return Ok(info),
        Some(old) if !replace => {
            return Err(HubError::FirmwareConflict {
                product_id: product_id.to_owned(),
                version: version.to_owned(),
                md5: old.md5,
            });
        }
        _ => {}
    }
    hub.core.store().put(&object, bytes)?;
    hub.core.lock().registry.put_firmware(info.clone());
    hub.core.bump();
    Ok(info)
}

impl Hub {
    /// Uploads a firmware image, replacing the bytes of a version uploaded before (devices
    /// that already downloaded the old bytes keep them; a resumed download may then fail its
    /// MD5 check, as on the real Hub).
    pub fn upload_firmware_replacing(
        &self,
        product_id: &str,
        version: &str,
        bytes: Vec<u8>,
    ) -> Result<FirmwareInfo, HubError> {
        upload(self, product_id, version, bytes, true)
    }

    /// Deletes a version: it leaves the registry and its object the store, so URLs already
    /// signed for it get 404 (`NoSuchKey`). Answers what was deleted.
    pub fn delete_firmware(
        &self,
        product_id: &str,
        version: &str,
    ) -> Result<FirmwareInfo, HubError> {
        let unknown = || HubError::UnknownFirmware {
            product_id: product_id.to_owned(),
            version: version.to_owned(),
        };
        let info = self
            .core
            .lock()
            .registry
            .firmware(product_id, version)
            .cloned()
            .ok_or_else(unknown)?;
        // The store first: if it refuses, the hub still offers the version.
        self.core.store().delete(&info.object)?;
        self.core
            .lock()
            .registry
            .remove_firmware(product_id, version);
        self.core.bump();
        Ok(info)
    }

    /// Installs a COS fault rule (the store's JSON format, e.g. fake COS's `FaultRule`) after
    /// the others; its id.
    pub fn add_cos_fault(&self, rule: serde_json::Value) -> Result<u64, HubError> {
        let id = self.core.store().add_fault(rule)?;
        self.core.bump();
        Ok(id)
    }

    /// The installed COS fault rules in decision order, with how often each fired.
    pub fn cos_faults(&self) -> Vec<serde_json::Value> {
        self.core.store().faults()
    }

    /// Removes a COS fault rule; false if it was not installed.
    pub fn remove_cos_fault(&self, id: u64) -> bool {
        let removed = self.core.store().remove_fault(id);
        self.core.bump();
        removed
    }

    /// Removes every COS fault rule; how many there were.
    pub fn clear_cos_faults(&self) -> usize {
        let n = self.core.store().clear_faults();
        self.core.bump();
        n
    }

    /// The COS requests numbered above `seq`, as the store journals them.
    pub fn cos_journal_since(&self, seq: u64) -> Result<Vec<serde_json::Value>, HubError> {
        Ok(self.core.store().journal_since(seq)?)
    }
}

#[cfg(test)]
mod tests {
    use super::object_name;

    #[test]
    fn object_names_keep_only_what_cos_names_hold() {
        assert_eq!(object_name("E69UADXUYY", "1.0"), "E69UADXUYY_1.0");
        assert_eq!(object_name("E69UADXUYY", "v 1/2"), "E69UADXUYY_v_1_2");
    }
}
