//! Delivery faults: change how the body goes out on the connection.

use std::time::Duration;

use super::Verdict;

/// What interrupts a body once a number of its bytes were sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interrupt {
    /// Close the connection (FIN).
    Close,
    /// Reset the connection (RST).
    Reset,
    /// Send nothing for a while (`None`: until the client or the server gives up).
    Stall(Option<Duration>),
}

/// How a body is paced and interrupted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Delivery {
    /// After how many body bytes, and what.
    pub(crate) interrupt: Option<(u64, Interrupt)>,
    /// Pace the body at this rate.
    pub(crate) bytes_per_sec: Option<u64>,
}

impl Verdict {
    /// The delivery plan of this verdict's parts of this family: the pace of a `throttle` and
    /// the one interrupt (plain delivery without them).
    pub(crate) fn delivery(&self) -> Delivery {
        self.parts()
            .iter()
            .map(Verdict::delivery_one)
            .fold(Delivery::default(), |plan, part| Delivery {
                interrupt: plan.interrupt.or(part.interrupt),
                bytes_per_sec: plan.bytes_per_sec.or(part.bytes_per_sec),
            })
    }

    fn delivery_one(&self) -> Delivery {
        match self {
            Self::CutAfter { bytes } => Delivery {
                interrupt: Some((*bytes, Interrupt::Close)),
                bytes_per_sec: None,
            },
            Self::Reset { after_bytes } => Delivery {
                interrupt: Some((*after_bytes, Interrupt::Reset)),
                bytes_per_sec: None,
            },
            Self::StallAfter { bytes, for_ms } => Delivery {
                interrupt: Some((*bytes, Interrupt::Stall(for_ms.map(Duration::from_millis)))),
                bytes_per_sec: None,
            },
            Self::Throttle { bytes_per_sec } => Delivery {
                interrupt: None,
                bytes_per_sec: Some(*bytes_per_sec),
            },
            _ => Delivery::default(),
        }
    }
}
