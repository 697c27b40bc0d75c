//! Several faults on one request ([`Verdict::Steps`]): the stages ask a verdict for its parts,
//! so a list acts through the same code as a single fault; validation keeps a list to what the
//! stages can do together.

use super::{MAX_STEPS, Verdict, invalid};
use crate::CosError;

impl Verdict {
    /// The faults this verdict stands for: its steps, or itself.
    pub(crate) fn parts(&self) -> &[Verdict] {
        match self {
            Self::Steps { steps } => steps,
            one => std::slice::from_ref(one),
        }
    }

    /// The kinds of its parts joined by `+`, for logs: `throttle+cut_after`.
    pub(crate) fn label(&self) -> String {
        self.parts()
            .iter()
            .map(Verdict::kind)
            .collect::<Vec<_>>()
            .join("+")
    }

    /// The place a step takes in its stage: two steps with the same slot would contradict.
    fn slot(&self) -> Option<&'static str> {
        Some(match self {
            Self::CutAfter { .. } | Self::Reset { .. } | Self::StallAfter { .. } => {
                "at most one of cut_after, reset, stall_after"
            }
            Self::Throttle { .. } => "at most one throttle",
            Self::WrongContentLength { .. } | Self::Chunked | Self::Gzip => {
                "at most one of wrong_content_length, chunked, gzip"
            }
            Self::IgnoreRange | Self::WrongContentRange { .. } => {
                "at most one of ignore_range, wrong_content_range (a whole-object 200 has no \
                 Content-Range to get wrong)"
            }
            Self::ReplaceObject { .. } => "at most one replace_object",
            Self::Corrupt { .. } | Self::Status { .. } | Self::Redirect { .. } => return None,
            Self::Steps { .. } => return None,
        })
    }
}

/// Checks a list of steps: each valid on its own, no answer in place of a body, no nesting,
/// and no two steps in one slot.
pub(super) fn validate(steps: &[Verdict]) -> Result<(), CosError> {
    if !(2..=MAX_STEPS).contains(&steps.len()) {
        return Err(invalid("verdict.steps", "holds 2 to 8 steps", None));
    }
    let mut taken: Vec<&'static str> = Vec::new();
    for step in steps {
        match step {
            Verdict::Steps { .. } => {
                return Err(invalid("verdict.steps", "steps do not nest", None));
            }
            Verdict::Status { .. } | Verdict::Redirect { .. } => {
                return Err(invalid(
                    "verdict.steps",
                    "status and redirect answer instead of the body; they are no step",
                    None,
                ));
            }
            _ => step
                .validate()
                .map_err(|e| invalid("verdict.steps", "a step is invalid", Some(e)))?,
        }
        if let Some(slot) = step.slot() {
            if taken.contains(&slot) {
                return Err(invalid("verdict.steps", slot, None));
            }
            taken.push(slot);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::delivery::{Delivery, Interrupt};

    fn steps(json: &str) -> Verdict {
        serde_json::from_str(json).expect("valid verdict json")
    }

    #[test]
    fn throttle_then_cut_paces_the_body_and_cuts_at_the_byte() {
        let v = steps(
            r#"{"kind":"steps","steps":[{"kind":"throttle","bytes_per_sec":2000},
                {"kind":"cut_after","bytes":3000}]}"#,
        );
        assert!(v.validate().is_ok());
        assert_eq!(
            v.delivery(),
            Delivery {
                interrupt: Some((3000, Interrupt::Close)),
                bytes_per_sec: Some(2000),
            }
        );
        assert_eq!(v.label(), "throttle+cut_after");
    }

    #[test]
    fn contradicting_answering_or_nested_steps_are_refused() {
        let refused = |json: &str, why: &str| {
            let err = steps(json).validate().expect_err(json);
            let text = format!("{err}");
            assert!(
                text.contains("verdict.steps") && text.contains(why),
                "{text}"
            );
        };
        refused(
            r#"{"kind":"steps","steps":[{"kind":"cut_after","bytes":1},{"kind":"reset","after_bytes":2}]}"#,
            "at most one of cut_after",
        );
        refused(
            r#"{"kind":"steps","steps":[{"kind":"status","code":500},{"kind":"throttle","bytes_per_sec":1}]}"#,
            "no step",
        );
        refused(r#"{"kind":"steps","steps":[{"kind":"chunked"}]}"#, "2 to 8");
        refused(
            r#"{"kind":"steps","steps":[{"kind":"chunked"},{"kind":"steps","steps":[]}]}"#,
            "nest",
        );
        refused(
            r#"{"kind":"steps","steps":[{"kind":"chunked"},{"kind":"throttle","bytes_per_sec":0}]}"#,
            "a step is invalid",
        );
        refused(
            r#"{"kind":"steps","steps":[{"kind":"ignore_range"},{"kind":"wrong_content_range","shift":1}]}"#,
            "wrong_content_range",
        );
    }

    #[test]
    fn corrupt_steps_compose_in_list_order() {
        let v = steps(
            r#"{"kind":"steps","steps":[{"kind":"corrupt","offset":1,"xor":1},
                {"kind":"corrupt","offset":1,"len":2,"xor":2}]}"#,
        );
        assert!(v.validate().is_ok());
        let served = v.corrupt(bytes::Bytes::from(vec![0u8; 4]), 0);
        assert_eq!(&served[..], &[0, 3, 2, 0]);
    }
}
