//! The fleet file of `otasim hub --fleet`, in the vocabulary scenario files and `subdevs.toml`
//! share: `[[gateways]]`, `[[subdevices]]` (with `version`, `secret`, `gateway`, `bound` and
//! the gateway's `burner`), `[[firmware]]`; and the hub's own `[[topic]]` (custom product
//! topics) and `[[api_key]]`. Read raw with unknown keys refused, then
//! validated into a [`Fleet`]; errors name the table and field. The older `[[gateway]]` and
//! `[[subdevice]]` still parse, with a warning.

use anyhow::Context as _;
use fake_hub::TopicAccess;
use otasim_protocol::DeviceId;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The fleet file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FleetFile {
    #[serde(default)]
    gateways: Vec<FleetGateway>,
    #[serde(default)]
    subdevices: Vec<FleetSubdevice>,
    /// The older spelling of `gateways`.
    #[serde(default)]
    gateway: Vec<FleetGateway>,
    /// The older spelling of `subdevices`.
    #[serde(default)]
    subdevice: Vec<FleetSubdevice>,
    #[serde(default)]
    firmware: Vec<FleetFirmware>,
    /// SecretId/SecretKey pairs the Cloud API accepts.
    #[serde(default)]
    api_key: Vec<FleetApiKey>,
    /// Custom product topics and the permission devices get on them.
    #[serde(default)]
    topic: Vec<FleetTopic>,
}

/// A custom product topic, as the Hub console declares one: `{pid}/${deviceName}/NAME`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FleetTopic {
    product_id: String,
    topic: toml::Spanned<String>,
    permission: toml::Spanned<String>,
}

/// A SecretId/SecretKey pair the Cloud API accepts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FleetApiKey {
    secret_id: String,
    secret_key: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FleetGateway {
    product_id: String,
    device_name: String,
    secret: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FleetSubdevice {
    product_id: String,
    device_name: String,
    secret: String,
    gateway: Option<String>,
    /// With `gateway`: whether the hub has it bound (default true), as in scenario files.
    bound: Option<bool>,
    version: Option<String>,
    /// How the gateway burns it (`otasim gateway --subdevices` reads it): not the hub's.
    #[serde(rename = "burner")]
    _burner: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FleetFirmware {
    product_id: String,
    version: String,
    file: PathBuf,
}

/// Where firmware comes from: product, version, path.
pub(super) type FirmwareSource = (String, String, PathBuf);

/// A subdevice to register: identity, secret, the gateway it is bound to, its version.
pub(super) type SubdeviceEntry = (DeviceId, String, Option<DeviceId>, Option<String>);

/// A validated fleet: only this reaches the hub.
#[derive(Debug, Default)]
pub(super) struct Fleet {
    pub(super) gateways: Vec<(DeviceId, String)>,
    pub(super) subdevices: Vec<SubdeviceEntry>,
    pub(super) firmware: Vec<FirmwareSource>,
    /// Old spellings the file used, each with the new one.
    pub(super) deprecations: Vec<String>,
    /// The Cloud API's SecretId/SecretKey pairs.
    pub(super) api_keys: fake_hub::api::cloud::CloudKeys,
    /// Custom product topics: product, the name under `{pid}/{dn}/`, permission.
    pub(super) topics: Vec<ProductTopic>,
}

/// A custom product topic: product, the name under `{pid}/{dn}/`, the permission.
pub(super) type ProductTopic = (String, String, TopicAccess);

/// The 1-based line of byte `at` in `text`.
fn line_at(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// Checks a `[[topic]]` table: a known permission, and a topic the Hub would accept for the
/// product (`{pid}/${deviceName}/` and then non-empty levels without wildcards, not the three
/// the Hub defines itself). Errors name the table and the line.
fn product_topic(at: &str, t: &FleetTopic, text: &str) -> anyhow::Result<ProductTopic> {
    let line = |s: &toml::Spanned<String>| line_at(text, s.span().start);
    DeviceId::new(&t.product_id, "x").with_context(|| format!("{at}.product_id"))?;
    let access = match t.permission.get_ref().as_str() {
        "pub" => TopicAccess::Publish,
        "sub" => TopicAccess::Subscribe,
        "pub_sub" => TopicAccess::PublishSubscribe,
        other => anyhow::bail!(
            "{at}.permission (line {}): {other:?} is not a permission; write \"pub\", \"sub\" \
             or \"pub_sub\"",
            line(&t.permission)
        ),
    };
    let topic = t.topic.get_ref();
    let prefix = format!("{}/${{deviceName}}/", t.product_id);
    let name = topic.strip_prefix(&prefix).with_context(|| {
        format!(
            "{at}.topic (line {}): {topic:?} is not under {prefix:?} (a product topic is \
             `PRODUCT_ID/${{deviceName}}/NAME`, each device getting its own)",
            line(&t.topic)
        )
    })?;
    let levels_ok = !name.is_empty()
        && name.len() <= 64
        && name
            .split('/')
            .all(|l| !l.is_empty() && !l.contains(['+', '#']));
    anyhow::ensure!(
        levels_ok && !["control", "data", "event"].contains(&name),
        "{at}.topic (line {}): {name:?} after {prefix:?} must be 1 to 64 characters of \
         non-empty levels without wildcards, and not control, data or event (the Hub defines \
         those)",
        line(&t.topic)
    );
    Ok((t.product_id.clone(), name.to_owned(), access))
}

fn device_id(at: &str, product_id: &str, device_name: &str) -> anyhow::Result<DeviceId> {
    DeviceId::new(product_id, device_name).with_context(|| at.to_owned())
}

/// The control API's rule for secrets: 1 to 256 printable ASCII characters.
fn check_secret(at: &str, secret: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=256).contains(&secret.len()) && secret.bytes().all(|b| b.is_ascii_graphic()),
        "{at}: must be 1 to 256 printable ASCII characters"
    );
    Ok(())
}

fn validate(file: FleetFile, dir: &Path, text: &str) -> anyhow::Result<Fleet> {
    let mut fleet = Fleet::default();
    if !file.gateway.is_empty() {
        fleet
            .deprecations
            .push("[[gateway]] is the old spelling: write [[gateways]]".into());
    }
    if !file.subdevice.is_empty() {
        fleet
            .deprecations
            .push("[[subdevice]] is the old spelling: write [[subdevices]]".into());
    }
    // Sets beside the lists, so a fleet of 100,000 devices is checked in linear time.
    let mut gateway_ids = std::collections::HashSet::new();
    let mut subdevice_ids = std::collections::HashSet::new();
    let gateways = labelled("gateways", file.gateways).chain(labelled("gateway", file.gateway));
    for (at, g) in gateways {
        let id = device_id(&at, &g.product_id, &g.device_name)?;
        check_secret(&format!("{at}.secret"), &g.secret)?;
        anyhow::ensure!(
            gateway_ids.insert(id.clone()),
            "{at}: gateway {id} is listed twice"
        );
        fleet.gateways.push((id, g.secret));
    }
    let subdevices =
        labelled("subdevices", file.subdevices).chain(labelled("subdevice", file.subdevice));
    for (at, s) in subdevices {
        let id = device_id(&at, &s.product_id, &s.device_name)?;
        check_secret(&format!("{at}.secret"), &s.secret)?;
        anyhow::ensure!(
            subdevice_ids.insert(id.clone()),
            "{at}: subdevice {id} is listed twice"
        );
        let gateway = match &s.gateway {
            None => None,
            Some(g) => {
                let (pid, dn) = g.split_once('/').with_context(|| {
                    format!("{at}.gateway: {g:?} is not PRODUCT_ID/DEVICE_NAME")
                })?;
                let gw = device_id(&format!("{at}.gateway"), pid, dn)?;
                anyhow::ensure!(
                    gateway_ids.contains(&gw),
                    "{at}.gateway: {gw} is not a gateway of this fleet (add it under [[gateways]])"
                );
                s.bound.unwrap_or(true).then_some(gw)
            }
        };
        if let Some(v) = &s.version {
            anyhow::ensure!(
                !v.is_empty() && v.len() <= 32,
                "{at}.version: {v:?} must be 1 to 32 characters"
            );
        }
        fleet.subdevices.push((id, s.secret, gateway, s.version));
    }
    for (i, k) in file.api_key.into_iter().enumerate() {
        let id_ok = (1..=128).contains(&k.secret_id.len())
            && k.secret_id.bytes().all(|b| b.is_ascii_alphanumeric());
        anyhow::ensure!(
            id_ok,
            "api_key[{i}].secret_id: must be 1 to 128 letters and digits"
        );
        anyhow::ensure!(
            !k.secret_key.is_empty(),
            "api_key[{i}].secret_key: must not be empty"
        );
        fleet.api_keys.add(&k.secret_id, &k.secret_key);
    }
    for (at, t) in labelled("topic", file.topic) {
        let topic = product_topic(&at, &t, text)?;
        anyhow::ensure!(
            !fleet
                .topics
                .iter()
                .any(|(p, n, _)| (p, n) == (&topic.0, &topic.1)),
            "{at}.topic (line {}): {} is declared twice",
            line_at(text, t.topic.span().start),
            t.topic.get_ref()
        );
        fleet.topics.push(topic);
    }
    for f in file.firmware {
        fleet
            .firmware
            .push((f.product_id, f.version, dir.join(f.file)));
    }
    Ok(fleet)
}

fn labelled<T>(table: &'static str, items: Vec<T>) -> impl Iterator<Item = (String, T)> {
    items
        .into_iter()
        .enumerate()
        .map(move |(i, t)| (format!("{table}[{i}]"), t))
}

/// Parses a fleet file's text; `dir` is where its firmware `file`s are relative to.
pub(super) fn parse_fleet(text: &str, dir: &Path) -> anyhow::Result<Fleet> {
    let file: FleetFile = toml::from_str(text)?;
    validate(file, dir, text)
}

/// Reads and validates a fleet file; every error names the file.
pub(super) fn load_fleet(path: &Path) -> anyhow::Result<Fleet> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "reading the fleet file {}: check the path (`otasim hub --example-fleet` prints one)",
            path.display()
        )
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    parse_fleet(&text, dir).with_context(|| format!("fleet file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_fleet_binds_the_seed_gateways_four_subdevices() {
        let fleet = load_fleet(Path::new("examples/fleet.toml")).expect("the example fleet");
        assert!(fleet.deprecations.is_empty(), "{:?}", fleet.deprecations);
        let gw = DeviceId::new("JR1WOKB7Q7", "gw_deng1").expect("id");
        assert_eq!(fleet.gateways.len(), 1);
        let names: Vec<String> = fleet
            .subdevices
            .iter()
            .map(|(id, _, bound, _)| {
                assert_eq!(bound.as_ref(), Some(&gw), "{id} is bound");
                id.to_string()
            })
            .collect();
        assert_eq!(
            names,
            [
                "E69UADXUYY/light1",
                "E69UADXUYY/light2",
                "E69UADXUYY/light3",
                "YI7XCD5DRH/airConditioner1"
            ]
        );
    }

    #[test]
    fn the_old_spelling_parses_the_same_with_a_warning() {
        let old = parse_fleet(
            "[[gateway]]\nproduct_id = \"JR1WOKB7Q7\"\ndevice_name = \"gw_deng1\"\nsecret = \"s\"\n\
             [[subdevice]]\nproduct_id = \"E69UADXUYY\"\ndevice_name = \"light1\"\n\
             secret = \"t\"\ngateway = \"JR1WOKB7Q7/gw_deng1\"\nversion = \"0.1\"\n",
            Path::new("."),
        )
        .expect("old spelling");
        let new = parse_fleet(
            "[[gateways]]\nproduct_id = \"JR1WOKB7Q7\"\ndevice_name = \"gw_deng1\"\nsecret = \"s\"\n\
             [[subdevices]]\nproduct_id = \"E69UADXUYY\"\ndevice_name = \"light1\"\n\
             secret = \"t\"\ngateway = \"JR1WOKB7Q7/gw_deng1\"\nversion = \"0.1\"\n",
            Path::new("."),
        )
        .expect("new spelling");
        assert_eq!(old.gateways, new.gateways);
        assert_eq!(old.subdevices, new.subdevices);
        assert_eq!(old.deprecations.len(), 2);
        assert!(new.deprecations.is_empty());
    }

    #[test]
    fn unbound_and_bad_entries_are_named() {
        let fleet = parse_fleet(
            "[[gateways]]\nproduct_id = \"JR1WOKB7Q7\"\ndevice_name = \"gw_deng1\"\nsecret = \"s\"\n\
             [[subdevices]]\nproduct_id = \"E69UADXUYY\"\ndevice_name = \"light2\"\n\
             secret = \"t\"\ngateway = \"JR1WOKB7Q7/gw_deng1\"\nbound = false\n",
            Path::new("."),
        )
        .expect("unbound subdevice");
        assert_eq!(fleet.subdevices[0].2, None);
        let err = parse_fleet(
            "[[subdevices]]\nproduct_id = \"E69UADXUYY\"\ndevice_name = \"light2\"\n\
             secret = \"t\"\ngateway = \"JR1WOKB7Q7/gw_deng9\"\n",
            Path::new("."),
        )
        .expect_err("unknown gateway");
        assert!(
            format!("{err:#}").starts_with("subdevices[0].gateway: JR1WOKB7Q7/gw_deng9"),
            "{err:#}"
        );
    }

    #[test]
    fn custom_topics_carry_their_permission_and_errors_name_the_line() {
        let fleet = parse_fleet(
            "[[topic]]\nproduct_id = \"E69UADXUYY\"\ntopic = \"E69UADXUYY/${deviceName}/status\"\n\
             permission = \"pub_sub\"\n\
             [[topic]]\nproduct_id = \"E69UADXUYY\"\n\
             topic = \"E69UADXUYY/${deviceName}/cmd/in\"\npermission = \"sub\"\n\
             [[topic]]\nproduct_id = \"YI7XCD5DRH\"\ntopic = \"YI7XCD5DRH/${deviceName}/up\"\n\
             permission = \"pub\"\n",
            Path::new("."),
        )
        .expect("three topics");
        assert_eq!(
            fleet.topics,
            [
                (
                    "E69UADXUYY".into(),
                    "status".into(),
                    TopicAccess::PublishSubscribe
                ),
                ("E69UADXUYY".into(), "cmd/in".into(), TopicAccess::Subscribe),
                ("YI7XCD5DRH".into(), "up".into(), TopicAccess::Publish),
            ]
        );
        let head = "[[gateways]]\nproduct_id = \"JR1WOKB7Q7\"\ndevice_name = \"g\"\nsecret = \"s\"\n\
                    [[topic]]\nproduct_id = \"E69UADXUYY\"\n";
        let cases = [
            (
                "topic = \"E69UADXUYY/${deviceName}/status\"\npermission = \"publish\"\n",
                "topic[0].permission (line 8): \"publish\" is not a permission",
            ),
            (
                "topic = \"YI7XCD5DRH/${deviceName}/status\"\npermission = \"pub\"\n",
                "topic[0].topic (line 7): \"YI7XCD5DRH/${deviceName}/status\" is not under",
            ),
            (
                "topic = \"E69UADXUYY/light1/status\"\npermission = \"pub\"\n",
                "topic[0].topic (line 7)",
            ),
            (
                "topic = \"E69UADXUYY/${deviceName}/a/+\"\npermission = \"pub\"\n",
                "topic[0].topic (line 7): \"a/+\"",
            ),
            (
                "topic = \"E69UADXUYY/${deviceName}/data\"\npermission = \"pub\"\n",
                "not control, data or event",
            ),
            (
                "topic = \"E69UADXUYY/${deviceName}/\"\npermission = \"pub\"\n",
                "topic[0].topic (line 7)",
            ),
            (
                "topic = \"E69UADXUYY/${deviceName}/s\"\npermission = \"pub\"\n\
                 [[topic]]\nproduct_id = \"E69UADXUYY\"\n\
                 topic = \"E69UADXUYY/${deviceName}/s\"\npermission = \"sub\"\n",
                "topic[1].topic (line 11): E69UADXUYY/${deviceName}/s is declared twice",
            ),
            ("permission = \"pub\"\n", "missing field `topic`"),
            (
                "topic = \"E69UADXUYY/${deviceName}/s\"\npermission = \"pub\"\nqos = 1\n",
                "qos",
            ),
        ];
        for (rest, needle) in cases {
            let err = parse_fleet(&format!("{head}{rest}"), Path::new("."))
                .expect_err(rest)
                .to_string();
            assert!(err.contains(needle), "{rest}: {err}");
        }
    }
}

#[cfg(test)]
mod topic_props {
    use super::parse_fleet;
    use proptest::prelude::*;
    use std::path::Path;

    proptest! {
        /// Whatever a `[[topic]]` holds, the fleet is read or refused naming the table, the
        /// field and the line; what is accepted is under the product and free of wildcards.
        #[test]
        fn any_topic_table_is_accepted_or_refused_naming_its_line(
            pid in "[A-Z0-9]{0,12}", under in "(\\$\\{deviceName\\}|[a-z]{0,3})",
            name in "[a-z/+#]{0,70}", permission in "(pub|sub|pub_sub|[a-z_]{0,8})",
        ) {
            let mut t = toml::Table::new();
            t.insert("product_id".into(), pid.clone().into());
            t.insert("topic".into(), format!("{pid}/{under}/{name}").into());
            t.insert("permission".into(), permission.into());
            let mut root = toml::Table::new();
            root.insert("topic".into(), toml::Value::Array(vec![t.into()]));
            let text = toml::to_string(&root).expect("a table serializes");
            match parse_fleet(&text, Path::new(".")) {
                Ok(fleet) => {
                    let (p, n, _) = &fleet.topics[0];
                    prop_assert_eq!(p, &pid);
                    prop_assert_eq!(n, &name);
                    prop_assert!(!n.contains(['+', '#']) && !n.split('/').any(str::is_empty));
                }
                Err(e) => {
                    let e = e.to_string();
                    prop_assert!(e.starts_with("topic[0]"), "{}", e);
                    prop_assert!(e.contains("product_id") || e.contains("(line "), "{}", e);
                }
            }
        }
    }
}

#[cfg(test)]
mod fleet_props {
    use super::parse_fleet;
    use proptest::prelude::*;
    use std::path::Path;

    proptest! {
        /// Whatever a fleet file holds, parsing and validating it answers (no panic), and a
        /// refusal names where.
        #[test]
        fn any_fleet_is_validated_or_refused_naming_the_entry(
            pid in ".{0,14}", name in ".{0,40}", secret in ".{0,300}",
            version in proptest::option::of(".{0,40}"), gateway in proptest::option::of(".{0,30}"),
        ) {
            let mut sub = toml::Table::new();
            sub.insert("product_id".into(), pid.clone().into());
            sub.insert("device_name".into(), name.clone().into());
            sub.insert("secret".into(), secret.clone().into());
            if let Some(v) = version {
                sub.insert("version".into(), v.into());
            }
            if let Some(g) = gateway {
                sub.insert("gateway".into(), g.into());
            }
            let mut gw = toml::Table::new();
            gw.insert("product_id".into(), pid.into());
            gw.insert("device_name".into(), name.into());
            gw.insert("secret".into(), secret.into());
            let mut root = toml::Table::new();
            root.insert("gateways".into(), toml::Value::Array(vec![gw.into()]));
            root.insert("subdevices".into(), toml::Value::Array(vec![sub.into()]));
            let text = toml::to_string(&root).expect("a table serializes");
            if let Err(e) = parse_fleet(&text, Path::new(".")) {
                let e = format!("{e:#}");
                prop_assert!(e.contains("gateways[0]") || e.contains("subdevices[0]"), "{}", e);
            }
        }
    }
}
