//! `PUT Object` of the COS XML API: a signed upload, read whole (up to the instance's size
//! limit) before it replaces anything, so a cut or refused upload leaves the old object as
//! it was and a reader never sees half an object.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use md5::{Digest, Md5};

use crate::auth::{self, Accept, SignedRequest};
use crate::name::ObjectName;
use crate::response::{self as resp, Answer, AnswerBody, CosErrorCode, xml_error};
use crate::shared::Shared;
use crate::store::StoredObject;

/// What a `PUT` needs from its request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PutRequest<'a> {
    pub(crate) path: &'a str,
    pub(crate) query: Option<&'a str>,
    pub(crate) headers: &'a HeaderMap,
}

/// Authenticates, reads and stores one upload.
pub(crate) async fn answer(
    shared: &Shared,
    req: PutRequest<'_>,
    name: &ObjectName,
    body: Body,
    request_id: &str,
) -> Answer {
    let signed = SignedRequest {
        method: &Method::PUT,
        path: req.path,
        query: req.query,
        headers: req.headers,
    };
    let now = shared.clock.now_unix();
    let checked = auth::check(
        &shared.keys,
        &shared.plan.secret,
        signed,
        name,
        now,
        Accept::QSignOnly,
    );
    if let Err(refusal) = checked {
        return xml_error(resp::code_for_refusal(refusal), req.path, request_id);
    }
    let bytes = match read_body(shared.plan.max_object_bytes, req.headers, body).await {
        Ok(bytes) => bytes,
        Err(code) => return xml_error(code, req.path, request_id),
    };
    if let Err(code) = check_md5(req.headers, &bytes) {
        return xml_error(code, req.path, request_id);
    }
    let object = StoredObject::new(name, bytes, shared.clock.now());
    let stored = shared.store.put(name.clone(), object);
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    headers.insert(header::ETAG, value(&stored.info.etag));
    headers.insert("x-cos-request-id", value(request_id));
    Answer {
        status: StatusCode::OK,
        headers,
        body: AnswerBody::Empty,
    }
}

/// The whole body, refused past `max` bytes (up front when `Content-Length` says so).
async fn read_body(max: u64, headers: &HeaderMap, body: Body) -> Result<Bytes, CosErrorCode> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max) {
        return Err(resp::ENTITY_TOO_LARGE);
    }
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            Err(resp::ENTITY_TOO_LARGE)
        }
        Err(_) => Err(resp::INCOMPLETE_BODY),
    }
}

/// `Content-MD5`, if sent, must be the base64 MD5 of the body.
fn check_md5(headers: &HeaderMap, bytes: &[u8]) -> Result<(), CosErrorCode> {
    let Some(given) = headers.get("content-md5") else {
        return Ok(());
    };
    let given = given
        .to_str()
        .ok()
        .and_then(|v| STANDARD.decode(v.trim()).ok())
        .filter(|d| d.len() == 16)
        .ok_or(resp::INVALID_DIGEST)?;
    if given.as_slice() == Md5::digest(bytes).as_slice() {
        Ok(())
    } else {
        Err(resp::BAD_DIGEST)
    }
}

fn value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).expect("ETags and request ids are ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_md5_is_checked_when_sent() {
        let mut headers = HeaderMap::new();
        assert!(check_md5(&headers, b"abc").is_ok());
        let good = STANDARD.encode(Md5::digest(b"abc"));
        headers.insert("content-md5", value(&good));
        assert!(check_md5(&headers, b"abc").is_ok());
        assert_eq!(
            check_md5(&headers, b"abd").err().map(|c| c.code),
            Some("BadDigest")
        );
        headers.insert("content-md5", value("not base64!"));
        assert_eq!(
            check_md5(&headers, b"abc").err().map(|c| c.code),
            Some("InvalidDigest")
        );
    }
}
