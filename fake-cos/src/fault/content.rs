//! Content faults: change which bytes a request is served.

use bytes::{Bytes, BytesMut};

use super::Verdict;

impl Verdict {
    /// Whether the Range header is to be ignored (200 with the whole object).
    pub(crate) fn ignores_range(&self) -> bool {
        self.parts().iter().any(|v| matches!(v, Self::IgnoreRange))
    }

    /// The object whose bytes replace the requested one before it is served.
    pub(crate) fn replacement(&self) -> Option<&str> {
        self.parts().iter().find_map(|v| match v {
            Self::ReplaceObject { with_object } => Some(with_object.as_str()),
            _ => None,
        })
    }

    /// `data` (object bytes from offset `served_from`) with this verdict's corruptions applied,
    /// in list order.
    pub(crate) fn corrupt(&self, data: Bytes, served_from: u64) -> Bytes {
        self.parts()
            .iter()
            .fold(data, |data, part| part.corrupt_one(data, served_from))
    }

    fn corrupt_one(&self, data: Bytes, served_from: u64) -> Bytes {
        let Self::Corrupt { offset, len, xor } = self else {
            return data;
        };
        let served_to = served_from + data.len() as u64;
        let from = (*offset).max(served_from);
        let to = offset.saturating_add(*len).min(served_to);
        if from >= to {
            return data;
        }
        let mut bytes = BytesMut::from(&data[..]);
        let local = usize::try_from(from - served_from).expect("inside a Bytes");
        let local_end = usize::try_from(to - served_from).expect("inside a Bytes");
        for b in &mut bytes[local..local_end] {
            *b ^= xor;
        }
        bytes.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_flips_only_absolute_offsets_inside_the_served_range() {
        let verdict = Verdict::Corrupt {
            offset: 10,
            len: 3,
            xor: 0xFF,
        };
        let served = verdict.corrupt(Bytes::from(vec![0u8; 5]), 9);
        assert_eq!(&served[..], &[0, 0xFF, 0xFF, 0xFF, 0]);
        let outside = verdict.corrupt(Bytes::from(vec![0u8; 5]), 20);
        assert_eq!(&outside[..], &[0; 5]);
    }
}
