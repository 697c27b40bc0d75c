//! Validating `[[steps]]`: every reference checked, every number in range, with the field.

use super::raw::{RawQuietOn, RawStep};
use super::validate::{Res, Validator};
use super::{DEFAULT_TIMEOUT, GatewayRun, MqttLevel, Plan, QuietOn, RawAnswer, RawPublish, Step};
use otasim_protocol::DeviceId;
use std::num::NonZeroUsize;
use std::time::Duration;

/// The longest wait or window a step may ask for: a day.
const MAX_STEP_MS: u64 = 24 * 3600 * 1000;
/// The largest payload a `raw_publish` may carry: 1 MiB, far above the hub's 16 KB.
const MAX_RAW_PAYLOAD: usize = 1 << 20;

impl Validator<'_> {
    fn timeout(&self, field: String, ms: Option<u64>) -> Res<Duration> {
        match ms {
            None => Ok(DEFAULT_TIMEOUT),
            Some(ms) => self.millis(field, ms),
        }
    }

    fn millis(&self, field: String, ms: u64) -> Res<Duration> {
        if ms == 0 || ms > MAX_STEP_MS {
            return Err(self.invalid(field, format!("{ms} is not in 1..={MAX_STEP_MS} ms")));
        }
        Ok(Duration::from_millis(ms))
    }

    pub(crate) fn concurrency(&self, field: String, n: Option<usize>) -> Res<Option<NonZeroUsize>> {
        match n {
            None => Ok(None),
            Some(n) if (1..=1024).contains(&n) => Ok(NonZeroUsize::new(n)),
            Some(n) => Err(self.invalid(field, format!("{n} is not in 1..=1024"))),
        }
    }

    pub(crate) fn step(&self, i: usize, raw: RawStep, plan: &Plan) -> Res<Step> {
        let field = |name: &str| format!("steps[{i}].{name}");
        Ok(match raw {
            RawStep::WaitOnline { timeout_ms } => Step::WaitOnline {
                timeout: self.timeout(field("timeout_ms"), timeout_ms)?,
            },
            RawStep::WaitTasks { timeout_ms } => Step::WaitTasks {
                timeout: self.timeout(field("timeout_ms"), timeout_ms)?,
            },
            RawStep::WaitUntil { until, timeout_ms } => Step::WaitUntil {
                condition: self.condition(&field("until"), until, plan)?,
                timeout: self.timeout(field("timeout_ms"), timeout_ms)?,
            },
            RawStep::KillGateway { gateway } => {
                Step::KillGateway(self.gateway_ref(field("gateway"), gateway.as_ref(), plan)?)
            }
            RawStep::StartGateway { gateway } => {
                Step::StartGateway(self.gateway_ref(field("gateway"), gateway.as_ref(), plan)?)
            }
            RawStep::Kick { gateway } => {
                Step::Kick(self.gateway_ref(field("gateway"), gateway.as_ref(), plan)?)
            }
            RawStep::AddCosFault { rule, for_ms } => {
                rule.validate()
                    .map_err(|e| self.invalid(field("rule"), e))?;
                let window = for_ms
                    .map(|ms| self.millis(field("for_ms"), ms))
                    .transpose()?;
                Step::AddCosFault { rule, window }
            }
            RawStep::AdvanceCosClock { seconds } => {
                Step::AdvanceCosClock(Duration::from_secs(seconds))
            }
            RawStep::AddHubFault { rule } => {
                rule.validate()
                    .map_err(|e| self.invalid(field("rule"), e))?;
                Step::AddHubFault(rule)
            }
            RawStep::CancelTask { task } => self.cancel(i, task, plan)?,
            RawStep::AdvanceHubClock { ms } => Step::AdvanceHubClock(Duration::from_millis(ms)),
            RawStep::Push {
                product_id,
                version,
                method,
                devices,
                from_versions,
                options,
            } => {
                let push = self.push(
                    i,
                    (product_id, version),
                    method,
                    devices,
                    from_versions,
                    plan,
                )?;
                match options {
                    None => Step::Push(push),
                    Some(options) => Step::PushTask(fake_hub::TaskRequest { push, options }),
                }
            }
            other => self.world_step(i, other, plan)?,
        })
    }

    /// The steps that change the world: quiet spells, firmware, bindings, gateway settings.
    fn world_step(&self, i: usize, raw: RawStep, plan: &Plan) -> Res<Step> {
        let field = |name: &str| format!("steps[{i}].{name}");
        Ok(match raw {
            RawStep::ExpectQuiet { ms, on, device } => {
                let device = device
                    .map(|d| self.device_ref(field("device"), &d, plan))
                    .transpose()?;
                let on = match (on, device) {
                    (RawQuietOn::Cos, Some(_)) => {
                        return Err(self.invalid(field("device"), "not used with on = \"cos\""));
                    }
                    (RawQuietOn::Cos, None) => QuietOn::Cos,
                    (RawQuietOn::Reports, d) => QuietOn::Reports(d),
                    (RawQuietOn::Commands, d) => QuietOn::Commands(d),
                };
                Step::Quiet {
                    duration: self.millis(field("ms"), ms)?,
                    on,
                }
            }
            RawStep::ReplaceFirmware(f) => {
                let known = plan
                    .firmware
                    .iter()
                    .any(|x| x.product_id == f.product_id && x.version == f.version);
                if !known {
                    return Err(self.invalid(
                        field("version"),
                        format!("no [[firmware]] {} {} to replace", f.product_id, f.version),
                    ));
                }
                Step::ReplaceFirmware(self.one_firmware(&format!("steps[{i}]"), &f)?)
            }
            RawStep::Unbind { device } => {
                let subdevice = self.device_ref(field("device"), &device, plan)?;
                let gateway = plan
                    .subdevice(&subdevice)
                    .expect("checked by device_ref")
                    .gateway
                    .clone();
                Step::Unbind { gateway, subdevice }
            }
            RawStep::ConfigureGateway {
                gateway,
                max_concurrent,
                quota_bytes,
            } => {
                if max_concurrent.is_none() && quota_bytes.is_none() {
                    return Err(self.invalid(
                        field("max_concurrent"),
                        "say max_concurrent, quota_bytes or both",
                    ));
                }
                Step::ConfigureGateway {
                    gateway: self.gateway_ref(field("gateway"), gateway.as_ref(), plan)?,
                    max_concurrent: self.concurrency(field("max_concurrent"), max_concurrent)?,
                    quota_bytes,
                }
            }
            RawStep::FillDisk { gateway, bytes } => {
                if bytes == 0 || bytes > 1 << 30 {
                    return Err(
                        self.invalid(field("bytes"), format!("{bytes} is not in 1..=1 GiB"))
                    );
                }
                Step::FillDisk {
                    gateway: self.gateway_ref(field("gateway"), gateway.as_ref(), plan)?,
                    bytes,
                }
            }
            RawStep::RawPublish {
                as_device,
                topic,
                payload,
                qos,
                retain,
                mqtt,
                answer,
            } => {
                let (device, secret) =
                    self.raw_identity(&field("as"), as_device.as_deref(), plan)?;
                if topic.is_empty() || topic.len() > usize::from(u16::MAX) {
                    return Err(self.invalid(field("topic"), "must be 1 to 65535 bytes"));
                }
                if payload.len() > MAX_RAW_PAYLOAD {
                    return Err(self.invalid(
                        field("payload"),
                        format!("{} bytes: at most {MAX_RAW_PAYLOAD}", payload.len()),
                    ));
                }
                if qos > 2 {
                    return Err(self.invalid(field("qos"), format!("{qos} is not 0, 1 or 2")));
                }
                let mqtt = match mqtt {
                    3 => MqttLevel::V311,
                    5 => MqttLevel::V5,
                    n => {
                        return Err(
                            self.invalid(field("mqtt"), format!("{n} is not 3 (MQTT 3.1.1) or 5"))
                        );
                    }
                };
                let answer = answer
                    .map(|a| a.parse::<RawAnswer>())
                    .transpose()
                    .map_err(|e| self.invalid(field("answer"), e))?;
                Step::RawPublish(Box::new(RawPublish {
                    device,
                    secret,
                    topic,
                    payload,
                    qos,
                    retain,
                    mqtt,
                    answer,
                }))
            }
            _ => unreachable!("step() handles the other actions"),
        })
    }

    /// Whose credentials a raw client uses: `gateway` (or nothing) for the fleet's only
    /// `run = raw` gateway, or a device of the fleet by name. A gateway the scenario runs is
    /// refused: a second client with its client id would take over its session.
    fn raw_identity(
        &self,
        field: &str,
        text: Option<&str>,
        plan: &Plan,
    ) -> Res<(DeviceId, String)> {
        let raw: Vec<_> = plan
            .gateways
            .iter()
            .filter(|g| g.run == GatewayRun::Raw)
            .collect();
        let named = match text {
            None | Some("gateway") => match raw.as_slice() {
                [g] => return Ok((g.id.clone(), g.secret.clone())),
                _ => {
                    return Err(self.invalid(
                        field,
                        format!(
                            "name the device: the fleet has {} gateways with run = {{ kind = \"raw\" }}",
                            raw.len()
                        ),
                    ));
                }
            },
            Some(t) => t,
        };
        let (pid, dn) = named.split_once('/').ok_or_else(|| {
            self.invalid(
                field,
                format!("{named:?} is not \"gateway\" or PRODUCT/DEVICE"),
            )
        })?;
        let id = DeviceId::new(pid, dn).map_err(|e| self.invalid(field, e))?;
        if let Some(g) = plan.gateways.iter().find(|g| g.id == id) {
            if g.run != GatewayRun::Raw {
                return Err(self.invalid(
                    field,
                    format!(
                        "{id} is run by the scenario, and a raw client with its client id would \
                         take over its session: give it run = {{ kind = \"raw\" }}"
                    ),
                ));
            }
            return Ok((id, g.secret.clone()));
        }
        match plan.subdevice(&id) {
            Some(s) => Ok((id, s.secret.clone())),
            None => Err(self.invalid(field, format!("no device {id} in the fleet"))),
        }
    }

    fn cancel(&self, i: usize, task: u64, plan: &Plan) -> Res<Step> {
        let pushes = plan
            .steps
            .iter()
            .filter(|s| matches!(s, Step::Push(_) | Step::PushTask(_)))
            .count() as u64;
        if task == 0 || task > pushes {
            return Err(self.invalid(
                format!("steps[{i}].task"),
                format!("task {task} does not exist: {pushes} pushed before this step"),
            ));
        }
        Ok(Step::CancelTask(task))
    }
}
