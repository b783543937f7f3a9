//! Decoder throughput: a 1,000-point batch (the HTTP ingest benchmark's unit) and the same
//! points as NDJSON single-point lines, reported in points per second.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use driftwatch::decode::{decode_body, decode_message};

fn decode(c: &mut Criterion) {
    let pts: Vec<String> =
        (0..1000).map(|i| format!("[{},{}]", 1_795_780_800_000i64 + i * 1000, (i as f64 * 0.37).sin())).collect();
    let batch = format!("{{\"series\":\"cpu.host1\",\"points\":[{}]}}", pts.join(","));
    let ndjson: String = (0..1000)
        .map(|i| {
            format!(
                "{{\"series\":\"cpu.host1\",\"ts\":\"2026-11-27T12:{:02}:{:02}Z\",\"value\":{}}}\n",
                i / 60 % 60,
                i % 60,
                i
            )
        })
        .collect();
    let mut g = c.benchmark_group("decode_1000_points");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("batch_epoch_ms", |b| b.iter(|| decode_message(batch.as_bytes()).unwrap()));
    g.bench_function("ndjson_rfc3339_lines", |b| b.iter(|| decode_body(ndjson.as_bytes())));
    g.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
