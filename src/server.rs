//! The composition root: the only module that knows HTTP, the Kafka source and the labeling
//! worker together. [`Application::build`] connects storage (migrations run), starts the
//! pipeline, recovers every stored detector (without Kafka) and binds the listeners (port 0
//! allowed); [`Application::run_until_stopped`] starts the background work (retention,
//! checkpoints, the labeling worker, the Kafka source when `kafka.brokers` is set), serves,
//! and on shutdown stops accepting HTTP, stops the Kafka source (its partitions drain and
//! persist their offsets and checkpoints), lets the pipeline drain, and stores every other
//! detector's checkpoint, so a restart resumes each series where it left off.

use anyhow::Context;
use tokio::net::TcpListener;

use crate::config::Settings;
use crate::http::ApiState;
use crate::kafka::KafkaSource;
use crate::labeling::Labeling;
use crate::metrics::Metrics;
use crate::pipeline::{Pipeline, PipelineConfig};
use crate::service::{Heartbeat, Service, run_checkpoints, run_retention};
use crate::storage::{Storage, Timeouts};

/// A built, not yet serving, application.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    /// The admin listener (metrics and health), when configured.
    admin: Option<TcpListener>,
    state: ApiState,
}

impl Application {
    /// Connects storage, starts the pipeline, restores checkpoints and binds the listeners.
    ///
    /// # Errors
    /// Storage, settings or bind failures, with what failed; `auth.mode = "open"` off a
    /// loopback address.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        if settings.storage.url.is_none() {
            std::fs::create_dir_all(&settings.storage.data_dir)
                .with_context(|| format!("creating the data directory {}", settings.storage.data_dir.display()))?;
        }
        let timeouts = Timeouts {
            acquire_ms: settings.storage.acquire_timeout_ms,
            statement_ms: settings.storage.statement_timeout_ms,
            sqlite_max_bytes: settings.storage.max_bytes,
        };
        let storage = Storage::connect_with(&settings.storage_url(), settings.storage.max_connections, timeouts)
            .await
            .context("opening storage")?;
        let mut detector = settings.detector.stream_config().map_err(anyhow::Error::msg)?;
        detector.path = settings.pipeline.nearest_path()?;
        let shards = match settings.pipeline.shards {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        let pipeline = Pipeline::start(PipelineConfig { shards, queue: settings.pipeline.queue, detector })
            .context("starting detectors")?;
        let metrics = Metrics::with_watched(&settings.metrics.watched_series);
        metrics.series.set(storage.counts().await?.series);
        let labeling = Labeling::new(storage.clone(), metrics.clone(), settings.labeling.clone());
        let service = Service::new(storage, pipeline, settings, metrics);
        let settings = service.settings.clone();
        // With Kafka, a series' detector is loaded by the partition that carries it, when the
        // partition is assigned here: loading every series now would hold stale copies of series
        // other instances own (and a stale copy must never be checkpointed over a newer one).
        let restored = if settings.kafka.enabled() { 0 } else { service.recover_all().await? };
        let listener =
            TcpListener::bind(&settings.http.addr).await.with_context(|| format!("binding {}", settings.http.addr))?;
        let admin = match &settings.http.admin_addr {
            Some(addr) => {
                Some(TcpListener::bind(addr).await.with_context(|| format!("binding the admin listener {addr}"))?)
            }
            None => None,
        };
        let local = listener.local_addr()?;
        if !settings.auth.tokens() {
            anyhow::ensure!(
                local.ip().is_loopback(),
                "auth.mode = \"open\" serves the API without tokens and is allowed only on a loopback address, \
                 not {local}: set auth.mode = \"tokens\" (DRIFTWATCH__AUTH__MODE=tokens) and create tokens with \
                 `driftwatch token create`"
            );
            tracing::warn!(addr = %local, "Access control is off (auth.mode = open): any local client may use every route.");
        }
        tracing::info!(addr = %local, admin = ?admin.as_ref().and_then(|a| a.local_addr().ok()),
            storage = ?service.storage.backend(), restored, kafka = settings.kafka.enabled(),
            auth = %settings.auth.mode, "Listening.");
        let state = ApiState::new(service, labeling, Heartbeat::default());
        Ok(Self { listener, admin, state })
    }

    /// A handle on the service (for in-process callers such as `replay` and the benchmarks).
    pub fn service(&self) -> Service {
        self.state.service.clone()
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map_or(0, |a| a.port())
    }

    /// The admin listener's port, when configured.
    pub fn admin_port(&self) -> Option<u16> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok()).map(|a| a.port())
    }

    /// Serves until `shutdown` resolves, then drains the pipeline and stores every checkpoint.
    ///
    /// # Errors
    /// Serving or checkpoint failures.
    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let service = self.state.service.clone();
        let retention = tokio::spawn(run_retention(service.clone()));
        let checkpoints = tokio::spawn(run_checkpoints(service.clone()));
        let source = if service.settings.kafka.enabled() {
            Some(KafkaSource::start(service.clone(), self.state.kafka.clone()).await?)
        } else {
            None
        };
        // One shutdown signal for every listener.
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let labeling = tokio::spawn(self.state.labeling.clone().run(stop_rx.clone()));
        let header_timeout = std::time::Duration::from_millis(service.settings.http.header_timeout_ms);
        match self.admin {
            None => {
                let app = crate::http::router(self.state);
                crate::http::serve(self.listener, app, header_timeout, stopped(stop_rx)).await?;
            }
            Some(admin) => {
                let (api, ops) = crate::http::routers(self.state);
                let ops_server = tokio::spawn(crate::http::serve(admin, ops, header_timeout, stopped(stop_rx.clone())));
                crate::http::serve(self.listener, api, header_timeout, stopped(stop_rx)).await?;
                ops_server.await??;
            }
        }
        retention.abort();
        checkpoints.abort();
        // The labeling worker gives its leases back, so another instance takes over at once.
        let _ = labeling.await;
        if let Some(source) = source {
            // Kafka partitions drain and persist first; their detectors leave the pipeline.
            tokio::task::spawn_blocking(move || source.stop()).await?;
        }
        let pipeline = service.pipeline.clone();
        let detectors = tokio::task::spawn_blocking(move || pipeline.shutdown()).await?;
        let saved = service.save_checkpoints(detectors).await?;
        tracing::info!(saved, "Stopped; detector checkpoints stored.");
        Ok(())
    }
}
