//! Framing faults: change how the body is delimited or encoded on the wire.

use axum::http::{HeaderMap, HeaderValue, header};
use std::io::Write;

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;

use super::Verdict;
use super::delivery::{Delivery, Interrupt};

/// Sets the length framing of a body of `data` and returns the bytes to hand to hyper.
///
/// Without `Content-Length` hyper frames an HTTP/1.1 body as chunked, which is the point of
/// `Chunked`; with one it never writes past it, so a negative `WrongContentLength` can only
/// send the declared bytes, and a positive one sends the real body then closes.
pub(crate) fn frame(
    verdict: Option<&Verdict>,
    data: Bytes,
    delivery: &mut Delivery,
    headers: &mut HeaderMap,
) -> Bytes {
    let len = data.len() as u64;
    match verdict {
        Some(Verdict::Chunked) => data,
        Some(Verdict::Gzip) => {
            let gzipped = gzip(&data);
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(gzipped.len()));
            gzipped
        }
        Some(Verdict::WrongContentLength { delta }) => {
            let declared = len.saturating_add_signed(*delta);
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(declared));
            if declared > len {
                delivery.interrupt.get_or_insert((len, Interrupt::Close));
                data
            } else {
                data.slice(..usize::try_from(declared).expect("below a Bytes length"))
            }
        }
        _ => {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            data
        }
    }
}

fn gzip(data: &[u8]) -> Bytes {
    let mut encoder = GzEncoder::new(Vec::with_capacity(data.len() / 2), Compression::fast());
    encoder
        .write_all(data)
        .expect("writing to a Vec cannot fail");
    encoder
        .finish()
        .expect("finishing into a Vec cannot fail")
        .into()
}
