//! Running one step against a world: console actions, faults, power cuts, quiet spells and
//! waits on milestones (never on timers).

use crate::failure::StepError;
use crate::happened::{commands_to, cos_gets, reports_for, version_reports};
use crate::plan::{Condition, MqttLevel, Plan, QuietOn, RawAnswer, RawPublish, Step};
use crate::world::World;
use fake_cos::JournalEntry;
use fake_hub::Direction;
use otasim_protocol::{DeviceId, ProgressState};
use std::time::{Duration, Instant};

/// Runs a step; `Err` says why it could not complete.
pub(crate) async fn run_step(world: &mut World, plan: &Plan, step: &Step) -> Result<(), StepError> {
    let hub = |e: fake_hub::HubError| StepError::Hub(e.to_string());
    let wld = |e: crate::world::WorldError| StepError::World(e.to_string());
    match step {
        Step::WaitOnline { timeout } => wait_online(world, plan, *timeout).await,
        Step::Push(request) => {
            world.note(
                "step",
                format!("console pushes {} {}", request.product_id, request.version),
            );
            world.hub.push(request.clone()).map(drop).map_err(hub)
        }
        Step::WaitTasks { timeout } => wait_tasks(world, *timeout).await,
        Step::WaitUntil { condition, timeout } => {
            if wait_for(world, condition, *timeout).await {
                world.note("step", format!("milestone: {}", describe(condition)));
                Ok(())
            } else {
                Err(StepError::TimedOut {
                    waited: *timeout,
                    waiting_for: describe(condition),
                })
            }
        }
        Step::KillGateway(id) => {
            world.kill_gateway(id).await;
            Ok(())
        }
        Step::StartGateway(id) => world.start_gateway(id).map_err(wld),
        Step::Kick(id) => {
            world.kick(id);
            Ok(())
        }
        Step::Quiet { duration, on } => quiet(world, *duration, on).await,
        Step::ReplaceFirmware(f) => {
            world.note(
                "step",
                format!("console replaces {} {}", f.product_id, f.version),
            );
            world
                .hub
                .upload_firmware_replacing(&f.product_id, &f.version, f.bytes_with(plan.seed))
                .map(drop)
                .map_err(hub)
        }
        Step::Unbind { gateway, subdevice } => {
            world.note("step", format!("console unbinds {subdevice}"));
            world
                .hub
                .change_binding(gateway, subdevice, false)
                .map_err(hub)
        }
        Step::ConfigureGateway {
            gateway,
            max_concurrent,
            quota_bytes,
        } => world
            .configure_gateway(gateway, *max_concurrent, *quota_bytes)
            .map_err(wld),
        Step::FillDisk { gateway, bytes } => world.fill_disk(gateway, *bytes).map_err(wld),
        Step::RawPublish(p) => raw_publish(world, p).await,
        _ => run_fault_step(world, step),
    }
}

/// Faults, clocks and console task actions.
fn run_fault_step(world: &mut World, step: &Step) -> Result<(), StepError> {
    let hub = |e: fake_hub::HubError| StepError::Hub(e.to_string());
    match step {
        Step::AddCosFault { rule, window } => {
            let until = window.map_or_else(String::new, |w| format!(" for {} ms", w.as_millis()));
            world.note(
                "step",
                format!("cos fault installed{until}: {:?}", rule.verdict),
            );
            world
                .add_cos_fault(rule.clone(), *window)
                .map_err(|e| StepError::World(e.to_string()))
        }
        Step::PushTask(request) => {
            let p = &request.push;
            world.note(
                "step",
                format!("console creates a task {} {}", p.product_id, p.version),
            );
            world
                .hub
                .create_task(request.clone())
                .map(drop)
                .map_err(hub)
        }
        Step::AddHubFault(rule) => {
            world.note("step", format!("hub fault installed: {:?}", rule.action));
            let rule = crate::world::with_cos_address(rule.clone(), world.cos.local_addr());
            world.hub.add_fault(rule).map(drop).map_err(hub)
        }
        Step::CancelTask(n) => {
            world.note("step", format!("console cancels task {n}"));
            let id = world.hub.tasks().get(*n as usize - 1).map(|t| t.id);
            match id {
                Some(id) if world.hub.cancel_task(id) => Ok(()),
                _ => Err(StepError::UnknownTask(*n)),
            }
        }
        Step::AdvanceHubClock(by) => {
            world.hub.advance_clock(*by);
            world.note("step", format!("hub clock advanced {} ms", by.as_millis()));
            Ok(())
        }
        Step::AdvanceCosClock(by) => {
            world.cos.advance_clock(*by);
            world.note("step", format!("cos clock advanced {}s", by.as_secs()));
            Ok(())
        }
        other => Err(StepError::World(format!(
            "{} is not a fault step",
            other.name()
        ))),
    }
}

/// What a quiet spell watches, counted now.
fn quiet_count(world: &World, on: &QuietOn) -> usize {
    match on {
        QuietOn::Cos => cos_gets(&world.cos.journal()).count(),
        QuietOn::Reports(device) => {
            let t = world.hub.transcript();
            let about = |e: &&fake_hub::TranscriptEntry| {
                e.direction == Direction::In
                    && e.topic.starts_with("$ota/report/")
                    && device
                        .as_ref()
                        .is_none_or(|d| e.topic.ends_with(&format!("/{}", d)))
            };
            t.iter().filter(about).count()
        }
        QuietOn::Commands(device) => {
            let t = world.hub.transcript();
            match device {
                Some(d) => commands_to(&t, d),
                None => t
                    .iter()
                    .filter(|e| e.message_type().as_deref() == Some("update_firmware"))
                    .count(),
            }
        }
    }
}

/// Waits `spell` and fails at the first thing of the kind that happens meanwhile.
async fn quiet(world: &World, spell: Duration, on: &QuietOn) -> Result<(), StepError> {
    let before = quiet_count(world, on);
    let started = Instant::now();
    let broke = match on {
        QuietOn::Cos => world
            .cos
            .wait_journal(spell, |j| cos_gets(j).count() > before)
            .await
            .is_ok(),
        _ => {
            world
                .hub
                .wait_until(spell, |_| quiet_count(world, on) > before)
                .await
        }
    };
    if !broke {
        world.note("step", format!("quiet for {} ms", spell.as_millis()));
        return Ok(());
    }
    let what = match on {
        QuietOn::Cos => "a COS request".to_owned(),
        QuietOn::Reports(d) => format!(
            "a report from {}",
            d.as_ref().map_or("a device".into(), |d| d.to_string())
        ),
        QuietOn::Commands(d) => format!(
            "an update_firmware to {}",
            d.as_ref().map_or("a device".into(), |d| d.to_string())
        ),
    };
    Err(StepError::NotQuiet {
        what,
        after: started.elapsed(),
        spell,
    })
}

async fn wait_online(world: &World, plan: &Plan, timeout: Duration) -> Result<(), StepError> {
    let bound: Vec<&DeviceId> = plan
        .subdevices
        .iter()
        .filter(|s| s.bound)
        .map(|s| &s.id)
        .collect();
    let ok = world
        .hub
        .wait_until(timeout, |hub| {
            bound
                .iter()
                .all(|id| hub.device(id).is_some_and(|d| d.version.is_some()))
        })
        .await;
    if ok {
        return Ok(());
    }
    let missing: Vec<String> = bound
        .iter()
        .filter(|id| world.hub.device(id).is_none_or(|d| d.version.is_none()))
        .map(|id| id.to_string())
        .collect();
    Err(StepError::TimedOut {
        waited: timeout,
        waiting_for: format!("a version report from {}", missing.join(", ")),
    })
}

async fn wait_tasks(world: &World, timeout: Duration) -> Result<(), StepError> {
    let ok = world
        .hub
        .wait_until(timeout, |hub| hub.tasks().iter().all(|t| t.is_finished()))
        .await;
    if ok {
        return Ok(());
    }
    let pending: Vec<String> = world
        .hub
        .tasks()
        .iter()
        .flat_map(|t| t.devices.values())
        .filter(|d| !d.state.is_final())
        .map(|d| format!("{} {}", d.device, d.state.label()))
        .collect();
    Err(StepError::TimedOut {
        waited: timeout,
        waiting_for: format!(
            "every task to finish; still running: {}",
            pending.join(", ")
        ),
    })
}

/// Waits until `condition` holds, re-checking on every hub or COS change.
async fn wait_for(world: &World, condition: &Condition, timeout: Duration) -> bool {
    match condition {
        Condition::CosBytes { .. } | Condition::CosRequests { .. } => world
            .cos
            .wait_journal(timeout, |j| cos_holds(condition, j))
            .await
            .is_ok(),
        _ => {
            world
                .hub
                .wait_until(timeout, |_| hub_holds(world, condition))
                .await
        }
    }
}

fn cos_holds(condition: &Condition, journal: &[JournalEntry]) -> bool {
    let of = |object: &Option<String>| -> Vec<&JournalEntry> {
        cos_gets(journal)
            .filter(|j| object.is_none() || j.object.as_ref() == object.as_ref())
            .collect()
    };
    match condition {
        Condition::CosBytes { object, at_least } => {
            let firmware = of(object)
                .into_iter()
                .filter(|j| (200..300).contains(&j.status));
            firmware.map(|j| j.body_bytes_sent).sum::<u64>() >= *at_least
        }
        Condition::CosRequests { object, at_least } => of(object).len() as u64 >= *at_least,
        _ => false,
    }
}

fn hub_holds(world: &World, condition: &Condition) -> bool {
    match condition {
        Condition::Report {
            device,
            state,
            percent_at_least,
            count,
        } => {
            let transcript = world.hub.transcript();
            if state == "version" {
                return version_reports(&transcript, device) >= *count;
            }
            let reports = reports_for(&transcript, device);
            let n = reports
                .iter()
                .filter(|r| state_name(r.state) == state)
                .filter(|r| percent_at_least.is_none_or(|p| r.percent.unwrap_or(0) >= p))
                .count();
            n >= *count
        }
        Condition::HubState { device, state } => world
            .hub
            .device(device)
            .and_then(|d| d.update)
            .is_some_and(|u| u.state.label() == state),
        Condition::Connects { gateway, at_least } => {
            let client = gateway.client_id();
            let n = world
                .hub
                .transcript()
                .iter()
                .filter(|e| {
                    e.direction == Direction::Event && e.topic == "connect" && e.client_id == client
                })
                .count();
            n as u64 >= *at_least
        }
        Condition::Offline { gateway } => world.hub.device(gateway).is_some_and(|d| !d.online),
        _ => false,
    }
}

fn state_name(s: ProgressState) -> &'static str {
    match s {
        ProgressState::Downloading => "downloading",
        ProgressState::Burning => "burning",
        ProgressState::Done => "done",
        ProgressState::Fail => "fail",
    }
}

/// A milestone in words.
pub(crate) fn describe(c: &Condition) -> String {
    let obj = |o: &Option<String>| {
        o.as_deref()
            .map_or("all objects".to_owned(), |o| format!("object {o}"))
    };
    match c {
        Condition::CosBytes { object, at_least } => {
            format!("COS sent {at_least} body bytes of {}", obj(object))
        }
        Condition::CosRequests { object, at_least } => {
            format!("COS answered {at_least} GETs for {}", obj(object))
        }
        Condition::Report {
            device,
            state,
            percent_at_least,
            count,
        } => {
            let pct = percent_at_least
                .map(|p| format!(" >= {p}%"))
                .unwrap_or_default();
            format!("{count} report(s) {state}{pct} from {device}")
        }
        Condition::HubState { device, state } => format!("hub shows {device} {state}"),
        Condition::Connects { gateway, at_least } => {
            format!("{gateway} connected {at_least} time(s)")
        }
        Condition::Offline { gateway } => format!("hub sees {gateway} offline"),
    }
}

/// How long the hub may take to record a raw client's PUBLISH.
const RAW_RECORD_DEADLINE: Duration = Duration::from_secs(10);

/// Whether two payloads are the same, as far as a bounded transcript keeps them.
fn same_payload(recorded: &str, sent: &str) -> bool {
    const KEPT: usize = 200;
    let n = recorded.len().min(sent.len()).min(KEPT);
    recorded.as_bytes()[..n] == sent.as_bytes()[..n] && (recorded.len() == sent.len() || n == KEPT)
}

/// One PUBLISH from a raw client with a device's credentials; the step ends once the hub has
/// answered and recorded it, and fails if the answer is not the one asked for.
async fn raw_publish(world: &mut World, p: &RawPublish) -> Result<(), StepError> {
    use crate::raw_client::RawClient;
    let from_seq = world.hub.transcript_next_seq();
    let reuse = world
        .raw_clients
        .get(&p.device)
        .is_some_and(|c| c.level() == p.mqtt);
    if !reuse {
        world.raw_clients.remove(&p.device);
        let addr = world.hub.local_addr();
        match RawClient::connect(addr, &p.device, &p.secret, p.mqtt)
            .await
            .map_err(StepError::World)?
        {
            Ok(client) => {
                world.raw_clients.insert(p.device.clone(), client);
            }
            Err(code) => return raw_answered(world, p, RawAnswer::Connack(code)),
        }
    }
    let client = world
        .raw_clients
        .get_mut(&p.device)
        .expect("connected above");
    let answer = client.publish(p).await.map_err(StepError::World)?;
    if matches!(answer, RawAnswer::Closed | RawAnswer::Disconnect(_)) {
        world.raw_clients.remove(&p.device);
    }
    let client_id = p.device.client_id();
    let recorded = |hub: &fake_hub::Hub| {
        hub.transcript_since(from_seq, usize::MAX).iter().any(|e| {
            e.client_id == client_id
                && match e.direction {
                    Direction::In | Direction::Refused => {
                        same_payload(&e.topic, &p.topic) && same_payload(&e.payload, &p.payload)
                    }
                    Direction::Event => e.topic == "publish refused",
                    _ => false,
                }
        })
    };
    if !world.hub.wait_until(RAW_RECORD_DEADLINE, recorded).await {
        return Err(StepError::TimedOut {
            waited: RAW_RECORD_DEADLINE,
            waiting_for: format!(
                "the hub to record the raw PUBLISH on {} (answered {answer})",
                p.topic
            ),
        });
    }
    raw_answered(world, p, answer)
}

fn raw_answered(world: &World, p: &RawPublish, answer: RawAnswer) -> Result<(), StepError> {
    let retain = if p.retain { ", retained" } else { "" };
    let level = match p.mqtt {
        MqttLevel::V311 => "3.1.1",
        MqttLevel::V5 => "5",
    };
    world.note(
        "step",
        format!(
            "raw client {} publishes on {} (QoS {}{retain}, MQTT {level}): {answer}",
            p.device, p.topic, p.qos
        ),
    );
    match p.answer {
        Some(want) if want != answer => Err(StepError::RawAnswer {
            expected: want.to_string(),
            got: answer.to_string(),
        }),
        _ => Ok(()),
    }
}
