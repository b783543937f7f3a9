//! What the analyst is asked and shown: the round's suggestions (claimed for the analyst who
//! asks), a window with context per point, skipping a suggestion, and the labeling functions
//! with their statistics and vetoes.

use std::collections::HashMap;
use std::sync::Arc;

use driftwatch_leiad::Detector;
use serde_json::{Value, json};

use super::session::Session;
use super::views::{LfList, LfView, Skipped, SuggestionView, SuggestionsView, Vetoed, Votes, WindowView};
use super::{Labeling, LabelingError, MAX_LABEL_POINTS, blocking, check_author, lock};
use crate::clock::now_ms;
use crate::storage::{LfRow, LfStats, SuggestionRow};

impl Labeling {
    /// Ranked suggestions for `analyst`, claimed for them.
    ///
    /// # Errors
    /// As [`Labeling::ready`]; storage failures.
    pub async fn suggestions(&self, name: &str, analyst: &str, limit: usize) -> Result<SuggestionsView, LabelingError> {
        check_author(analyst)?;
        let s = self.ready(name).await?;
        let s2 = Arc::clone(&s);
        let (round, version, step) = blocking(move || {
            let mut st = lock(&s2.state);
            let key = (st.applied, st.version);
            if st.stepped.as_ref().is_none_or(|(r, v, _)| (*r, *v) != key) {
                let mut step = st.leiad.step();
                // A suggestion shows unlabeled points only: its window is trimmed to the
                // unlabeled run around its centre (the core ranks centres, not windows).
                let golden = st.leiad.golden();
                for x in &mut step.suggestions {
                    let off = s2.state_offset(x.window.series);
                    let c = x.centre - off;
                    let mut a = c;
                    while a > x.window.start && golden[off + a - 1] < 0 {
                        a -= 1;
                    }
                    let mut b = c + 1;
                    while b < x.window.end && golden[off + b] < 0 {
                        b += 1;
                    }
                    x.window.start = a;
                    x.window.end = b;
                }
                st.stepped = Some((key.0, key.1, step));
            }
            let (r, v, step) = st.stepped.clone().expect("just set");
            (r, v, step)
        })
        .await?;
        let now = now_ms();
        let rows: Vec<SuggestionRow> = step
            .suggestions
            .iter()
            .map(|x| SuggestionRow {
                id: 0,
                round,
                rank: x.rank as i64,
                series_id: s.spec.series[x.window.series].id,
                start: x.window.start as i64,
                end: x.window.end as i64,
                centre: (x.centre - s.state_offset(x.window.series)) as i64,
                score: x.score,
                probability: x.probability,
                breakdown:
                    json!({"lf_disagreement": x.breakdown.lf_disagreement, "lf_abstention": x.breakdown.lf_abstention,
                    "uncertainty": x.breakdown.uncertainty, "novelty": x.breakdown.novelty, "prior": x.breakdown.prior})
                    .to_string(),
                status: "open".into(),
                claimed_by: None,
                claimed_until: None,
            })
            .collect();
        self.storage().save_suggestions(s.project.id, &rows, now).await?;
        let stop = step.stop.map(|r| match r {
            driftwatch_leiad::StopReason::Budget => "budget",
            driftwatch_leiad::StopReason::Stable => "stable",
            driftwatch_leiad::StopReason::NoCandidate => "no_candidate",
        });
        let mut out = Vec::new();
        if stop != Some("budget") {
            let blocked = self.storage().blocked_windows(s.project.id, analyst, now).await?;
            let until = now + self.inner.settings.claim_secs as i64 * 1000;
            for row in self.storage().suggestions(s.project.id, round, now).await? {
                if out.len() >= limit {
                    break;
                }
                if row.status != "open"
                    || blocked.iter().any(|&(sid, a, b)| sid == row.series_id && a < row.end && row.start < b)
                {
                    continue;
                }
                if self.storage().claim(s.project.id, row.id, analyst, until, now).await? {
                    out.push(suggestion_view(&s, row, analyst, until));
                }
            }
        }
        Ok(SuggestionsView { round, model_version: version, stop, suggestions: out })
    }

    /// Per point of a window with context: values, timestamps, model probability, seed
    /// detector scores, LF votes and labels.
    ///
    /// # Errors
    /// 400 for a window outside the pool; as [`Labeling::ready`].
    pub async fn window(
        &self,
        name: &str,
        series: &str,
        start: i64,
        end: i64,
        context: i64,
    ) -> Result<WindowView, LabelingError> {
        let s = self.ready(name).await?;
        let k = Self::series_index(&s, series)?;
        let n = s.spec.series[k].points;
        if !(0 <= start && start < end && end <= n) || end - start > MAX_LABEL_POINTS {
            return Err(LabelingError::Invalid(
                "invalid_query",
                format!("window [{start}, {end}) must lie in [0, {n}) and span at most {MAX_LABEL_POINTS} points"),
            ));
        }
        let context = context.clamp(0, 5_000);
        let (from, to) = ((start - context).max(0), (end + context).min(n));
        let s2 = Arc::clone(&s);
        blocking(move || {
            let st = lock(&s2.state);
            let off = s2.state_offset(k);
            let range = off + from as usize..off + to as usize;
            let prep = st.leiad.prepared();
            let values = &prep.pool().series()[k].values[from as usize..to as usize];
            let seeds: serde_json::Map<String, Value> = Detector::ALL
                .iter()
                .map(|d| (d.name().to_owned(), Value::from(prep.scaled_scores(*d)[range.clone()].to_vec())))
                .collect();
            let (va, vn): (Vec<u32>, Vec<u32>) = range.clone().map(|i| st.leiad.vote_tally(i)).unzip();
            WindowView {
                series: s2.spec.series[k].name.clone(),
                start,
                end,
                from,
                to,
                index: (from..to).collect(),
                ts: s2.ts[k][from as usize..to as usize].to_vec(),
                value: values.to_vec(),
                probability: st.leiad.probabilities()[range.clone()].to_vec(),
                seeds,
                votes: Votes { anomaly: va, normal: vn },
                labels: st.leiad.golden()[range].iter().map(|&g| i64::from(g)).collect(),
                round: st.applied,
                model_version: st.version,
            }
        })
        .await
    }

    /// Skips a suggestion for everyone.
    ///
    /// # Errors
    /// 404 unknown suggestion, 409 when it is no longer open.
    pub async fn skip(&self, name: &str, id: i64, author: &str) -> Result<Skipped, LabelingError> {
        check_author(author)?;
        let p = self.project(name).await?;
        let sug = self
            .storage()
            .suggestion(p.id, id)
            .await?
            .ok_or_else(|| LabelingError::NotFound(format!("no suggestion {id}")))?;
        if !self.storage().skip_suggestion(p.id, id).await? {
            return Err(LabelingError::Conflict(
                "suggestion_closed",
                format!("suggestion {id} is already {}", sug.status),
            ));
        }
        Ok(Skipped { skipped: id })
    }

    /// Vetoes or restores an LF.
    ///
    /// # Errors
    /// 404 unknown LF.
    pub async fn veto(&self, name: &str, lf: i64, vetoed: bool, author: &str) -> Result<Vetoed, LabelingError> {
        check_author(author)?;
        let s = self.ready(name).await?;
        let known = lock(&s.state).leiad.lf_list().iter().any(|f| f.id == lf as u64);
        if !known {
            return Err(LabelingError::NotFound(format!("no labeling function {lf} in force")));
        }
        self.storage().veto_lf(s.project.id, lf, vetoed, author, now_ms()).await?;
        self.after_change(&s).await?;
        let lfs = self.lfs(name).await?;
        Ok(Vetoed { lf: lfs.lfs.into_iter().find(|x| x.id == lf) })
    }

    /// Every LF with its statistics (refits the label model first if stale).
    ///
    /// # Errors
    /// As [`Labeling::ready`].
    pub async fn lfs(&self, name: &str) -> Result<LfList, LabelingError> {
        let s = self.ready(name).await?;
        let s2 = Arc::clone(&s);
        let (round, rows, fresh) = blocking(move || {
            let mut st = lock(&s2.state);
            if let Some((r, rows)) = &st.lf_cache
                && *r == st.applied
            {
                return (*r, rows.clone(), false);
            }
            st.leiad.update_label_model();
            let rows: Vec<LfRow> = st
                .leiad
                .lfs()
                .into_iter()
                .map(|f| LfRow {
                    lf_id: f.id as i64,
                    kind: f.kind.name(),
                    params: json!({"from_labels": f.from_labels, "positives": f.positives}).to_string(),
                    stats: LfStats {
                        coverage: f.coverage,
                        conflict: f.conflict,
                        learned_accuracy: f.learned_accuracy,
                        golden_accuracy: f.golden_accuracy,
                        active: f.active,
                        vetoed: f.vetoed,
                    },
                })
                .collect();
            st.lf_cache = Some((st.applied, rows.clone()));
            (st.applied, rows, true)
        })
        .await?;
        if fresh {
            self.storage().save_lfs(s.project.id, round, &rows).await?;
        }
        // Session label ids → stored label ids, for "built from".
        let back: HashMap<u64, i64> = lock(&s.state).label_ids.iter().map(|(db, se)| (*se, *db)).collect();
        let lfs: Vec<LfView> = rows
            .iter()
            .map(|f| {
                let params: Value = serde_json::from_str(&f.params).unwrap_or(Value::Null);
                let from: Vec<i64> = params["from_labels"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_u64).filter_map(|x| back.get(&x).copied()).collect())
                    .unwrap_or_default();
                LfView {
                    id: f.lf_id,
                    name: f.kind.clone(),
                    kind: f.kind.split(':').next().unwrap_or("").to_owned(),
                    from_labels: from,
                    positives: params["positives"].clone(),
                    stats: f.stats.clone(),
                }
            })
            .collect();
        Ok(LfList { round, lfs })
    }
}

/// A stored suggestion as the API shows it, claimed by `analyst` until `until`.
fn suggestion_view(s: &Session, r: SuggestionRow, analyst: &str, until: i64) -> SuggestionView {
    SuggestionView {
        id: r.id,
        round: r.round,
        rank: r.rank,
        series: s.series_name(r.series_id).to_owned(),
        start: r.start,
        end: r.end,
        centre: r.centre,
        score: r.score,
        probability: r.probability,
        breakdown: serde_json::from_str::<Value>(&r.breakdown).unwrap_or(Value::Null),
        status: r.status,
        claimed_by: Some(analyst.to_owned()),
        claimed_until: Some(until),
    }
}
