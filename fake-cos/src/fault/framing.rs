//! Framing faults: change how the body is delimited or encoded on the wire.

use axum::http::{HeaderMap, HeaderValue, header};
use std::io::Write;

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;

use super::Verdict;
use super::delivery::{Delivery, Interrupt};

/// Sets the length framing of a body of `data` and returns the bytes to hand to hyper; a
/// `WrongContentRange` part rewrites the `Content-Range` already in `headers`.
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
    let parts = verdict.map_or(&[][..], Verdict::parts);
    for part in parts {
        if let Verdict::WrongContentRange { shift, total } = part {
            mislabel(headers, *shift, *total);
        }
    }
    let framing = parts.iter().find(|p| {
        matches!(
            p,
            Verdict::Chunked | Verdict::Gzip | Verdict::WrongContentLength { .. }
        )
    });
    let len = data.len() as u64;
    match framing {
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

/// Rewrites `Content-Range: bytes FIRST-LAST/TOTAL` as `bytes FIRST+shift-LAST+shift/total`
/// (saturating at 0 and `u64::MAX`); without one (a 200) there is nothing to mislabel.
fn mislabel(headers: &mut HeaderMap, shift: i64, total: Option<u64>) {
    let Some((first, last, size)) = headers
        .get(header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_content_range)
    else {
        return;
    };
    let declared = format!(
        "bytes {}-{}/{}",
        first.saturating_add_signed(shift),
        last.saturating_add_signed(shift),
        total.unwrap_or(size)
    );
    headers.insert(
        header::CONTENT_RANGE,
        HeaderValue::from_str(&declared).expect("digits, a dash and a slash"),
    );
}

/// `bytes FIRST-LAST/TOTAL` as the handler writes it.
fn parse_content_range(text: &str) -> Option<(u64, u64, u64)> {
    let (range, total) = text.strip_prefix("bytes ")?.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    Some((first.parse().ok()?, last.parse().ok()?, total.parse().ok()?))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(verdict: &Verdict, content_range: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(cr) = content_range {
            headers.insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(cr).expect("ascii"),
            );
        }
        let mut delivery = Delivery::default();
        frame(
            Some(verdict),
            Bytes::from_static(b"abcd"),
            &mut delivery,
            &mut headers,
        );
        headers
    }

    #[test]
    fn wrong_content_range_moves_the_declared_range_or_total_only() {
        let shifted = Verdict::WrongContentRange {
            shift: -3,
            total: None,
        };
        let h = framed(&shifted, Some("bytes 100-103/200"));
        assert_eq!(h[header::CONTENT_RANGE], "bytes 97-100/200");
        assert_eq!(h[header::CONTENT_LENGTH], "4");
        let total = Verdict::WrongContentRange {
            shift: 0,
            total: Some(150),
        };
        assert_eq!(
            framed(&total, Some("bytes 100-103/200"))[header::CONTENT_RANGE],
            "bytes 100-103/150"
        );
        let low = Verdict::WrongContentRange {
            shift: -500,
            total: None,
        };
        assert_eq!(
            framed(&low, Some("bytes 100-103/200"))[header::CONTENT_RANGE],
            "bytes 0-0/200"
        );
        assert!(framed(&shifted, None).get(header::CONTENT_RANGE).is_none());
    }
}
