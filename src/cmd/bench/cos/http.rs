//! A minimal HTTP/1.1 client for the benchmark: keep-alive Range GETs with `Content-Length`
//! bodies, read into one reused buffer, so the client costs the same for both servers.

use anyhow::{Context, bail, ensure};
use std::net::SocketAddr;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One keep-alive connection to a server.
pub(super) struct Client {
    stream: BufReader<TcpStream>,
    host: String,
    head: String,
}

impl Client {
    pub(super) async fn connect(addr: SocketAddr) -> anyhow::Result<Client> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Client {
            stream: BufReader::with_capacity(16 << 10, stream),
            host: addr.to_string(),
            head: String::new(),
        })
    }

    /// GETs bytes `start..end` of `target` into `body` (resized to the range), expecting 206.
    pub(super) async fn get_range(
        &mut self,
        target: &str,
        start: u64,
        end: u64,
        body: &mut Vec<u8>,
    ) -> anyhow::Result<()> {
        let request = format!(
            "GET {target} HTTP/1.1\r\nHost: {}\r\nRange: bytes={start}-{}\r\n\r\n",
            self.host,
            end - 1
        );
        self.stream.get_mut().write_all(request.as_bytes()).await?;
        let (status, length) = self.read_head().await?;
        ensure!(status == 206, "status {status} for bytes {start}-{end}");
        ensure!(
            length == end - start,
            "Content-Length {length} for {} bytes",
            end - start
        );
        body.resize(usize::try_from(length)?, 0);
        self.stream.read_exact(body).await?;
        Ok(())
    }

    /// The object size, from a HEAD's `Content-Length`.
    pub(super) async fn size_of(&mut self, target: &str) -> anyhow::Result<u64> {
        let request = format!("HEAD {target} HTTP/1.1\r\nHost: {}\r\n\r\n", self.host);
        self.stream.get_mut().write_all(request.as_bytes()).await?;
        let (status, length) = self.read_head().await?;
        ensure!(status == 200, "status {status} for HEAD {target}");
        Ok(length)
    }

    async fn read_head(&mut self) -> anyhow::Result<(u16, u64)> {
        let mut status = None;
        let mut length = None;
        loop {
            self.head.clear();
            if self.stream.read_line(&mut self.head).await? == 0 {
                bail!("connection closed before the response head");
            }
            let line = self.head.trim_end();
            if line.is_empty() {
                break;
            }
            if status.is_none() {
                status = line.split(' ').nth(1).and_then(|s| s.parse::<u16>().ok());
                continue;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse::<u64>().ok();
            }
        }
        match (status, length) {
            (Some(s), Some(l)) => Ok((s, l)),
            _ => bail!("response head without a status or Content-Length"),
        }
    }
}

/// One request with `Connection: close`; returns the status and the body as text.
pub(super) async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr).await?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no status line")?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    Ok((status, body))
}
