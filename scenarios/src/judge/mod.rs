//! Judging a finished run: the plan's expectations, adjusted by the gateway's profile, against a
//! snapshot of what happened. Every failure carries the record where it shows, so the first
//! divergence is the earliest, and its context comes from the record it is about.

mod context;
mod cos;

use crate::expect::{DeviceOutcome, describe_report};
use crate::expect::{ReportItem, ReportPattern, ResultPattern, first_divergence, sequence_matches};
use crate::failure::Failure;
use crate::happened::{DeviceRow, Happened, command_entries, online_results, report_entries};
use crate::plan::Plan;
use crate::profile::GatewayProfile;
use fake_hub::Direction;
use otasim_protocol::{DeviceId, ProgressState, Topic};

/// Where a failure shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "record", content = "seq", rename_all = "snake_case")]
pub enum Record {
    /// A transcript entry (or, at the transcript's length, the end: something never came).
    Transcript(u64),
    /// A COS journal entry (or, past the last, a request that never came).
    Cos(u64),
}

/// What did not hold, and where.
pub(crate) struct Judgement {
    /// Failures, first divergence first.
    pub(crate) failures: Vec<crate::failure::Failure>,
    /// The records around the first divergence.
    pub(crate) context: Vec<String>,
    /// Where the profile or an external gateway changed what was judged, in words.
    pub(crate) adjustments: Vec<String>,
    /// The record of the first divergence.
    pub(crate) diverged_at: Option<Record>,
}

/// How the run is judged.
pub(crate) struct Judge<'a> {
    pub(crate) plan: &'a Plan,
    pub(crate) profile: &'a GatewayProfile,
    pub(crate) happened: &'a Happened,
    pub(crate) rows: &'a [DeviceRow],
    /// The gateway is an external program: what only our gateway tells is not judged.
    pub(crate) external: bool,
}

type Found = Vec<(Record, Failure)>;

impl Judge<'_> {
    pub(crate) fn judge(&self, step_failure: Option<(u64, Failure)>) -> Judgement {
        let mut adjustments = Vec::new();
        let mut found: Found = step_failure
            .into_iter()
            .map(|(at, f)| (Record::Transcript(at), f))
            .collect();
        found.extend(self.report_failures(&mut adjustments));
        found.extend(self.final_failures(&mut adjustments));
        found.extend(self.cos_failures(&mut adjustments));
        if let Some(want) = &self.plan.expect.tasks {
            let got: Vec<_> = self
                .happened
                .tasks
                .iter()
                .map(|t| t.summary.clone())
                .collect();
            if &got != want {
                found.push((
                    self.end(),
                    Failure::Tasks {
                        expected: want.clone(),
                        got,
                    },
                ));
            }
        }
        found.sort_by_key(|(at, _)| self.order(*at));
        let context = found
            .first()
            .map(|(at, f)| context::around(self.happened, *at, f))
            .unwrap_or_default();
        adjustments.sort();
        adjustments.dedup();
        Judgement {
            diverged_at: found.first().map(|(at, _)| *at),
            failures: found.into_iter().map(|(_, f)| f).collect(),
            context,
            adjustments,
        }
    }

    fn end(&self) -> Record {
        Record::Transcript(self.happened.transcript.len() as u64)
    }

    /// A record's place in the transcript's order.
    fn order(&self, at: Record) -> u64 {
        match at {
            Record::Transcript(s) => s,
            Record::Cos(s) => self
                .happened
                .cos_after_seq
                .get(&s)
                .copied()
                .unwrap_or(self.happened.transcript.len() as u64),
        }
    }

    /// The patterns the profile says this gateway reports: `fail -2` read as `fail -2, fail -5`.
    fn adjusted(&self, patterns: &[ReportPattern], notes: &mut Vec<String>) -> Vec<ReportPattern> {
        let mut out = Vec::new();
        for p in patterns {
            match &p.item {
                ReportItem::Fail { code, msg } => {
                    let codes = self.profile.reports_for(*code);
                    if codes.len() > 1 || codes[0] != *code {
                        notes.push(format!(
                            "profile: fail {code} is read as {}",
                            codes
                                .iter()
                                .map(|c| format!("fail {c}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    }
                    for (i, c) in codes.into_iter().enumerate() {
                        out.push(ReportPattern {
                            item: ReportItem::Fail {
                                code: c,
                                msg: if i == 0 { msg.clone() } else { None },
                            },
                            optional: p.optional,
                        });
                    }
                }
                ReportItem::Burning if !self.profile.reports_burning => {
                    notes.push("profile: burning is optional".into());
                    out.push(ReportPattern {
                        item: ReportItem::Burning,
                        optional: true,
                    });
                }
                _ => out.push(p.clone()),
            }
        }
        out
    }

    fn report_failures(&self, notes: &mut Vec<String>) -> Found {
        let mut out = Vec::new();
        let transcript = &self.happened.transcript;
        for (id, want) in &self.plan.expect.reports {
            let patterns = self.adjusted(want, notes);
            let entries = report_entries(transcript, id);
            let got: Vec<_> = entries.iter().map(|(_, r)| r.clone()).collect();
            if sequence_matches(&patterns, &got) {
                continue;
            }
            let at = first_divergence(&patterns, &got).unwrap_or(0);
            let seq = entries.get(at).map_or(transcript.len() as u64, |(s, _)| *s);
            out.push((
                Record::Transcript(seq),
                Failure::Reports {
                    device: id.to_string(),
                    at,
                    got_report: got.get(at).map(describe_report),
                    expected: patterns,
                    got: got.iter().map(describe_report).collect(),
                },
            ));
        }
        if self.plan.expect.nothing_else {
            out.extend(self.nothing_else());
        }
        out
    }

    /// Reports from devices no expectation lists, and refused publishes.
    fn nothing_else(&self) -> Found {
        let mut out = Vec::new();
        let transcript = &self.happened.transcript;
        for s in &self.plan.subdevices {
            if self.plan.expect.reports.contains_key(&s.id) {
                continue;
            }
            if let Some((seq, r)) = report_entries(transcript, &s.id).first() {
                out.push((
                    Record::Transcript(*seq),
                    Failure::UnexpectedReport {
                        device: s.id.to_string(),
                        report: describe_report(r),
                    },
                ));
            }
        }
        for e in transcript
            .iter()
            .filter(|e| e.direction == Direction::Refused)
        {
            out.push((
                Record::Transcript(e.seq),
                Failure::RefusedPublish {
                    client_id: e.client_id.clone(),
                    topic: e.topic.clone(),
                },
            ));
        }
        out
    }

    /// The device's last report of `state`, where a final-state mismatch shows.
    fn last_report(&self, id: &DeviceId, state: Option<ProgressState>) -> Record {
        let entries = report_entries(&self.happened.transcript, id);
        entries
            .iter()
            .rev()
            .find(|(_, r)| state.is_none_or(|s| r.state == s))
            .or(entries.last())
            .map_or(self.end(), |(s, _)| Record::Transcript(*s))
    }

    /// The version in the device's last `done` report, for gateways that report no version
    /// after `done`.
    fn done_version(&self, id: &DeviceId) -> Option<String> {
        report_entries(&self.happened.transcript, id)
            .into_iter()
            .rev()
            .find(|(_, r)| r.state == ProgressState::Done)
            .map(|(_, r)| r.version)
    }

    fn result_holds(
        &self,
        id: &DeviceId,
        want: &ResultPattern,
        got: &DeviceOutcome,
        notes: &mut Vec<String>,
    ) -> bool {
        if want.matches(got) {
            return true;
        }
        match (want, got) {
            (
                ResultPattern::Failed { code: Some(c), msg },
                DeviceOutcome::Failed { code, message },
            ) if self.profile.reports_for(*c).contains(code) => {
                notes.push(format!("profile: result failed {c} accepts failed {code}"));
                msg.as_ref().is_none_or(|m| m.holds(message))
            }
            (ResultPattern::Succeeded, DeviceOutcome::InState { state })
                if state == "done" && !self.profile.reports_version_after_done =>
            {
                notes.push("profile: succeeded accepts done without a report_version".into());
                self.done_version(id).is_some()
            }
            _ => false,
        }
    }

    fn final_failures(&self, notes: &mut Vec<String>) -> Found {
        let mut out = Vec::new();
        let expect = &self.plan.expect;
        let row = |id: &DeviceId| self.rows.iter().find(|r| r.device == id.to_string());
        for (id, want) in &expect.versions {
            let got = row(id).and_then(|r| r.version_after.clone());
            // Done means succeeded on the Hub: the version in `done` is the device's, even
            // when its `report_version` has not arrived by the end of the run.
            let succeeded = row(id).is_some_and(|r| r.outcome == DeviceOutcome::Succeeded);
            let by_done = (succeeded || !self.profile.reports_version_after_done)
                && self.done_version(id).as_deref() == Some(want.as_str());
            if got.as_deref() != Some(want.as_str()) && !by_done {
                out.push((
                    self.last_report(id, None),
                    Failure::Version {
                        device: id.to_string(),
                        expected: want.clone(),
                        got,
                    },
                ));
            }
        }
        for (id, want) in &expect.results {
            let Some(r) = row(id) else { continue };
            if !self.result_holds(id, want, &r.outcome, notes) {
                out.push((
                    self.last_report(id, None),
                    Failure::Result {
                        device: id.to_string(),
                        expected: want.clone(),
                        got: r.result.clone(),
                    },
                ));
            }
        }
        if self.external && !expect.bytes_downloaded.is_empty() {
            notes.push(
                "external gateway: bytes_downloaded is our gateway's own count, not judged".into(),
            );
        } else {
            for (id, bounds) in &expect.bytes_downloaded {
                let got = row(id).map_or(0, |r| r.bytes_downloaded);
                if !bounds.holds(got) {
                    out.push((
                        self.end(),
                        Failure::BytesDownloaded {
                            device: id.to_string(),
                            expected: *bounds,
                            got,
                        },
                    ));
                }
            }
        }
        out.extend(self.command_failures());
        out
    }

    fn command_failures(&self) -> Found {
        let mut out = Vec::new();
        let expect = &self.plan.expect;
        let transcript = &self.happened.transcript;
        let online = online_results(transcript);
        for (id, want) in &expect.online_results {
            if online.get(id) != Some(want) {
                let at = transcript
                    .iter()
                    .rev()
                    .find(|e| {
                        e.direction == Direction::Out
                            && matches!(
                                e.topic.parse::<Topic>(),
                                Ok(Topic::GatewayOperationResult(_))
                            )
                            && e.payload.contains(id.device_name())
                    })
                    .map_or(self.end(), |e| Record::Transcript(e.seq));
                out.push((
                    at,
                    Failure::OnlineResult {
                        device: id.to_string(),
                        expected: *want,
                        got: online.get(id).copied(),
                    },
                ));
            }
        }
        for id in &expect.untouched {
            let commands = command_entries(transcript, id);
            if let Some(first) = commands.first() {
                out.push((
                    Record::Transcript(*first),
                    Failure::Touched {
                        device: id.to_string(),
                        commands: commands.len(),
                    },
                ));
            }
        }
        for (id, bounds) in &expect.update_commands {
            let commands = command_entries(transcript, id);
            let got = commands.len() as u64;
            if !bounds.holds(got) {
                // One too many shows at the extra command; one too few at the end.
                let at = bounds
                    .max
                    .and_then(|m| commands.get(m as usize))
                    .map_or(self.end(), |s| Record::Transcript(*s));
                out.push((
                    at,
                    Failure::UpdateCommands {
                        device: id.to_string(),
                        expected: *bounds,
                        got,
                    },
                ));
            }
        }
        out
    }
}
