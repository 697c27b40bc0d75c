//! Answering one request. Reads: name, faults, signature, object, range, in that order;
//! writes (`PUT`) go to [`crate::put`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use tracing::{debug, warn};

use crate::auth::{self, Accept, SignedRequest};
use crate::body::{DirectBody, Pump};
use crate::fault::delivery::Delivery;
use crate::fault::{FiredRule, RuleInput, Verdict, framing};
use crate::io::ConnCtl;
use crate::journal::{ConnEnd, JournalEntry, Recorder, Ticket};
use crate::name::ObjectName;
use crate::put::{self, PutRequest};
use crate::range::{self, Selection};
use crate::response::{self as resp, Answer, AnswerBody, xml_error};
use crate::shared::Shared;
use crate::store::{ObjectInfo, Span, StoredObject};

/// What the handler knows about the connection a request came on.
#[derive(Debug, Clone)]
pub(crate) struct ConnCtx {
    pub(crate) peer: SocketAddr,
    pub(crate) ctl: Arc<ConnCtl>,
    /// An answer the plain connection loop decided (and journaled) just before it handed the
    /// connection to hyper; the first request hyper parses is that same request.
    pub(crate) decided: Arc<Mutex<Option<Decision>>>,
}

impl ConnCtx {
    pub(crate) fn new(peer: SocketAddr, ctl: Arc<ConnCtl>) -> Self {
        Self {
            peer,
            ctl,
            decided: Arc::default(),
        }
    }

    fn take_decided(&self) -> Option<Decision> {
        self.decided
            .lock()
            .expect("the decided slot is never held across a panic")
            .take()
    }
}

/// An answer decided and journaled, not yet sent.
#[derive(Debug)]
pub(crate) struct Decision {
    pub(crate) ticket: Ticket,
    pub(crate) answer: Answer,
}

/// The parts of a request that matter here.
#[derive(Debug)]
struct Request {
    method: Method,
    path: String,
    query: Option<String>,
    range: Option<String>,
    if_range: Option<String>,
    headers: HeaderMap,
}

impl Request {
    fn new(method: Method, uri: &Uri, headers: &HeaderMap) -> Self {
        let text = |name| {
            headers
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        Self {
            method,
            path: uri.path().to_owned(),
            query: uri.query().map(str::to_owned),
            range: text(header::RANGE),
            if_range: text(header::IF_RANGE),
            headers: headers.clone(),
        }
    }

    fn signed(&self) -> SignedRequest<'_> {
        SignedRequest {
            method: &self.method,
            path: &self.path,
            query: self.query.as_deref(),
            headers: &self.headers,
        }
    }

    fn name(&self) -> Option<ObjectName> {
        ObjectName::parse(self.path.strip_prefix('/').unwrap_or(&self.path)).ok()
    }
}

/// The one handler behind every path.
pub(crate) async fn handle(
    State(shared): State<Arc<Shared>>,
    Extension(conn): Extension<ConnCtx>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let decision = match conn.take_decided() {
        Some(decision) => decision,
        None if method == Method::PUT => {
            let req = Request::new(method, &uri, &headers);
            let name = req.name();
            let ticket = shared.journal.begin(name.as_ref(), conn.peer.ip());
            let request_id = request_id(ticket);
            let (answer, fault) = match &name {
                Some(name) => {
                    let put = PutRequest {
                        path: &req.path,
                        query: req.query.as_deref(),
                        headers: &req.headers,
                    };
                    let answer = put::answer(&shared, put, name, body, &request_id).await;
                    (answer, None)
                }
                None => decide(&shared, &req, None, ticket, &request_id),
            };
            journaled(&shared, conn.peer, req, name, ticket, answer, fault)
        }
        None => decide_request(&shared, conn.peer, method, &uri, &headers),
    };
    into_response(&shared, &conn, decision)
}

/// Decides and journals a request without a body (anything but `PUT`).
pub(crate) fn decide_request(
    shared: &Shared,
    peer: SocketAddr,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Decision {
    let req = Request::new(method, uri, headers);
    let name = req.name();
    let ticket = shared.journal.begin(name.as_ref(), peer.ip());
    let (answer, fault) = decide(shared, &req, name.as_ref(), ticket, &request_id(ticket));
    journaled(shared, peer, req, name, ticket, answer, fault)
}

fn request_id(ticket: Ticket) -> String {
    format!("fakecos-{:08x}", ticket.seq)
}

/// Records the decided answer in the journal (a body as in progress) and logs it.
fn journaled(
    shared: &Shared,
    peer: SocketAddr,
    req: Request,
    name: Option<ObjectName>,
    ticket: Ticket,
    mut answer: Answer,
    fault: Option<FiredRule>,
) -> Decision {
    let error = crate::journal::error_of(&answer);
    if req.method == Method::HEAD {
        answer.body = AnswerBody::Empty;
    }
    debug!(client = %peer, path = %req.path, status = answer.status.as_u16(),
        fault = fault.as_ref().map(|f| f.verdict.kind()), "request");
    let (body_bytes_sent, end) = match &answer.body {
        AnswerBody::Empty => (0, ConnEnd::Complete),
        AnswerBody::Full(bytes) => (bytes.len() as u64, ConnEnd::Complete),
        AnswerBody::Stream { .. } | AnswerBody::Object(_) => (0, ConnEnd::InProgress),
    };
    shared.journal.push(
        ticket,
        JournalEntry {
            seq: ticket.seq,
            client: peer,
            method: req.method.to_string(),
            path: req.path,
            object: name.map(|n| n.to_string()),
            attempt: ticket.attempt,
            range: req.range,
            status: answer.status.as_u16(),
            body_bytes_sent,
            fault,
            error,
            end,
            full_len: BTreeMap::new(),
        },
    );
    Decision { ticket, answer }
}

fn into_response(shared: &Arc<Shared>, conn: &ConnCtx, decision: Decision) -> Response {
    let Decision { ticket, answer } = decision;
    let recorder = || Recorder::new(Arc::clone(&shared.journal), ticket);
    let body = match answer.body {
        AnswerBody::Empty => Body::empty(),
        AnswerBody::Full(bytes) => Body::from(bytes),
        AnswerBody::Object(span) => {
            Body::new(DirectBody::new(span, recorder(), shared.shutdown.clone()))
        }
        AnswerBody::Stream { data, delivery } if delivery == Delivery::default() => Body::new(
            DirectBody::new(Span::memory(data), recorder(), shared.shutdown.clone()),
        ),
        AnswerBody::Stream { data, delivery } => Body::new(
            Pump {
                data,
                delivery,
                ctl: Arc::clone(&conn.ctl),
                recorder: recorder(),
                shutdown: shared.shutdown.clone(),
            }
            .spawn(&shared.tracker),
        ),
    };
    let mut response = Response::new(body);
    *response.status_mut() = answer.status;
    *response.headers_mut() = answer.headers;
    response
        .headers_mut()
        .insert(header::SERVER, HeaderValue::from_static(SERVER_NAME));
    response
}

/// The `Server` header of every firmware answer.
pub(crate) const SERVER_NAME: &str = "tencent-cos";

fn decide(
    shared: &Shared,
    req: &Request,
    name: Option<&ObjectName>,
    ticket: Ticket,
    request_id: &str,
) -> (Answer, Option<FiredRule>) {
    if req.method != Method::GET && req.method != Method::HEAD && req.method != Method::PUT {
        return (
            xml_error(resp::METHOD_NOT_ALLOWED, &req.path, request_id),
            None,
        );
    }
    let Some(name) = name else {
        return (xml_error(resp::INVALID_URI, &req.path, request_id), None);
    };
    let size = shared.store.get(name).map(|o| o.info.size);
    let fired = shared.rules.fire(&RuleInput {
        object: Some(name.as_str()),
        attempt: ticket.attempt,
        nth_request: ticket.seq,
        range_start: range::requested_start(req.range.as_deref(), size),
    });
    let verdict = fired.as_ref().map(|f| &f.verdict);
    (answer_object(shared, req, name, verdict, request_id), fired)
}

fn answer_object(
    shared: &Shared,
    req: &Request,
    name: &ObjectName,
    verdict: Option<&Verdict>,
    request_id: &str,
) -> Answer {
    if let Some(answer) = verdict.and_then(|v| v.early_answer(&req.path, request_id)) {
        return answer;
    }
    let now = shared.clock.now_unix();
    let checked = auth::check(
        &shared.keys,
        &shared.plan.secret,
        req.signed(),
        name,
        now,
        Accept::QSignOrDownloadUrl,
    );
    if let Err(refusal) = checked {
        return xml_error(resp::code_for_refusal(refusal), &req.path, request_id);
    }
    if let Some(with) = verdict.and_then(Verdict::replacement) {
        replace(shared, name, with);
    }
    let Some(object) = shared.store.get(name) else {
        return xml_error(resp::NO_SUCH_KEY, &req.path, request_id);
    };
    let selection = if verdict.is_some_and(Verdict::ignores_range)
        || !if_range_holds(req.if_range.as_deref(), &object.info)
    {
        Selection::Whole
    } else {
        range::select(req.range.as_deref(), object.info.size)
    };
    object_answer(&object, selection, verdict, &req.path, request_id)
}

/// Copies `with`'s bytes over `name`, as a re-upload would.
fn replace(shared: &Shared, name: &ObjectName, with: &str) {
    let source = ObjectName::parse(with)
        .ok()
        .and_then(|w| shared.store.get(&w));
    match source {
        Some(source) => {
            let object = StoredObject::copy_of(name, &source, shared.clock.now());
            shared.store.put(name.clone(), object);
        }
        None => warn!(object = %name, with, "replace_object fault names a missing object"),
    }
}

/// If-Range: the range applies only if the validator is the current strong ETag or the exact
/// Last-Modified date; anything else (a changed object) gets the whole object.
fn if_range_holds(if_range: Option<&str>, info: &ObjectInfo) -> bool {
    let Some(validator) = if_range.map(str::trim) else {
        return true;
    };
    if validator.starts_with('"') || validator.starts_with("W/") {
        return validator == info.etag;
    }
    httpdate::parse_http_date(validator).is_ok_and(|date| date == info.last_modified)
}

fn object_answer(
    object: &StoredObject,
    selection: Selection,
    verdict: Option<&Verdict>,
    resource: &str,
    request_id: &str,
) -> Answer {
    let info = &object.info;
    let Some((start, end)) = selection.bounds(info.size) else {
        let mut answer = xml_error(resp::INVALID_RANGE, resource, request_id);
        let content_range = format!("bytes */{}", info.size);
        answer
            .headers
            .insert(header::CONTENT_RANGE, header_value(&content_range));
        return answer;
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(header::ETAG, header_value(&info.etag));
    let last_modified = httpdate::fmt_http_date(info.last_modified);
    headers.insert(header::LAST_MODIFIED, header_value(&last_modified));
    headers.insert("x-cos-request-id", header_value(request_id));
    let status = match selection {
        Selection::Partial { start, end } => {
            let content_range = format!("bytes {start}-{end}/{}", info.size);
            headers.insert(header::CONTENT_RANGE, header_value(&content_range));
            StatusCode::PARTIAL_CONTENT
        }
        Selection::Whole | Selection::Unsatisfiable => StatusCode::OK,
    };
    let Some(verdict) = verdict else {
        // No rule touched the body: the stored bytes as they are, which a plain connection
        // sends with sendfile(2).
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
        let body = if start == end {
            AnswerBody::Empty
        } else {
            AnswerBody::Object(object.span(start, end))
        };
        return Answer {
            status,
            headers,
            body,
        };
    };
    let mut data = match object.span(start, end).read(0, end - start) {
        Ok(data) => data,
        Err(error) => {
            warn!(%error, object = %info.name, start, end, "reading a stored object failed");
            return xml_error(resp::INTERNAL_ERROR, resource, request_id);
        }
    };
    let verdict = Some(verdict);
    if let Some(verdict) = verdict {
        data = verdict.corrupt(data, start);
    }
    let mut delivery = verdict.map(Verdict::delivery).unwrap_or_default();
    let data = framing::frame(verdict, data, &mut delivery, &mut headers);
    let body = if data.is_empty() && delivery.interrupt.is_none() {
        AnswerBody::Empty
    } else {
        AnswerBody::Stream { data, delivery }
    };
    Answer {
        status,
        headers,
        body,
    }
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).expect("built from ASCII names, digits and dates")
}
