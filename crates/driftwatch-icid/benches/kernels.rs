//! Criterion micro-benchmarks of the engine's hot spots: the nearest-centre search (scalar
//! reference vs fast paths, reported side by side so the ratio comes from one run), window
//! scoring and approximate entropy.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use driftwatch_icid::apen::approximate_entropy_default;
use driftwatch_icid::score::pair_stats;
use driftwatch_icid::{IsolationKernel, Layout, NearestPath, SimdLevel, Windows, minmax_scale};
use driftwatch_testkit::piecewise_gaussian;

fn nearest(c: &mut Criterion) {
    for (d, psi) in [(1usize, 16usize), (1, 64), (8, 16), (8, 64)] {
        let data = piecewise_gaussian(4, 2500, d, 7);
        let pts = minmax_scale(&data, d).unwrap();
        let kernel = IsolationKernel::sample(&pts, psi, 50, 1).unwrap();
        let windows = Windows::new(pts.n, 50, Layout::Shared).unwrap();
        let mut g = c.benchmark_group(format!("window_scores_d{d}_psi{psi}_t50_n10000"));
        g.throughput(Throughput::Elements((pts.n * kernel.t()) as u64));
        g.sample_size(10);
        let mut paths = vec![("scalar", NearestPath::Scalar)];
        paths.extend(SimdLevel::available().into_iter().map(|l| (l.name(), NearestPath::Forced(l))));
        for (name, path) in paths {
            g.bench_function(name, |b| b.iter(|| pair_stats(&kernel, &pts, &windows, path)));
        }
        g.finish();
    }
}

fn apen(c: &mut Criterion) {
    // A point-score-like series: 2,000 runs of 50.
    let raw = piecewise_gaussian(2000, 1, 1, 3);
    let x: Vec<f64> = raw.iter().flat_map(|&v| std::iter::repeat_n(v.abs() / 8.0, 50)).collect();
    c.bench_function("apen_runs2000x50", |b| b.iter(|| approximate_entropy_default(&x)));
}

criterion_group!(benches, nearest, apen);
criterion_main!(benches);
