//! From raw TOML to a [`Plan`]: every reference checked, every impossible expectation refused,
//! with the field path and its line.

use super::locate::line_of;
use super::raw::{RawCondition, RawFirmware, RawMethod, RawScenario, RawSubdevice};
use super::{
    BurnerPlan, Condition, Expectations, FirmwarePlan, GatewayPlan, Plan, PlanError, SubdevicePlan,
};
use fake_hub::PushMethod;
use otasim_protocol::DeviceId;
use std::path::Path;
use std::sync::Arc;

/// Generated images are held in memory: 1 GiB at most.
const MAX_GENERATED_BYTES: u64 = 1 << 30;
/// The largest firmware file a scenario may name (it is held in memory, like a generated one).
const MAX_FILE_BYTES: u64 = 1 << 30;
/// The most subdevices one `[[subdevices]]` entry may stand for.
const MAX_COUNT: u32 = 1024;
const DEFAULT_SUB_SECRET: &str = "c3ViZGV2aWNlLXNlY3JldA==";
const REPORT_STATES: [&str; 5] = ["downloading", "burning", "done", "fail", "version"];
const HUB_STATES: [&str; 9] = [
    "queued",
    "pushed",
    "downloading",
    "burning",
    "done",
    "waiting_retry",
    "succeeded",
    "failed",
    "cancelled",
];

pub(crate) struct Validator<'a> {
    pub(crate) path: &'a Path,
    pub(crate) text: &'a str,
}

pub(crate) type Res<T> = Result<T, PlanError>;

impl Validator<'_> {
    pub(crate) fn invalid(
        &self,
        field: impl Into<String>,
        reason: impl std::fmt::Display,
    ) -> PlanError {
        let field = field.into();
        PlanError::Invalid {
            path: self.path.to_owned(),
            line: line_of(self.text, &field),
            field,
            reason: reason.to_string(),
        }
    }

    fn id(&self, field: String, pid: &str, dn: &str) -> Res<DeviceId> {
        DeviceId::new(pid, dn).map_err(|e| self.invalid(field, e))
    }

    fn named(&self, field: String, text: &str) -> Res<DeviceId> {
        let (pid, dn) = text.split_once('/').ok_or_else(|| {
            self.invalid(field.clone(), format!("{text:?} is not PRODUCT/DEVICE"))
        })?;
        self.id(field, pid, dn)
    }

    pub(crate) fn plan(&self, raw: RawScenario) -> Res<Plan> {
        if raw.gateways.is_empty() {
            return Err(self.invalid("gateways", "at least one gateway is needed"));
        }
        if let Some(s) = raw.time_scale.filter(|s| !(*s > 0.0 && *s <= 10.0)) {
            return Err(self.invalid("time_scale", format!("{s} is not in (0, 10]")));
        }
        let gateways = raw
            .gateways
            .iter()
            .enumerate()
            .map(|(i, g)| {
                Ok(GatewayPlan {
                    id: self.id(format!("gateways[{i}]"), &g.product_id, &g.device_name)?,
                    secret: g.secret.clone(),
                    run: g.run.clone(),
                    max_image_bytes: g.max_image_bytes.unwrap_or(512 << 20),
                    max_concurrent: self
                        .concurrency(format!("gateways[{i}].max_concurrent"), g.max_concurrent)?,
                    quota_bytes: g.quota_bytes,
                })
            })
            .collect::<Res<Vec<_>>>()?;
        let subdevices = self.subdevices(&raw.subdevices, &gateways)?;
        let firmware = self.firmware(&raw)?;
        for (i, rule) in raw.cos_faults.iter().enumerate() {
            rule.validate()
                .map_err(|e| self.invalid(format!("cos_faults[{i}]"), e))?;
        }
        for (i, rule) in raw.hub_faults.iter().enumerate() {
            rule.validate()
                .map_err(|e| self.invalid(format!("hub_faults[{i}]"), e))?;
        }
        let mut plan = Plan {
            path: self.path.to_owned(),
            name: raw.name,
            description: raw.description,
            seed: raw.seed,
            time_scale: raw.time_scale.unwrap_or(1.0),
            download_attempts: raw.download_attempts,
            checkpoint_bytes: raw.checkpoint_bytes,
            burn_timeout: raw.burn_timeout_ms.map(std::time::Duration::from_millis),
            gateways,
            subdevices,
            firmware,
            cos_faults: raw.cos_faults,
            hub_faults: raw.hub_faults,
            steps: Vec::new(),
            expect: Expectations::default(),
            builtin_only: raw.builtin_only,
        };
        for (i, s) in raw.steps.into_iter().enumerate() {
            let step = self.step(i, s, &plan)?;
            plan.steps.push(step);
        }
        plan.expect = self.expect(raw.expect, &plan)?;
        Ok(plan)
    }

    fn firmware(&self, raw: &RawScenario) -> Res<Vec<FirmwarePlan>> {
        let mut out: Vec<FirmwarePlan> = Vec::new();
        for (i, f) in raw.firmware.iter().enumerate() {
            let field = format!("firmware[{i}]");
            let plan = self.one_firmware(&field, f)?;
            if out
                .iter()
                .any(|o| o.product_id == f.product_id && o.version == f.version)
            {
                return Err(self.invalid(format!("{field}.version"), "uploaded twice"));
            }
            out.push(plan);
        }
        Ok(out)
    }

    /// One image: `size` bytes from `seed` (0 is a real, empty image), or a file's bytes.
    pub(crate) fn one_firmware(&self, field: &str, f: &RawFirmware) -> Res<FirmwarePlan> {
        let file_bytes = match &f.file {
            None => None,
            Some(name) => {
                let at = self.path.parent().unwrap_or(Path::new(".")).join(name);
                // A device or a pipe (`/dev/zero`) would never end, and the image is held in
                // memory: only a regular file of a bounded size is read.
                let meta = std::fs::metadata(&at).map_err(|e| {
                    self.invalid(format!("{field}.file"), format!("{}: {e}", at.display()))
                })?;
                if !meta.is_file() || meta.len() > MAX_FILE_BYTES {
                    return Err(self.invalid(
                        format!("{field}.file"),
                        format!(
                            "{}: must be a regular file of at most {MAX_FILE_BYTES} bytes",
                            at.display()
                        ),
                    ));
                }
                let bytes = std::fs::read(&at).map_err(|e| {
                    self.invalid(format!("{field}.file"), format!("{}: {e}", at.display()))
                })?;
                Some(Arc::new(bytes))
            }
        };
        let size_bytes = match (&file_bytes, f.size) {
            (Some(b), Some(s)) if b.len() as u64 != s => {
                return Err(self.invalid(
                    format!("{field}.size"),
                    format!("the file has {} bytes, not {s}", b.len()),
                ));
            }
            (Some(b), _) => b.len() as u64,
            (None, Some(s)) if s <= MAX_GENERATED_BYTES => s,
            (None, Some(s)) => {
                return Err(self.invalid(
                    format!("{field}.size"),
                    format!("{s} is over {MAX_GENERATED_BYTES} bytes; use a file"),
                ));
            }
            (None, None) => {
                return Err(self.invalid(format!("{field}.size"), "a size or a file is needed"));
            }
        };
        Ok(FirmwarePlan {
            product_id: f.product_id.clone(),
            version: f.version.clone(),
            size_bytes,
            seed: f.seed,
            file_bytes,
        })
    }

    pub(crate) fn gateway_ref(
        &self,
        field: String,
        g: Option<&String>,
        plan: &Plan,
    ) -> Res<DeviceId> {
        match g {
            Some(g) => {
                let id = self.named(field.clone(), g)?;
                if plan.gateways.iter().any(|x| x.id == id) {
                    Ok(id)
                } else {
                    Err(self.invalid(field, format!("no gateway {id}")))
                }
            }
            None if plan.gateways.len() == 1 => Ok(plan.gateways[0].id.clone()),
            None => Err(self.invalid(field, "required when there are several gateways")),
        }
    }

    pub(crate) fn device_ref(&self, field: String, text: &str, plan: &Plan) -> Res<DeviceId> {
        let id = self.named(field.clone(), text)?;
        if plan.subdevice(&id).is_some() {
            Ok(id)
        } else {
            Err(self.invalid(field, format!("no subdevice {id} in the fleet")))
        }
    }

    pub(crate) fn push(
        &self,
        i: usize,
        (product_id, version): (String, String),
        method: RawMethod,
        devices: Option<Vec<String>>,
        from_versions: Option<Vec<String>>,
        plan: &Plan,
    ) -> Res<fake_hub::PushRequest> {
        if !plan
            .firmware
            .iter()
            .any(|f| f.product_id == product_id && f.version == version)
        {
            return Err(self.invalid(
                format!("steps[{i}].version"),
                format!("no [[firmware]] {product_id} {version} to push"),
            ));
        }
        Ok(fake_hub::PushRequest {
            method: self.method(i, method, devices, from_versions)?,
            product_id,
            version,
        })
    }

    fn method(
        &self,
        i: usize,
        method: RawMethod,
        devices: Option<Vec<String>>,
        from_versions: Option<Vec<String>>,
    ) -> Res<PushMethod> {
        let need = |v: Option<Vec<String>>, name: &str| {
            v.ok_or_else(|| {
                self.invalid(
                    format!("steps[{i}].{name}"),
                    format!("required by method {method:?}"),
                )
            })
        };
        let refuse = |v: &Option<Vec<String>>, name: &str| match v {
            Some(_) => Err(self.invalid(
                format!("steps[{i}].{name}"),
                format!("not used by method {method:?}"),
            )),
            None => Ok(()),
        };
        Ok(match method {
            RawMethod::Versions => {
                refuse(&devices, "devices")?;
                PushMethod::Versions {
                    from_versions: need(from_versions, "from_versions")?,
                }
            }
            RawMethod::DevicesAndVersions => PushMethod::DevicesAndVersions {
                devices: need(devices, "devices")?,
                from_versions: need(from_versions, "from_versions")?,
            },
            RawMethod::Devices => {
                refuse(&from_versions, "from_versions")?;
                PushMethod::Devices {
                    devices: need(devices, "devices")?,
                }
            }
        })
    }

    pub(crate) fn condition(&self, field: &str, raw: RawCondition, plan: &Plan) -> Res<Condition> {
        let sub = |name: &str| format!("{field}.{name}");
        Ok(match raw {
            RawCondition::CosBytes { object, at_least } => Condition::CosBytes { object, at_least },
            RawCondition::CosRequests { object, at_least } => {
                Condition::CosRequests { object, at_least }
            }
            RawCondition::Report {
                device,
                state,
                percent_at_least,
                count,
            } => {
                if !REPORT_STATES.contains(&state.as_str()) {
                    return Err(self.invalid(
                        sub("state"),
                        format!("{state:?} is not one of {REPORT_STATES:?}"),
                    ));
                }
                if count == Some(0) {
                    return Err(self.invalid(sub("count"), "zero reports is always true"));
                }
                Condition::Report {
                    device: self.device_ref(sub("device"), &device, plan)?,
                    state,
                    percent_at_least,
                    count: count.unwrap_or(1),
                }
            }
            RawCondition::HubState { device, state } => {
                if !HUB_STATES.contains(&state.as_str()) {
                    return Err(self.invalid(
                        sub("state"),
                        format!("{state:?} is not one of {HUB_STATES:?}"),
                    ));
                }
                Condition::HubState {
                    device: self.device_ref(sub("device"), &device, plan)?,
                    state,
                }
            }
            RawCondition::Connects { gateway, at_least } => Condition::Connects {
                gateway: self.gateway_ref(sub("gateway"), gateway.as_ref(), plan)?,
                at_least,
            },
            RawCondition::Offline { gateway } => Condition::Offline {
                gateway: self.gateway_ref(sub("gateway"), gateway.as_ref(), plan)?,
            },
        })
    }

    fn subdevices(
        &self,
        raw: &[RawSubdevice],
        gateways: &[GatewayPlan],
    ) -> Res<Vec<SubdevicePlan>> {
        let mut out: Vec<SubdevicePlan> = Vec::new();
        for (i, s) in raw.iter().enumerate() {
            let gateway = match &s.gateway {
                Some(g) => self.named(format!("subdevices[{i}].gateway"), g)?,
                None if gateways.len() == 1 => gateways[0].id.clone(),
                None => {
                    return Err(self.invalid(
                        format!("subdevices[{i}].gateway"),
                        "required when there are several gateways",
                    ));
                }
            };
            if !gateways.iter().any(|g| g.id == gateway) {
                return Err(self.invalid(
                    format!("subdevices[{i}].gateway"),
                    format!("no gateway {gateway}"),
                ));
            }
            let names: Vec<String> = match s.count {
                None => vec![s.device_name.clone()],
                Some(n) if !(1..=MAX_COUNT).contains(&n) => {
                    return Err(self.invalid(
                        format!("subdevices[{i}].count"),
                        format!("{n} is not in 1..={MAX_COUNT}"),
                    ));
                }
                Some(n) => (1..=n).map(|k| format!("{}{k}", s.device_name)).collect(),
            };
            self.burner(i, &s.burner)?;
            for name in names {
                let id = self.id(format!("subdevices[{i}]"), &s.product_id, &name)?;
                if out.iter().any(|o| o.id == id) {
                    return Err(self.invalid(
                        format!("subdevices[{i}].device_name"),
                        format!("{id} twice"),
                    ));
                }
                out.push(SubdevicePlan {
                    id,
                    gateway: gateway.clone(),
                    version: s.version.clone(),
                    secret: s
                        .secret
                        .clone()
                        .unwrap_or_else(|| DEFAULT_SUB_SECRET.to_owned()),
                    bound: s.bound,
                    burner: s.burner.clone(),
                });
            }
        }
        Ok(out)
    }

    fn burner(&self, i: usize, plan: &BurnerPlan) -> Res<()> {
        let field = format!("subdevices[{i}].burner");
        match plan {
            BurnerPlan::Fail { percent, .. } | BurnerPlan::Offline { percent, .. }
                if *percent > 100 =>
            {
                Err(self.invalid(format!("{field}.percent"), format!("{percent} is over 100")))
            }
            BurnerPlan::WrongVersion { version, times } if *times != Some(0) => {
                gateway::Version::parse(version)
                    .map(drop)
                    .map_err(|e| self.invalid(format!("{field}.version"), e))
            }
            BurnerPlan::Fail { times: Some(0), .. }
            | BurnerPlan::Hang { times: Some(0) }
            | BurnerPlan::WrongVersion { times: Some(0), .. }
            | BurnerPlan::Offline { times: Some(0), .. } => {
                Err(self.invalid(format!("{field}.times"), "must be at least 1"))
            }
            _ => Ok(()),
        }
    }
}
