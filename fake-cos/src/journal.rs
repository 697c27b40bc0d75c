//! The journal: one entry per request, updated as its body goes out, so a test can tell exactly
//! what each client was sent and how its connection ended.
//!
//! It is a bounded ring (the newest [`CosConfig::journal_capacity`](crate::CosConfig) entries),
//! and fields a client controls are stored cut to [`MAX_FIELD_BYTES`] with their full length
//! beside them, so no client can grow the server's memory by sending more or longer requests.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use tokio::sync::{broadcast, watch};

use crate::fault::FiredRule;
use crate::name::ObjectName;
use crate::response::{Answer, AnswerBody};

/// How a response ended on the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnEnd {
    /// The body is still going out.
    InProgress,
    /// Every byte of the response was handed to the socket.
    Complete,
    /// A fault closed the connection (FIN) mid-body.
    Cut,
    /// A fault reset the connection (RST).
    Reset,
    /// A fault stalled the body; it stays this way if nobody resumed it.
    Stalled,
    /// The client went away before the body was complete.
    ClientGone,
    /// The server shut down before the body was complete.
    Shutdown,
}

/// One request as the fake COS saw and answered it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JournalEntry {
    /// 1-based request number of the instance (since start or the last reset).
    pub seq: u64,
    /// The client's address.
    pub client: SocketAddr,
    /// The request method.
    pub method: String,
    /// The request path as received, not decoded; cut to [`MAX_FIELD_BYTES`] (see `full_len`).
    pub path: String,
    /// The object name, if the path held a valid one.
    pub object: Option<String>,
    /// 1-based request count for (object, client IP), this one included; 0 without an object.
    pub attempt: u32,
    /// The `Range` header exactly as asked; cut to [`MAX_FIELD_BYTES`] (see `full_len`).
    pub range: Option<String>,
    /// The status sent.
    pub status: u16,
    /// Body bytes handed to the socket so far.
    pub body_bytes_sent: u64,
    /// The rule that decided this request, if any.
    pub fault: Option<FiredRule>,
    /// The COS error answered (its XML `Code` and `Message`), for an error answer: a 403 says
    /// whether the URL expired or its signature does not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<CosErrorReply>,
    /// How the response ended.
    pub end: ConnEnd,
    /// The full length in bytes of each field stored cut (`method`, `path`, `range`); empty
    /// when nothing was.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub full_len: BTreeMap<String, u64>,
}

/// The COS error of an answer, as a client reads it from the XML body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CosErrorReply {
    /// `Code`: `AccessDenied`, `SignatureDoesNotMatch`, `NoSuchKey`, ...
    pub code: String,
    /// `Message`: `Request has expired`, ...
    pub message: String,
}

impl CosErrorReply {
    /// Why COS refused the URL, in words, for a credential refusal (see [`refusal_reason`]).
    pub fn refusal(&self) -> Option<&'static str> {
        refusal_reason(&self.code, &self.message)
    }
}

/// Why COS refused a request's credentials, from the error's `Code` and `Message`: `expired`
/// (`AccessDenied` with `Request has expired`), `signature mismatch`
/// (`SignatureDoesNotMatch`), `unknown key` (`InvalidAccessKeyId`), `not yet valid`
/// (`RequestTimeTooSkewed`), `access denied` (any other `AccessDenied`); `None` for errors
/// that are no refusal (`NoSuchKey`, `InternalError`, ...).
pub fn refusal_reason(code: &str, message: &str) -> Option<&'static str> {
    Some(match code {
        "AccessDenied" if message.contains("expired") => "expired",
        "AccessDenied" => "access denied",
        "SignatureDoesNotMatch" => "signature mismatch",
        "InvalidAccessKeyId" => "unknown key",
        "RequestTimeTooSkewed" => "not yet valid",
        _ => return None,
    })
}

/// The COS error an answer carries in its XML body (the handler's own `xml_error` shape).
pub(crate) fn error_of(answer: &Answer) -> Option<CosErrorReply> {
    let AnswerBody::Full(body) = &answer.body else {
        return None;
    };
    if !answer.status.is_client_error() && !answer.status.is_server_error() {
        return None;
    }
    let text = std::str::from_utf8(body).ok()?;
    let field = |name: &str| {
        let open = format!("<{name}>");
        let start = text.find(&open)? + open.len();
        let len = text[start..].find(&format!("</{name}>"))?;
        Some(text[start..start + len].to_owned())
    };
    Some(CosErrorReply {
        code: field("Code")?,
        message: field("Message").unwrap_or_default(),
    })
}

/// The longest a client-controlled field is stored, in bytes.
pub const MAX_FIELD_BYTES: usize = 1024;

/// Entries kept unless configured otherwise.
pub const DEFAULT_JOURNAL_CAPACITY: usize = 10_000;

/// (object, client) pairs whose attempts are counted at once; past it the old ones are forgotten.
const MAX_ATTEMPT_KEYS: usize = 65_536;

impl JournalEntry {
    /// Cuts `method`, `path` and `range` to [`MAX_FIELD_BYTES`], noting their full lengths.
    pub(crate) fn bounded(mut self) -> Self {
        let mut cut = |name: &str, text: &mut String| {
            if text.len() > MAX_FIELD_BYTES {
                self.full_len.insert(name.to_owned(), text.len() as u64);
                let mut at = MAX_FIELD_BYTES;
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                // A fresh string: `truncate` would keep the whole allocation alive.
                *text = text[..at].to_owned();
            }
        };
        cut("method", &mut self.method);
        cut("path", &mut self.path);
        if let Some(range) = &mut self.range {
            cut("range", range);
        }
        self
    }
}

impl fmt::Display for ConnEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::InProgress => "in progress",
            Self::Complete => "complete",
            Self::Cut => "cut",
            Self::Reset => "reset",
            Self::Stalled => "stalled",
            Self::ClientGone => "client gone",
            Self::Shutdown => "shutdown",
        })
    }
}

/// One line for a live log: `#3 127.0.0.1:50412 GET /fw.bin range=bytes=0-99 attempt=1 ->
/// 206 100 B complete rule=2:cut_after`.
impl fmt::Display for JournalEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "#{} {} {} {}",
            self.seq, self.client, self.method, self.path
        )?;
        if let Some(len) = self.full_len.get("path") {
            write!(f, "...({len} bytes)")?;
        }
        if let Some(range) = &self.range {
            write!(f, " range={range}")?;
        }
        if self.attempt > 0 {
            write!(f, " attempt={}", self.attempt)?;
        }
        write!(
            f,
            " -> {} {} B {}",
            self.status, self.body_bytes_sent, self.end
        )?;
        if let Some(error) = &self.error {
            write!(f, " error={}", error.code)?;
            if let Some(why) = error.refusal() {
                write!(f, " ({why})")?;
            }
        }
        if let Some(fault) = &self.fault {
            write!(f, " rule={}:{}", fault.id.get(), fault.verdict.label())?;
        }
        Ok(())
    }
}

/// A request's place in the journal, handed out before the answer is known.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    generation: u64,
    pub(crate) seq: u64,
    pub(crate) attempt: u32,
}

#[derive(Debug, Default)]
struct State {
    generation: u64,
    next_seq: u64,
    entries: VecDeque<JournalEntry>,
    attempts: HashMap<(ObjectName, IpAddr), Attempts>,
}

/// Attempts on one (object, client IP), and when the pair was last seen (a request number).
#[derive(Debug, Default, Clone, Copy)]
struct Attempts {
    count: u32,
    last_seq: u64,
}

/// How many live entries a slow subscriber may fall behind before it skips some.
const LIVE_CAPACITY: usize = 4096;

/// Entries plus a version counter that wakes waiters on every change, and a live feed of
/// entries as they start and end.
#[derive(Debug)]
pub(crate) struct Journal {
    capacity: usize,
    state: Mutex<State>,
    version: watch::Sender<u64>,
    live: broadcast::Sender<JournalEntry>,
}

impl Default for Journal {
    fn default() -> Self {
        Self::new(DEFAULT_JOURNAL_CAPACITY)
    }
}

impl Journal {
    /// A journal keeping the newest `capacity` entries (at least one).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            state: Mutex::default(),
            version: watch::Sender::new(0),
            live: broadcast::Sender::new(LIVE_CAPACITY),
        }
    }

    /// Numbers a new request and counts it as an attempt on `object` from `ip`.
    pub(crate) fn begin(&self, object: Option<&ObjectName>, ip: IpAddr) -> Ticket {
        let mut state = self.lock();
        state.next_seq = state.next_seq.saturating_add(1);
        let seq = state.next_seq;
        let attempt = object.map_or(0, |name| {
            let key = (name.clone(), ip);
            if !state.attempts.contains_key(&key) && state.attempts.len() >= MAX_ATTEMPT_KEYS {
                forget_old_pairs(&mut state.attempts, seq);
            }
            let attempts = state.attempts.entry(key).or_default();
            attempts.count = attempts.count.saturating_add(1);
            attempts.last_seq = seq;
            attempts.count
        });
        Ticket {
            generation: state.generation,
            seq: state.next_seq,
            attempt,
        }
    }

    pub(crate) fn push(&self, ticket: Ticket, entry: JournalEntry) {
        let entry = entry.bounded();
        {
            let mut state = self.lock();
            if state.generation != ticket.generation {
                return;
            }
            let at = state.entries.partition_point(|e| e.seq < entry.seq);
            // Sent under the lock, so subscribers see entries in the order they were stored.
            let _no_subscriber_is_fine = self.live.send(entry.clone());
            state.entries.insert(at, entry);
            while state.entries.len() > self.capacity {
                state.entries.pop_front();
            }
        }
        self.version.send_modify(|v| *v += 1);
    }

    /// Applies `change` to the entry of `ticket`, unless a reset dropped it.
    pub(crate) fn update(&self, ticket: Ticket, change: impl FnOnce(&mut JournalEntry)) {
        {
            let mut state = self.lock();
            if state.generation != ticket.generation {
                return;
            }
            let Ok(at) = state.entries.binary_search_by_key(&ticket.seq, |e| e.seq) else {
                return;
            };
            let entry = &mut state.entries[at];
            let before = entry.end;
            change(entry);
            if entry.end != before {
                let _no_subscriber_is_fine = self.live.send(entry.clone());
            }
        }
        self.version.send_modify(|v| *v += 1);
    }

    pub(crate) fn snapshot(&self) -> Vec<JournalEntry> {
        self.lock().entries.iter().cloned().collect()
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    pub(crate) fn live(&self) -> broadcast::Receiver<JournalEntry> {
        self.live.subscribe()
    }

    /// At most `limit` entries with a sequence number above `seq`, oldest first.
    pub(crate) fn page(&self, seq: u64, limit: usize) -> Vec<JournalEntry> {
        let state = self.lock();
        let at = state.entries.partition_point(|e| e.seq <= seq);
        state.entries.range(at..).take(limit).cloned().collect()
    }

    /// Forgets entries, request numbers and attempt counts.
    pub(crate) fn clear(&self) {
        {
            let mut state = self.lock();
            let generation = state.generation + 1;
            *state = State {
                generation,
                ..State::default()
            };
        }
        self.version.send_modify(|v| *v += 1);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .expect("journal lock is never held across a panic")
    }
}

/// Forgets the pairs not seen in the last `MAX_ATTEMPT_KEYS / 2` requests (at least half of
/// them, since each request touches one pair), so the map stays bounded under a flood of names
/// or clients at an amortized constant cost.
fn forget_old_pairs(attempts: &mut HashMap<(ObjectName, IpAddr), Attempts>, seq: u64) {
    let keep_after = seq.saturating_sub((MAX_ATTEMPT_KEYS / 2) as u64);
    attempts.retain(|_, a| a.last_seq > keep_after);
}

/// Updates one entry as its body goes out.
#[derive(Debug, Clone)]
pub(crate) struct Recorder {
    journal: Arc<Journal>,
    ticket: Ticket,
}

impl Recorder {
    pub(crate) fn new(journal: Arc<Journal>, ticket: Ticket) -> Self {
        Self { journal, ticket }
    }

    pub(crate) fn sent(&self, body_bytes_sent: u64, end: Option<ConnEnd>) {
        self.journal.update(self.ticket, |e| {
            e.body_bytes_sent = body_bytes_sent;
            if let Some(end) = end {
                e.end = end;
            }
        });
    }

    pub(crate) fn end(&self, end: ConnEnd) {
        self.journal.update(self.ticket, |e| e.end = end);
    }

    /// Records `end` unless the entry already ended some other way.
    pub(crate) fn end_if_in_progress(&self, end: ConnEnd) {
        self.journal.update(self.ticket, |e| {
            if e.end == ConnEnd::InProgress {
                e.end = end;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: String) -> JournalEntry {
        JournalEntry {
            seq: 1,
            client: SocketAddr::from(([127, 0, 0, 1], 1)),
            method: "GET".into(),
            path,
            object: None,
            attempt: 0,
            range: Some("bytes=0-1".into()),
            status: 400,
            body_bytes_sent: 0,
            fault: None,
            error: None,
            end: ConnEnd::Complete,
            full_len: BTreeMap::new(),
        }
    }

    #[test]
    fn long_fields_are_cut_with_their_length_and_release_their_memory() {
        let cut = entry(format!("/{}", "é".repeat(30_000))).bounded();
        assert!(cut.path.len() <= MAX_FIELD_BYTES && cut.path.len() >= MAX_FIELD_BYTES - 1);
        assert!(
            cut.path.capacity() <= MAX_FIELD_BYTES,
            "the 60 KB buffer is not kept"
        );
        assert_eq!(cut.full_len["path"], 60_001);
        assert!(!cut.full_len.contains_key("range"));
        let short = entry("/fw.bin".into()).bounded();
        assert!(short.full_len.is_empty());
    }

    #[test]
    fn the_ring_keeps_the_newest_entries_and_bounds_attempt_pairs() {
        let journal = Journal::new(3);
        let ip = IpAddr::from([127, 0, 0, 1]);
        for n in 0..(MAX_ATTEMPT_KEYS + 10) {
            let name = ObjectName::parse(&format!("o{n}")).expect("valid");
            let ticket = journal.begin(Some(&name), ip);
            let mut e = entry("/x".into());
            e.seq = ticket.seq;
            journal.push(ticket, e);
        }
        let seqs: Vec<u64> = journal.snapshot().iter().map(|e| e.seq).collect();
        let last = (MAX_ATTEMPT_KEYS + 10) as u64;
        assert_eq!(seqs, [last - 2, last - 1, last]);
        assert!(journal.lock().attempts.len() <= MAX_ATTEMPT_KEYS);
    }
}
