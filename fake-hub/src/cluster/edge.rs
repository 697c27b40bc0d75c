//! An edge node: a broker whose hook calls are answered by the owner node's Hub.
//!
//! Every call goes into one queue, and one task sends the queue to the owner in batches over one
//! HTTP connection, in order: the owner sees this node's events as this node's broker made them,
//! and a batch carries as many calls as arrived while the previous one was on its way, so a busy
//! edge pays one round trip per batch, not per call. Decisions (CONNECT, SUBSCRIBE, PUBLISH,
//! Wills) wait for their answer; events (connected, subscribed, disconnected) do not.
//!
//! When the owner cannot be reached, a CONNECT is refused with code 3 (server unavailable), a
//! SUBSCRIBE fails and a PUBLISH is dropped: an edge never decides on its own.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use crate::broker::{AuthVerdict, BrokerHooks, ConnectInfo, Hold, Later};

use super::wire::{self, Answer, Batch, Call, Connect};

/// The longest one batch may take, sent and answered.
const BATCH_TIMEOUT: Duration = Duration::from_secs(15);
/// The longest an edge waits on a held acknowledgement before sending it anyway.
const HOLD_TIMEOUT: Duration = Duration::from_secs(600);

/// A call waiting in the queue, with where its answer goes (none for events).
struct Queued {
    call: Call,
    answer: Option<oneshot::Sender<Answer>>,
}

/// The owner's control API, as an edge reaches it.
#[derive(Debug, Clone)]
pub(crate) struct OwnerApi {
    pub(crate) addr: SocketAddr,
    pub(crate) token: Option<String>,
}

/// The hooks of an edge's broker.
pub(crate) struct RemoteHooks {
    node: u64,
    owner: OwnerApi,
    queue: mpsc::UnboundedSender<Queued>,
    /// Acknowledgements the owner said it holds: `(client_id, None)` for a CONNACK,
    /// `(client_id, Some(filter))` for a SUBACK.
    holds: Mutex<HashSet<(String, Option<String>)>>,
}

impl RemoteHooks {
    /// The hooks, and the task that sends their calls (run it on a runtime that outlives them).
    pub(crate) fn new(
        node: u64,
        owner: OwnerApi,
    ) -> (Arc<RemoteHooks>, impl Future<Output = ()> + Send) {
        let (queue, calls) = mpsc::unbounded_channel();
        let hooks = Arc::new(RemoteHooks {
            node,
            owner: owner.clone(),
            queue,
            holds: Mutex::default(),
        });
        (hooks, drain(node, owner, calls))
    }

    fn event(&self, call: Call) {
        if self.queue.send(Queued { call, answer: None }).is_err() {
            debug!("edge stopped, event dropped");
        }
    }

    async fn ask(&self, call: Call) -> Option<Answer> {
        let (tx, rx) = oneshot::channel();
        self.queue
            .send(Queued {
                call,
                answer: Some(tx),
            })
            .ok()?;
        rx.await.ok()
    }

    fn holds(&self) -> std::sync::MutexGuard<'_, HashSet<(String, Option<String>)>> {
        self.holds.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn held(&self, key: (String, Option<String>), hold: wire::Hold) -> Option<Hold> {
        if !self.holds().remove(&key) {
            return None;
        }
        let owner = self.owner.clone();
        Some(Box::pin(async move {
            let body = serde_json::to_vec(&hold).unwrap_or_default();
            let call = async {
                let mut link = Link::new(owner);
                link.post(wire::HOLD_PATH, body).await
            };
            if let Err(e) = tokio::time::timeout(HOLD_TIMEOUT, call)
                .await
                .map_err(|_| "no answer".to_owned())
                .and_then(|r| r)
            {
                warn!(error = %e, "a held acknowledgement could not be waited on; sending it");
            }
        }))
    }
}

impl BrokerHooks for RemoteHooks {
    // The broker calls the `_later` forms; these answer only if something calls them directly,
    // and then as an edge without the owner would: no.
    fn authenticate(&self, _info: &ConnectInfo) -> AuthVerdict {
        AuthVerdict::ServerUnavailable
    }

    fn allow_subscribe(&self, _client_id: &str, _topic_filter: &str) -> bool {
        false
    }

    fn allow_publish(&self, _client_id: &str, _topic: &str) -> bool {
        false
    }

    fn on_publish(&self, _client_id: &str, _topic: &str, _payload: &[u8], _qos: u8) {}

    fn on_publish_refused(&self, _client_id: &str, _topic: &str, _payload: &[u8]) {}

    fn on_transport_event(&self, who: &str, name: &str, detail: &str) {
        self.event(Call::TransportEvent {
            who: who.to_owned(),
            name: name.to_owned(),
            detail: detail.to_owned(),
        });
    }

    fn connack_hold(&self, client_id: &str) -> Option<Hold> {
        let hold = wire::Hold::Connack {
            client_id: client_id.to_owned(),
        };
        self.held((client_id.to_owned(), None), hold)
    }

    fn suback_hold(&self, client_id: &str, topic_filter: &str) -> Option<Hold> {
        let hold = wire::Hold::Suback {
            client_id: client_id.to_owned(),
            topic_filter: topic_filter.to_owned(),
        };
        self.held((client_id.to_owned(), Some(topic_filter.to_owned())), hold)
    }

    fn on_subscribed(&self, client_id: &str, topic_filter: &str, granted_qos: u8) {
        self.event(Call::Subscribed {
            client_id: client_id.to_owned(),
            topic_filter: topic_filter.to_owned(),
            granted_qos,
        });
    }

    fn on_connected(&self, client_id: &str) {
        self.event(Call::Connected {
            client_id: client_id.to_owned(),
        });
    }

    fn on_disconnected(&self, client_id: &str, reason: &str) {
        self.event(Call::Disconnected {
            client_id: client_id.to_owned(),
            reason: reason.to_owned(),
        });
    }

    fn on_protocol_violation(&self, client_id: &str, detail: &str) {
        self.event(Call::Violation {
            client_id: client_id.to_owned(),
            detail: detail.to_owned(),
        });
    }

    fn authenticate_later<'a>(&'a self, info: &'a ConnectInfo) -> Later<'a, AuthVerdict> {
        Box::pin(async move {
            match self.ask(Call::Authenticate(Connect::from_info(info))).await {
                Some(Answer::Verdict {
                    verdict,
                    connack_hold,
                }) => {
                    if connack_hold {
                        self.holds().insert((info.client_id.clone(), None));
                    }
                    verdict.into()
                }
                other => {
                    warn!(node = self.node, client_id = %info.client_id, answer = ?other,
                        "the owner did not decide a CONNECT: refused as server unavailable");
                    AuthVerdict::ServerUnavailable
                }
            }
        })
    }

    fn allow_subscribe_later<'a>(
        &'a self,
        client_id: &'a str,
        topic_filter: &'a str,
    ) -> Later<'a, bool> {
        Box::pin(async move {
            let call = Call::Subscribe {
                client_id: client_id.to_owned(),
                topic_filter: topic_filter.to_owned(),
            };
            match self.ask(call).await {
                Some(Answer::Allow { allow, hold }) => {
                    if hold {
                        self.holds()
                            .insert((client_id.to_owned(), Some(topic_filter.to_owned())));
                    }
                    allow
                }
                _ => false,
            }
        })
    }

    fn publish_later<'a>(
        &'a self,
        client_id: &'a str,
        topic: &'a str,
        payload: &'a [u8],
        qos: u8,
    ) -> Later<'a, bool> {
        Box::pin(async move {
            let call = Call::Publish {
                client_id: client_id.to_owned(),
                topic: topic.to_owned(),
                payload: payload.to_vec(),
                qos,
            };
            matches!(
                self.ask(call).await,
                Some(Answer::Allow { allow: true, .. })
            )
        })
    }

    fn on_will_later<'a>(
        &'a self,
        client_id: &'a str,
        topic: &'a str,
        payload: &'a [u8],
    ) -> Later<'a, bool> {
        Box::pin(async move {
            let call = Call::Will {
                client_id: client_id.to_owned(),
                topic: topic.to_owned(),
                payload: payload.to_vec(),
            };
            matches!(
                self.ask(call).await,
                Some(Answer::Allow { allow: true, .. })
            )
        })
    }
}

/// Sends the queue to the owner, a batch at a time, until every hook is gone.
async fn drain(node: u64, owner: OwnerApi, mut calls: mpsc::UnboundedReceiver<Queued>) {
    let mut link = Link::new(owner);
    let mut queued = Vec::with_capacity(wire::MAX_BATCH);
    while calls.recv_many(&mut queued, wire::MAX_BATCH).await > 0 {
        let (calls_out, answers): (Vec<Call>, Vec<_>) =
            queued.drain(..).map(|q| (q.call, q.answer)).unzip();
        let count = calls_out.len();
        let batch = Batch {
            node,
            calls: calls_out,
        };
        let result = match serde_json::to_vec(&batch) {
            Ok(body) => tokio::time::timeout(BATCH_TIMEOUT, link.post(wire::BATCH_PATH, body))
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {BATCH_TIMEOUT:?}")))
                .and_then(|body| {
                    serde_json::from_slice::<Vec<Answer>>(&body)
                        .map_err(|e| format!("the owner's answer is not a list of answers: {e}"))
                }),
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(replies) if replies.len() == count => {
                for (answer, reply) in answers.into_iter().zip(replies) {
                    if let Some(answer) = answer {
                        let _ = answer.send(reply);
                    }
                }
            }
            Ok(replies) => warn!(
                node,
                sent = count,
                answered = replies.len(),
                "the owner answered a batch with the wrong number of answers"
            ),
            // The answers' senders are dropped: every decision of the batch is a refusal.
            Err(e) => {
                warn!(node, calls = count, error = %e, "a batch did not reach the owner");
                link.reset();
            }
        }
    }
}

/// One HTTP/1.1 connection to the owner's control API, made again when it breaks.
struct Link {
    owner: OwnerApi,
    sender: Option<http1::SendRequest<Full<Bytes>>>,
}

impl Link {
    fn new(owner: OwnerApi) -> Link {
        Link {
            owner,
            sender: None,
        }
    }

    fn reset(&mut self) {
        self.sender = None;
    }

    async fn sender(&mut self) -> Result<&mut http1::SendRequest<Full<Bytes>>, String> {
        if let Some(sender) = &mut self.sender
            && sender.ready().await.is_ok()
        {
            // Borrow again: the checker cannot see that the `if let` borrow ended.
            return self
                .sender
                .as_mut()
                .ok_or_else(|| "no connection".to_owned());
        }
        let addr = self.owner.addr;
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connecting to the owner at {addr}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let (sender, connection) = http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| format!("HTTP handshake with the owner at {addr}: {e}"))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                debug!(error = %e, "connection to the owner ended");
            }
        });
        Ok(self.sender.insert(sender))
    }

    /// POSTs `body` as JSON; answers the body of a 200.
    async fn post(&mut self, path: &str, body: Vec<u8>) -> Result<Bytes, String> {
        let addr = self.owner.addr;
        let mut request = hyper::Request::post(path)
            .header(hyper::header::HOST, addr.to_string())
            .header(hyper::header::CONTENT_TYPE, "application/json");
        if let Some(token) = &self.owner.token {
            request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let sender = self.sender().await?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("POST {path} to the owner at {addr}: {e}"))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("reading the owner's answer: {e}"))?
            .to_bytes();
        if !status.is_success() {
            return Err(format!(
                "the owner answered {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(512)])
            ));
        }
        Ok(body)
    }
}
