//! Starting an external gateway command: its `device_info.json` and `subdevs.toml` written
//! from the fleet, its arguments' placeholders filled, its output kept in `gateway.log`.

use super::WorldError;
use gateway::GatewayConfig;
use otasim_protocol::{DeviceId, DeviceInfo};

/// What an external gateway's arguments may name.
pub(super) struct Placeholders<'a> {
    pub(super) hub: std::net::SocketAddr,
    pub(super) cos: std::net::SocketAddr,
    pub(super) time_scale: f64,
    pub(super) versions: &'a [(DeviceId, String)],
}

/// The arguments with every placeholder filled: `{device_info}`, `{subdevs_toml}`,
/// `{state_dir}`, `{hub_host}`, `{hub_port}`, `{cos_host}`, `{cos_port}`, `{time_scale}`,
/// `{gateway_product_id}`, `{gateway_device_name}`; an argument with `{sub.product_id}`,
/// `{sub.device_name}`, `{sub.version}` or `{sub.id}` is repeated once per subdevice.
fn fill_args(args: &[String], fixed: &[(&str, String)], p: &Placeholders<'_>) -> Vec<String> {
    let fill = |a: &str| {
        fixed
            .iter()
            .fold(a.to_owned(), |acc, (k, v)| acc.replace(k, v))
    };
    let mut out = Vec::new();
    for a in args {
        if a.contains("{sub.") {
            for (id, version) in p.versions {
                out.push(fill(
                    &a.replace("{sub.product_id}", id.product_id())
                        .replace("{sub.device_name}", id.device_name())
                        .replace("{sub.version}", version)
                        .replace("{sub.id}", &id.to_string()),
                ));
            }
        } else {
            out.push(fill(a));
        }
    }
    out
}

/// `subdevs.toml` for `otasim gateway`: each subdevice's factory version.
fn subdevs_toml(versions: &[(DeviceId, String)]) -> String {
    let mut t = String::new();
    for (id, v) in versions {
        t.push_str(&format!(
            "[[subdevice]]\nproduct_id = {:?}\ndevice_name = {:?}\nfactory_version = {v:?}\n\n",
            id.product_id(),
            id.device_name()
        ));
    }
    t
}

/// Writes `device_info.json` and `subdevs.toml` from the fleet and starts an external
/// gateway with them.
pub(super) fn spawn_external(
    config: &GatewayConfig,
    program: &str,
    args: &[String],
    place: &Placeholders<'_>,
) -> Result<tokio::process::Child, WorldError> {
    let io = |what| move |source| WorldError::Io { what, source };
    std::fs::create_dir_all(&config.state_dir).map_err(io("gateway state dir"))?;
    let subs: Vec<DeviceId> = config.subdevices.iter().map(|s| s.id.clone()).collect();
    let info = DeviceInfo::key_gateway(&config.device, &config.secret, &subs);
    let info_path = config.state_dir.join("device_info.json");
    std::fs::write(&info_path, info.to_json()).map_err(io("device_info.json"))?;
    let subdevs_path = config.state_dir.join("subdevs.toml");
    std::fs::write(&subdevs_path, subdevs_toml(place.versions)).map_err(io("subdevs.toml"))?;
    let fixed = [
        ("{device_info}", info_path.display().to_string()),
        ("{subdevs_toml}", subdevs_path.display().to_string()),
        ("{state_dir}", config.state_dir.display().to_string()),
        ("{hub_host}", place.hub.ip().to_string()),
        ("{hub_port}", place.hub.port().to_string()),
        ("{cos_host}", place.cos.ip().to_string()),
        ("{cos_port}", place.cos.port().to_string()),
        ("{time_scale}", place.time_scale.to_string()),
        (
            "{gateway_product_id}",
            config.device.product_id().to_owned(),
        ),
        (
            "{gateway_device_name}",
            config.device.device_name().to_owned(),
        ),
    ];
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(config.state_dir.join("gateway.log"))
        .map_err(io("gateway log"))?;
    let err = log.try_clone().map_err(io("gateway log"))?;
    tokio::process::Command::new(program)
        .args(fill_args(args, &fixed, place))
        .current_dir(&config.state_dir)
        .env("OTASIM_TIME_SCALE", place.time_scale.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(err)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| WorldError::Start(format!("starting the external gateway {program:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_subdevice_placeholders_repeat_the_argument() {
        let a = DeviceId::new("P1", "a").expect("id");
        let b = DeviceId::new("P2", "b").expect("id");
        let versions = [(a, "1.0".to_owned()), (b, "2.0".to_owned())];
        let p = Placeholders {
            hub: "127.0.0.1:1883".parse().expect("addr"),
            cos: "127.0.0.1:80".parse().expect("addr"),
            time_scale: 0.5,
            versions: &versions,
        };
        let args: Vec<String> = [
            "--hub",
            "{hub_host}:{hub_port}",
            "--sub={sub.id}={sub.version}",
            "{time_scale}",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let fixed = [
            ("{hub_host}", "127.0.0.1".to_owned()),
            ("{hub_port}", "1883".to_owned()),
            ("{time_scale}", "0.5".to_owned()),
        ];
        assert_eq!(
            fill_args(&args, &fixed, &p),
            [
                "--hub",
                "127.0.0.1:1883",
                "--sub=P1/a=1.0",
                "--sub=P2/b=2.0",
                "0.5"
            ]
        );
        assert!(subdevs_toml(&versions).contains("device_name = \"b\"\nfactory_version = \"2.0\""));
    }
}
