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
    /// Load even when retention would delete some of the file's rows (points more than
    /// storage.retention_days_points before the series' newest point).
    #[arg(long)]
    pub allow_retention_loss: bool,
    /// With --url: the service's storage.retention_days_points (0 = keeps everything), to warn
    /// before loading rows it would delete. Embedded replays read it from the settings.
    #[arg(long, default_value_t = 30, value_name = "DAYS")]
    pub retention_days: u32,
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
                let (client, base) = (reqwest::Client::new(), url.trim_end_matches('/').to_owned());
                let existing = client
                    .get(format!("{base}/v1/series/{}", urlencode(&args.series)))
                    .send()
                    .await
                    .context("asking the service for the series")?;
                let newest = match existing.status() {
                    s if s.is_success() => existing.json_or_text().await?["last_ts"].as_i64(),
                    _ => None,
                };
                check_retention(args, &times(args, &table), newest, args.retention_days, "--retention-days")?;
                replay(args, &table, Sink::Http(client, base)).await
            }
            None => {
                let mut settings = Settings::load(args.config.as_deref(), std::env::vars())?;
                settings.http.addr = "127.0.0.1:0".into(); // nothing is served; the port only exists
                let days = settings.storage.retention_days_points;
                let app = Application::build(settings).await?;
                let service = app.service();
                let newest = service.storage.series(&args.series).await?.and_then(|s| s.last_ts);
                let checked =
                    check_retention(args, &times(args, &table), newest, days, "storage.retention_days_points");
                let (tx, rx) = tokio::sync::oneshot::channel::<()>();
                let serving = tokio::spawn(app.run_until_stopped(async move {
                    let _ = rx.await;
                }));
                let summary = match checked {
                    Ok(()) => replay(args, &table, Sink::Embedded(Box::new(service))).await,
                    Err(e) => Err(e),
                };
                let _ = tx.send(()); // stop: drains the pipeline, stores checkpoints
                serving.await??;
                summary
            }
        }
    })?;
    println!("{summary}");
    Ok(())
}

/// Row `i`'s time: the file's own, or numbered from --start-ms.
fn row_time(args: &Args, table: &crate::input::Table, i: usize) -> i64 {
    match &table.ts {
        Some(ts) => ts[i],
        None => args.start_ms + i as i64 * args.interval_ms,
    }
}

fn times(args: &Args, table: &crate::input::Table) -> Vec<i64> {
    (0..table.n).map(|i| row_time(args, table, i)).collect()
}

/// Rows of the file retention would remove once loaded (at most: it removes whole stored
/// blocks), and the time before which it removes them: points more than `days` before the
/// series' newest point, the file's or one already stored.
fn retention_loss(ts: &[i64], newest_stored: Option<i64>, days: u32) -> Option<(usize, i64)> {
    if days == 0 {
        return None;
    }
    let newest = ts.iter().copied().max()?.max(newest_stored.unwrap_or(i64::MIN));
    let cutoff = newest.saturating_sub(i64::from(days) * 86_400_000);
    let lost = ts.iter().filter(|&&t| t < cutoff).count();
    (lost > 0).then_some((lost, cutoff))
}

/// Refuses (or, with --allow-retention-loss, warns) when retention would delete loaded rows.
fn check_retention(args: &Args, ts: &[i64], newest: Option<i64>, days: u32, setting: &str) -> anyhow::Result<()> {
    let Some((lost, cutoff)) = retention_loss(ts, newest, days) else { return Ok(()) };
    let when = utc(cutoff);
    let what = format!(
        "retention would delete up to {lost} of the {} rows (those before {when}): {setting} = {days} counts back from \
         the series' newest point",
        ts.len()
    );
    if args.allow_retention_loss {
        eprintln!("warning: {what}; loading anyway (--allow-retention-loss)");
        return Ok(());
    }
    bail!(
        "{what}. Raise it (0 keeps everything), replay a shorter stretch, or pass --allow-retention-loss to load anyway"
    )
}

/// Epoch ms as `YYYY-MM-DD HH:MM:SS UTC` (civil from days, proleptic Gregorian).
fn utc(ms: i64) -> String {
    let (days, secs) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000) / 1000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC", secs / 3600, secs % 3600 / 60, secs % 60)
}

/// A series name as one URL path segment.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
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
                let ts = row_time(args, table, i);
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

#[cfg(test)]
mod tests {
    use super::{retention_loss, utc};

    #[test]
    fn times_print_as_utc() {
        assert_eq!(utc(1_404_172_800_000), "2014-07-01 00:00:00 UTC");
        assert_eq!(utc(1_795_780_800_000 + 61_000), "2026-11-27 12:01:01 UTC");
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn retention_loss_counts_rows_older_than_the_newest_point_less_the_days() {
        const DAY: i64 = 86_400_000;
        let ts: Vec<i64> = (0..10).map(|d| d * DAY).collect(); // days 0..=9
        assert_eq!(retention_loss(&ts, None, 0), None, "0 keeps everything");
        assert_eq!(retention_loss(&ts, None, 30), None);
        assert_eq!(retention_loss(&ts, None, 7), Some((2, 2 * DAY)), "days 0 and 1 are over 7 days before day 9");
        // A series already holding newer points pushes the cut later.
        assert_eq!(retention_loss(&ts, Some(20 * DAY), 15), Some((5, 5 * DAY)));
        assert_eq!(retention_loss(&[], None, 1), None);
    }
}
