//! COS expectations: body bytes, request counts, and single requests (Range, status, gap).

use super::{Found, Judge, Record};
use crate::failure::{CosMismatch, Failure};
use crate::happened::{cos_gets, range_start};
use crate::plan::{Bounds, CosRequestExpect};
use crate::profile::Resume;
use fake_cos::JournalEntry;

impl Judge<'_> {
    /// Where a COS count shows: the request past the bound, or the end of the journal.
    fn cos_at(&self, gets: &[&JournalEntry], bounds: Bounds, got: u64) -> Record {
        let past = bounds
            .max
            .filter(|m| got > *m)
            .and_then(|m| gets.get(m as usize));
        match past {
            Some(j) => Record::Cos(j.seq),
            None => Record::Cos(gets.last().map_or(0, |j| j.seq + 1)),
        }
    }

    /// Upper bounds scaled for a gateway that downloads once per subdevice.
    fn per_subdevice(&self, b: Bounds, what: &str, notes: &mut Vec<String>) -> Bounds {
        let n = self.plan.subdevices.len().max(1) as u64;
        if self.profile.shares_downloads || n == 1 || b.max.is_none() {
            return b;
        }
        notes.push(format!(
            "profile: no shared downloads, so at most {what} is multiplied by {n} subdevices"
        ));
        Bounds {
            min: b.min,
            max: b.max.map(|m| m.saturating_mul(n)),
        }
    }

    pub(super) fn cos_failures(&self, notes: &mut Vec<String>) -> Found {
        let gets: Vec<&JournalEntry> = cos_gets(&self.happened.journal).collect();
        let mut out = Vec::new();
        let expect = &self.plan.expect;
        if let Some(b) = expect.cos_bytes_sent {
            let mut b = self.per_subdevice(b, "cos_bytes_sent", notes);
            if self.profile.resume == Resume::Restart && b.max.is_some() {
                notes
                    .push("profile: restarts from byte 0, so cos_bytes_sent has no maximum".into());
                b.max = None;
            }
            // Firmware bytes: bodies of 2xx answers (an error page is not part of the image).
            let sent: u64 = gets
                .iter()
                .filter(|j| (200..300).contains(&j.status))
                .map(|j| j.body_bytes_sent)
                .sum();
            if !b.holds(sent) {
                out.push((
                    Record::Cos(gets.last().map_or(0, |j| j.seq)),
                    Failure::CosBytes {
                        expected: b,
                        got: sent,
                    },
                ));
            }
        }
        if let Some(b) = expect.cos_requests {
            let b = self.per_subdevice(b, "cos_requests", notes);
            let n = gets.len() as u64;
            if !b.holds(n) {
                out.push((
                    self.cos_at(&gets, b, n),
                    Failure::CosRequests {
                        expected: b,
                        got: n,
                    },
                ));
            }
        }
        for want in &expect.cos_request {
            if let Some(f) = self.one_request(&gets, want, notes) {
                out.push(f);
            }
        }
        out
    }

    fn one_request(
        &self,
        gets: &[&JournalEntry],
        want: &CosRequestExpect,
        notes: &mut Vec<String>,
    ) -> Option<(Record, Failure)> {
        let fail = |at: Record, mismatch| {
            Some((
                at,
                Failure::CosRequest {
                    nth: want.nth,
                    mismatch,
                },
            ))
        };
        let Some(j) = gets.get(want.nth as usize - 1) else {
            let end = Record::Cos(gets.last().map_or(0, |j| j.seq + 1));
            return fail(
                end,
                CosMismatch::Missing {
                    requests: gets.len() as u64,
                },
            );
        };
        let at = Record::Cos(j.seq);
        let judge_range = self.profile.resume == Resume::Range || want.nth == 1;
        if !judge_range && (want.range_start.is_some() || want.range.is_some()) {
            notes.push(
                "profile: restarts from byte 0, so Ranges after the first GET are not judged"
                    .into(),
            );
        }
        if let Some(expected) = want.range_start.filter(|_| judge_range) {
            let got = range_start(j.range.as_deref());
            if got != expected {
                return fail(at, CosMismatch::RangeStart { expected, got });
            }
        }
        if let Some(expected) = want.range.as_ref().filter(|_| judge_range)
            && expected != &j.range
        {
            return fail(
                at,
                CosMismatch::Range {
                    expected: expected.clone(),
                    got: j.range.clone(),
                },
            );
        }
        if let Some(expected) = want.status
            && expected != j.status
        {
            return fail(
                at,
                CosMismatch::Status {
                    expected,
                    got: j.status,
                },
            );
        }
        if let (Some(expected_ms), Some(prev)) = (want.gap_ms_at_least, want.nth.checked_sub(2)) {
            let seen = |e: &JournalEntry| self.happened.cos_seen_ms.get(&e.seq).copied();
            if let (Some(a), Some(b)) = (gets.get(prev as usize).and_then(|p| seen(p)), seen(j)) {
                let got_ms = (b - a).max(0.0) as u64;
                if got_ms < expected_ms {
                    return fail(
                        at,
                        CosMismatch::Gap {
                            expected_ms,
                            got_ms,
                        },
                    );
                }
            }
        }
        None
    }
}
