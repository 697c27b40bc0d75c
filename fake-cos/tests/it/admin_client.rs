//! A real HTTP/1.1 client (hyper) for the control API, one connection per call.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::client::DEADLINE;

/// A control API answer: status and body.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Bytes,
}

impl Answer {
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "control API body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The `error` message of a JSON error answer.
    pub(crate) fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .expect("error answers have an error message")
            .to_owned()
    }
}

/// Sends one request to the control API and reads the whole answer.
pub(crate) async fn call(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> Answer {
    let exchange = async {
        let stream = TcpStream::connect(addr)
            .await
            .expect("connect to control API");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("HTTP handshake");
        let driver = tokio::spawn(conn);
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("Host", addr.to_string())
            .body(Full::new(Bytes::copy_from_slice(body)))
            .expect("valid request");
        let response = sender.send_request(request).await.expect("response head");
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("response body")
            .to_bytes();
        drop(sender);
        driver
            .await
            .expect("connection task")
            .expect("connection ends cleanly");
        Answer { status, body }
    };
    tokio::time::timeout(DEADLINE, exchange)
        .await
        .unwrap_or_else(|_| panic!("no answer to {method} {path} within {DEADLINE:?}"))
}
