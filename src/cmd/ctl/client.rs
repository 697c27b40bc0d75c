//! A small HTTP/1.1 client for the hub's control API, on hyper (already in the build for the
//! gateway's downloads): one connection per request, JSON in and out, and a streamed body for
//! the event stream.

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

/// Where the control API is: `HOST:PORT`.
#[derive(Debug, Clone)]
pub(super) struct Api {
    pub(super) addr: String,
}

impl Api {
    async fn send(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<hyper::Response<Incoming>> {
        let tcp = TcpStream::connect(&self.addr).await.with_context(|| {
            format!(
                "connecting to the hub's control API at {} (is `otasim hub` running? \
                 give --api HOST:PORT)",
                self.addr
            )
        })?;
        tcp.set_nodelay(true).ok();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .context("HTTP handshake with the control API")?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "control API connection ended");
            }
        });
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.addr)
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body)))
            .context("building the request")?;
        sender
            .send_request(request)
            .await
            .with_context(|| format!("{method} {path}"))
    }

    /// Sends a request and reads the whole answer as JSON (`null` when empty); a status of
    /// 400 or more is an error with the API's message.
    pub(super) async fn call(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<Value> {
        let response = self.send(method, path, content_type, body).await?;
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .with_context(|| format!("reading the answer to {method} {path}"))?
            .to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        if status >= 400 {
            let message = match &value["error"] {
                Value::String(e) => match value["field"].as_str() {
                    Some(f) => format!("{e} (field {f})"),
                    None => e.clone(),
                },
                _ => value.to_string(),
            };
            anyhow::bail!("{method} {path}: {status} {message}");
        }
        Ok(value)
    }

    pub(super) async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call("GET", path, "application/json", Vec::new()).await
    }

    pub(super) async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let bytes = body.to_string().into_bytes();
        self.call("POST", path, "application/json", bytes).await
    }

    pub(super) async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.call("DELETE", path, "application/json", Vec::new())
            .await
    }

    /// Opens `GET path` and hands each body chunk to `each` until the stream ends or `each`
    /// says stop.
    pub(super) async fn stream(
        &self,
        path: &str,
        mut each: impl FnMut(&[u8]) -> bool,
    ) -> anyhow::Result<()> {
        let response = self
            .send("GET", path, "text/event-stream", Vec::new())
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "GET {path}: {}",
            response.status()
        );
        let mut body = response.into_body();
        while let Some(frame) = body.frame().await {
            let frame = frame.with_context(|| format!("reading {path}"))?;
            if let Some(data) = frame.data_ref()
                && !each(data)
            {
                return Ok(());
            }
        }
        Ok(())
    }
}
