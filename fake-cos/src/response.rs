//! Answers before they become HTTP responses, and COS-style XML errors.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use bytes::Bytes;

use crate::auth::Refusal;
use crate::fault::delivery::Delivery;
use crate::store::Span;

/// What the handler decided to send.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: AnswerBody,
}

/// The body of an [`Answer`].
#[derive(Debug)]
pub(crate) enum AnswerBody {
    /// No body (HEAD, redirects, empty objects).
    Empty,
    /// A small body sent in one piece (XML errors).
    Full(Bytes),
    /// Object bytes a fault rule has shaped, sent by a pump task that can cut, stall or
    /// throttle them.
    Stream { data: Bytes, delivery: Delivery },
    /// Object bytes no rule touched, exactly as stored: a plain connection sends them with
    /// `sendfile(2)`, any other streams them from the store.
    Object(Span),
}

/// A COS error code with its status and stock message.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CosErrorCode {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: &'static str,
}

pub(crate) const NO_SUCH_KEY: CosErrorCode = CosErrorCode {
    status: StatusCode::NOT_FOUND,
    code: "NoSuchKey",
    message: "The specified key does not exist.",
};
pub(crate) const SIGNATURE_MISMATCH: CosErrorCode = CosErrorCode {
    status: StatusCode::FORBIDDEN,
    code: "SignatureDoesNotMatch",
    message: "The Signature you specified is invalid.",
};
pub(crate) const EXPIRED: CosErrorCode = CosErrorCode {
    status: StatusCode::FORBIDDEN,
    code: "AccessDenied",
    message: "Request has expired",
};
pub(crate) const ACCESS_DENIED: CosErrorCode = CosErrorCode {
    status: StatusCode::FORBIDDEN,
    code: "AccessDenied",
    message: "Access Denied.",
};
pub(crate) const INVALID_ACCESS_KEY_ID: CosErrorCode = CosErrorCode {
    status: StatusCode::FORBIDDEN,
    code: "InvalidAccessKeyId",
    message: "The Access Key Id you provided does not exist in our records.",
};
pub(crate) const TIME_TOO_SKEWED: CosErrorCode = CosErrorCode {
    status: StatusCode::FORBIDDEN,
    code: "RequestTimeTooSkewed",
    message: "The difference between the request time and the server's time is too large.",
};
pub(crate) const ENTITY_TOO_LARGE: CosErrorCode = CosErrorCode {
    status: StatusCode::BAD_REQUEST,
    code: "EntityTooLarge",
    message: "Your proposed upload exceeds the maximum allowed object size.",
};
pub(crate) const BAD_DIGEST: CosErrorCode = CosErrorCode {
    status: StatusCode::BAD_REQUEST,
    code: "BadDigest",
    message: "The Content-MD5 you specified did not match what we received.",
};
pub(crate) const INVALID_DIGEST: CosErrorCode = CosErrorCode {
    status: StatusCode::BAD_REQUEST,
    code: "InvalidDigest",
    message: "The Content-MD5 you specified is not valid.",
};
pub(crate) const INCOMPLETE_BODY: CosErrorCode = CosErrorCode {
    status: StatusCode::BAD_REQUEST,
    code: "IncompleteBody",
    message: "You did not provide the number of bytes specified by the Content-Length HTTP header.",
};
pub(crate) const INVALID_URI: CosErrorCode = CosErrorCode {
    status: StatusCode::BAD_REQUEST,
    code: "InvalidURI",
    message: "Object names are one path segment of A-Z a-z 0-9 . _ -",
};
pub(crate) const METHOD_NOT_ALLOWED: CosErrorCode = CosErrorCode {
    status: StatusCode::METHOD_NOT_ALLOWED,
    code: "MethodNotAllowed",
    message: "The specified method is not allowed against this resource.",
};
pub(crate) const INTERNAL_ERROR: CosErrorCode = CosErrorCode {
    status: StatusCode::INTERNAL_SERVER_ERROR,
    code: "InternalError",
    message: "We encountered an internal error. Please try again.",
};
pub(crate) const INVALID_RANGE: CosErrorCode = CosErrorCode {
    status: StatusCode::RANGE_NOT_SATISFIABLE,
    code: "InvalidRange",
    message: "The requested range is not satisfiable",
};

/// The COS error a refused credential answers with.
pub(crate) fn code_for_refusal(refusal: Refusal) -> CosErrorCode {
    match refusal {
        Refusal::Anonymous => ACCESS_DENIED,
        Refusal::Mismatch => SIGNATURE_MISMATCH,
        Refusal::UnknownKey => INVALID_ACCESS_KEY_ID,
        Refusal::Expired => EXPIRED,
        Refusal::NotYetValid => TIME_TOO_SKEWED,
    }
}

/// The COS error code an injected status answers with.
pub(crate) fn code_for_status(status: StatusCode) -> CosErrorCode {
    let (code, message) = match status.as_u16() {
        403 => ("AccessDenied", "Access Denied."),
        404 => (NO_SUCH_KEY.code, NO_SUCH_KEY.message),
        500 => (
            "InternalError",
            "We encountered an internal error. Please try again.",
        ),
        503 => ("ServiceUnavailable", "Please reduce your request rate."),
        _ => (
            "InjectedFault",
            "The fake COS was told to fail this request.",
        ),
    };
    CosErrorCode {
        status,
        code,
        message,
    }
}

/// An XML error answer, the body shape COS sends.
pub(crate) fn xml_error(error: CosErrorCode, resource: &str, request_id: &str) -> Answer {
    let body = format!(
        "<?xml version='1.0' encoding='utf-8' ?>\n<Error>\n\t<Code>{}</Code>\n\t<Message>{}</Message>\n\t<Resource>{}</Resource>\n\t<RequestId>{}</RequestId>\n</Error>",
        error.code,
        error.message,
        escape(resource),
        escape(request_id),
    );
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    Answer {
        status: error.status,
        headers,
        body: AnswerBody::Full(Bytes::from(body)),
    }
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_error_has_cos_shape_and_escapes_resource() {
        let answer = xml_error(NO_SUCH_KEY, "/a<b", "req-1");
        let AnswerBody::Full(body) = answer.body else {
            panic!("xml errors have a full body");
        };
        let body = std::str::from_utf8(&body).expect("utf-8");
        assert!(body.starts_with("<?xml version='1.0' encoding='utf-8' ?>\n<Error>"));
        assert!(body.contains("<Code>NoSuchKey</Code>"));
        assert!(body.contains("<Resource>/a&lt;b</Resource>"));
        assert_eq!(answer.status, StatusCode::NOT_FOUND);
    }
}
