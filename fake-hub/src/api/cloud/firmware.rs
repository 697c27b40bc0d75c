//! Firmware actions: the upload path (`GetCOSURL` gives a presigned PUT URL on the hub's COS, the
//! client PUTs the image, `UploadFirmware` registers what was PUT after checking `Md5sum` and
//! `FileSize`), and the firmware list, details and edits.

use super::CloudState;
use super::error::{CloudError, Code};
use super::params::{self, Answer, SearchKeyword, answer, decode};
use crate::FirmwareInfo;
use crate::api::MAX_FIRMWARE_BYTES;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;

/// How long a `GetCOSURL` upload URL stays valid.
const UPLOAD_URL_VALIDITY: Duration = Duration::from_secs(3600);

pub(crate) use otasim_protocol::firmware_object_name as object_name;

fn exists(state: &CloudState, product_id: &str, version: &str) -> bool {
    state
        .hub
        .firmware()
        .iter()
        .any(|f| f.product_id == product_id && f.version == version)
}

fn firmware(
    state: &CloudState,
    product_id: &str,
    version: &str,
) -> Result<FirmwareInfo, CloudError> {
    state
        .hub
        .firmware()
        .into_iter()
        .find(|f| f.product_id == product_id && f.version == version)
        .ok_or_else(|| {
            CloudError::new(
                Code::FirmwareNotExist,
                format!("firmware {version} of product {product_id} does not exist"),
            )
        })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct GetCosUrlRequest {
    product_id: String,
    firmware_version: String,
    file_size: Option<i64>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct GetCosUrlResponse {
    url: String,
}

pub(crate) fn get_cos_url(state: &CloudState, params: Value) -> Answer {
    let r: GetCosUrlRequest = decode(params)?;
    params::known_product(&state.hub, "ProductId", &r.product_id)?;
    params::version("FirmwareVersion", &r.firmware_version)?;
    if let Some(size) = r.file_size {
        params::in_range("FileSize", size, 1, MAX_FIRMWARE_BYTES as i64)?;
    }
    if exists(state, &r.product_id, &r.firmware_version) {
        return Err(CloudError::new(
            Code::FirmwareAlreadyExist,
            format!(
                "firmware {} of product {} exists already",
                r.firmware_version, r.product_id
            ),
        ));
    }
    let object = object_name(&r.product_id, &r.firmware_version);
    let url = state
        .hub
        .firmware_store()
        .signed_put_url(&object, UPLOAD_URL_VALIDITY)
        .map_err(|e| {
            CloudError::new(Code::InternalError, format!("signing the upload URL: {e}"))
        })?;
    answer(&GetCosUrlResponse { url })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct UploadFirmwareRequest {
    product_id: String,
    firmware_version: String,
    md5sum: String,
    file_size: i64,
    firmware_name: String,
    firmware_description: Option<String>,
    firmware_user_defined: Option<String>,
}

fn text(param: &str, value: &Option<String>, max: usize) -> Result<(), CloudError> {
    match value {
        Some(v) if v.chars().count() > max => Err(CloudError::value(
            param,
            format!("at most {max} characters"),
        )),
        _ => Ok(()),
    }
}

pub(crate) fn upload_firmware(state: &CloudState, params: Value) -> Answer {
    let r: UploadFirmwareRequest = decode(params)?;
    params::known_product(&state.hub, "ProductId", &r.product_id)?;
    params::version("FirmwareVersion", &r.firmware_version)?;
    params::in_range("FileSize", r.file_size, 1, MAX_FIRMWARE_BYTES as i64)?;
    let md5 = r.md5sum.to_ascii_lowercase();
    if md5.len() != 32 || !md5.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(CloudError::value("Md5sum", "32 hex digits"));
    }
    if r.firmware_name.is_empty() || r.firmware_name.chars().count() > 64 {
        return Err(CloudError::value("FirmwareName", "1 to 64 characters"));
    }
    text("FirmwareDescription", &r.firmware_description, 128)?;
    text("FirmwareUserDefined", &r.firmware_user_defined, 1024)?;
    let object = object_name(&r.product_id, &r.firmware_version);
    let stored = state.hub.firmware_store().stat(&object).ok_or_else(|| {
        CloudError::new(
            Code::FailedOperation,
            format!(
                "nothing was uploaded for firmware {}: PUT the image to the URL of GetCOSURL first",
                r.firmware_version
            ),
        )
    })?;
    if stored.md5 != md5 {
        return Err(CloudError::value(
            "Md5sum",
            format!("{md5} is not the MD5 {} of the uploaded image", stored.md5),
        ));
    }
    if u64::try_from(r.file_size).ok() != Some(stored.size_bytes) {
        return Err(CloudError::value(
            "FileSize",
            format!(
                "{} is not the {} bytes uploaded",
                r.file_size, stored.size_bytes
            ),
        ));
    }
    let info = FirmwareInfo {
        product_id: r.product_id.clone(),
        version: r.firmware_version.clone(),
        size_bytes: stored.size_bytes,
        md5,
        object,
    };
    if !state.hub.register_stored_firmware(info) {
        return Err(CloudError::new(
            Code::FirmwareAlreadyExist,
            format!(
                "firmware {} of product {} exists already",
                r.firmware_version, r.product_id
            ),
        ));
    }
    let created = state.hub.now_unix_ms().div_euclid(1000);
    state.meta().insert(
        (r.product_id, r.firmware_version),
        super::FirmwareMeta {
            name: Some(r.firmware_name),
            description: r.firmware_description,
            user_defined: r.firmware_user_defined,
            created_unix: Some(created),
        },
    );
    answer(&serde_json::Map::new())
}

/// `FirmwareInfo` of the SDK's models.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct FirmwareListing {
    version: String,
    md5sum: String,
    create_time: Option<i64>,
    product_name: String,
    name: Option<String>,
    description: Option<String>,
    product_id: String,
    fw_type: Option<String>,
    create_user_id: Option<i64>,
    user_defined: Option<String>,
}

fn listing(state: &CloudState, f: FirmwareInfo) -> FirmwareListing {
    let meta = state
        .meta()
        .get(&(f.product_id.clone(), f.version.clone()))
        .cloned()
        .unwrap_or_default();
    FirmwareListing {
        version: f.version,
        md5sum: f.md5,
        create_time: meta.created_unix,
        product_name: f.product_id.clone(),
        name: meta.name,
        description: meta.description,
        product_id: f.product_id,
        fw_type: None,
        create_user_id: None,
        user_defined: meta.user_defined,
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ListFirmwaresRequest {
    page_num: i64,
    page_size: i64,
    product_id: Option<String>,
    filters: Option<Vec<SearchKeyword>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ListFirmwaresResponse {
    total_count: usize,
    firmwares: Vec<FirmwareListing>,
}

pub(crate) fn list_firmwares(state: &CloudState, params: Value) -> Answer {
    let r: ListFirmwaresRequest = decode(params)?;
    let page_num = params::in_range("PageNum", r.page_num, 1, 1_000_000)?;
    let page_size = params::in_range("PageSize", r.page_size, 1, 100)?;
    let filters = params::filters(
        &r.filters,
        &["ProductId", "FirmwareVersion", "FirmwareName"],
    )?;
    let meta = state.meta().clone();
    let all: Vec<FirmwareInfo> = state
        .hub
        .firmware()
        .into_iter()
        .filter(|f| r.product_id.as_ref().is_none_or(|p| &f.product_id == p))
        .filter(|f| {
            filters.iter().all(|k| match k.key.as_str() {
                "ProductId" => f.product_id == k.value,
                "FirmwareVersion" => f.version.contains(&k.value),
                _ => meta
                    .get(&(f.product_id.clone(), f.version.clone()))
                    .and_then(|m| m.name.as_ref())
                    .is_some_and(|n| n.contains(&k.value)),
            })
        })
        .collect();
    let total_count = all.len();
    let firmwares = params::page(all, (page_num - 1) * page_size, page_size)
        .into_iter()
        .map(|f| listing(state, f))
        .collect();
    answer(&ListFirmwaresResponse {
        total_count,
        firmwares,
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
struct DescribeFirmwareResponse {
    version: String,
    product_id: String,
    name: Option<String>,
    description: Option<String>,
    md5sum: String,
    createtime: Option<i64>,
    product_name: String,
    fw_type: Option<String>,
    user_defined: Option<String>,
}

pub(crate) fn describe_firmware(state: &CloudState, params: Value) -> Answer {
    let r: FirmwareKey = decode(params)?;
    let f = listing(state, firmware(state, &r.product_id, &r.firmware_version)?);
    answer(&DescribeFirmwareResponse {
        version: f.version,
        product_id: f.product_id,
        name: f.name,
        description: f.description,
        md5sum: f.md5sum,
        createtime: f.create_time,
        product_name: f.product_name,
        fw_type: f.fw_type,
        user_defined: f.user_defined,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct EditFirmwareRequest {
    product_id: String,
    firmware_version: String,
    firmware_name: String,
    firmware_description: Option<String>,
    firmware_user_defined: Option<String>,
}

pub(crate) fn edit_firmware(state: &CloudState, params: Value) -> Answer {
    let r: EditFirmwareRequest = decode(params)?;
    firmware(state, &r.product_id, &r.firmware_version)?;
    if r.firmware_name.is_empty() || r.firmware_name.chars().count() > 64 {
        return Err(CloudError::value("FirmwareName", "1 to 64 characters"));
    }
    text("FirmwareDescription", &r.firmware_description, 128)?;
    text("FirmwareUserDefined", &r.firmware_user_defined, 1024)?;
    let mut meta = state.meta();
    let m = meta.entry((r.product_id, r.firmware_version)).or_default();
    m.name = Some(r.firmware_name);
    if r.firmware_description.is_some() {
        m.description = r.firmware_description;
    }
    if r.firmware_user_defined.is_some() {
        m.user_defined = r.firmware_user_defined;
    }
    drop(meta);
    answer(&serde_json::Map::new())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct GetAllVersionRequest {
    product_id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct GetAllVersionResponse {
    version: Vec<String>,
}

pub(crate) fn get_all_version(state: &CloudState, params: Value) -> Answer {
    let r: GetAllVersionRequest = decode(params)?;
    params::known_product(&state.hub, "ProductId", &r.product_id)?;
    let version = state
        .hub
        .firmware()
        .into_iter()
        .filter(|f| f.product_id == r.product_id)
        .map(|f| f.version)
        .collect();
    answer(&GetAllVersionResponse { version })
}
