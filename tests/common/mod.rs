//! Shared by every integration test: the one in-process spawner (an app built on port 0 and
//! served in-process, with a JSON client), the `driftwatch serve` child process, the storage
//! back-ends to run against (a temp SQLite file, and a fresh database on the PostgreSQL that
//! `scripts/test.sh` provides), the CLI runner, the repository's paths and fixtures, and reading
//! a metric from a scrape.
#![allow(dead_code)] // each test file uses its own subset

use driftwatch::config::Settings;
use std::path::{Path, PathBuf};

use driftwatch::server::Application;
use serde_json::Value;

/// A running app.
pub struct TestApp {
    pub base: String,
    /// The admin listener (metrics and health), when `http.admin_addr` is set.
    pub admin: Option<String>,
    pub client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    pub async fn spawn(settings: Settings) -> Self {
        let app = Application::build(settings).await.expect("app builds");
        let base = format!("http://127.0.0.1:{}", app.port());
        let admin = app.admin_port().map(|p| format!("http://127.0.0.1:{p}"));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let done = tokio::spawn(app.run_until_stopped(async move {
            let _ = rx.await;
        }));
        Self { base, admin, client: reqwest::Client::new(), stop: Some(tx), done: Some(done) }
    }

    async fn send(&self, r: reqwest::RequestBuilder) -> (u16, Value) {
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Any request, answered as (status, JSON or text).
    pub async fn send_raw(&self, r: reqwest::RequestBuilder) -> (u16, Value) {
        self.send(r).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.client.get(format!("{}{path}", self.base))).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(
            self.client
                .post(format!("{}{path}", self.base))
                .header("content-type", "application/json")
                .body(body.to_string()),
        )
        .await
    }

    pub async fn post_raw(&self, path: &str, body: String) -> (u16, Value) {
        self.send(
            self.client.post(format!("{}{path}", self.base)).header("content-type", "application/x-ndjson").body(body),
        )
        .await
    }

    pub async fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(
            self.client
                .put(format!("{}{path}", self.base))
                .header("content-type", "application/json")
                .body(body.to_string()),
        )
        .await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(self.client.delete(format!("{}{path}", self.base))).await
    }

    pub async fn metrics(&self) -> String {
        self.client.get(format!("{}/metrics", self.base)).send().await.unwrap().text().await.unwrap()
    }

    /// Graceful stop.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.done.take().unwrap().await.unwrap().unwrap();
    }
}

/// Settings for a test app: port 0, two detector threads.
pub fn base_settings() -> Settings {
    let mut base = Settings::default();
    base.http.addr = "127.0.0.1:0".into();
    base.pipeline.shards = 2;
    base.principal = "tester".into();
    base.storage.max_connections = 4;
    base
}

/// A fresh PostgreSQL database for `test`, or `None` when PostgreSQL tests are skipped
/// (`DRIFTWATCH_SKIP_PG=1`); panics when `DRIFTWATCH_TEST_PG` is unset otherwise.
pub async fn fresh_pg(test: &str) -> Option<String> {
    match std::env::var("DRIFTWATCH_TEST_PG") {
        Ok(admin) => {
            sqlx::any::install_default_drivers();
            let name = format!("dw_{}_{}", test, std::process::id());
            let pool = sqlx::AnyPool::connect(&admin).await.expect("PostgreSQL reachable");
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name}")).execute(&pool).await.unwrap();
            sqlx::query(&format!("CREATE DATABASE {name}")).execute(&pool).await.unwrap();
            pool.close().await;
            Some(format!("{}/{name}", admin.rsplit_once('/').unwrap().0))
        }
        Err(_) if std::env::var("DRIFTWATCH_SKIP_PG").as_deref() == Ok("1") => None,
        Err(_) => panic!(
            "DRIFTWATCH_TEST_PG is not set: run ./scripts/test.sh (it starts PostgreSQL) or set DRIFTWATCH_SKIP_PG=1"
        ),
    }
}

/// `settings` once per back-end: SQLite in a temp dir (kept alive by the returned guard), and
/// PostgreSQL when available.
pub async fn each_backend(test: &str, settings: Settings) -> Vec<(&'static str, Settings, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let mut sqlite = settings.clone();
    sqlite.storage.data_dir = dir.path().to_owned();
    let mut out = vec![("sqlite", sqlite, Some(dir))];
    if let Some(url) = fresh_pg(test).await {
        let mut pg = settings;
        pg.storage.url = Some(url);
        out.push(("postgres", pg, None));
    }
    out
}

/// A `driftwatch serve` process configured only through the environment, as an operator would
/// run it, logging to a file (appended, so restarts share one log). Killed when dropped.
pub struct Service {
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Service {
    pub fn start(log: &std::path::Path, env: &[(&str, String)]) -> Self {
        let out = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_driftwatch"))
            .arg("serve")
            .env_clear()
            .env("RUST_LOG", "info")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stderr(out)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        Self { child, log: log.to_owned() }
    }

    /// Waits until the service answers `/readyz` on `port`.
    pub async fn ready(&mut self, port: u16) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let url = format!("http://127.0.0.1:{port}/readyz");
        while std::time::Instant::now() < deadline {
            if reqwest::get(&url).await.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the service exited with {status}:\n{}", self.log_tail());
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the service on port {port} never became ready:\n{}", self.log_tail());
    }

    /// SIGKILL: no shutdown work at all.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for a clean exit (drain, checkpoints).
    pub fn terminate(mut self) {
        let _ = std::process::Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "the service exited with {status}:\n{}", self.log_tail());
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        self.kill();
        panic!("the service did not stop within 60 s:\n{}", self.log_tail());
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

/// The repository's root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A committed fixture, `tests/fixtures/NAME`.
pub fn fixture_path(name: &str) -> PathBuf {
    root().join("tests/fixtures").join(name)
}

/// The values of `tests/fixtures/mean_shift.csv` (3,000 points, mean shifts at 1000 and 2000).
pub fn mean_shift() -> Vec<f64> {
    driftwatch_testkit::parse_column(&std::fs::read_to_string(fixture_path("mean_shift.csv")).unwrap())
}

/// Runs the `driftwatch` binary with `args` and waits for it.
pub fn driftwatch(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_driftwatch")).args(args).output().expect("binary runs")
}

/// The sum of a metric's samples in a Prometheus text exposition (every line starting with
/// `name`, so a name without labels sums its label sets).
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines().filter(|l| l.starts_with(name)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
}
