//! The async driver: performs what [`Transfer`] decides, one HTTP request per attempt, with
//! timeouts, retries, progress and cancellation.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::watch;
use tokio::time::{Instant, timeout_at};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::download::config::{DownloadConfig, jitter};
use crate::download::error::{
    AttemptContext, DownloadError, RestartReason, TimeoutPhase, Violation,
};
use crate::download::http::{self, ConnectError, Connection, Endpoint, head_of, redact};
use crate::download::part::PartFile;
use crate::download::plan::{BodyEnd, HeadDecision, Transfer};
use crate::download::store::{ImageLock, Paths, reuse_finished};
use crate::download::{DownloadOutcome, Downloaded, ImageSpec, Progress};

/// How one attempt ended.
enum AttemptEnd {
    /// Every byte is stored.
    Complete,
    /// The cancellation token fired.
    Cancelled,
    /// The partial was discarded; ask again from 0 at once.
    Restart(RestartReason),
    /// A failure; retried if transient and the budget allows.
    Failed(DownloadError),
    /// A transient failure whose server asked (`Retry-After`) for at least this pause.
    RetryAfter(DownloadError, Duration),
}

/// Requests made and partials discarded, for the caller's report.
#[derive(Debug, Default)]
struct Tally {
    attempts: u32,
    restarts: u32,
}

/// What a download runs with, from its [`crate::download::Downloader`].
pub(crate) struct Env<'a> {
    pub(crate) dir: &'a Path,
    pub(crate) config: &'a DownloadConfig,
    pub(crate) tls: Option<&'a Arc<rustls::ClientConfig>>,
    pub(crate) tasks: &'a TaskTracker,
    pub(crate) cancel: &'a CancellationToken,
}

/// What stays fixed during one download.
struct Job<'a> {
    spec: &'a ImageSpec,
    /// The latest URL the caller has for the image; read before every request.
    urls: watch::Receiver<String>,
    tls: Option<&'a Arc<rustls::ClientConfig>>,
    tasks: &'a TaskTracker,
    config: &'a DownloadConfig,
    cancel: &'a CancellationToken,
    deadline: Instant,
    started: Instant,
}

type ProgressFn<'a> = &'a mut (dyn FnMut(Progress) + Send);

/// Parses and checks an image URL.
fn endpoint_of(
    url: &str,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<Endpoint, DownloadError> {
    let endpoint = http::parse_url(url).map_err(|reason| DownloadError::InvalidUrl {
        url: redact(url),
        reason,
    })?;
    if endpoint.is_https() && tls.is_none() {
        return Err(DownloadError::InvalidUrl {
            url: redact(url),
            reason: "https URL but no CA is configured for downloads",
        });
    }
    Ok(endpoint)
}

/// Downloads `spec` into `env.dir` from the latest of `urls`; `lock` is the per-image lock,
/// held by the caller.
pub(crate) async fn run(
    spec: &ImageSpec,
    urls: watch::Receiver<String>,
    env: Env<'_>,
    progress: ProgressFn<'_>,
    lock: ImageLock,
) -> Result<DownloadOutcome, DownloadError> {
    let first_url = urls.borrow().clone();
    let span = info_span!(
        "download",
        md5 = %hex::encode(spec.md5),
        size = spec.file_size,
        url = %redact(&first_url),
    );
    let Env {
        dir,
        config,
        tls,
        tasks,
        cancel,
    } = env;
    async move {
        endpoint_of(&first_url, tls)?;
        let paths = Paths::new(dir, &spec.md5);
        if reuse_finished(&paths, spec.md5, spec.file_size, &lock).await? {
            info!(path = %paths.bin.display(), "image already downloaded");
            progress(Progress {
                downloaded_bytes: spec.file_size,
                file_size: spec.file_size,
            });
            let done = Downloaded {
                path: paths.bin,
                reused: true,
                resumed_from: 0,
                bytes_fetched: 0,
                attempts: 0,
                restarts: 0,
            };
            return Ok(DownloadOutcome::Verified(done));
        }
        let buffer = config.write_buffer_bytes.get();
        let (part, found) = PartFile::open(&paths, spec.md5, spec.file_size, buffer, lock).await?;
        let transfer = Transfer::resume(
            spec.file_size,
            found.durable_bytes,
            found.etag,
            config.checkpoint.for_size(spec.file_size),
        );
        let started = Instant::now();
        let deadline = started + config.retry.max_total();
        let job = Job {
            spec,
            urls,
            tls,
            tasks,
            config,
            cancel,
            deadline,
            started,
        };
        job.attempts(part, transfer, progress).await
    }
    .instrument(span)
    .await
}

impl Job<'_> {
    fn at(&self, attempt: u32, offset: u64) -> AttemptContext {
        AttemptContext {
            url: redact(&self.urls.borrow()),
            attempt,
            offset,
        }
    }

    /// The attempt loop: request, settle the checkpoint, then finish, retry or give up.
    async fn attempts(
        &self,
        mut part: PartFile,
        mut transfer: Transfer,
        progress: ProgressFn<'_>,
    ) -> Result<DownloadOutcome, DownloadError> {
        let resumed_from = transfer.stored();
        let mut tally = Tally::default();
        loop {
            // An empty image still takes one request, so that a 404 or 403 is not missed.
            let never_asked = tally.attempts == 0 && self.spec.file_size == 0;
            if transfer.is_complete() && !never_asked {
                let path = part.finish(self.spec.md5).await?;
                info!(?tally, elapsed = ?self.started.elapsed(), "image verified");
                let done = Downloaded {
                    path,
                    reused: false,
                    resumed_from,
                    bytes_fetched: transfer.fetched(),
                    attempts: tally.attempts,
                    restarts: tally.restarts,
                };
                return Ok(DownloadOutcome::Verified(done));
            }
            if self.cancel.is_cancelled() {
                return Ok(DownloadOutcome::Cancelled {
                    durable_bytes: transfer.durable(),
                });
            }
            tally.attempts += 1;
            let end = self
                .attempt(&mut tally, &mut part, &mut transfer, progress)
                .await;
            // Whatever happened, what was received is good data: make it durable for a resume,
            // and let a checkpoint still syncing behind the reads land first.
            let settled = if transfer.stored() > transfer.durable() {
                part.checkpoint(transfer.on_durable()).await
            } else {
                part.settle().await
            };
            if let Err(error) = settled {
                // A disk error during the attempt explains this one better.
                return Err(match end {
                    AttemptEnd::Failed(first @ DownloadError::Io { .. }) => first,
                    _ => error,
                });
            }
            if !self.carry_on(end, &mut tally).await? {
                return Ok(DownloadOutcome::Cancelled {
                    durable_bytes: transfer.durable(),
                });
            }
        }
    }

    /// After an attempt: `Ok(true)` to go on, `Ok(false)` if cancelled, `Err` to give up.
    async fn carry_on(&self, end: AttemptEnd, tally: &mut Tally) -> Result<bool, DownloadError> {
        let attempt = tally.attempts;
        let budget_left = attempt < self.config.retry.max_attempts().get();
        match end {
            AttemptEnd::Complete => Ok(true),
            AttemptEnd::Cancelled => Ok(false),
            AttemptEnd::Restart(reason) => {
                tally.restarts += 1;
                warn!(attempt, %reason, "resume refused, starting over from byte 0");
                if budget_left {
                    Ok(true)
                } else {
                    Err(DownloadError::RestartBudget {
                        reason,
                        at: self.at(attempt, 0),
                    })
                }
            }
            AttemptEnd::Failed(error) if error.is_transient() && budget_left => {
                Ok(self.back_off(attempt, &error, Duration::ZERO).await)
            }
            AttemptEnd::RetryAfter(error, asked) if budget_left => {
                Ok(self.back_off(attempt, &error, asked).await)
            }
            AttemptEnd::Failed(error) | AttemptEnd::RetryAfter(error, _) => Err(error),
        }
    }

    /// Waits before the next attempt, at least what the server asked (up to the configured
    /// cap); `false` if cancelled meanwhile. The wait ends at the total budget at the latest.
    async fn back_off(&self, attempt: u32, error: &DownloadError, asked: Duration) -> bool {
        let backoff = self.config.retry.backoff(attempt, jitter());
        let delay = backoff.max(asked.min(self.config.retry_after_cap));
        warn!(attempt, %error, ?delay, ?asked, "transient failure, retrying");
        tokio::select! {
            // Nothing is mutated in either branch; dropping the sleep is harmless.
            _ = self.cancel.cancelled() => false,
            _ = tokio::time::sleep_until((Instant::now() + delay).min(self.deadline)) => true,
        }
    }

    /// Runs `work` under a phase timeout, the total budget and the cancellation token.
    async fn bounded<T>(
        &self,
        phase: TimeoutPhase,
        limit: Duration,
        at: impl FnOnce() -> AttemptContext,
        work: impl Future<Output = T>,
    ) -> Result<T, AttemptEnd> {
        let phase_end = Instant::now() + limit;
        let (until, phase, after) = if phase_end <= self.deadline {
            (phase_end, phase, limit)
        } else {
            (
                self.deadline,
                TimeoutPhase::Total,
                self.config.retry.max_total(),
            )
        };
        tokio::select! {
            biased;
            // `work` is dropped unfinished: connects and sends are abandoned with their
            // connection, and a body `frame()` future holds no data before it completes.
            _ = self.cancel.cancelled() => Err(AttemptEnd::Cancelled),
            result = timeout_at(until, work) => result.map_err(|_| {
                let file_size = self.spec.file_size;
                AttemptEnd::Failed(DownloadError::Timeout { phase, after, file_size, at: at() })
            }),
        }
    }

    /// Connects, sends the GET and waits for the response head, following redirects (each
    /// hop under the same timeouts, at most `max_redirects` of them).
    async fn open(
        &self,
        attempt: u32,
        range: Option<&str>,
        offset: u64,
    ) -> Result<(Connection, hyper::Response<Incoming>), AttemptEnd> {
        let url = self.urls.borrow().clone();
        let mut endpoint = endpoint_of(&url, self.tls).map_err(AttemptEnd::Failed)?;
        let mut hops = 0u8;
        loop {
            let (conn, response) = self.request(&endpoint, attempt, range, offset).await?;
            let Some(location) = http::redirect_location(&response) else {
                return Ok((conn, response));
            };
            let violation = |v| {
                let at = self.at(attempt, offset);
                AttemptEnd::Failed(DownloadError::Protocol { violation: v, at })
            };
            hops += 1;
            if hops > self.config.max_redirects {
                let limit = self.config.max_redirects;
                return Err(violation(Violation::TooManyRedirects { limit }));
            }
            let next = endpoint.redirect(&location).map_err(|reason| {
                violation(Violation::BadRedirect {
                    location: redact(&location),
                    reason,
                })
            })?;
            if next.is_https() && self.tls.is_none() {
                let reason = "https redirect but no CA is configured for downloads";
                let location = redact(&location);
                return Err(violation(Violation::BadRedirect { location, reason }));
            }
            info!(status = response.status().as_u16(), to = %next.redacted, "following redirect");
            endpoint = next;
        }
    }

    /// One HTTP request to `endpoint`, up to its response head.
    async fn request(
        &self,
        endpoint: &Endpoint,
        attempt: u32,
        range: Option<&str>,
        offset: u64,
    ) -> Result<(Connection, hyper::Response<Incoming>), AttemptEnd> {
        let timeouts = &self.config.timeouts;
        let at = || self.at(attempt, offset);
        let connected = self
            .bounded(
                TimeoutPhase::Connect,
                timeouts.connect(),
                at,
                http::connect(endpoint, self.tls, self.tasks),
            )
            .await?;
        let mut conn = connected.map_err(|e| {
            let authority = endpoint.authority();
            AttemptEnd::Failed(match e {
                ConnectError::Socket(source) => DownloadError::Connect {
                    authority,
                    at: at(),
                    source,
                },
                ConnectError::Handshake(source) => DownloadError::Http { at: at(), source },
                ConnectError::Tls(source) => DownloadError::Tls {
                    authority,
                    at: at(),
                    source,
                },
            })
        })?;
        debug!(attempt, range, "sending request");
        let sent = conn.get(endpoint, range);
        let response = self
            .bounded(TimeoutPhase::FirstByte, timeouts.first_byte(), at, sent)
            .await?;
        let response = response
            .map_err(|source| AttemptEnd::Failed(DownloadError::Http { at: at(), source }))?;
        Ok((conn, response))
    }

    /// One request: open, judge the head, stream the body.
    async fn attempt(
        &self,
        tally: &mut Tally,
        part: &mut PartFile,
        transfer: &mut Transfer,
        progress: ProgressFn<'_>,
    ) -> AttemptEnd {
        let attempt = tally.attempts;
        let offset = transfer.stored();
        let range = transfer.range_header();
        let (_conn, mut response) = match self.open(attempt, range.as_deref(), offset).await {
            Ok(opened) => opened,
            Err(end) => return end,
        };
        let head = head_of(&response);
        debug!(attempt, ?head, "response head");
        let fail = |error| AttemptEnd::Failed(error);
        let at = self.at(attempt, offset);
        match transfer.on_head(&head) {
            HeadDecision::Accept => {}
            HeadDecision::RestartWithBody(reason) => {
                tally.restarts += 1;
                warn!(attempt, %reason, "resume refused, taking the whole image from this response");
                if let Err(error) = part.reset(head.etag.clone()).await {
                    return fail(error);
                }
            }
            HeadDecision::RestartNewRequest(reason) => {
                return match part.reset(None).await {
                    Ok(()) => AttemptEnd::Restart(reason),
                    Err(error) => fail(error),
                };
            }
            HeadDecision::Retry(status) => {
                let error = DownloadError::HttpStatus { status, at };
                return match http::retry_after(&response) {
                    Some(asked) => AttemptEnd::RetryAfter(error, asked),
                    None => fail(error),
                };
            }
            HeadDecision::NotFound => return fail(DownloadError::FileNotExist { at }),
            HeadDecision::Forbidden => {
                let cos_code = self.cos_error_code(attempt, response.body_mut()).await;
                return fail(DownloadError::SignatureExpired { cos_code, at });
            }
            HeadDecision::Fail(violation) => {
                return fail(DownloadError::Protocol { violation, at });
            }
        }
        self.stream_body(attempt, response.body_mut(), part, transfer, progress)
            .await
    }

    /// The COS `<Code>` of an error body: at most [`http::MAX_ERROR_BODY`] bytes read, each frame
    /// within the idle timeout; a body that ends early, stalls or errors just has none.
    async fn cos_error_code(&self, attempt: u32, body: &mut Incoming) -> Option<String> {
        let mut text = Vec::new();
        let idle = self.config.timeouts.idle();
        while text.len() < http::MAX_ERROR_BODY {
            let at = || self.at(attempt, 0);
            match self
                .bounded(TimeoutPhase::Idle, idle, at, body.frame())
                .await
            {
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        text.extend_from_slice(&data);
                    }
                }
                Ok(None | Some(Err(_))) | Err(_) => break,
            }
        }
        http::cos_error_code(&text)
    }

    /// Hashes and stores body chunks until the body ends, stalls, overflows or is cancelled.
    async fn stream_body(
        &self,
        attempt: u32,
        body: &mut Incoming,
        part: &mut PartFile,
        transfer: &mut Transfer,
        progress: ProgressFn<'_>,
    ) -> AttemptEnd {
        let file_size = self.spec.file_size;
        let idle = self.config.timeouts.idle();
        loop {
            let at = || self.at(attempt, transfer.stored());
            let frame = match self
                .bounded(TimeoutPhase::Idle, idle, at, body.frame())
                .await
            {
                Ok(frame) => frame,
                Err(end) => return end,
            };
            let data = match frame {
                None => break,
                Some(Err(error)) => {
                    debug!(%error, offset = transfer.stored(), "body ended with an error");
                    break;
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => data,
                    Err(_trailers) => continue,
                },
            };
            let due = match transfer.on_data(data.len() as u64) {
                Ok(due) => due,
                Err(violation) => {
                    let at = self.at(attempt, transfer.stored());
                    return AttemptEnd::Failed(DownloadError::Protocol { violation, at });
                }
            };
            if let Err(error) = part.append(data).await {
                return AttemptEnd::Failed(error);
            }
            if due && let Err(error) = part.checkpoint_behind(transfer.on_durable()).await {
                return AttemptEnd::Failed(error);
            }
            progress(Progress {
                downloaded_bytes: transfer.stored(),
                file_size,
            });
        }
        match transfer.on_end() {
            BodyEnd::Complete => AttemptEnd::Complete,
            BodyEnd::Cut => {
                let at = self.at(attempt, transfer.stored());
                AttemptEnd::Failed(DownloadError::Cut { file_size, at })
            }
        }
    }
}
