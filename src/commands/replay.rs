//! `driftwatch replay FILE.csv --series NAME`: streams a file through the service's write path,
//! over HTTP to a running service (`--url`) or in-process (same storage as `serve`), with a
//! progress bar on stderr and a JSON summary on stdout.

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::app::{AppState, Application};
use crate::cli::ReplayArgs;
use crate::config::Settings;
use crate::input::read_csv;

/// Runs the command.
///
/// # Errors
/// An unreadable file, an unreachable service, or a request the service refuses.
pub fn run(args: &ReplayArgs) -> anyhow::Result<()> {
    if args.batch == 0 || args.interval_ms <= 0 {
        bail!("--batch and --interval-ms must be positive");
    }
    let table = read_csv(&args.file, args.columns.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let summary = runtime.block_on(async {
        match &args.url {
            Some(url) => {
                replay(args, &table, Sink::Http(reqwest::Client::new(), url.trim_end_matches('/').to_owned())).await
            }
            None => {
                let mut settings = Settings::load(args.config.as_deref(), std::env::vars())?;
                settings.http.addr = "127.0.0.1:0".into(); // nothing is served; the port only exists
                let app = Application::build(settings).await?;
                let state = app.state();
                let (tx, rx) = tokio::sync::oneshot::channel::<()>();
                let serving = tokio::spawn(app.run_until_stopped(async move {
                    let _ = rx.await;
                }));
                let summary = replay(args, &table, Sink::Embedded(Box::new(state))).await;
                let _ = tx.send(()); // stop: drains the pipeline, stores checkpoints
                serving.await??;
                summary
            }
        }
    })?;
    println!("{summary}");
    Ok(())
}

enum Sink {
    Http(reqwest::Client, String),
    Embedded(Box<AppState>),
}

async fn replay(args: &ReplayArgs, table: &crate::input::Table, sink: Sink) -> anyhow::Result<Value> {
    let bar = indicatif::ProgressBar::new(table.n as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} rows {per_sec} {eta}").expect("a valid template"),
    );
    let (mut accepted, mut duplicate, mut late, mut rejected) = (0u64, 0u64, 0u64, 0u64);
    for start in (0..table.n).step_by(args.batch) {
        let end = (start + args.batch).min(table.n);
        let points: Vec<Value> = (start..end)
            .map(|i| {
                let row = &table.data[i * table.d..(i + 1) * table.d];
                let ts = args.start_ms + i as i64 * args.interval_ms;
                if table.d == 1 { json!([ts, row[0]]) } else { json!([ts, row]) }
            })
            .collect();
        let body = json!({"series": args.series, "points": points}).to_string();
        let r: Value = match &sink {
            Sink::Http(client, base) => {
                let resp = client
                    .post(format!("{base}/v1/points"))
                    .body(body)
                    .send()
                    .await
                    .context("posting to the service")?;
                let status = resp.status();
                let v: Value = resp.json_or_text().await?;
                if !status.is_success() {
                    bail!("the service refused rows {start}..{end}: {status} {v}");
                }
                v
            }
            Sink::Embedded(state) => {
                state.ingest_body(body.as_bytes()).await.map_err(|e| anyhow::anyhow!("{e:?}"))?.to_json()
            }
        };
        accepted += r["accepted"].as_u64().unwrap_or(0);
        duplicate += r["duplicate"].as_u64().unwrap_or(0);
        late += r["late"].as_u64().unwrap_or(0);
        rejected += r["dimension_mismatch"].as_u64().unwrap_or(0)
            + r["rejected"].as_object().map_or(0, |m| m.values().filter_map(Value::as_u64).sum());
        bar.set_position(end as u64);
    }
    bar.finish_and_clear();
    Ok(json!({"file": args.file.display().to_string(), "series": args.series, "rows": table.n,
              "accepted": accepted, "duplicate": duplicate, "late": late, "rejected": rejected}))
}

/// Reads a response body as JSON (error bodies are JSON too).
trait JsonOrText {
    async fn json_or_text(self) -> anyhow::Result<Value>;
}

impl JsonOrText for reqwest::Response {
    async fn json_or_text(self) -> anyhow::Result<Value> {
        let text = self.text().await?;
        Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }
}
