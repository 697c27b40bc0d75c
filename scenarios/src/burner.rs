//! The scenario's burner: the gateway crate's simulated flash and behaviours, plus a burn that
//! hangs, and a count of the burns a misbehaviour applies to. It lives as long as the world,
//! so "the first N burns" counts across gateway reboots.

use crate::plan::BurnerPlan;
use gateway::{BurnError, BurnFuture, BurnRequest, Burner, SimulatedBurn, SimulatedBurner};
use otasim_protocol::DeviceId;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

/// A burner whose subdevices misbehave as the plan says.
pub(crate) struct ScenarioBurner {
    honest: SimulatedBurner,
    faulty: SimulatedBurner,
    plans: BTreeMap<DeviceId, BurnerPlan>,
    burns: Mutex<BTreeMap<DeviceId, u32>>,
}

impl ScenarioBurner {
    /// A burner over simulated flash in `dir`, each device provisioned with its factory version.
    pub(crate) fn new(
        dir: &Path,
        devices: &[(DeviceId, String, BurnerPlan)],
    ) -> std::io::Result<ScenarioBurner> {
        let mut honest = SimulatedBurner::new(dir);
        let mut faulty = SimulatedBurner::new(dir);
        for (id, version, plan) in devices {
            honest.provision(id, version)?;
            let (good, bad) = behaviours(plan);
            honest.set_behaviour(id.clone(), good);
            if let Some(bad) = bad {
                faulty.set_behaviour(id.clone(), bad);
            }
        }
        Ok(ScenarioBurner {
            honest,
            faulty,
            plans: devices
                .iter()
                .map(|(id, _, p)| (id.clone(), p.clone()))
                .collect(),
            burns: Mutex::default(),
        })
    }

    /// Counts a burn of `device` and says whether its misbehaviour applies to this one.
    fn misbehaves(&self, device: &DeviceId) -> bool {
        let times = match self.plans.get(device) {
            None | Some(BurnerPlan::Ok { .. }) => return false,
            Some(
                BurnerPlan::Fail { times, .. }
                | BurnerPlan::Hang { times }
                | BurnerPlan::WrongVersion { times, .. }
                | BurnerPlan::Offline { times, .. },
            ) => *times,
        };
        let mut burns = self.burns.lock().expect("burn counter lock");
        let n = burns.entry(device.clone()).or_default();
        *n += 1;
        times.is_none_or(|t| *n <= t)
    }
}

/// The behaviour of an honest burn, and of a misbehaving one (`None`: it hangs).
fn behaviours(plan: &BurnerPlan) -> (SimulatedBurn, Option<SimulatedBurn>) {
    match plan {
        BurnerPlan::Ok { duration_ms } => (
            SimulatedBurn::Succeed {
                duration_ms: *duration_ms,
            },
            None,
        ),
        BurnerPlan::Fail { percent, .. } => (
            SimulatedBurn::succeed(),
            Some(SimulatedBurn::FailAt {
                percent: *percent,
                duration_ms: 0,
            }),
        ),
        BurnerPlan::Hang { .. } => (SimulatedBurn::succeed(), None),
        BurnerPlan::WrongVersion { version, .. } => (
            SimulatedBurn::succeed(),
            Some(SimulatedBurn::WrongVersion {
                reports: version.clone(),
                duration_ms: 0,
            }),
        ),
        BurnerPlan::Offline { percent, .. } => (
            SimulatedBurn::succeed(),
            Some(SimulatedBurn::OfflineAt {
                percent: *percent,
                duration_ms: 0,
            }),
        ),
    }
}

impl Burner for ScenarioBurner {
    fn burn<'a>(&'a self, request: BurnRequest<'a>) -> BurnFuture<'a> {
        if !self.misbehaves(request.device) {
            return self.honest.burn(request);
        }
        if matches!(
            self.plans.get(request.device),
            Some(BurnerPlan::Hang { .. })
        ) {
            return Box::pin(async move {
                // Hangs until the gateway stops (a kill drops this future instead).
                request.cancel.cancelled().await;
                Err(BurnError::Cancelled {
                    device: request.device.clone(),
                    percent: 0,
                })
            });
        }
        self.faulty.burn(request)
    }

    fn running_version(&self, device: &DeviceId) -> Option<String> {
        self.honest.running_version(device)
    }
}
