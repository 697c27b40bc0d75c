//! Gateway operations: online, offline, describe, bind and unbind from gateways; `change` and
//! `unbind_all` from the Hub.
//!
//! A bind is checked in this order: parameters (-801), sign method (-804), subdevice exists
//! (-802), it is a subdevice at all (-808: gateways cannot be bound), it is enabled (-807),
//! signature (-803), timestamp (-805), binding (-806 other gateway, -809 this one). The
//! timestamp must be at most [`BIND_MAX_AGE_SECS`] behind and [`BIND_MAX_AHEAD_SECS`] ahead of
//! the hub's wall clock.

use crate::core::{HubCore, Out, State};
use crate::faults::HubFaultAction;
use crate::registry::DeviceKind;
use otasim_protocol::{
    DeviceId, GatewayDevice, GatewayReply, GatewayRequest, GatewayResult, OperationType,
    SignMethod, Topic, verify_bind_signature,
};

/// How old a bind signature's timestamp may be.
pub const BIND_MAX_AGE_SECS: i64 = 3600;
/// How far ahead of the hub's clock a bind signature's timestamp may be.
pub const BIND_MAX_AHEAD_SECS: i64 = 300;

/// Answers one request a gateway published on `$gateway/operation/{gw}`; `action` is the fault
/// that fired on it, if any.
pub(crate) fn on_request(
    core: &HubCore,
    state: &mut State,
    client_id: &str,
    gateway: &DeviceId,
    payload: &[u8],
    action: Option<HubFaultAction>,
) {
    let req = match GatewayRequest::parse(payload) {
        Ok(r) => r,
        Err(e) => {
            return core.event(
                state,
                client_id,
                "ignored",
                format!("gateway operation: {e}"),
            );
        }
    };
    let forced = match action {
        Some(HubFaultAction::GatewayResult { result }) => Some(result),
        _ => None,
    };
    let Some(devices) = answer(core, state, gateway, &req, forced) else {
        let detail = format!("hub-side operation {:?} sent by a device", req.kind);
        return core.event(state, client_id, "ignored", detail);
    };
    let reply = GatewayReply {
        kind: req.kind,
        devices,
        status: None,
    };
    let topic = Topic::GatewayOperationResult(gateway.clone());
    match action {
        Some(HubFaultAction::GatewayNever) => {}
        Some(HubFaultAction::GatewayLate { ms }) => {
            let Some(me) = core.me() else { return };
            let hold = core.hold(ms);
            state.out.items.push(Out::Spawn(Box::pin(async move {
                hold.await;
                let mut state = me.lock();
                me.send(&mut state, &topic, reply.encode(), 1);
            })));
        }
        Some(HubFaultAction::GatewayResult { .. }) | None => {
            core.send(state, &topic, reply.encode(), 1)
        }
        Some(other) => {
            core.send(state, &topic, reply.encode(), 1);
            core.act(state, client_id, other);
        }
    }
}

/// The reply's devices; `None` for a type only the Hub sends. With `forced`, the operation is
/// not applied and every device gets that result.
fn answer(
    core: &HubCore,
    state: &mut State,
    gateway: &DeviceId,
    req: &GatewayRequest,
    forced: Option<i64>,
) -> Option<Vec<GatewayDevice>> {
    let now = core.clock.now_unix_secs();
    match req.kind {
        OperationType::DescribeSubDevices => Some(
            state
                .registry
                .bound_to(gateway)
                .iter()
                .map(GatewayDevice::named)
                .collect(),
        ),
        OperationType::Online
        | OperationType::Offline
        | OperationType::Bind
        | OperationType::Unbind => Some(
            req.devices
                .iter()
                .map(|d| GatewayDevice {
                    product_id: d.product_id.clone(),
                    device_name: d.device_name.clone(),
                    result: Some(
                        forced.unwrap_or_else(|| apply(state, gateway, req.kind, d, now).code()),
                    ),
                    ..GatewayDevice::default()
                })
                .collect(),
        ),
        OperationType::Change | OperationType::SearchDevices | OperationType::UnbindAll => None,
    }
}

fn apply(
    state: &mut State,
    gateway: &DeviceId,
    kind: OperationType,
    dev: &GatewayDevice,
    now: i64,
) -> GatewayResult {
    let Ok(id) = dev.id() else {
        return match kind {
            OperationType::Bind => GatewayResult::BindParameter,
            _ => GatewayResult::NotBound,
        };
    };
    match kind {
        OperationType::Online | OperationType::Offline => {
            let Some(rec) = state.registry.get_mut(&id) else {
                return GatewayResult::NotBound;
            };
            if rec.bound_to.as_ref() != Some(gateway) {
                return GatewayResult::NotBound;
            }
            rec.online = kind == OperationType::Online;
            GatewayResult::Success
        }
        OperationType::Bind => bind(state, gateway, &id, dev, now),
        OperationType::Unbind => {
            let Some(rec) = state.registry.get(&id) else {
                return GatewayResult::BindSubdeviceMissing;
            };
            if rec.bound_to.as_ref() != Some(gateway) {
                return GatewayResult::NotBound;
            }
            state.registry.set_bound(&id, None);
            GatewayResult::Success
        }
        _ => GatewayResult::BindOperationForbidden,
    }
}

fn bind(
    state: &mut State,
    gateway: &DeviceId,
    id: &DeviceId,
    dev: &GatewayDevice,
    now: i64,
) -> GatewayResult {
    let (Some(signature), Some(random), Some(timestamp)) =
        (&dev.signature, dev.random, dev.timestamp)
    else {
        return GatewayResult::BindParameter;
    };
    let Ok(method) = SignMethod::parse(dev.signmethod.as_deref().unwrap_or("hmacsha1")) else {
        return GatewayResult::BindBadSignMethod;
    };
    let Some(rec) = state.registry.get(id) else {
        return GatewayResult::BindSubdeviceMissing;
    };
    if rec.kind != DeviceKind::Subdevice {
        return GatewayResult::BindOperationForbidden;
    }
    if !rec.enabled {
        return GatewayResult::BindSubdeviceForbidden;
    }
    if !verify_bind_signature(id, &rec.secret, random, timestamp, method, signature) {
        return GatewayResult::BindBadSignature;
    }
    if timestamp < now.saturating_sub(BIND_MAX_AGE_SECS)
        || timestamp > now.saturating_add(BIND_MAX_AHEAD_SECS)
    {
        return GatewayResult::BindSignatureExpired;
    }
    match &rec.bound_to {
        // The same gateway asking again (a lost reply) learns it is bound.
        Some(g) if g == gateway => return GatewayResult::BindAlreadyBound,
        Some(_) if !state.used_binds.contains(&(timestamp, id.clone(), random)) => {
            return GatewayResult::BindToOtherGateway;
        }
        _ => {}
    }
    // A signature binds once: replayed (by another gateway, or after an unbind) it is spent.
    if !state.used_binds.insert((timestamp, id.clone(), random)) {
        return GatewayResult::BindSignatureExpired;
    }
    // Signatures that have expired anyway need not be remembered.
    // They are ordered by timestamp: the expired ones are a prefix.
    let oldest = now.saturating_sub(BIND_MAX_AGE_SECS);
    while state
        .used_binds
        .first()
        .is_some_and(|(t, _, _)| *t < oldest)
    {
        state.used_binds.pop_first();
    }
    state.registry.set_bound(id, Some(gateway.clone()));
    GatewayResult::Success
}

/// The console binds (`bound`) or unbinds a subdevice and the Hub tells the gateway with
/// `change` (`status` 1 or 0). Unbinding takes the subdevice offline.
pub(crate) fn change(
    core: &HubCore,
    state: &mut State,
    gateway: &DeviceId,
    sub: &DeviceId,
    bound: bool,
) {
    let bound_here = state
        .registry
        .get(sub)
        .is_some_and(|r| r.bound_to.as_ref() == Some(gateway));
    if bound {
        state.registry.set_bound(sub, Some(gateway.clone()));
    } else if bound_here {
        state.registry.set_bound(sub, None);
    }
    let msg = GatewayReply {
        kind: OperationType::Change,
        devices: vec![GatewayDevice::named(sub)],
        status: Some(i64::from(bound)),
    };
    core.send(
        state,
        &Topic::GatewayOperationResult(gateway.clone()),
        msg.encode(),
        1,
    );
}

/// The console unbinds every subdevice of the gateway and the Hub sends `unbind_all`.
pub(crate) fn unbind_all(core: &HubCore, state: &mut State, gateway: &DeviceId) {
    let subs = state.registry.bound_to(gateway);
    for sub in &subs {
        state.registry.set_bound(sub, None);
    }
    let msg = GatewayReply {
        kind: OperationType::UnbindAll,
        devices: subs.iter().map(GatewayDevice::named).collect(),
        status: None,
    };
    core.send(
        state,
        &Topic::GatewayOperationResult(gateway.clone()),
        msg.encode(),
        1,
    );
}

/// Hub-initiated topology changes.
impl crate::Hub {
    /// The console binds (`bound`) or unbinds `subdevice` to `gateway`; the Hub sends `change`.
    pub fn change_binding(
        &self,
        gateway: &DeviceId,
        subdevice: &DeviceId,
        bound: bool,
    ) -> Result<(), crate::HubError> {
        let mut state = self.core.lock();
        for id in [gateway, subdevice] {
            if state.registry.get(id).is_none() {
                return Err(crate::HubError::UnknownDevice(id.to_string()));
            }
        }
        change(&self.core, &mut state, gateway, subdevice, bound);
        drop(state);
        self.core.bump();
        Ok(())
    }

    /// The console unbinds every subdevice of `gateway`; the Hub sends `unbind_all`.
    pub fn unbind_all(&self, gateway: &DeviceId) -> Result<(), crate::HubError> {
        let mut state = self.core.lock();
        if state.registry.get(gateway).is_none() {
            return Err(crate::HubError::UnknownDevice(gateway.to_string()));
        }
        unbind_all(&self.core, &mut state, gateway);
        drop(state);
        self.core.bump();
        Ok(())
    }
}
