//! Prometheus metrics: one registry owned by the service (no globals), metric names defined here
//! and nowhere else, recorded once per batch rather than per point. Labels are bounded: rejection
//! reasons, interval outcomes, shard numbers, Kafka partitions; never a series name (except the
//! capped set of watched series).

use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Every metric the service exports.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// Points fed to detectors.
    pub points_ingested: IntCounter,
    /// Points refused, by reason.
    pub points_rejected: IntCounterVec,
    /// Time in the detectors per batch.
    pub detector_seconds: Histogram,
    /// Intervals opened and closed.
    pub intervals: IntCounterVec,
    /// Intervals open now (as last reported per batch).
    pub open_intervals: IntGauge,
    /// Series known to storage.
    pub series: IntGauge,
    /// Storage write latency per batch.
    pub storage_write_seconds: Histogram,
    /// Failed storage writes.
    pub storage_errors: IntCounter,
    /// Failed result writes by kind (unavailable, full, other).
    pub storage_failures: IntCounterVec,
    /// Detectors rebuilt from storage after a failed write, by outcome (ok, failed).
    pub recoveries: IntCounterVec,
    /// Batches waiting per detector thread.
    pub queue_depth: IntGaugeVec,
    /// HTTP responses by route template, method and status.
    pub http_requests: IntCounterVec,
    /// HTTP latency by route template.
    pub http_seconds: prometheus::HistogramVec,
    /// Watched series only: points fed to the detector.
    pub watched_points: IntCounterVec,
    /// Watched series only: 1 while a change interval is open.
    pub watched_open: IntGaugeVec,
    /// Watched series only: 1 while the detector is still warming up (no detection yet).
    pub watched_warming_up: IntGaugeVec,
    /// Watched series only: the latest window score.
    pub watched_window_score: GaugeVec,
    /// Watched series only: the largest point anomaly score of the latest detector block.
    pub watched_anomaly: GaugeVec,
    /// Watched series only: 1 while the latest block's anomaly scores are warming up (0s that
    /// mean nothing).
    pub watched_anomaly_warming_up: IntGaugeVec,
    /// Kafka messages by outcome (processed, dead_lettered).
    pub kafka_messages: IntCounterVec,
    /// Points accepted from Kafka.
    pub kafka_points: IntCounter,
    /// Messages produced to the dead-letter topic, by reason.
    pub kafka_dead_letters: IntCounterVec,
    /// Consumer lag per assigned partition (messages behind the high watermark).
    pub kafka_lag: IntGaugeVec,
    /// Rebalance callbacks by kind (assign, revoke, error).
    pub kafka_rebalances: IntCounterVec,
    /// Time to make a partition's position durable (checkpoints, offset row, broker commit).
    pub kafka_commit_seconds: Histogram,
    /// Partitions assigned to this instance.
    pub kafka_assigned: IntGauge,
    /// Partitions paused because their queue is full (back-pressure).
    pub kafka_paused: IntGauge,
    /// Times a partition was paused for back-pressure.
    pub kafka_pauses: IntCounter,
    /// Interval events produced to the events topic, by event.
    pub kafka_events: IntCounterVec,
    /// Kafka client failures, by operation.
    pub kafka_errors: IntCounterVec,
    /// Age of a Kafka message (now − its timestamp) when its results are stored.
    pub kafka_record_age_seconds: Histogram,
    /// Requests abandoned at `http.request_timeout_ms`.
    pub http_timeouts: IntCounter,
    /// API requests refused because `http.max_in_flight` were already being served.
    pub http_shed: IntCounter,
    /// Labels stored, by source (suggestion, edit, interval).
    pub labeling_labels: IntCounterVec,
    /// End-model refits by outcome (ok, failed).
    pub labeling_refits: IntCounterVec,
    /// Refit duration.
    pub labeling_refit_seconds: Histogram,
    /// Per project: the newest model's average precision on the human labels.
    pub labeling_model_ap: GaugeVec,
    /// Per project: windows left in the label budget.
    pub labeling_budget_remaining: IntGaugeVec,
    /// Per project: live points scored by its end model.
    pub anomaly_scored_points: IntCounterVec,
    /// Per project: live points scored at or above `labeling.alert_probability`.
    pub anomaly_points: IntCounterVec,
    /// Per project: the highest probability of the latest scoring pass.
    pub anomaly_probability_max: GaugeVec,
    /// Watched series only: the latest live anomaly probability.
    pub watched_anomaly_probability: GaugeVec,
    watched: std::sync::Arc<std::collections::HashSet<String>>,
}

impl Metrics {
    /// A fresh registry with every metric registered and no watched series.
    pub fn new() -> Self {
        Self::with_watched(&[])
    }

    /// A fresh registry; `watched` series (already capped by the settings) get labelled metrics.
    pub fn with_watched(watched: &[String]) -> Self {
        let registry = Registry::new();
        let m = Self {
            points_ingested: IntCounter::new("driftwatch_points_ingested_total", "Points fed to a detector.")
                .expect("valid metric"),
            points_rejected: IntCounterVec::new(
                Opts::new("driftwatch_points_rejected_total", "Points refused, by reason."),
                &["reason"],
            )
            .expect("valid metric"),
            detector_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "driftwatch_detector_batch_duration_seconds",
                    "Time spent in the detectors per ingested batch.",
                )
                .buckets(vec![1e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.05, 0.1, 0.5]),
            )
            .expect("valid metric"),
            intervals: IntCounterVec::new(
                Opts::new("driftwatch_intervals_total", "Change intervals by event (opened, closed)."),
                &["event"],
            )
            .expect("valid metric"),
            open_intervals: IntGauge::new("driftwatch_open_intervals", "Change intervals open now.")
                .expect("valid metric"),
            series: IntGauge::new("driftwatch_series", "Series known to storage.").expect("valid metric"),
            storage_write_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "driftwatch_storage_write_duration_seconds",
                    "Time to write one batch's results to storage.",
                )
                .buckets(vec![1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.05, 0.1, 0.5, 1.0]),
            )
            .expect("valid metric"),
            storage_errors: IntCounter::new("driftwatch_storage_errors_total", "Storage operations that failed.")
                .expect("valid metric"),
            storage_failures: IntCounterVec::new(
                Opts::new(
                    "driftwatch_storage_write_failures_total",
                    "Result writes that failed, by kind: unavailable (database unreachable), full (quota or disk), other.",
                ),
                &["kind"],
            )
            .expect("valid metric"),
            recoveries: IntCounterVec::new(
                Opts::new(
                    "driftwatch_detector_recoveries_total",
                    "Detectors rebuilt from storage (checkpoint + stored points) after a failed write, by outcome.",
                ),
                &["outcome"],
            )
            .expect("valid metric"),
            queue_depth: IntGaugeVec::new(
                Opts::new("driftwatch_pipeline_queue_depth", "Batches waiting per detector thread."),
                &["shard"],
            )
            .expect("valid metric"),
            http_requests: IntCounterVec::new(
                Opts::new("driftwatch_http_requests_total", "HTTP responses by route template, method and status."),
                &["route", "method", "status"],
            )
            .expect("valid metric"),
            http_seconds: prometheus::HistogramVec::new(
                HistogramOpts::new(
                    "driftwatch_http_request_duration_seconds",
                    "HTTP request latency by route template.",
                )
                .buckets(vec![1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0]),
                &["route"],
            )
            .expect("valid metric"),
            watched_points: IntCounterVec::new(
                Opts::new("driftwatch_watched_series_points_total", "Points fed to the detector of a watched series."),
                &["series"],
            )
            .expect("valid metric"),
            watched_warming_up: IntGaugeVec::new(
                Opts::new(
                    "driftwatch_watched_series_warming_up",
                    "1 while the detector of a watched series is still warming up (not detecting yet).",
                ),
                &["series"],
            )
            .expect("valid metric"),
            watched_open: IntGaugeVec::new(
                Opts::new(
                    "driftwatch_watched_series_interval_open",
                    "1 while a change interval is open on a watched series.",
                ),
                &["series"],
            )
            .expect("valid metric"),
            watched_window_score: GaugeVec::new(
                Opts::new(
                    "driftwatch_watched_series_window_score",
                    "Latest window score (1 - cos) of a watched series.",
                ),
                &["series"],
            )
            .expect("valid metric"),
            watched_anomaly: GaugeVec::new(
                Opts::new(
                    "driftwatch_watched_series_anomaly_score",
                    "Largest point anomaly score (calibrated, 0 to 1) of the latest block of a watched series.",
                ),
                &["series"],
            )
            .expect("valid metric"),
            watched_anomaly_warming_up: IntGaugeVec::new(
                Opts::new(
                    "driftwatch_watched_series_anomaly_warming_up",
                    "1 while the anomaly score of a watched series is warming up (its scores are 0 and mean nothing).",
                ),
                &["series"],
            )
            .expect("valid metric"),
            kafka_messages: IntCounterVec::new(
                Opts::new("driftwatch_kafka_messages_total", "Kafka messages by outcome (processed, dead_lettered)."),
                &["outcome"],
            )
            .expect("valid metric"),
            kafka_points: IntCounter::new("driftwatch_kafka_points_total", "Points accepted from Kafka.")
                .expect("valid metric"),
            kafka_dead_letters: IntCounterVec::new(
                Opts::new(
                    "driftwatch_kafka_dead_letters_total",
                    "Messages produced to the dead-letter topic, by reason.",
                ),
                &["reason"],
            )
            .expect("valid metric"),
            kafka_lag: IntGaugeVec::new(
                Opts::new(
                    "driftwatch_kafka_consumer_lag",
                    "Messages between the consumed position and the high watermark, per assigned partition.",
                ),
                &["topic", "partition"],
            )
            .expect("valid metric"),
            kafka_rebalances: IntCounterVec::new(
                Opts::new(
                    "driftwatch_kafka_rebalances_total",
                    "Consumer-group rebalances by kind (assign, revoke, error).",
                ),
                &["kind"],
            )
            .expect("valid metric"),
            kafka_commit_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "driftwatch_kafka_commit_duration_seconds",
                    "Time to make a partition's position durable: checkpoints and offset stored, offset committed.",
                )
                .buckets(vec![1e-3, 5e-3, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
            )
            .expect("valid metric"),
            kafka_assigned: IntGauge::new("driftwatch_kafka_assigned_partitions", "Partitions assigned here.")
                .expect("valid metric"),
            kafka_paused: IntGauge::new(
                "driftwatch_kafka_paused_partitions",
                "Partitions paused because their queue is full (back-pressure).",
            )
            .expect("valid metric"),
            kafka_pauses: IntCounter::new(
                "driftwatch_kafka_pauses_total",
                "Times a partition was paused because its queue was full (back-pressure).",
            )
            .expect("valid metric"),
            kafka_events: IntCounterVec::new(
                Opts::new("driftwatch_kafka_events_total", "Interval events produced to the events topic, by event."),
                &["event"],
            )
            .expect("valid metric"),
            kafka_errors: IntCounterVec::new(
                Opts::new("driftwatch_kafka_errors_total", "Kafka source failures, by operation."),
                &["op"],
            )
            .expect("valid metric"),
            kafka_record_age_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "driftwatch_kafka_record_age_seconds",
                    "Time from a Kafka message's timestamp to its results being stored.",
                )
                .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            )
            .expect("valid metric"),
            http_timeouts: IntCounter::new(
                "driftwatch_http_timeouts_total",
                "HTTP requests abandoned at http.request_timeout_ms (answered 503 timeout).",
            )
            .expect("valid metric"),
            http_shed: IntCounter::new(
                "driftwatch_http_shed_total",
                "API requests refused with 503 overloaded because http.max_in_flight were in progress.",
            )
            .expect("valid metric"),
            labeling_labels: IntCounterVec::new(
                Opts::new("driftwatch_labeling_labels_total", "Labels stored, by source (suggestion, free, edit, interval)."),
                &["source"],
            )
            .expect("valid metric"),
            labeling_refits: IntCounterVec::new(
                Opts::new("driftwatch_labeling_refits_total", "End-model refits, by outcome."),
                &["outcome"],
            )
            .expect("valid metric"),
            labeling_refit_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "driftwatch_labeling_refit_seconds",
                    "Time to fit, evaluate and store an end model.",
                )
                .buckets(vec![0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0]),
            )
            .expect("valid metric"),
            labeling_model_ap: GaugeVec::new(
                Opts::new(
                    "driftwatch_labeling_model_average_precision",
                    "The newest end model's average precision on the human labels, per project.",
                ),
                &["project"],
            )
            .expect("valid metric"),
            labeling_budget_remaining: IntGaugeVec::new(
                Opts::new("driftwatch_labeling_budget_remaining", "Windows left in the label budget, per project."),
                &["project"],
            )
            .expect("valid metric"),
            anomaly_scored_points: IntCounterVec::new(
                Opts::new("driftwatch_anomaly_scored_points_total", "Live points scored by a project's end model."),
                &["project"],
            )
            .expect("valid metric"),
            anomaly_points: IntCounterVec::new(
                Opts::new(
                    "driftwatch_anomaly_points_total",
                    "Live points scored at or above labeling.alert_probability, per project.",
                ),
                &["project"],
            )
            .expect("valid metric"),
            anomaly_probability_max: GaugeVec::new(
                Opts::new(
                    "driftwatch_anomaly_probability_max",
                    "Highest anomaly probability of the latest scoring pass, per project.",
                ),
                &["project"],
            )
            .expect("valid metric"),
            watched_anomaly_probability: GaugeVec::new(
                Opts::new(
                    "driftwatch_watched_anomaly_probability",
                    "Watched series only: the latest live anomaly probability from the end model.",
                ),
                &["series"],
            )
            .expect("valid metric"),
            watched: std::sync::Arc::new(watched.iter().cloned().collect()),
            registry,
        };
        for c in [
            Box::new(m.points_ingested.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.points_rejected.clone()),
            Box::new(m.detector_seconds.clone()),
            Box::new(m.intervals.clone()),
            Box::new(m.open_intervals.clone()),
            Box::new(m.series.clone()),
            Box::new(m.storage_write_seconds.clone()),
            Box::new(m.storage_errors.clone()),
            Box::new(m.storage_failures.clone()),
            Box::new(m.recoveries.clone()),
            Box::new(m.queue_depth.clone()),
            Box::new(m.http_requests.clone()),
            Box::new(m.http_seconds.clone()),
            Box::new(m.watched_points.clone()),
            Box::new(m.watched_open.clone()),
            Box::new(m.watched_warming_up.clone()),
            Box::new(m.watched_window_score.clone()),
            Box::new(m.watched_anomaly.clone()),
            Box::new(m.watched_anomaly_warming_up.clone()),
            Box::new(m.kafka_messages.clone()),
            Box::new(m.kafka_points.clone()),
            Box::new(m.kafka_dead_letters.clone()),
            Box::new(m.kafka_lag.clone()),
            Box::new(m.kafka_rebalances.clone()),
            Box::new(m.kafka_commit_seconds.clone()),
            Box::new(m.kafka_assigned.clone()),
            Box::new(m.kafka_paused.clone()),
            Box::new(m.kafka_pauses.clone()),
            Box::new(m.kafka_events.clone()),
            Box::new(m.kafka_errors.clone()),
            Box::new(m.kafka_record_age_seconds.clone()),
            Box::new(m.http_timeouts.clone()),
            Box::new(m.http_shed.clone()),
            Box::new(m.labeling_labels.clone()),
            Box::new(m.labeling_refits.clone()),
            Box::new(m.labeling_refit_seconds.clone()),
            Box::new(m.labeling_model_ap.clone()),
            Box::new(m.labeling_budget_remaining.clone()),
            Box::new(m.anomaly_scored_points.clone()),
            Box::new(m.anomaly_points.clone()),
            Box::new(m.anomaly_probability_max.clone()),
            Box::new(m.watched_anomaly_probability.clone()),
        ] {
            m.registry.register(c).expect("each metric registered once");
        }
        // Every reason and event exists from the start, so rates work from the first scrape.
        for r in crate::decode::RejectReason::ALL {
            m.points_rejected.with_label_values(&[r.as_str()]);
        }
        for r in ["duplicate", "late", "dimension_mismatch", "undecodable_message"] {
            m.points_rejected.with_label_values(&[r]);
        }
        for e in ["opened", "closed"] {
            m.intervals.with_label_values(&[e]);
        }
        for o in ["processed", "dead_lettered"] {
            m.kafka_messages.with_label_values(&[o]);
        }
        for r in crate::decode::DecodeError::REASONS.iter().chain(&["rejected_points"]) {
            m.kafka_dead_letters.with_label_values(&[r]);
        }
        for s in ["suggestion", "edit", "interval"] {
            m.labeling_labels.with_label_values(&[s]);
        }
        for o in ["ok", "failed"] {
            m.labeling_refits.with_label_values(&[o]);
        }
        for k in ["assign", "revoke", "error"] {
            m.kafka_rebalances.with_label_values(&[k]);
        }
        for e in ["opened", "extended", "closed"] {
            m.kafka_events.with_label_values(&[e]);
        }
        for o in ["consume", "produce", "commit", "storage"] {
            m.kafka_errors.with_label_values(&[o]);
        }
        for k in ["unavailable", "full", "other"] {
            m.storage_failures.with_label_values(&[k]);
        }
        for o in ["ok", "failed"] {
            m.recoveries.with_label_values(&[o]);
        }
        m
    }

    /// Whether `series` gets labelled metrics.
    pub fn is_watched(&self, series: &str) -> bool {
        self.watched.contains(series)
    }

    /// Records a watched series' latest live anomaly probability (others are not labelled).
    pub fn set_watched_probability(&self, series: &str, p: f64) {
        if self.is_watched(series) {
            self.watched_anomaly_probability.with_label_values(&[series]).set(p);
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf).expect("text encoding cannot fail");
        String::from_utf8(buf).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
