//! Labels: a labeled window (from a suggestion), an edit (a new label replacing one in force),
//! an undo, the list, and an analyst's verdict on a change interval, which becomes a label in
//! every ready project holding it. Conflicts are checked in storage, in the transaction that
//! opens the round.

use super::session::{Session, Spec};
use super::views::{
    ExportRow, FeedbackView, LabelChange, LabelExport, LabelList, LabelView, ProjectLabel, Undone, Verdict,
};
use super::{LabelRequest, Labeling, LabelingError, MAX_LABEL_POINTS, check_author, conflict, invalid, lock};
use crate::clock::now_ms;
use crate::storage::{LabelRow, NewLabel};

impl Labeling {
    /// Stores a labeled window.
    ///
    /// # Errors
    /// 400 for a bad window or ranges, 409 for a stale round or a suggestion someone else has.
    pub async fn label(&self, name: &str, req: LabelRequest) -> Result<LabelChange, LabelingError> {
        check_author(&req.author)?;
        let s = self.ready(name).await?;
        let k = Self::series_index(&s, &req.series)?;
        let n = s.spec.series[k].points;
        if !(0 <= req.start && req.start < req.end && req.end <= n) {
            return Err(invalid(format!("window [{}, {}) must lie in the pool [0, {n})", req.start, req.end)));
        }
        if req.end - req.start > MAX_LABEL_POINTS {
            return Err(invalid(format!("a label spans at most {MAX_LABEL_POINTS} points")));
        }
        let current = lock(&s.state).applied;
        if req.round < 0 || req.round > current {
            return Err(LabelingError::Invalid(
                "invalid_round",
                format!("round {} is not a round of this project (now {current})", req.round),
            ));
        }
        let labels = label_string(req.start, req.end, &req.anomalies)?;
        if let Some(id) = req.suggestion {
            let sug = self
                .storage()
                .suggestion(s.project.id, id)
                .await?
                .ok_or_else(|| LabelingError::NotFound(format!("no suggestion {id}")))?;
            if sug.series_id != s.spec.series[k].id || sug.start != req.start || sug.end != req.end {
                return Err(invalid(format!(
                    "suggestion {id} is the window [{}, {}) of another series or range",
                    sug.start, sug.end
                )));
            }
        }
        let (start_ts, end_ts) = s.window_times(s.spec.series[k].id, req.start, req.end);
        let new = NewLabel {
            series_id: s.spec.series[k].id,
            start: req.start,
            end: req.end,
            labels,
            // A window nobody suggested is the analyst's own choice: its own source.
            source: if req.suggestion.is_some() { "suggestion" } else { "free" },
            replaces: None,
            suggestion_id: req.suggestion,
            start_ts,
            end_ts,
        };
        let row = self.storage().add_label(s.project.id, &new, &req.author, Some(req.round), now_ms()).await?;
        let row = row.map_err(conflict)?;
        self.inner.metrics.labeling_labels.with_label_values(&[new.source]).inc();
        self.after_change(&s).await?;
        Ok(LabelChange { label: label_view(&s, &row), round: lock(&s.state).applied })
    }

    /// Replaces a label in force with new anomalous ranges (same window).
    ///
    /// # Errors
    /// 404 unknown label, 409 when it is no longer in force, 400 bad ranges.
    pub async fn edit(
        &self,
        name: &str,
        id: i64,
        author: &str,
        ranges: &[[i64; 2]],
    ) -> Result<LabelChange, LabelingError> {
        check_author(author)?;
        let s = self.ready(name).await?;
        let old = self
            .storage()
            .label(s.project.id, id)
            .await?
            .ok_or_else(|| LabelingError::NotFound(format!("no label {id}")))?;
        let labels = label_string(old.start, old.end, ranges)?;
        let new = NewLabel {
            series_id: old.series_id,
            start: old.start,
            end: old.end,
            labels,
            source: "edit",
            replaces: Some(id),
            suggestion_id: None,
            start_ts: old.start_ts.or_else(|| s.window_times(old.series_id, old.start, old.end).0),
            end_ts: old.end_ts.or_else(|| s.window_times(old.series_id, old.start, old.end).1),
        };
        let row = self.storage().add_label(s.project.id, &new, author, None, now_ms()).await?.map_err(conflict)?;
        self.inner.metrics.labeling_labels.with_label_values(&["edit"]).inc();
        self.after_change(&s).await?;
        Ok(LabelChange { label: label_view(&s, &row), round: lock(&s.state).applied })
    }

    /// Undoes a label (`id`), or the author's newest label in force.
    ///
    /// # Errors
    /// 404 when there is nothing to undo, 409 when the label is already undone.
    pub async fn undo(&self, name: &str, id: Option<i64>, author: &str) -> Result<Undone, LabelingError> {
        check_author(author)?;
        let s = self.ready(name).await?;
        let id = match id {
            Some(id) => id,
            None => self
                .storage()
                .newest_label_of(s.project.id, author)
                .await?
                .ok_or_else(|| LabelingError::NotFound(format!("{author} has no label in force to undo")))?,
        };
        let row = self.storage().undo_label(s.project.id, id, author, now_ms()).await?.map_err(conflict)?;
        self.after_change(&s).await?;
        Ok(Undone { undone: label_view(&s, &row), round: lock(&s.state).applied })
    }

    /// Every label of a project, newest first.
    ///
    /// # Errors
    /// As [`Labeling::ready`].
    pub async fn labels(&self, name: &str) -> Result<LabelList, LabelingError> {
        let s = self.ready(name).await?;
        let rows = self.storage().labels(s.project.id).await?;
        Ok(LabelList { labels: rows.iter().rev().map(|r| label_view(&s, r)).collect() })
    }

    /// Every label in force, as runs of points that share a verdict (anomalous ranges and the
    /// normal stretches between them), by series and start, with their times.
    ///
    /// # Errors
    /// As [`Labeling::ready`].
    pub async fn export(&self, name: &str) -> Result<LabelExport, LabelingError> {
        let s = self.ready(name).await?;
        let rows = self.storage().labels(s.project.id).await?;
        let mut out = Vec::new();
        for r in rows.iter().filter(|r| r.undone_round.is_none()) {
            let bytes = r.labels.as_bytes();
            let mut a = 0;
            while a < bytes.len() {
                let mut b = a + 1;
                while b < bytes.len() && bytes[b] == bytes[a] {
                    b += 1;
                }
                let (start, end) = (r.start + a as i64, r.start + b as i64);
                let (start_ts, end_ts) = s.window_times(r.series_id, start, end);
                out.push(ExportRow {
                    label_id: r.id,
                    series: s.series_name(r.series_id).to_owned(),
                    start,
                    end,
                    start_ts,
                    end_ts,
                    label: if bytes[a] == b'1' { "anomaly" } else { "normal" },
                    author: r.author.clone(),
                    source: r.source.clone(),
                    created_at: r.created_at,
                });
                a = b;
            }
        }
        out.sort_by(|x, y| (&x.series, x.start).cmp(&(&y.series, y.start)));
        Ok(LabelExport { project: s.project.name.clone(), labels: out })
    }

    /// Feedback on a change interval: stored as triage, and with `also_label` a label (all
    /// anomalous for `confirm`, all normal for `dismiss`) in every ready project whose pool holds
    /// the interval's start. Without it no project's budget is used.
    ///
    /// # Errors
    /// 404 unknown series or interval, 400 bad verdict.
    pub async fn interval_feedback(
        &self,
        series: &str,
        start: i64,
        verdict: &str,
        author: &str,
        also_label: bool,
    ) -> Result<FeedbackView, LabelingError> {
        check_author(author)?;
        if !matches!(verdict, "confirm" | "dismiss") {
            return Err(LabelingError::Invalid(
                "invalid_verdict",
                format!("verdict must be confirm or dismiss, not {verdict:?}"),
            ));
        }
        let s = self
            .storage()
            .series(series)
            .await?
            .ok_or_else(|| LabelingError::NotFound(format!("no series {series:?}")))?;
        let iv =
            self.storage().interval_at(s.id, start).await?.ok_or_else(|| {
                LabelingError::NotFound(format!("series {series:?} has no interval starting at {start}"))
            })?;
        let now = now_ms();
        self.storage().set_feedback(s.id, start, verdict, author, now).await?;
        let mut made = Vec::new();
        let projects = if also_label { self.storage().projects().await? } else { Vec::new() };
        for p in projects {
            let Ok(spec) = serde_json::from_str::<Spec>(&p.spec) else { continue };
            let Some(ps) = spec.series.iter().find(|x| x.id == s.id) else { continue };
            if p.status != "ready" || iv.start_index >= ps.points {
                continue;
            }
            let end = iv.end_index.min(ps.points).min(iv.start_index + MAX_LABEL_POINTS).max(iv.start_index + 1);
            let end_ts = if end == iv.end_index {
                Some(iv.end_ts)
            } else {
                self.storage().points_by_index(s.id, s.dim as usize, end - 1, end).await?.first().map(|p| p.1)
            };
            let bit = if verdict == "confirm" { "1" } else { "0" };
            let new = NewLabel {
                series_id: s.id,
                start: iv.start_index,
                end,
                labels: bit.repeat((end - iv.start_index) as usize),
                source: "interval",
                replaces: None,
                suggestion_id: None,
                start_ts: Some(iv.start_ts),
                end_ts,
            };
            if let Ok(row) = self.storage().add_label(p.id, &new, author, None, now).await? {
                self.inner.metrics.labeling_labels.with_label_values(&["interval"]).inc();
                made.push(ProjectLabel { project: p.name, label: row.id });
            }
        }
        Ok(FeedbackView {
            series: series.to_owned(),
            start,
            feedback: Verdict { verdict: verdict.to_owned(), author: author.to_owned(), at: now },
            labels: made,
        })
    }
}

/// A stored label as the API shows it.
pub(super) fn label_view(s: &Session, r: &LabelRow) -> LabelView {
    // Labels stored before their times were (migration 0006) take them from the pool.
    let (start_ts, end_ts) = match (r.start_ts, r.end_ts) {
        (Some(a), Some(b)) => (Some(a), Some(b)),
        _ => s.window_times(r.series_id, r.start, r.end),
    };
    LabelView {
        id: r.id,
        series: s.series_name(r.series_id).to_owned(),
        start: r.start,
        end: r.end,
        start_ts,
        end_ts,
        anomalies: ranges_of(r.start, &r.labels),
        anomalous_points: r.anomalies,
        author: r.author.clone(),
        created_at: r.created_at,
        source: r.source.clone(),
        replaces: r.replaces,
        suggestion: r.suggestion_id,
        undone_at: r.undone_at,
        undone_by: r.undone_by.clone(),
        in_force: r.undone_round.is_none(),
    }
}

/// `'0'`/`'1'` per point of `[start, end)` from anomalous ranges.
fn label_string(start: i64, end: i64, ranges: &[[i64; 2]]) -> Result<String, LabelingError> {
    let mut out = vec![b'0'; (end - start) as usize];
    for [a, b] in ranges {
        if a >= b || *a < start || *b > end {
            return Err(invalid(format!("anomaly range [{a}, {b}) is empty or outside the window [{start}, {end})")));
        }
        for c in &mut out[(a - start) as usize..(b - start) as usize] {
            *c = b'1';
        }
    }
    Ok(String::from_utf8(out).expect("ASCII"))
}

/// Anomalous ranges of a label string starting at `start`.
fn ranges_of(start: i64, labels: &str) -> Vec<[i64; 2]> {
    let mut out = Vec::new();
    let mut open: Option<i64> = None;
    for (k, c) in labels.bytes().enumerate() {
        let i = start + k as i64;
        match (c == b'1', open) {
            (true, None) => open = Some(i),
            (false, Some(a)) => {
                out.push([a, i]);
                open = None;
            }
            _ => {}
        }
    }
    if let Some(a) = open {
        out.push([a, start + labels.len() as i64]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn ranges_round_trip_through_label_strings() {
        let s = label_string(100, 110, &[[102, 104], [103, 106], [109, 110]]).unwrap();
        assert_eq!(s, "0011110001");
        assert_eq!(ranges_of(100, &s), vec![[102, 106], [109, 110]]);
        assert_eq!(ranges_of(0, "000"), Vec::<[i64; 2]>::new());
        assert!(label_string(100, 110, &[[99, 104]]).is_err());
        assert!(label_string(100, 110, &[[105, 105]]).is_err());
        assert!(label_string(100, 110, &[[105, 111]]).is_err());
    }
}
