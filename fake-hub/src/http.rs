//! COS requests in the hub's transcript: the store reports each request it answered through a
//! [`RequestSink`], and the hub records it beside the MQTT traffic as a [`Direction::Http`]
//! entry naming the devices it was for, so one device's timeline shows both.
//!
//! Which device a request is for: the devices whose latest `update_firmware` carried a URL for
//! that object. COS sees only a path, so when several devices hold
//! such a URL (subdevices of one product behind one gateway), the entry names them all, up to
//! [`MAX_NAMED_DEVICES`]; past that (a rollout to a whole fleet) it names the first ones and
//! counts the rest, so recording a request never costs work in proportion to the fleet.

use crate::core::HubCore;
use crate::transcript::Direction;
use otasim_protocol::DeviceId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, Weak};

/// The most devices one COS request's record names.
pub const MAX_NAMED_DEVICES: usize = 64;

/// One HTTP request the firmware store answered, as it reports it to the hub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRequest {
    /// The store's number for the request (fake COS: its journal's `seq`).
    pub cos_seq: u64,
    /// The client's address.
    pub client: String,
    /// The request method.
    pub method: String,
    /// The object asked for, if the path named a valid one.
    pub object: Option<String>,
    /// The `Range` header exactly as sent.
    pub range: Option<String>,
    /// The status answered.
    pub status: u16,
    /// Body bytes handed to the socket.
    pub bytes_sent: u64,
    /// The COS fault rule that decided the request, in the store's format, if one fired.
    pub fault: Option<serde_json::Value>,
    /// How the response ended: `complete`, `cut`, `reset`, `stalled`, `client_gone`, ...
    pub end: String,
    /// The COS error code answered, for an error answer: `AccessDenied`,
    /// `SignatureDoesNotMatch`, `NoSuchKey`, ... (a 403 says why the URL was refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// The COS error message beside the code: `Request has expired`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

/// What a [`Direction::Http`] transcript entry's payload holds (as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRecord {
    /// The devices the hub signed a URL for this object for (`PID/name`), usually one.
    pub devices: Vec<String>,
    /// How many more devices hold a URL for this object than `devices` names (see
    /// [`MAX_NAMED_DEVICES`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub more_devices: usize,
    /// The request as the store reported it.
    #[serde(flatten)]
    pub request: HttpRequest,
}

/// Where a firmware store reports the requests it answered; handed over by
/// [`FirmwareStore::attach`](crate::FirmwareStore::attach). It does not keep the hub alive.
#[derive(Clone)]
pub struct RequestSink {
    core: Weak<HubCore>,
}

impl RequestSink {
    pub(crate) fn new(core: Weak<HubCore>) -> Self {
        RequestSink { core }
    }

    /// Records `request` in the hub's transcript; false once the hub is gone (stop reporting).
    pub fn record(&self, request: HttpRequest) -> bool {
        match self.core.upgrade() {
            Some(core) => {
                core.record_http(request);
                true
            }
            None => false,
        }
    }

    /// The hub's TLS server certificate, its key and the hub's CA certificate (PEM, in that
    /// order); the certificate names [`HubConfig::tls_names`](crate::HubConfig::tls_names)
    /// besides the Hub's own names. `None` without a TLS port or once the hub is gone. A store
    /// that serves HTTPS under the hub's CA (the C SDK trusts one CA array) uses them.
    pub fn tls_server_pem(&self) -> Option<(String, String, String)> {
        let core = self.core.upgrade()?;
        let ca = core.ca.as_ref()?;
        Some((
            ca.server_cert_pem().to_owned(),
            ca.server_key_pem().to_owned(),
            ca.ca_pem().to_owned(),
        ))
    }

    /// Whether the hub is gone.
    pub fn is_closed(&self) -> bool {
        self.core.strong_count() == 0
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The object of the latest URL the hub signed for each device, indexed both ways.
#[derive(Debug, Default)]
pub(crate) struct Issued {
    index: Mutex<IssuedIndex>,
}

#[derive(Debug, Default)]
struct IssuedIndex {
    latest: HashMap<DeviceId, String>,
    holders: HashMap<String, BTreeSet<DeviceId>>,
}

impl Issued {
    pub(crate) fn note(&self, device: &DeviceId, object: &str) {
        let mut index = self.lock();
        if let Some(old) = index.latest.insert(device.clone(), object.to_owned())
            && let Some(set) = index.holders.get_mut(&old)
        {
            set.remove(device);
            if set.is_empty() {
                index.holders.remove(&old);
            }
        }
        index
            .holders
            .entry(object.to_owned())
            .or_default()
            .insert(device.clone());
    }

    /// The devices whose latest URL is for `object`, in order, at most `max` of them, and how
    /// many more there are. Expired URLs count: a request with one (answered 403) is still
    /// that device's.
    pub(crate) fn holders(&self, object: &str, max: usize) -> (Vec<DeviceId>, usize) {
        let index = self.lock();
        let Some(set) = index.holders.get(object) else {
            return (Vec::new(), 0);
        };
        let named: Vec<DeviceId> = set.iter().take(max).cloned().collect();
        let more = set.len() - named.len();
        (named, more)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, IssuedIndex> {
        // Nothing panics while holding it; a poisoned index is still a consistent one.
        self.index
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl HubCore {
    /// Records a COS request as a `http` transcript entry: client id of the (first) device it
    /// was for, or the client's address; topic `METHOD /object`; payload an [`HttpRecord`].
    pub(crate) fn record_http(&self, request: HttpRequest) {
        let (devices, more_devices) = request
            .object
            .as_deref()
            .map(|o| self.issued.holders(o, MAX_NAMED_DEVICES))
            .unwrap_or_default();
        let client_id = devices
            .first()
            .map(DeviceId::client_id)
            .unwrap_or_else(|| request.client.clone());
        let topic = format!(
            "{} /{}",
            request.method,
            request.object.as_deref().unwrap_or("?")
        );
        let record = HttpRecord {
            devices: devices.iter().map(ToString::to_string).collect(),
            more_devices,
            request,
        };
        let payload = serde_json::to_string(&record).expect("an HTTP record always serializes");
        // A record only: no state to decide on, so no state lock.
        self.emit_record(Direction::Http, &client_id, &topic, payload);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(name: &str) -> DeviceId {
        DeviceId::new("E69UADXUYY", name).expect("valid id")
    }

    #[test]
    fn holders_are_the_devices_whose_latest_url_is_for_the_object() {
        let issued = Issued::default();
        issued.note(&id("light1"), "fw_1.0");
        issued.note(&id("light2"), "fw_1.0");
        issued.note(&id("light3"), "fw_1.0");
        issued.note(&id("light3"), "fw_2.0");
        assert_eq!(
            issued.holders("fw_1.0", 64),
            (vec![id("light1"), id("light2")], 0)
        );
        assert_eq!(issued.holders("fw_2.0", 64), (vec![id("light3")], 0));
        assert_eq!(issued.holders("fw_3.0", 64), (vec![], 0));
    }

    #[test]
    fn a_fleet_holding_one_object_is_named_up_to_the_cap_and_counted_past_it() {
        let issued = Issued::default();
        let fleet: Vec<DeviceId> = (0..1000).map(|i| id(&format!("s{i:04}"))).collect();
        for d in &fleet {
            issued.note(d, "fw_2.0");
        }
        let (named, more) = issued.holders("fw_2.0", MAX_NAMED_DEVICES);
        assert_eq!(named, fleet[..MAX_NAMED_DEVICES]);
        assert_eq!(more, 1000 - MAX_NAMED_DEVICES);
        // A device moving to another object leaves the first one's count.
        issued.note(&fleet[0], "fw_3.0");
        let (named, more) = issued.holders("fw_2.0", MAX_NAMED_DEVICES);
        assert_eq!(named[0], fleet[1]);
        assert_eq!(more, 999 - MAX_NAMED_DEVICES);
        assert_eq!(issued.holders("fw_3.0", 1), (vec![fleet[0].clone()], 0));
    }

    #[test]
    fn http_record_payload_is_flat_json() {
        let record = HttpRecord {
            devices: vec!["E69UADXUYY/light1".into()],
            more_devices: 0,
            request: HttpRequest {
                cos_seq: 3,
                client: "127.0.0.1:5000".into(),
                method: "GET".into(),
                object: Some("fw".into()),
                range: Some("bytes=100-".into()),
                status: 206,
                bytes_sent: 50,
                fault: None,
                end: "cut".into(),
                error_code: None,
                error_message: None,
            },
        };
        let json = serde_json::to_value(&record).expect("serializes");
        assert_eq!(json["range"], "bytes=100-");
        assert_eq!(json["devices"][0], "E69UADXUYY/light1");
        let back: HttpRecord = serde_json::from_value(json).expect("round trip");
        assert_eq!(back, record);
    }
}
