//! The web console served by `otasim hub`: one page of HTML, CSS and plain JavaScript, embedded
//! in the binary. The page only talks to the hub's control API on the same origin (`/api/...`,
//! live state from the server-sent events of `/api/events`), so everything it does a script can
//! do too, and [`router`] merges into the API's router with one `.merge(...)`.
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the page |
//! | `GET /console/console.css` | its style sheet |
//! | `GET /console/{common,faults,timeline,console}.js` | its scripts, loaded in that order |

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

/// Every embedded file: path, content type, body.
const ASSETS: [(&str, &str, &str); 6] = [
    ("/", HTML, include_str!("index.html")),
    ("/console/console.css", CSS, include_str!("console.css")),
    ("/console/common.js", JS, include_str!("common.js")),
    ("/console/faults.js", JS, include_str!("faults.js")),
    ("/console/timeline.js", JS, include_str!("timeline.js")),
    ("/console/console.js", JS, include_str!("console.js")),
];

/// The console's routes: the page at `/` and its assets under `/console/`. It has no state and
/// no fallback, so it merges into any router that serves the control API under `/api`.
pub fn router() -> Router {
    ASSETS
        .iter()
        .fold(Router::new(), |router, &(path, content_type, body)| {
            router.route(path, get(move || async move { asset(content_type, body) }))
        })
}

/// An embedded asset; `no-cache` so that a newer `otasim` never runs with an older script.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// Serves the console on loopback and answers one GET with the raw response text.
    async fn get_raw(path: &str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move { axum::serve(listener, router()).await });
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        tcp.write_all(request.as_bytes()).await.expect("write");
        let mut out = String::new();
        tcp.read_to_string(&mut out).await.expect("read");
        server.abort();
        out
    }

    #[tokio::test]
    async fn page_and_assets_are_served_with_their_content_types() {
        for (path, ty, body) in ASSETS {
            let raw = get_raw(path).await;
            let head = raw.to_ascii_lowercase();
            assert!(head.starts_with("http/1.1 200"), "{path}: {raw:.200}");
            assert!(head.contains(&format!("content-type: {ty}")), "{path}");
            assert!(head.contains("cache-control: no-cache"), "{path}");
            assert!(raw.ends_with(body), "{path}: body");
        }
    }

    #[tokio::test]
    async fn unknown_paths_are_left_to_the_router_it_merges_into() {
        let raw = get_raw("/console/missing.js").await;
        assert!(raw.starts_with("HTTP/1.1 404"), "{raw:.200}");
    }

    #[test]
    fn page_links_exactly_the_embedded_assets() {
        let page = ASSETS[0].2;
        let linked: Vec<&str> = page
            .split(['"'])
            .filter(|s| s.starts_with("/console/"))
            .collect();
        let served: Vec<&str> = ASSETS[1..].iter().map(|a| a.0).collect();
        assert_eq!(linked, served);
    }

    #[test]
    fn scripts_only_talk_to_the_control_api() {
        let scripts: String = ASSETS.iter().filter(|a| a.1 == JS).map(|a| a.2).collect();
        let calls: Vec<&str> = scripts
            .split("api('")
            .skip(1)
            .map(|call| {
                let (_, rest) = call.split_once(", ").expect("api(method, path)");
                let quote = rest.chars().next().expect("a path argument");
                rest[1..].split(quote).next().expect("a quoted path")
            })
            .collect();
        assert!(calls.len() >= 8, "{calls:?}");
        for path in calls {
            assert!(path.starts_with("/api/"), "a script calls {path:?}");
        }
        assert!(!scripts.contains("http://") && !scripts.contains("https://"));
    }
}
