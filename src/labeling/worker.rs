//! The background worker of one instance: every tick (or when woken), for every project, take
//! or renew its lease; the holder prepares it, refits when asked or when `refit_every` labels
//! changed since the last model (a detached `RefitJob` at low priority, so labels keep coming
//! in), stores the model version with its metrics, and scores new points.

use std::sync::Arc;

use driftwatch_leiad::eval::average_precision;
use driftwatch_leiad::{Backend, Detector, EndModel, GATE_CANDIDATES, Leiad, SeriesInput};
use serde_json::{Value, json};

use super::priority::background;
use super::session::Session;
use super::{Labeling, LabelingError, blocking, lock};
use crate::clock::now_ms;
use crate::storage::ModelRow;

impl Labeling {
    /// The background worker: every tick (or when woken), for every project, take or renew
    /// its lease; the holder prepares it, refits when asked or when `refit_every` labels
    /// arrived since the last model, and scores new points. Ends when `stop` fires, giving
    /// its leases back.
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let tick = std::time::Duration::from_millis(self.inner.settings.tick_ms.max(50));
        let mut last_score = std::time::Instant::now() - std::time::Duration::from_secs(3600);
        let mut held: Vec<i64> = Vec::new();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                () = self.inner.wake.notified() => {}
                _ = stop.changed() => break,
            }
            let score_now =
                last_score.elapsed() >= std::time::Duration::from_millis(self.inner.settings.score_interval_ms);
            if score_now {
                last_score = std::time::Instant::now();
            }
            match self.work(score_now).await {
                Ok(h) => held = h,
                Err(e) => {
                    self.inner.metrics.storage_errors.inc();
                    tracing::error!(error = %e, "Labeling worker pass failed.");
                }
            }
        }
        for id in held {
            let _ = self.storage().release_lease(id, &self.inner.instance).await;
        }
    }

    pub(super) async fn work(&self, score_now: bool) -> Result<Vec<i64>, LabelingError> {
        let now = now_ms();
        let until = now + self.inner.settings.lease_secs as i64 * 1000;
        let mut held = Vec::new();
        for p in self.storage().projects().await? {
            if p.status == "failed" || !self.storage().try_lease(p.id, &self.inner.instance, until, now).await? {
                continue;
            }
            held.push(p.id);
            let Some(Ok(s)) = self.session_of(&p) else { continue };
            self.sync(&s).await?;
            let budget_left = {
                let st = lock(&s.state);
                s.spec.budget.saturating_sub(st.leiad.labels().len())
            };
            self.inner.metrics.labeling_budget_remaining.with_label_values(&[&p.name]).set(budget_left as i64);
            if !s.refitting.load(std::sync::atomic::Ordering::SeqCst) && self.refit_due(&s).await? {
                s.refitting.store(true, std::sync::atomic::Ordering::SeqCst);
                lock(&s.state).fit_started = now_ms();
                let this = self.clone();
                let s2 = Arc::clone(&s);
                tokio::spawn(async move {
                    let started = std::time::Instant::now();
                    let outcome = this.refit(&s2).await;
                    let secs = started.elapsed().as_secs_f64();
                    this.inner.metrics.labeling_refit_seconds.observe(secs);
                    match outcome {
                        Ok(v) => {
                            this.inner.metrics.labeling_refits.with_label_values(&["ok"]).inc();
                            tracing::info!(project = %s2.project.name, version = v, seconds = secs, "Refit done.");
                        }
                        Err(e) => {
                            this.inner.metrics.labeling_refits.with_label_values(&["failed"]).inc();
                            tracing::error!(project = %s2.project.name, error = %e, "Refit failed.");
                        }
                    }
                    s2.refitting.store(false, std::sync::atomic::Ordering::SeqCst);
                    this.inner.wake.notify_one();
                });
            }
            if score_now && let Err(e) = self.score(&s).await {
                self.inner.metrics.storage_errors.inc();
                tracing::error!(project = %p.name, error = %e, "Live scoring failed.");
            }
        }
        Ok(held)
    }

    /// Whether a refit is asked for or `refit_every` labels changed since the last model.
    pub(super) async fn refit_due(&self, s: &Arc<Session>) -> Result<bool, LabelingError> {
        let requested = self.storage().refit_requested(s.project.id).await?;
        let (version_round, changes, fit_started) = {
            let st = lock(&s.state);
            (st.version_round, st.leiad.labels().len(), st.fit_started)
        };
        if requested > fit_started {
            return Ok(true);
        }
        let every = self.inner.settings.refit_every;
        if every == 0 || changes == 0 {
            return Ok(false);
        }
        let labels = self.storage().labels(s.project.id).await?;
        let changed =
            labels.iter().filter(|l| l.id > version_round || l.undone_round.is_some_and(|u| u > version_round)).count();
        Ok(changed >= every)
    }

    /// Fits, evaluates, stores and installs a new end model; returns its version.
    pub(super) async fn refit(&self, s: &Arc<Session>) -> Result<i64, LabelingError> {
        self.sync(s).await?;
        let labels = self.storage().labels(s.project.id).await?;
        let s2 = Arc::clone(s);
        let (job, round, version_round, prev_version) = blocking(move || {
            let mut st = lock(&s2.state);
            st.leiad.update_label_model();
            (st.leiad.refit_job(), st.applied, st.version_round, st.version)
        })
        .await?;
        let model = background(move || job.run()).await?.map_err(|e| LabelingError::Engine(e.to_string()))?;
        let bytes = model.to_bytes().map_err(|e| LabelingError::Engine(e.to_string()))?;
        let live = EndModel::from_bytes(&bytes).ok();
        let s2 = Arc::clone(s);
        let (metrics, n_labels, anomalies) = blocking(move || {
            let mut st = lock(&s2.state);
            // Points of labels in force added since the previous model: the previous model
            // never saw them, so its precision there is an honest held-out figure.
            let mut fresh = vec![false; st.leiad.golden().len()];
            for l in labels.iter().filter(|l| l.undone_round.is_none() && l.id > version_round) {
                if let Some(k) = s2.spec.series.iter().position(|x| x.id == l.series_id) {
                    let off = s2.state_offset(k);
                    fresh[off + l.start as usize..off + l.end as usize].fill(true);
                }
            }
            let golden = st.leiad.golden().to_vec();
            let ap_on = |scores: &[f64], mask: &dyn Fn(usize) -> bool| -> Option<f64> {
                let idx: Vec<usize> = (0..golden.len()).filter(|&i| golden[i] >= 0 && mask(i)).collect();
                let truth: Vec<bool> = idx.iter().map(|&i| golden[i] == 1).collect();
                (truth.contains(&true) && truth.contains(&false))
                    .then(|| average_precision(&idx.iter().map(|&i| scores[i]).collect::<Vec<_>>(), &truth))
            };
            let ap_prev_fresh = ap_on(st.leiad.probabilities(), &|i| fresh[i]);
            let prep = Arc::clone(st.leiad.prepared());
            let seeds: Vec<f64> =
                Detector::ALL.iter().filter_map(|d| ap_on(prep.scaled_scores(*d), &|_| true)).collect();
            st.leiad.install_end_model(model);
            st.live_model = live.map(Arc::new);
            let end = st.leiad.end_scores().expect("installed").to_vec();
            let ap_labels = ap_on(&end, &|_| true);
            let ap_label_model = ap_on(st.leiad.label_model_scores(), &|_| true);
            (
                json!({"ap_labels": ap_labels, "ap_new_labels": ap_prev_fresh, "new_label_version": prev_version,
                       "ap_seed_best": seeds.iter().copied().fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v)))),
                       "ap_label_model": ap_label_model, "installed_round": st.applied,
                       "end_model": end_model_kind(&st.leiad), "gate": gate_json(&st.leiad)}),
                st.leiad.labels().len() as i64,
                golden.iter().filter(|&&g| g == 1).count() as i64,
            )
        })
        .await?;
        let version = prev_version + 1;
        let row = ModelRow {
            version,
            round,
            labels: n_labels,
            anomalies,
            metrics: metrics.to_string(),
            created_at: now_ms(),
        };
        if !self.storage().save_model(s.project.id, &row, &bytes).await? {
            return Err(LabelingError::Conflict("version_taken", format!("model version {version} exists")));
        }
        {
            let mut st = lock(&s.state);
            st.version = version;
            st.version_round = round;
        }
        if let Some(ap) = metrics["ap_labels"].as_f64() {
            self.inner.metrics.labeling_model_ap.with_label_values(&[&s.project.name]).set(ap);
        }
        Ok(version)
    }

    /// Stores the model's probabilities: the pool's (transductive) once per model version, then
    /// every new point after the pool, scored with context.
    pub(super) async fn score(&self, s: &Arc<Session>) -> Result<(), LabelingError> {
        const BLOCK: usize = 4096;
        const CONTEXT: i64 = 2048;
        const MAX_NEW: i64 = 50_000;
        let (version, written) = {
            let st = lock(&s.state);
            (st.version, st.pool_scores_written)
        };
        if version == 0 {
            return Ok(());
        }
        let threshold = self.inner.settings.alert_probability;
        if written < version {
            let s2 = Arc::clone(s);
            let per_series: Vec<Vec<f32>> = blocking(move || {
                let st = lock(&s2.state);
                let p = st.leiad.probabilities();
                (0..s2.spec.series.len())
                    .map(|k| {
                        let off = s2.state_offset(k);
                        p[off..off + s2.spec.series[k].points as usize].iter().map(|&x| x as f32).collect()
                    })
                    .collect()
            })
            .await?;
            for (k, probs) in per_series.iter().enumerate() {
                for (b, chunk) in probs.chunks(BLOCK).enumerate() {
                    let first = b * BLOCK;
                    let ts = (s.ts[k][first], s.ts[k][first + chunk.len() - 1]);
                    self.storage()
                        .write_probabilities(s.project.id, s.spec.series[k].id, first as i64, ts, version, chunk)
                        .await?;
                }
            }
            lock(&s.state).pool_scores_written = version;
        }
        let mut max_p: Option<f64> = None;
        for (k, ser) in s.spec.series.iter().enumerate() {
            let done = self.storage().scored_until(s.project.id, ser.id).await?.max(ser.points);
            let stored = self.storage().point_count(ser.id).await?;
            if stored <= done {
                continue;
            }
            let upto = stored.min(done + MAX_NEW);
            let from = (done - CONTEXT).max(0);
            let pts = self.storage().points_by_index(ser.id, 1, from, upto).await?;
            let Some(cut) = pts.iter().position(|p| p.0 >= done) else { continue };
            let values: Vec<f64> = pts.iter().map(|p| p.2[0]).collect();
            let name = ser.name.clone();
            let period = s.state_period(k);
            let (prep, model) = {
                let st = lock(&s.state);
                (Arc::clone(st.leiad.prepared()), st.live_model.clone())
            };
            let Some(model) = model else { continue };
            // Off the session lock and below ingest's priority.
            let probs = background(move || {
                prep.features_for(&SeriesInput { name, values, period_secs: period }).map(|x| model.predict(&x))
            })
            .await?
            .map_err(|e| LabelingError::Engine(e.to_string()))?;
            let new: Vec<f32> = probs[cut..].iter().map(|&p| p as f32).collect();
            let (first, ts) = (pts[cut].0, (pts[cut].1, pts[pts.len() - 1].1));
            self.storage().write_probabilities(s.project.id, ser.id, first, ts, version, &new).await?;
            let above = new.iter().filter(|&&p| f64::from(p) >= threshold).count() as u64;
            self.inner.metrics.anomaly_points.with_label_values(&[&s.project.name]).inc_by(above);
            self.inner.metrics.anomaly_scored_points.with_label_values(&[&s.project.name]).inc_by(new.len() as u64);
            let last = f64::from(*new.last().expect("non-empty"));
            self.inner.metrics.set_watched_probability(&ser.name, last);
            let m = f64::from(new.iter().copied().fold(0f32, f32::max));
            max_p = Some(max_p.map_or(m, |x: f64| x.max(m)));
        }
        if let Some(m) = max_p {
            self.inner.metrics.anomaly_probability_max.with_label_values(&[&s.project.name]).set(m);
        }
        Ok(())
    }
}

/// Which learner answers in the installed end model: one of `driftwatch_leiad::GATE_CANDIDATES`
/// ("trees", "anchored", "supervised") for the gate, else "trees", "anchored" or "constant".
fn end_model_kind(leiad: &Leiad) -> &'static str {
    let Some(m) = leiad.end_model() else { return "constant" };
    if let Some(k) = m.gate_choice() {
        return GATE_CANDIDATES[k];
    }
    match m.backend() {
        Some(Backend::Anchored) => "anchored",
        Some(_) => "trees",
        None => "constant",
    }
}

/// The end model gate's evidence (see `driftwatch_leiad::GateEvidence`), or null before any.
fn gate_json(leiad: &Leiad) -> Value {
    leiad.gate_evidence().map_or(Value::Null, |e| {
        json!({"trees_top": e.top[0], "anchored_top": e.top[1], "supervised_top": e.top[2],
               "anomalies": e.anomalies, "next": GATE_CANDIDATES[leiad.gate_choice()]})
    })
}
