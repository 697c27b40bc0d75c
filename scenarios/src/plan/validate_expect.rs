//! Validating the `[expect]` table: every device known, every pattern and bound possible.

use super::raw::{RawBounds, RawCosRequest, RawExpect, RawTranscriptExpect};
use super::validate::{Res, Validator};
use super::{Bounds, BurnerPlan, CosRequestExpect, Expectations, Plan, TranscriptExpect};
use crate::counts::{CosGap, CosRange, Count, RawCosGap, RawCosRange, RawCount};
use crate::expect::{ReportPattern, ResultPattern};
use fake_hub::Direction;
use otasim_protocol::DeviceId;

impl Validator<'_> {
    fn bounds(&self, field: String, raw: RawBounds) -> Res<Bounds> {
        let b = match raw.exactly {
            Some(_) if raw.min.is_some() || raw.max.is_some() => {
                return Err(self.invalid(field, "exactly excludes min and max"));
            }
            Some(n) => Bounds {
                min: Some(n),
                max: Some(n),
            },
            None => Bounds {
                min: raw.min,
                max: raw.max,
            },
        };
        match (b.min, b.max) {
            (Some(a), Some(z)) if a > z => {
                Err(self.invalid(field, format!("min {a} > max {z}: impossible")))
            }
            _ => Ok(b),
        }
    }

    pub(crate) fn expect(&self, raw: RawExpect, plan: &Plan) -> Res<Expectations> {
        let mut out = Expectations {
            nothing_else: raw.nothing_else,
            tasks: raw.tasks,
            ..Expectations::default()
        };
        for (k, v) in raw.versions {
            let field = format!("expect.versions.{k}");
            let id = self.device_ref(field.clone(), &k, plan)?;
            self.reachable_version(&field, &id, &v, plan)?;
            out.versions.insert(id, v);
        }
        for (k, v) in raw.reports {
            let patterns = v
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    ReportPattern::parse(r)
                        .map_err(|e| self.invalid(format!("expect.reports.{k}[{i}]"), e))
                })
                .collect::<Res<Vec<_>>>()?;
            out.reports.insert(
                self.device_ref(format!("expect.reports.{k}"), &k, plan)?,
                patterns,
            );
        }
        for (k, v) in raw.online_results {
            out.online_results.insert(
                self.device_ref(format!("expect.online_results.{k}"), &k, plan)?,
                v,
            );
        }
        for (i, k) in raw.untouched.iter().enumerate() {
            let field = format!("expect.untouched[{i}]");
            let id = self.device_ref(field.clone(), k, plan)?;
            if out.reports.get(&id).is_some_and(|r| !r.is_empty()) {
                return Err(self.invalid(
                    field,
                    format!("{id} is untouched but expect.reports lists reports: impossible"),
                ));
            }
            out.untouched.push(id);
        }
        for (k, v) in raw.results {
            let field = format!("expect.results.{k}");
            let pattern = ResultPattern::parse(&v).map_err(|e| self.invalid(field.clone(), e))?;
            out.results
                .insert(self.device_ref(field, &k, plan)?, pattern);
        }
        for (k, v) in raw.bytes_downloaded {
            let field = format!("expect.bytes_downloaded.{k}");
            let id = self.device_ref(field.clone(), &k, plan)?;
            out.bytes_downloaded.insert(id, self.bounds(field, v)?);
        }
        if let Some(b) = raw.cos_bytes_sent {
            out.cos_bytes_sent = Some(self.bounds("expect.cos_bytes_sent".into(), b)?);
        }
        if let Some(b) = raw.cos_requests {
            out.cos_requests = Some(self.bounds("expect.cos_requests".into(), b)?);
        }
        for (k, v) in raw.update_commands {
            let field = format!("expect.update_commands.{k}");
            let id = self.device_ref(field.clone(), &k, plan)?;
            out.update_commands.insert(id, self.bounds(field, v)?);
        }
        for (i, r) in raw.cos_request.into_iter().enumerate() {
            out.cos_request.push(self.cos_request(i, r)?);
        }
        self.counts(raw.counts, raw.cos_gaps, raw.cos_ranges, plan, &mut out)?;
        for (i, t) in raw.transcript.into_iter().enumerate() {
            out.transcript.push(self.transcript_expect(i, t, plan)?);
        }
        for (k, v) in raw.warnings {
            let field = format!("expect.warnings.{k}");
            let id = self.device_ref(field.clone(), &k, plan)?;
            if v.is_empty() {
                return Err(self.invalid(field, "say what the warning contains"));
            }
            out.warnings.insert(id, v);
        }
        Ok(out)
    }

    fn transcript_expect(
        &self,
        i: usize,
        t: RawTranscriptExpect,
        plan: &Plan,
    ) -> Res<TranscriptExpect> {
        let at = |field: &str| format!("expect.transcript[{i}].{field}");
        let direction = match t.direction.as_str() {
            "in" => Direction::In,
            "out" => Direction::Out,
            "refused" => Direction::Refused,
            "event" => Direction::Event,
            other => {
                return Err(self.invalid(
                    at("direction"),
                    format!("{other:?} is not one of: in, out, refused, event"),
                ));
            }
        };
        if t.topic.is_empty() {
            return Err(self.invalid(at("topic"), "say the topic (or, for an event, its name)"));
        }
        if direction == Direction::Event && (t.json.is_some() || t.not_json.is_some()) {
            return Err(self.invalid(at("json"), "an event's detail is text: use contains"));
        }
        let client_id = match &t.device {
            None => None,
            Some(d) => {
                let (pid, dn) = d.split_once('/').ok_or_else(|| {
                    self.invalid(at("device"), format!("{d:?} is not PRODUCT/DEVICE"))
                })?;
                let id = DeviceId::new(pid, dn).map_err(|e| self.invalid(at("device"), e))?;
                let known =
                    plan.gateways.iter().any(|g| g.id == id) || plan.subdevice(&id).is_some();
                if !known {
                    return Err(self.invalid(at("device"), format!("no device {id} in the fleet")));
                }
                Some(id.client_id())
            }
        };
        let json = |table: Option<toml::Table>, field: &str| -> Res<_> {
            table
                .map(|t| match serde_json::to_value(t) {
                    Ok(serde_json::Value::Object(m)) => Ok(m),
                    _ => Err(self.invalid(at(field), "not representable as JSON")),
                })
                .transpose()
        };
        let raw_bounds = RawBounds {
            min: t.min,
            max: t.max,
            exactly: t.exactly,
        };
        let mut bounds = self.bounds(format!("expect.transcript[{i}]"), raw_bounds)?;
        if (t.min, t.max, t.exactly) == (None, None, None) {
            bounds.min = Some(1);
        }
        Ok(TranscriptExpect {
            direction,
            topic: t.topic,
            client_id,
            json: json(t.json, "json")?,
            not_json: json(t.not_json, "not_json")?,
            contains: t.contains,
            bounds,
        })
    }

    fn counts(
        &self,
        counts: Vec<RawCount>,
        gaps: Vec<RawCosGap>,
        ranges: Vec<RawCosRange>,
        plan: &Plan,
        out: &mut Expectations,
    ) -> Res<()> {
        for (i, c) in counts.into_iter().enumerate() {
            let at = |field: &str| format!("expect.counts[{i}].{field}");
            let state = c.check().map_err(|(f, why)| self.invalid(at(f), why))?;
            let device = match &c.device {
                Some(d) => Some(self.device_ref(at("device"), d, plan)?),
                None => None,
            };
            let bounds = RawBounds {
                min: c.min,
                max: c.max,
                exactly: c.exactly,
            };
            if (bounds.min, bounds.max, bounds.exactly) == (None, None, None) {
                return Err(self.invalid(at("exactly"), "give exactly, min or max"));
            }
            out.counts.push(Count {
                of: c.of,
                device,
                state,
                version: c.version,
                percent: c.percent,
                object: c.object,
                status: c.status,
                bounds: self.bounds(format!("expect.counts[{i}]"), bounds)?,
            });
        }
        for (i, g) in gaps.into_iter().enumerate() {
            if g.min_ms == 0 {
                let field = format!("expect.cos_gaps[{i}].min_ms");
                return Err(self.invalid(field, "a gap of 0 ms always holds"));
            }
            out.cos_gaps.push(CosGap {
                object: g.object,
                min_ms: g.min_ms,
            });
        }
        for (i, r) in ranges.into_iter().enumerate() {
            if r.nth == 0 {
                let field = format!("expect.cos_ranges[{i}].nth");
                return Err(self.invalid(field, "requests count from 1"));
            }
            out.cos_ranges.push(CosRange {
                object: r.object,
                nth: r.nth,
                range: r.range,
            });
        }
        Ok(())
    }

    fn cos_request(&self, i: usize, r: RawCosRequest) -> Res<CosRequestExpect> {
        let field = |name: &str| format!("expect.cos_request[{i}].{name}");
        if r.nth == 0 {
            return Err(self.invalid(field("nth"), "requests count from 1"));
        }
        if let Some(s) = r.status.filter(|s| !(100..=599).contains(s)) {
            return Err(self.invalid(field("status"), format!("{s} is not an HTTP status")));
        }
        let range = match r.range.as_deref() {
            None => None,
            Some("none") => Some(None),
            Some(h) if h.starts_with("bytes=") => Some(Some(h.to_owned())),
            Some(h) => {
                return Err(self.invalid(
                    field("range"),
                    format!("{h:?} is neither \"none\" nor a bytes=... header"),
                ));
            }
        };
        if r.range_start.is_none()
            && range.is_none()
            && r.status.is_none()
            && r.gap_ms_at_least.is_none()
        {
            return Err(self.invalid(
                field("nth"),
                "say at least one of range_start, range, status, gap_ms_at_least",
            ));
        }
        Ok(CosRequestExpect {
            nth: r.nth,
            range_start: r.range_start,
            range,
            status: r.status,
            gap_ms_at_least: r.gap_ms_at_least,
        })
    }

    /// A device can only end on its factory version, a pushed version of its product, or the
    /// version a lying burner writes.
    fn reachable_version(&self, field: &str, id: &DeviceId, v: &str, plan: &Plan) -> Res<()> {
        let sub = plan.subdevice(id).expect("checked by device_ref");
        let pushed = plan
            .firmware
            .iter()
            .any(|f| f.product_id == id.product_id() && f.version == v);
        let lied = matches!(&sub.burner, BurnerPlan::WrongVersion { version, .. } if version == v);
        if sub.version == v || pushed || lied {
            Ok(())
        } else {
            Err(self.invalid(
                field,
                format!("{id} can never run {v:?}: not its factory version {:?} and no firmware of that version for its product", sub.version),
            ))
        }
    }
}
