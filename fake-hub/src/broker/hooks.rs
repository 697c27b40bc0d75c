//! Translates rmqtt hook calls into [`BrokerHooks`] calls.
//!
//! One adapter is registered for every hook type the hub needs. Publishes are reported from the
//! publish ACL hook rather than rmqtt's `MessagePublish` hook, because `MessagePublish` runs
//! before the ACL and would also report messages the ACL then refuses.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use async_trait::async_trait;
use rmqtt::codec::v5::SubscribeAckReason;
use rmqtt::context::ServerContext;
use rmqtt::hook::{Handler, HookResult, Parameter, ReturnType, Type};
use rmqtt::session::Session;
use rmqtt::types::{
    AuthResult, ConnectInfo as RmqttConnectInfo, From, FromType, Publish, PublishAclResult, Reason,
    Subscribe, SubscribeAclResult,
};
use tracing::{debug, info};

use super::connections::Connections;
use super::fitter::Unavailable;
use super::front::PeerBook;
use super::{AuthVerdict, BrokerHooks, ConnectInfo, Transport};

/// The hook types the adapter answers.
const HOOK_TYPES: [Type; 8] = [
    Type::ClientAuthenticate,
    Type::MessagePublish,
    Type::ClientConnack,
    Type::ClientSubscribeCheckAcl,
    Type::MessagePublishCheckAcl,
    Type::SessionSubscribed,
    Type::ClientConnected,
    Type::ClientDisconnected,
];

/// Where a will the hub refuses at send time goes: a `$` topic outside the Hub's topic space,
/// which the subscribe ACL never grants and `#` does not match.
pub(super) const DIVERTED_WILL_TOPIC: &str = "$otasim/refused-will";

/// Registers the adapter for every hook type and enables it.
///
/// Must complete before the listener accepts: rmqtt adds handlers disabled, and a CONNECT that
/// arrives before `start()` would be accepted without authentication.
pub(super) async fn install(
    scx: &ServerContext,
    hooks: Arc<dyn BrokerHooks>,
    connections: Arc<Connections>,
    unavailable: Arc<Unavailable>,
    peers: Arc<PeerBook>,
) {
    let adapter = HookAdapter {
        hooks,
        connections,
        unavailable,
        peers,
        scx: scx.clone(),
        takeover: Arc::default(),
    };
    let register = scx.extends.hook_mgr().register();
    for typ in HOOK_TYPES {
        register.add(typ, Box::new(adapter.clone())).await;
    }
    register.start().await;
}

#[derive(Clone)]
struct HookAdapter {
    hooks: Arc<dyn BrokerHooks>,
    connections: Arc<Connections>,
    unavailable: Arc<Unavailable>,
    peers: Arc<PeerBook>,
    scx: ServerContext,
    takeover: Arc<super::takeover::Takeover>,
}

#[async_trait]
impl Handler for HookAdapter {
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        match param {
            Parameter::ClientAuthenticate(info) => {
                // One CONNECT per client id at a time (see `takeover`).
                let turn = self.takeover.turn(&self.scx, info.id()).await;
                let (result, accepted) = self.authenticate(info, turn.busy).await;
                // A code 3 refusal passes authentication too (see `fitter`) but never connects.
                if accepted {
                    self.takeover.accepted(info.id(), turn);
                } else {
                    self.takeover.refused(info.id(), turn);
                }
                (false, Some(result))
            }
            Parameter::ClientConnack(info, reason) => {
                // Awaiting here holds the CONNACK: rmqtt sends it after this hook returns.
                if reason.success()
                    && let Some(hold) = self.hooks.connack_hold(info.client_id())
                {
                    hold.await;
                }
                (true, acc)
            }
            Parameter::ClientSubscribeCheckAcl(session, sub) => {
                let result = self.check_subscribe(session, sub).await;
                // Awaiting here holds the SUBACK, which waits for every filter's ACL answer.
                if let Some(hold) = self
                    .hooks
                    .suback_hold(&session.id.client_id, &sub.topic_filter)
                {
                    hold.await;
                }
                (false, Some(result))
            }
            Parameter::MessagePublishCheckAcl(session, publish) => {
                let client_id: &str = &session.id.client_id;
                let result = if publish.topic.contains(['+', '#']) {
                    // MQTT-3.3.2-2: a topic name has no wildcards; the codec lets it through.
                    let detail = format!("PUBLISH to the wildcard topic {}", publish.topic);
                    self.hooks.on_protocol_violation(client_id, &detail);
                    PublishAclResult::rejected(true, None)
                } else if self
                    .hooks
                    .publish_later(
                        client_id,
                        &publish.topic,
                        &publish.payload,
                        publish.qos.value(),
                    )
                    .await
                {
                    PublishAclResult::allow()
                } else {
                    debug!(client_id, topic = %publish.topic, "publish refused");
                    // Dropped, not disconnected: the hub records it and the device carries on.
                    PublishAclResult::rejected(false, None)
                };
                (false, Some(HookResult::PublishAclResult(result)))
            }
            Parameter::MessagePublish(_, from, publish)
                if matches!(from.typ(), FromType::LastWill) =>
            {
                (true, self.will(from, publish).await.or(acc))
            }
            Parameter::SessionSubscribed(session, sub) => {
                self.hooks.on_subscribed(
                    &session.id.client_id,
                    &sub.topic_filter,
                    sub.opts.qos().value(),
                );
                (true, acc)
            }
            Parameter::ClientConnected(session) => {
                self.takeover.connected(&session.id);
                self.connections.connected(&session.id);
                info!(client_id = %session.id.client_id, "client connected");
                self.hooks.on_connected(&session.id.client_id);
                (true, acc)
            }
            Parameter::ClientDisconnected(session, reason) => {
                self.disconnected(session, reason);
                (true, acc)
            }
            _ => (true, acc),
        }
    }
}

impl HookAdapter {
    async fn authenticate(&self, info: &RmqttConnectInfo, busy: bool) -> (HookResult, bool) {
        let mut info = connect_info(info, &self.peers);
        info.taken = busy;
        let verdict = self.hooks.authenticate_later(&info).await;
        debug!(client_id = %info.client_id, ?verdict, "authenticate");
        let result = HookResult::AuthResult(match verdict {
            // Never a superuser: a superuser would bypass both ACL hooks.
            AuthVerdict::Accept => AuthResult::Allow(false, None),
            AuthVerdict::BadCredentials => AuthResult::BadUsernameOrPassword,
            AuthVerdict::NotAuthorized => AuthResult::NotAuthorized,
            AuthVerdict::ServerUnavailable => {
                // Accepted here, failed in negotiation: see `fitter`.
                self.unavailable.mark(&info.client_id);
                AuthResult::Allow(false, None)
            }
        });
        (result, verdict == AuthVerdict::Accept)
    }

    async fn check_subscribe(&self, session: &Session, sub: &Subscribe) -> HookResult {
        let client_id: &str = &session.id.client_id;
        let allowed = self
            .hooks
            .allow_subscribe_later(client_id, &sub.topic_filter)
            .await;
        let result = if allowed {
            // Grant what was asked (rmqtt already capped it at the listener's maximum, QoS 1;
            // an ACL answer can only lower a grant, never raise it).
            SubscribeAclResult::new_success(sub.opts.qos(), None)
        } else {
            debug!(client_id, topic_filter = %sub.topic_filter, "subscription refused");
            SubscribeAclResult::new_failure(SubscribeAckReason::NotAuthorized)
        };
        HookResult::SubscribeAclResult(result)
    }

    /// A Last Will about to be published: the hub records it, and a will it no longer allows
    /// goes to [`DIVERTED_WILL_TOPIC`], where no client may subscribe.
    async fn will(&self, from: &From, publish: &Publish) -> Option<HookResult> {
        let client_id: &str = &from.id.client_id;
        if self
            .hooks
            .on_will_later(client_id, &publish.topic, &publish.payload)
            .await
        {
            return None;
        }
        let mut diverted = publish.clone();
        diverted.topic = DIVERTED_WILL_TOPIC.into();
        Some(HookResult::Publish(diverted))
    }

    fn disconnected(&self, session: &Session, reason: &Reason) {
        let client_id: &str = &session.id.client_id;
        let reason = describe(reason);
        if self.connections.disconnected(&session.id) {
            info!(client_id, %reason, "client disconnected");
            self.hooks.on_disconnected(client_id, &reason);
        } else {
            debug!(client_id, %reason, "superseded connection closed");
        }
    }
}

/// The CONNECT's fields, with the real peer and transport the listener front recorded for the
/// connection rmqtt sees (a connection that bypassed the front counts as plain).
fn connect_info(info: &RmqttConnectInfo, peers: &PeerBook) -> ConnectInfo {
    let seen = info
        .ipaddress()
        .unwrap_or(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)));
    let (peer, transport) = match peers.get(seen) {
        Some(record) => (record.peer, record.transport),
        None => (seen, Transport::Plain),
    };
    ConnectInfo {
        client_id: info.client_id().to_string(),
        username: info.username().map(|u| u.to_string()),
        password: info.password().map(|p| p.to_vec()),
        protocol_level: info.proto_ver(),
        keepalive_secs: info.keep_alive(),
        peer,
        transport,
        taken: false,
        will_topic: match info {
            RmqttConnectInfo::V3(_, c) => c.last_will.as_ref().map(|w| w.topic.to_string()),
            RmqttConnectInfo::V5(_, c) => c.last_will.as_ref().map(|w| w.topic.to_string()),
        },
    }
}

/// A stable description of why a connection ended (see [`BrokerHooks::on_disconnected`]).
fn describe(reason: &Reason) -> String {
    match first_cause(reason) {
        Reason::ConnectDisconnect(_) => "client_disconnect".to_owned(),
        Reason::ConnectRemoteClose => "remote_close".to_owned(),
        Reason::ConnectKeepaliveTimeout => "keepalive_timeout".to_owned(),
        Reason::ConnectKicked(_) => "kicked".to_owned(),
        Reason::ConnectReadWriteError => "io_error".to_owned(),
        Reason::ConnectReadWriteTimeout => "io_timeout".to_owned(),
        r @ (Reason::ProtocolError(_) | Reason::MqttError(_)) => format!("protocol_error: {r}"),
        // rmqtt's codec reports an oversized packet only as text.
        r if r.to_string().contains("Max size exceeded") => format!("packet_too_large: {r}"),
        r => format!("other: {r}"),
    }
}

/// rmqtt accumulates reasons (a DISCONNECT, then the socket closing); the first one is the cause.
fn first_cause(reason: &Reason) -> &Reason {
    match reason {
        Reason::Reasons(all) => all.first().map_or(reason, first_cause),
        r => r,
    }
}
