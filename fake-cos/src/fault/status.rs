//! Status faults: answer with an error or a redirect instead of the object.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};

use super::Verdict;
use crate::response::{Answer, AnswerBody, code_for_status, xml_error};

impl Verdict {
    /// The answer that replaces the object, for verdicts of this family.
    pub(crate) fn early_answer(&self, resource: &str, request_id: &str) -> Option<Answer> {
        match self {
            Self::Status {
                code,
                retry_after_secs,
            } => {
                let status = StatusCode::from_u16(*code).ok()?;
                let mut answer = xml_error(code_for_status(status), resource, request_id);
                if let Some(secs) = retry_after_secs {
                    answer
                        .headers
                        .insert(header::RETRY_AFTER, HeaderValue::from(*secs));
                }
                Some(answer)
            }
            Self::Redirect { location, status } => {
                let mut headers = HeaderMap::new();
                headers.insert(header::LOCATION, HeaderValue::from_str(location).ok()?);
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
                Some(Answer {
                    status: StatusCode::from_u16(*status).ok()?,
                    headers,
                    body: AnswerBody::Empty,
                })
            }
            _ => None,
        }
    }
}
