//! Qualification: the whole catalog against one gateway, one verdict per scenario with its
//! reason, as AWS IoT Device Tester's OTA suite reports a device.

use crate::plan::{GatewayRun, Plan};
use crate::profile::GatewayProfile;
use crate::run::{RunOptions, RunReport, run_with};
use crate::world::Ports;
use serde::Serialize;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// The gateway under qualification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayUnderTest {
    /// Our gateway, in process: every scenario runs.
    Builtin,
    /// A program, given the placeholders of [`GatewayRun::Command`].
    Command {
        /// The program.
        program: String,
        /// Its arguments.
        args: Vec<String>,
    },
}

/// A scenario's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every step and expectation held.
    Passed,
    /// Something did not hold.
    Failed,
    /// The scenario depends on our gateway's internals.
    Skipped,
    /// The world could not be built.
    Error,
}

/// One scenario's line of the qualification report.
#[derive(Debug, Clone, Serialize)]
pub struct Qualified {
    /// The scenario.
    pub name: String,
    /// Its file.
    pub path: String,
    /// The verdict.
    pub verdict: Verdict,
    /// Why: the first failure, the skip reason or the error.
    pub reason: String,
    /// The kinds of every failure (`reports`, `cos_request`, ...).
    pub failure_kinds: Vec<&'static str>,
    /// The run, when it ran.
    #[serde(skip)]
    pub report: Option<RunReport>,
}

/// How to qualify.
#[derive(Debug, Clone)]
pub struct Qualification {
    /// The gateway.
    pub gateway: GatewayUnderTest,
    /// Its accepted behaviours.
    pub profile: GatewayProfile,
    /// Where worlds listen (fixed ports run one scenario at a time).
    pub ports: Ports,
    /// Scenarios at once.
    pub jobs: usize,
}

impl Qualification {
    /// Runs every plan against the gateway; `done` hears of each as it finishes; the results
    /// come back in `plans` order.
    pub async fn run(&self, plans: &[Plan], mut done: impl FnMut(&Qualified)) -> Vec<Qualified> {
        let jobs = match self.ports {
            Ports::Fixed { .. } => 1,
            Ports::Loopback => self.jobs.max(1),
        };
        let gate = Arc::new(Semaphore::new(jobs));
        let mut set = tokio::task::JoinSet::new();
        for (i, plan) in plans.iter().enumerate() {
            let (plan, gate, me) = (plan.clone(), Arc::clone(&gate), self.clone());
            set.spawn(async move {
                let _permit = gate
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed");
                (i, me.one(plan).await)
            });
        }
        let mut out: Vec<Option<Qualified>> = plans.iter().map(|_| None).collect();
        while let Some(joined) = set.join_next().await {
            let (i, q) = match joined {
                Ok(r) => r,
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            };
            done(&q);
            out[i] = Some(q);
        }
        out.into_iter()
            .map(|q| q.expect("every task reported"))
            .collect()
    }

    async fn one(&self, mut plan: Plan) -> Qualified {
        let mut q = Qualified {
            name: plan.name.clone(),
            path: plan.path.display().to_string(),
            verdict: Verdict::Skipped,
            reason: String::new(),
            failure_kinds: Vec::new(),
            report: None,
        };
        if let GatewayUnderTest::Command { program, args } = &self.gateway {
            if let Some(why) = &plan.builtin_only {
                q.reason = format!("needs the built-in gateway: {why}");
                return q;
            }
            // A raw identity is the scenario's own misbehaving client, not a gateway to test.
            for g in plan
                .gateways
                .iter_mut()
                .filter(|g| g.run != GatewayRun::Raw)
            {
                g.run = GatewayRun::Command {
                    program: program.clone(),
                    args: args.clone(),
                };
            }
        }
        let options = RunOptions {
            ports: self.ports,
            profile: self.profile.clone(),
            ..RunOptions::default()
        };
        match run_with(&plan, options).await {
            Ok(r) => {
                q.verdict = if r.passed {
                    Verdict::Passed
                } else {
                    Verdict::Failed
                };
                q.reason = r
                    .failures
                    .first()
                    .map(|f| f.to_string())
                    .unwrap_or_default();
                q.failure_kinds = r.failures.iter().map(|f| f.kind()).collect();
                q.report = Some(r);
            }
            Err(e) => {
                q.verdict = Verdict::Error;
                q.reason = e.to_string();
            }
        }
        q
    }
}
