//! `driftwatch replay FILE.csv --series NAME`: streams a file through the service's write path,
//! over HTTP to a running service (`--url`) or in-process (same storage as `serve`), with a
//! progress bar on stderr and a JSON summary on stdout. Rows are timed by the file's own time
//! column (`--ts-column`, naive times at `--tz`) or numbered from `--start-ms`.

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::config::Settings;
use crate::server::Application;
use crate::service::{IngestSummary, Service};

/// `driftwatch replay`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// CSV file (as for `detect`).
    pub file: PathBuf,
    /// Series to write to.
    #[arg(long)]
    pub series: String,
    /// Columns to use, by header name or 0-based index.
    #[arg(long, value_delimiter = ',')]
    pub columns: Option<Vec<String>>,
    /// The column holding each row's time, by header name or 0-based index: RFC 3339,
    /// "YYYY-MM-DD HH:MM:SS" (as in NAB files) or epoch ms. Without it rows are numbered from
    /// --start-ms every --interval-ms.
    #[arg(long, value_name = "NAME|INDEX")]
    pub ts_column: Option<String>,
    /// UTC offset of times written without one (UTC, +02:00, -05:30).
    #[arg(long, default_value = "UTC", requires = "ts_column")]
    pub tz: String,
    /// Timestamp of the first row, epoch milliseconds (without --ts-column).
    #[arg(long, default_value_t = 0, conflicts_with = "ts_column")]
    pub start_ms: i64,
    /// Milliseconds between rows (without --ts-column).
    #[arg(long, default_value_t = 1000, conflicts_with = "ts_column")]
    pub interval_ms: i64,
    /// Rows per request.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// A running service; without it the pipeline runs embedded.
    #[arg(long)]
    pub url: Option<String>,
    /// TOML settings file for the embedded pipeline.
    #[arg(long)]
    pub config: Option<PathBuf>,
}
use crate::input::{TimeColumn, parse_offset, read_csv_timed};

/// Runs the command.
///
/// # Errors
/// An unreadable file, an unreachable service, or a request the service refuses.
pub fn run(args: &Args) -> anyhow::Result<()> {
    if args.batch == 0 || args.interval_ms <= 0 {
        bail!("--batch and --interval-ms must be positive");
    }
    let time = match &args.ts_column {
        Some(column) => Some(TimeColumn {
            column: column.clone(),
            offset_secs: parse_offset(&args.tz).map_err(anyhow::Error::msg)?,
        }),
        None => None,
    };
    let table = read_csv_timed(&args.file, args.columns.as_deref(), time.as_ref())?;
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
                let service = app.service();
                let (tx, rx) = tokio::sync::oneshot::channel::<()>();
                let serving = tokio::spawn(app.run_until_stopped(async move {
                    let _ = rx.await;
                }));
                let summary = replay(args, &table, Sink::Embedded(Box::new(service))).await;
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
    Embedded(Box<Service>),
}

async fn replay(args: &Args, table: &crate::input::Table, sink: Sink) -> anyhow::Result<Value> {
    let bar = indicatif::ProgressBar::new(table.n as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} rows {per_sec} {eta}").expect("a valid template"),
    );
    let mut tally = Tally::default();
    for start in (0..table.n).step_by(args.batch) {
        let end = (start + args.batch).min(table.n);
        let points: Vec<Value> = (start..end)
            .map(|i| {
                let row = &table.data[i * table.d..(i + 1) * table.d];
                let ts = match &table.ts {
                    Some(ts) => ts[i],
                    None => args.start_ms + i as i64 * args.interval_ms,
                };
                if table.d == 1 { json!([ts, row[0]]) } else { json!([ts, row]) }
            })
            .collect();
        let body = json!({"series": args.series, "points": points}).to_string();
        match &sink {
            Sink::Http(client, base) => {
                let resp = client
                    .post(format!("{base}/v1/points"))
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .context("posting to the service")?;
                let status = resp.status();
                let v: Value = resp.json_or_text().await?;
                if !status.is_success() {
                    bail!("the service refused rows {start}..{end}: {status} {v}");
                }
                tally.add_json(&v);
            }
            Sink::Embedded(service) => {
                let summary = service.ingest_body(body.as_bytes()).await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
                tally.add_summary(&summary);
            }
        }
        bar.set_position(end as u64);
    }
    bar.finish_and_clear();
    Ok(json!({"file": args.file.display().to_string(), "series": args.series, "rows": table.n,
              "accepted": tally.accepted, "duplicate": tally.duplicate, "late": tally.late, "rejected": tally.rejected}))
}

/// Points by outcome, summed over the file (rejected: of the wrong dimension or set aside by
/// the decoder).
#[derive(Debug, Default)]
struct Tally {
    accepted: u64,
    duplicate: u64,
    late: u64,
    rejected: u64,
}

impl Tally {
    /// Adds a `POST /v1/points` answer.
    fn add_json(&mut self, r: &Value) {
        self.accepted += r["accepted"].as_u64().unwrap_or(0);
        self.duplicate += r["duplicate"].as_u64().unwrap_or(0);
        self.late += r["late"].as_u64().unwrap_or(0);
        self.rejected += r["dimension_mismatch"].as_u64().unwrap_or(0)
            + r["rejected"].as_object().map_or(0, |m| m.values().filter_map(Value::as_u64).sum());
    }

    /// Adds an in-process write's summary.
    fn add_summary(&mut self, s: &IngestSummary) {
        self.accepted += s.accepted;
        self.duplicate += s.duplicate;
        self.late += s.late;
        self.rejected += s.dimension_mismatch + s.rejected.total();
    }
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
