//! Service configuration: defaults, then an optional TOML file (`--config FILE`), then
//! environment variables. `DATABASE_URL` sets `storage.url`; any setting can be given as
//! `DRIFTWATCH__SECTION__KEY` (for example `DRIFTWATCH__HTTP__ADDR=0.0.0.0:8080`), the value
//! read as TOML when it parses (numbers, booleans) and as a string otherwise.
//! `driftwatch config show` prints the result with passwords masked.

use std::path::{Path, PathBuf};

use driftwatch_icid::{NearestPath, PsiPolicy, SimdLevel, StreamConfig};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why the configuration could not be loaded.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file or an environment variable does not fit the settings.
    #[error("{0}")]
    Invalid(String),
}

/// Everything the service reads at start-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// HTTP listener.
    pub http: HttpSettings,
    /// Where results are stored.
    pub storage: StorageSettings,
    /// Detector threads and queues.
    pub pipeline: PipelineSettings,
    /// Detector defaults for series without their own configuration.
    pub detector: DetectorSettings,
    /// Who writes are recorded as until access control arrives.
    pub principal: String,
    /// Metrics settings.
    pub metrics: MetricsSettings,
    /// The Kafka source (off unless `kafka.brokers` is set).
    pub kafka: KafkaSettings,
    /// The labeling loop (LEIAD): suggestions, refits, live anomaly probabilities.
    pub labeling: LabelingSettings,
    /// Access control.
    pub auth: AuthSettings,
}

/// Access control. See `auth`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// `open` (no tokens; only on a loopback address) or `tokens` (a bearer token with a role
    /// on every API route).
    pub mode: String,
    /// Requests per second each token may make (0 = no limit); `tokens` mode only.
    pub rate_per_sec: f64,
    /// Requests a token may make at once before the rate applies.
    pub burst: f64,
    /// Series one token may create through HTTP ingest (0 = no limit); `tokens` mode only.
    pub max_series_per_token: usize,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self { mode: "open".into(), rate_per_sec: 0.0, burst: 50.0, max_series_per_token: 0 }
    }
}

impl AuthSettings {
    /// Whether API routes need tokens.
    pub fn tokens(&self) -> bool {
        self.mode == "tokens"
    }
}

/// The labeling loop. See `labeling`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LabelingSettings {
    /// Refit the end model after this many label changes (0 = only when asked).
    pub refit_every: usize,
    /// How long a suggestion stays claimed by the analyst it was shown to, seconds.
    pub claim_secs: u64,
    /// How long a project's lease (refits, live scoring) lasts without renewal, seconds.
    pub lease_secs: u64,
    /// The labeling worker's period, milliseconds.
    pub tick_ms: u64,
    /// How often new points are scored with the end model, milliseconds.
    pub score_interval_ms: u64,
    /// Candidate windows ranked per round.
    pub candidates: usize,
    /// Half-width of a suggested window, points (a project may set its own).
    pub half_window: usize,
    /// Most points one project's pool may hold.
    pub max_pool_points: usize,
    /// Probability at or above which a scored point counts as anomalous in the metrics.
    pub alert_probability: f64,
    /// Most projects one author may have (0 = no limit): each holds its pool in memory.
    pub max_projects_per_author: usize,
}

impl Default for LabelingSettings {
    fn default() -> Self {
        Self {
            refit_every: 5,
            claim_secs: 600,
            lease_secs: 30,
            tick_ms: 1000,
            score_interval_ms: 5000,
            candidates: 20,
            half_window: 200,
            max_pool_points: 2_000_000,
            alert_probability: 0.5,
            max_projects_per_author: 10,
        }
    }
}

/// The Kafka source: a consumer group reading points, a dead-letter topic for messages it cannot
/// use and an events topic for interval events. See `ingest::kafka`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaSettings {
    /// `host:port,...`; empty = no Kafka source.
    pub brokers: String,
    /// Topics to consume.
    pub topics: Vec<String>,
    /// Consumer group: every instance with the same group shares the partitions.
    pub group_id: String,
    /// Where undecodable messages go, with their original bytes and an error header.
    pub dead_letter_topic: String,
    /// Where interval events go, keyed by series; empty = not produced.
    pub events_topic: String,
    /// How often each partition checkpoints its detectors and commits its offset, milliseconds.
    /// Longer = less checkpoint traffic, more replay after a crash.
    pub checkpoint_interval_ms: u64,
    /// Messages buffered per partition before the partition is paused.
    pub queue_messages: usize,
    /// Most messages a partition processes as one batch.
    pub batch_messages: usize,
    /// Create the dead-letter and events topics at start-up when they are missing.
    pub create_topics: bool,
    /// librdkafka properties passed through as they are (security.protocol, sasl.*, ssl.*,
    /// session.timeout.ms, ...); they override driftwatch's own choices.
    pub properties: std::collections::BTreeMap<String, PropertyValue>,
}

/// A librdkafka property value: written as a string, number or boolean.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PropertyValue {
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// Text.
    Text(String),
}

impl std::fmt::Display for PropertyValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PropertyValue::Bool(b) => write!(f, "{b}"),
            PropertyValue::Int(i) => write!(f, "{i}"),
            PropertyValue::Float(x) => write!(f, "{x}"),
            PropertyValue::Text(s) => f.write_str(s),
        }
    }
}

impl Default for KafkaSettings {
    fn default() -> Self {
        Self {
            brokers: String::new(),
            topics: vec!["driftwatch.points".into()],
            group_id: "driftwatch".into(),
            dead_letter_topic: "driftwatch.dead-letter".into(),
            events_topic: "driftwatch.events".into(),
            checkpoint_interval_ms: 5000,
            queue_messages: 1000,
            batch_messages: 500,
            create_topics: true,
            properties: Default::default(),
        }
    }
}

impl KafkaSettings {
    /// Whether the source runs.
    pub fn enabled(&self) -> bool {
        !self.brokers.trim().is_empty()
    }
}

/// Most series that may carry their own metric labels.
pub const MAX_WATCHED_SERIES: usize = 100;

/// Metrics settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// Series that get their own labelled metrics (at most 100); every other series counts
    /// only in the aggregates, so a flood of series cannot blow up Prometheus.
    pub watched_series: Vec<String>,
}

/// HTTP listener settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Listen address (port 0 picks a free port).
    pub addr: String,
    /// Largest accepted request body, bytes.
    pub max_body_bytes: usize,
    /// Most points one ingest request may carry, over all its messages (413 past it).
    pub max_batch_points: usize,
    /// Most API requests served at once; more are refused at once with 503 `overloaded`
    /// (Retry-After: 1) instead of queueing without bound.
    pub max_in_flight: usize,
    /// A separate listener for /metrics, /healthz and /readyz (they then leave the API port).
    pub admin_addr: Option<String>,
    /// Deadline of one request, milliseconds (answered 503 `timeout` past it).
    pub request_timeout_ms: u64,
    /// Longest wait for a request's headers, milliseconds, on a new connection and between
    /// requests on a kept-alive one (so it is also the idle timeout); the connection is closed
    /// past it.
    pub header_timeout_ms: u64,
    /// Undecodable lines one ingest body may hold; past it the body is refused (400
    /// `too_many_errors`, nothing stored) without decoding the rest.
    pub max_bad_lines: usize,
    /// Share (0 < share <= 1) of the read slots and of the write slots (`max_in_flight` each)
    /// one token may hold at once; more get 503 `overloaded`. Tokens mode only.
    pub token_share: f64,
    /// Most points `GET /v1/series/{name}/points` returns in one answer (`limit`, then `next`).
    pub max_points_per_page: usize,
}

/// Storage settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// `postgres://…` or `sqlite://PATH`; unset = SQLite in `data_dir`.
    pub url: Option<String>,
    /// Folder of the embedded database.
    pub data_dir: PathBuf,
    /// Connection pool size.
    pub max_connections: u32,
    /// Days of raw points kept per series, counted back from its newest point (0 = all).
    pub retention_days_points: u32,
    /// Days of window and anomaly scores kept per series, likewise (0 = all).
    pub retention_days_scores: u32,
    /// Longest wait for a database connection, milliseconds.
    pub acquire_timeout_ms: u64,
    /// Longest database statement, milliseconds (PostgreSQL statement_timeout; SQLite lock wait).
    pub statement_timeout_ms: u64,
    /// SQLite only: the database file's quota in bytes (`PRAGMA max_page_count`); a write past
    /// it fails as "storage full" (HTTP 507) and loses nothing already stored. 0 = no quota.
    pub max_bytes: u64,
}

/// Pipeline settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineSettings {
    /// Detector threads (0 = one per core).
    pub shards: usize,
    /// Batches queued per detector thread before ingest waits.
    pub queue: usize,
    /// How often detectors that took points over HTTP are checkpointed, milliseconds (0 = only
    /// at shutdown). A crash loses no results either way: a restart replays the stored points
    /// after the newest checkpoint; this bounds how many.
    pub checkpoint_interval_ms: u64,
    /// Points dated more than this past the server's clock are refused (`future_timestamp`),
    /// milliseconds; 0 = no bound (synthetic time running ahead of the clock).
    pub max_future_ms: u64,
    /// Instruction set of every detector's nearest-centre search: `auto` (the widest the CPU
    /// has), `avx512`, `avx2`, `portable` or `scalar`. A level the CPU lacks is refused at start.
    /// Results do not depend on it; speed does.
    pub simd: String,
}

impl PipelineSettings {
    /// The engine's nearest-centre path for `simd`, checked against this CPU.
    ///
    /// # Errors
    /// An unknown name, or a level this CPU does not support.
    pub fn nearest_path(&self) -> Result<NearestPath, ConfigError> {
        self.nearest_path_on(&SimdLevel::available())
    }

    /// As [`PipelineSettings::nearest_path`], on a CPU with the levels `available`.
    ///
    /// # Errors
    /// As [`PipelineSettings::nearest_path`].
    pub fn nearest_path_on(&self, available: &[SimdLevel]) -> Result<NearestPath, ConfigError> {
        NearestPath::parse_on(&self.simd, available).map_err(|e| ConfigError::Invalid(format!("pipeline.simd: {e}")))
    }
}

/// Detector defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectorSettings {
    /// Points per window.
    pub window: usize,
    /// Points between scores (0 = the window).
    pub hop: usize,
    /// Threshold multiplier.
    pub alpha: f64,
    /// Partitionings.
    pub t: usize,
    /// `auto` (chosen at warm-up), `online` (re-selected as the stream goes) or a number.
    pub psi: String,
    /// Windows buffered before detection starts.
    pub warmup_windows: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            http: HttpSettings::default(),
            storage: StorageSettings::default(),
            pipeline: PipelineSettings::default(),
            detector: DetectorSettings::default(),
            principal: "local".into(),
            metrics: MetricsSettings::default(),
            kafka: KafkaSettings::default(),
            labeling: LabelingSettings::default(),
            auth: AuthSettings::default(),
        }
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:8080".into(),
            max_body_bytes: 16 << 20,
            max_batch_points: 100_000,
            max_in_flight: 512,
            admin_addr: None,
            request_timeout_ms: 30_000,
            header_timeout_ms: 10_000,
            max_bad_lines: 100,
            token_share: 0.5,
            max_points_per_page: 100_000,
        }
    }
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            url: None,
            data_dir: PathBuf::from("driftwatch-data"),
            max_connections: 8,
            retention_days_points: 30,
            retention_days_scores: 7,
            acquire_timeout_ms: 10_000,
            statement_timeout_ms: 30_000,
            max_bytes: 0,
        }
    }
}

impl Default for PipelineSettings {
    fn default() -> Self {
        Self { shards: 0, queue: 64, checkpoint_interval_ms: 30_000, max_future_ms: 86_400_000, simd: "auto".into() }
    }
}

impl Default for DetectorSettings {
    fn default() -> Self {
        Self { window: 50, hop: 0, alpha: 2.0, t: 200, psi: "auto".into(), warmup_windows: 10 }
    }
}

impl DetectorSettings {
    /// The engine's configuration for these settings.
    ///
    /// # Errors
    /// A `psi` that is not `auto`, `online` or a number.
    pub fn stream_config(&self) -> Result<StreamConfig, String> {
        let mut c = StreamConfig::new(self.window);
        c.hop = if self.hop == 0 { self.window } else { self.hop };
        c.alpha = self.alpha;
        c.t = self.t;
        c.warmup_windows = self.warmup_windows;
        c.psi = match self.psi.to_ascii_lowercase().as_str() {
            // Chosen at warm-up over the streaming candidates (the default).
            "auto" => c.psi,
            // Every candidate tracked; re-selected every 20 windows over the last 40 scores.
            "online" => PsiPolicy::Online {
                candidates: driftwatch_icid::stream::STREAM_PSI_CANDIDATES.to_vec(),
                history: 40,
                every: 20,
            },
            n => PsiPolicy::Fixed(
                n.parse().map_err(|_| format!("detector.psi must be auto, online or a number, not {:?}", self.psi))?,
            ),
        };
        Ok(c)
    }
}

impl Settings {
    /// Loads defaults, then `file`, then the environment `env` (name, value pairs).
    ///
    /// # Errors
    /// An unreadable file, bad TOML, or a setting of the wrong type or unknown name.
    pub fn load(file: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let mut tree = toml::Table::try_from(Settings::default()).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        if let Some(path) = file {
            let text =
                std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
            let layer: toml::Table =
                text.parse().map_err(|e| ConfigError::Invalid(format!("{}: {e}", path.display())))?;
            merge(&mut tree, layer);
        }
        for (key, value) in env {
            let path: Vec<String> = if key == "DATABASE_URL" {
                vec!["storage".into(), "url".into()]
            } else if let Some(rest) = key.strip_prefix("DRIFTWATCH__") {
                rest.split("__").map(str::to_lowercase).collect()
            } else {
                continue;
            };
            let parsed = format!("v = {value}").parse::<toml::Table>().ok().and_then(|mut t| t.remove("v"));
            let v = parsed.unwrap_or(toml::Value::String(value));
            set(&mut tree, &path, v).map_err(|e| ConfigError::Invalid(format!("{key}: {e}")))?;
        }
        let settings: Settings = tree.try_into().map_err(|e: toml::de::Error| ConfigError::Invalid(e.to_string()))?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if !matches!(self.auth.mode.as_str(), "open" | "tokens") {
            return Err(ConfigError::Invalid(format!("auth.mode must be open or tokens, not {:?}", self.auth.mode)));
        }
        if self.pipeline.queue == 0 {
            return Err(ConfigError::Invalid("pipeline.queue must be at least 1".into()));
        }
        self.pipeline.nearest_path()?;
        if self.metrics.watched_series.len() > MAX_WATCHED_SERIES {
            return Err(ConfigError::Invalid(format!(
                "metrics.watched_series lists {} series; at most {MAX_WATCHED_SERIES} get their own labels",
                self.metrics.watched_series.len()
            )));
        }
        let k = &self.kafka;
        if k.enabled() {
            if k.topics.is_empty() || k.topics.iter().any(|t| t.trim().is_empty()) {
                return Err(ConfigError::Invalid("kafka.topics must name at least one topic".into()));
            }
            if k.group_id.trim().is_empty() || k.dead_letter_topic.trim().is_empty() {
                return Err(ConfigError::Invalid("kafka.group_id and kafka.dead_letter_topic must be set".into()));
            }
            if k.topics.contains(&k.dead_letter_topic) || k.topics.contains(&k.events_topic) {
                return Err(ConfigError::Invalid("kafka: the dead-letter and events topics must not be inputs".into()));
            }
            if k.queue_messages == 0 || k.batch_messages == 0 || k.checkpoint_interval_ms == 0 {
                return Err(ConfigError::Invalid(
                    "kafka.queue_messages, batch_messages and checkpoint_interval_ms must be at least 1".into(),
                ));
            }
        }
        if self.http.max_body_bytes == 0 || self.http.max_batch_points == 0 || self.http.max_points_per_page == 0 {
            return Err(ConfigError::Invalid(
                "http.max_body_bytes, http.max_batch_points and http.max_points_per_page must be at least 1".into(),
            ));
        }
        if !(self.http.token_share > 0.0 && self.http.token_share <= 1.0) {
            return Err(ConfigError::Invalid("http.token_share must be above 0 and at most 1".into()));
        }
        if self.storage.max_bytes > 0 {
            if self.storage.url.as_deref().is_some_and(|u| !u.starts_with("sqlite:")) {
                return Err(ConfigError::Invalid(
                    "storage.max_bytes is a quota on the embedded SQLite file; give PostgreSQL its own (tablespace or disk quota)"
                        .into(),
                ));
            }
            if self.storage.max_bytes < 1 << 20 {
                return Err(ConfigError::Invalid("storage.max_bytes must be 0 (no quota) or at least 1 MiB".into()));
            }
        }
        Ok(())
    }

    /// The storage URL in use: the configured one, or SQLite in the data directory.
    pub fn storage_url(&self) -> String {
        self.storage
            .url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.storage.data_dir.join("driftwatch.db").display()))
    }

    /// The settings as TOML, with secrets masked: the storage URL's password (user info or a
    /// `password=` query parameter) and Kafka properties that hold keys or credentials.
    pub fn show(&self) -> String {
        let mut shown = self.clone();
        shown.storage.url = Some(mask_password(&self.storage_url()));
        for (k, v) in shown.kafka.properties.iter_mut() {
            if secret_property(k) {
                *v = PropertyValue::Text("***".into());
            }
        }
        toml::to_string_pretty(&shown).expect("settings serialise")
    }
}

fn merge(base: &mut toml::Table, layer: toml::Table) {
    for (k, v) in layer {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(l)) => merge(b, l),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

fn set(tree: &mut toml::Table, path: &[String], v: toml::Value) -> Result<(), String> {
    match path {
        [] => Err("empty setting name".into()),
        [last] => {
            tree.insert(last.clone(), v);
            Ok(())
        }
        [head, rest @ ..] => match tree.entry(head.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new())) {
            toml::Value::Table(t) => set(t, rest, v),
            _ => Err(format!("{head} is not a section")),
        },
    }
}

/// Whether a librdkafka property holds a secret: passwords and secrets anywhere, private keys
/// and key stores (`ssl.key.*`, `ssl.keystore.*`), and every `sasl.*` setting but the
/// mechanism and the user name (OAUTHBEARER configs and Kerberos keytabs carry credentials).
fn secret_property(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("password")
        || k.contains("secret")
        || k.starts_with("ssl.key")
        || (k.starts_with("sasl.") && !matches!(k.as_str(), "sasl.mechanism" | "sasl.mechanisms" | "sasl.username"))
}

/// `scheme://user:secret@host/db?password=x&sslmode=y` → `scheme://user:***@host/db?password=***&sslmode=y`.
pub fn mask_password(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let base = match base.split_once("://").and_then(|(scheme, rest)| Some((scheme, rest.rsplit_once('@')?))) {
        Some((scheme, (creds, host))) => match creds.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => base.to_owned(),
        },
        None => base.to_owned(),
    };
    let Some(query) = query else { return base };
    let masked: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _))
                if ["password", "pass", "passwd", "sslpassword", "secret"]
                    .contains(&k.to_ascii_lowercase().as_str()) =>
            {
                format!("{k}=***")
            }
            _ => pair.to_owned(),
        })
        .collect();
    format!("{base}?{}", masked.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psi_settings_map_to_the_three_policies() {
        let mut d = DetectorSettings::default();
        assert!(matches!(d.stream_config().unwrap().psi, PsiPolicy::AtWarmup(_)));
        d.psi = "Online".into();
        assert!(matches!(d.stream_config().unwrap().psi, PsiPolicy::Online { .. }));
        d.psi = "16".into();
        assert_eq!(d.stream_config().unwrap().psi, PsiPolicy::Fixed(16));
        d.psi = "many".into();
        assert!(d.stream_config().unwrap_err().contains("auto, online or a number"));
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_then_file_then_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("dw.toml");
        std::fs::write(&file, "principal = \"ops\"\n[http]\naddr = \"0.0.0.0:9000\"\n[detector]\nwindow = 40\n")
            .unwrap();
        let s = Settings::load(
            Some(&file),
            env(&[("DRIFTWATCH__DETECTOR__ALPHA", "3"), ("DATABASE_URL", "postgres://u:pw@h/db"), ("HOME", "/x")]),
        )
        .unwrap();
        assert_eq!((s.http.addr.as_str(), s.detector.window, s.detector.alpha), ("0.0.0.0:9000", 40, 3.0));
        assert_eq!((s.principal.as_str(), s.storage.url.as_deref()), ("ops", Some("postgres://u:pw@h/db")));
        assert!(s.show().contains("postgres://u:***@h/db") && !s.show().contains("pw"));
        let k = Settings::load(
            None,
            env(&[
                ("DRIFTWATCH__KAFKA__BROKERS", "k1:9092,k2:9092"),
                ("DRIFTWATCH__KAFKA__PROPERTIES__SASL.PASSWORD", "hunter2"),
                ("DRIFTWATCH__KAFKA__PROPERTIES__SESSION.TIMEOUT.MS", "6000"),
            ]),
        )
        .unwrap();
        assert!(k.kafka.enabled());
        assert_eq!(k.kafka.properties["session.timeout.ms"].to_string(), "6000");
        assert!(k.show().contains("sasl.password") && !k.show().contains("hunter2"));
        let d = Settings::load(None, vec![]).unwrap();
        assert_eq!(d, Settings::default());
        assert_eq!(d.storage_url(), "sqlite://driftwatch-data/driftwatch.db");
    }

    #[test]
    fn the_simd_level_is_read_from_file_or_environment_and_refused_when_unknown_or_missing() {
        assert_eq!(Settings::default().pipeline.nearest_path().unwrap(), NearestPath::Auto);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("dw.toml");
        std::fs::write(&file, "[pipeline]\nsimd = \"scalar\"\n").unwrap();
        let s = Settings::load(Some(&file), vec![]).unwrap();
        assert_eq!(s.pipeline.nearest_path().unwrap(), NearestPath::Scalar);
        let s = Settings::load(Some(&file), env(&[("DRIFTWATCH__PIPELINE__SIMD", "portable")])).unwrap();
        assert_eq!(s.pipeline.nearest_path().unwrap(), NearestPath::Forced(SimdLevel::Portable));
        assert!(s.show().contains("simd = \"portable\""));
        let err = Settings::load(None, env(&[("DRIFTWATCH__PIPELINE__SIMD", "avx9")])).unwrap_err().to_string();
        assert!(err.contains("pipeline.simd") && err.contains("avx9") && err.contains("avx512"), "{err}");
        // A CPU with the portable level only refuses the SIMD levels by name, and keeps the rest.
        let mut p = PipelineSettings::default();
        for (name, ok) in [("avx512", false), ("avx2", false), ("portable", true), ("scalar", true), ("auto", true)] {
            p.simd = name.into();
            match p.nearest_path_on(&[SimdLevel::Portable]) {
                Ok(_) => assert!(ok, "{name} accepted without the CPU for it"),
                Err(e) => {
                    assert!(!ok, "{name}: {e}");
                    assert!(
                        e.to_string().contains("pipeline.simd") && e.to_string().contains("does not support"),
                        "{e}"
                    );
                }
            }
        }
        // This CPU: every level it reports is accepted, the others refused at load.
        for (name, level) in [("avx2", SimdLevel::Avx2), ("avx512", SimdLevel::Avx512)] {
            let loaded = Settings::load(None, env(&[("DRIFTWATCH__PIPELINE__SIMD", name)]));
            assert_eq!(loaded.is_ok(), SimdLevel::available().contains(&level), "{name}");
        }
    }

    #[test]
    fn config_show_masks_every_secret_it_knows() {
        let s = Settings::load(
            None,
            env(&[
                ("DATABASE_URL", "postgres://u@h/db?sslmode=require&password=hunter2&Password=x2"),
                ("DRIFTWATCH__KAFKA__PROPERTIES__SSL.KEY.PEM", "-----BEGIN PRIVATE KEY-----abc"),
                ("DRIFTWATCH__KAFKA__PROPERTIES__SSL.KEY.LOCATION", "/k.pem"),
                ("DRIFTWATCH__KAFKA__PROPERTIES__SASL.OAUTHBEARER.CONFIG", "clientSecret=s3cr3t"),
                ("DRIFTWATCH__KAFKA__PROPERTIES__SASL.KERBEROS.KEYTAB", "/etc/kt"),
                ("DRIFTWATCH__KAFKA__PROPERTIES__SASL.USERNAME", "svc"),
                ("DRIFTWATCH__KAFKA__PROPERTIES__SASL.MECHANISM", "PLAIN"),
            ]),
        )
        .unwrap();
        let shown = s.show();
        for secret in ["hunter2", "x2", "PRIVATE KEY", "s3cr3t", "/etc/kt", "/k.pem"] {
            assert!(!shown.contains(secret), "{secret} shown:\n{shown}");
        }
        assert!(shown.contains("sslmode=require&password=***&Password=***"), "{shown}");
        assert!(shown.contains("\"svc\"") && shown.contains("\"PLAIN\""), "{shown}");
        assert_eq!(mask_password("postgres://u:p@w@h/db"), "postgres://u:***@h/db");
    }

    #[test]
    fn unknown_or_mistyped_settings_are_refused_by_name() {
        let e = Settings::load(None, env(&[("DRIFTWATCH__HTTP__PORT", "1")])).unwrap_err().to_string();
        assert!(e.contains("port"), "{e}");
        let e = Settings::load(None, env(&[("DRIFTWATCH__DETECTOR__WINDOW", "big")])).unwrap_err().to_string();
        assert!(e.contains("window"), "{e}");
        let many = format!("[{}]", (0..101).map(|i| format!("\"s{i}\"")).collect::<Vec<_>>().join(","));
        let e = Settings::load(None, env(&[("DRIFTWATCH__METRICS__WATCHED_SERIES", &many)])).unwrap_err().to_string();
        assert!(e.contains("at most 100"), "{e}");
        let e =
            Settings::load(None, env(&[("DRIFTWATCH__KAFKA__BROKERS", "k:9092"), ("DRIFTWATCH__KAFKA__TOPICS", "[]")]))
                .unwrap_err()
                .to_string();
        assert!(e.contains("kafka.topics"), "{e}");
        let e = Settings::load(Some(Path::new("/nonexistent/dw.toml")), vec![]).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/dw.toml"), "{e}");
    }
}
