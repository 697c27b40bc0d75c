//! Gateway operations: online, offline, describe, bind and unbind.

use crate::core::{HubCore, State};
use crate::registry::DeviceKind;
use otasim_protocol::{
    DeviceId, GatewayDevice, GatewayReply, GatewayRequest, GatewayResult, OperationType,
    SignMethod, Topic, verify_bind_signature,
};
use tracing::debug;

/// Answers one request a gateway published on `$gateway/operation/{gw}`.
pub(crate) fn on_request(core: &HubCore, state: &mut State, gateway: &DeviceId, payload: &[u8]) {
    let req = match GatewayRequest::parse(payload) {
        Ok(r) => r,
        Err(e) => return debug!(%gateway, error = %e, "ignoring malformed gateway operation"),
    };
    let devices = match req.kind {
        OperationType::DescribeSubDevices => state
            .registry
            .bound_to(gateway)
            .iter()
            .map(GatewayDevice::named)
            .collect(),
        OperationType::Online
        | OperationType::Offline
        | OperationType::Bind
        | OperationType::Unbind => req
            .devices
            .iter()
            .map(|d| {
                let result = apply(state, gateway, req.kind, d);
                GatewayDevice {
                    product_id: d.product_id.clone(),
                    device_name: d.device_name.clone(),
                    result: Some(result.code()),
                    ..GatewayDevice::default()
                }
            })
            .collect(),
        // Hub-initiated types are not requests.
        _ => {
            return debug!(%gateway, kind = ?req.kind, "ignoring hub-side operation sent by a device");
        }
    };
    let reply = GatewayReply {
        kind: req.kind,
        devices,
        status: None,
    };
    core.send(
        state,
        &Topic::GatewayOperationResult(gateway.clone()),
        reply.encode(),
        1,
    );
}

fn apply(
    state: &mut State,
    gateway: &DeviceId,
    kind: OperationType,
    dev: &GatewayDevice,
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
        OperationType::Bind => bind(state, gateway, &id, dev),
        OperationType::Unbind => {
            let Some(rec) = state.registry.get_mut(&id) else {
                return GatewayResult::BindSubdeviceMissing;
            };
            if rec.bound_to.as_ref() != Some(gateway) {
                return GatewayResult::NotBound;
            }
            rec.bound_to = None;
            rec.online = false;
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
) -> GatewayResult {
    let (Some(signature), Some(random), Some(timestamp)) =
        (&dev.signature, dev.random, dev.timestamp)
    else {
        return GatewayResult::BindParameter;
    };
    let Ok(method) = SignMethod::parse(dev.signmethod.as_deref().unwrap_or("hmacsha1")) else {
        return GatewayResult::BindBadSignMethod;
    };
    let Some(rec) = state.registry.get_mut(id) else {
        return GatewayResult::BindSubdeviceMissing;
    };
    if rec.kind != DeviceKind::Subdevice || !rec.enabled {
        return GatewayResult::BindSubdeviceForbidden;
    }
    if !verify_bind_signature(id, &rec.secret, random, timestamp, method, signature) {
        return GatewayResult::BindBadSignature;
    }
    match &rec.bound_to {
        Some(g) if g == gateway => GatewayResult::BindAlreadyBound,
        Some(_) => GatewayResult::BindToOtherGateway,
        None => {
            rec.bound_to = Some(gateway.clone());
            GatewayResult::Success
        }
    }
}
