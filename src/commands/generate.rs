//! `driftwatch generate` (demo series with change points, produced to Kafka in real time: the
//! compose stack's data generator) and `driftwatch probe` (a health check for containers, whose
//! runtime image has no curl).

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;

/// `driftwatch generate`. A later occurrence of an option overrides an earlier one, so a
/// command line from a compose file can be extended.
#[derive(Debug, clap::Args)]
#[command(args_override_self = true)]
pub struct Args {
    /// Kafka bootstrap servers.
    #[arg(long, env = "KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub brokers: String,
    /// Topic to produce to.
    #[arg(long, default_value = "driftwatch.points")]
    pub topic: String,
    /// Series (keys `demo-000`, `demo-001`, ...).
    #[arg(long, default_value_t = 20)]
    pub series: usize,
    /// Points per second per series.
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// Points per message.
    #[arg(long, default_value_t = 10)]
    pub batch: usize,
    /// Mean points between changes of a series' distribution (mean or spread).
    #[arg(long, default_value_t = 3000)]
    pub change_every: usize,
    /// Stop after this many points per series (0 = run until stopped).
    #[arg(long, default_value_t = 0)]
    pub points: usize,
    /// Random seed.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

/// A deterministic 64-bit mix (SplitMix64), for per-series, per-segment parameters.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// One series' stream: Gaussian segments whose mean and spread change every `change_every`
/// points on average (between half and one and a half times that).
#[derive(Debug)]
struct Stream {
    seed: u64,
    segment: u64,
    buffer: std::vec::IntoIter<f64>,
    change_every: usize,
}

impl Stream {
    fn next(&mut self) -> f64 {
        loop {
            if let Some(x) = self.buffer.next() {
                return x;
            }
            let h = mix(self.seed ^ mix(self.segment));
            self.segment += 1;
            let len = ((self.change_every as f64) * (0.5 + unit(h))).max(10.0) as usize;
            let mean = 10.0 * (unit(mix(h ^ 1)) - 0.5);
            let sd = 0.5 + 2.0 * unit(mix(h ^ 2));
            self.buffer = driftwatch_testkit::gaussian_segments(&[(mean, sd, len)], h).into_iter();
        }
    }
}

/// Produces until stopped (or `--points` per series).
///
/// # Errors
/// A producer librdkafka refuses, or a failed delivery.
pub fn run(args: &Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.series > 0 && args.batch > 0 && args.rate > 0.0,
        "--series, --batch and --rate must be positive"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    runtime.block_on(async {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &args.brokers)
            .set("linger.ms", "20")
            .set("message.timeout.ms", "60000")
            .create()?;
        let mut streams: Vec<Stream> = (0..args.series)
            .map(|i| Stream {
                seed: mix(args.seed ^ mix(i as u64)),
                segment: 0,
                buffer: Vec::new().into_iter(),
                change_every: args.change_every,
            })
            .collect();
        let start_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
        let step_ms = (1000.0 / args.rate).max(1.0) as i64;
        let started = Instant::now();
        eprintln!(
            "generate: {} series at {} points/s each to {} on {}",
            args.series, args.rate, args.topic, args.brokers
        );
        let mut n = 0usize;
        loop {
            if args.points > 0 && n >= args.points {
                break;
            }
            // Real time: batch k of every series is due at start + k·batch/rate.
            let due = started + Duration::from_secs_f64(n as f64 / args.rate);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                tokio::time::sleep(wait).await;
            }
            let mut deliveries = Vec::with_capacity(args.series);
            for (i, s) in streams.iter_mut().enumerate() {
                let points: Vec<serde_json::Value> = (n..n + args.batch)
                    .map(|j| json!([start_ms + j as i64 * step_ms, (s.next() * 1e4).round() / 1e4]))
                    .collect();
                let key = format!("demo-{i:03}");
                let payload = json!({ "points": points }).to_string();
                let record: FutureRecord<'_, str, str> =
                    FutureRecord::to(&args.topic).key(key.as_str()).payload(payload.as_str());
                deliveries.push(producer.send_result(record).map_err(|(e, _)| anyhow::anyhow!("producing: {e}"))?);
            }
            for d in deliveries {
                d.await?.map_err(|(e, _)| anyhow::anyhow!("producing: {e}"))?;
            }
            n += args.batch;
        }
        Ok(())
    })
}

/// `driftwatch probe URL`.
///
/// # Errors
/// When the URL does not answer 2xx within two seconds.
pub fn probe(url: &str) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
        let status = client.get(url).send().await?.status();
        anyhow::ensure!(status.is_success(), "{url} answered {status}");
        Ok(())
    })
}
