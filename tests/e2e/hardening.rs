//! The hub under attack, each attack of the hardening issue pinned by a test: wills past the
//! ACL, numbers that overflow, records that grow without bound, cross-site and rebinding
//! requests to the control API, replayed binds, protocol violations, and all of it at once
//! beside a normal update (the soak test). Loopback only, every loop bounded.

mod limits;
mod wills;
mod wire;

use fake_hub::{FirmwareStore, Hub, HubConfig};
use otasim_protocol::DeviceId;
use std::sync::Arc;
use std::time::Duration;

/// The seed's gateway secret; the second gateway's is another.
pub(crate) const GW1_SECRET: &str = "1RRdhkwmZ45wYXjuPfygeA==";
pub(crate) const GW2_SECRET: &str = "c2Vjb25kIGdhdGV3YXk=";
pub(crate) const LIGHT_SECRET: &str = "bGlnaHQgc2VjcmV0";

/// Keeps nothing; URLs point at a closed port (these tests download nothing).
pub(crate) struct NullStore;

impl FirmwareStore for NullStore {
    fn put(&self, _object: &str, _bytes: Vec<u8>) -> Result<(), String> {
        Ok(())
    }

    fn signed_url(&self, object: &str, _valid_for: Duration) -> Result<String, String> {
        Ok(format!("http://127.0.0.1:9/{object}"))
    }
}

pub(crate) fn gw1() -> DeviceId {
    DeviceId::new("JR1WOKB7Q7", "gw_deng1").expect("valid id")
}

pub(crate) fn gw2() -> DeviceId {
    DeviceId::new("GW2PROD000", "gw2").expect("valid id")
}

pub(crate) fn light(n: u32) -> DeviceId {
    DeviceId::new("E69UADXUYY", format!("light{n}")).expect("valid id")
}

/// A hub with two gateways: `gw1` with light1 and light2 bound on 0.1, `gw2` with none; and
/// light3, unbound.
pub(crate) async fn two_gateway_hub(config: HubConfig) -> Arc<Hub> {
    let hub = Hub::start(config, Arc::new(NullStore))
        .await
        .expect("hub starts");
    hub.add_gateway(&gw1(), GW1_SECRET);
    hub.add_gateway(&gw2(), GW2_SECRET);
    for n in [1, 2] {
        hub.add_subdevice(&light(n), LIGHT_SECRET, Some(&gw1()), Some("0.1"));
    }
    hub.add_subdevice(&light(3), LIGHT_SECRET, None, Some("0.1"));
    Arc::new(hub)
}
