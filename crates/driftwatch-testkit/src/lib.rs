//! Synthetic series with known change points, for tests and benchmarks. Generated from fixed
//! seeds, so every run sees the same data; nothing here reads files.

#![warn(missing_docs)]

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Concatenated univariate Gaussian segments `(mean, sd, len)`.
pub fn gaussian_segments(segments: &[(f64, f64, usize)], seed: u64) -> Vec<f64> {
    let mut r = rng(seed);
    let mut out = Vec::new();
    for &(mu, sd, len) in segments {
        let dist = Normal::new(mu, sd).expect("finite sd");
        out.extend((0..len).map(|_| dist.sample(&mut r)));
    }
    out
}

/// S1 of the iCID paper (spec §7): five zero-mean Gaussians of 300 points with sd 1, 2.2, 4.3,
/// 48.3 and 28.3, plus five noise points at rows 89, 117, 139, 523 and 537. The paper does not
/// give the noise values; here each is an outlier of 6x the local sd with alternating sign.
/// Change points at 300, 600, 900, 1200.
pub fn s1(seed: u64) -> (Vec<f64>, Vec<usize>) {
    let sds = [1.0, 2.2, 4.3, 48.3, 28.3];
    let mut x = gaussian_segments(&sds.map(|sd| (0.0, sd, 300)), seed);
    for (i, &row) in [89usize, 117, 139, 523, 537].iter().enumerate() {
        let sd = sds[row / 300];
        x[row] = if i % 2 == 0 { 6.0 * sd } else { -6.0 * sd };
    }
    (x, vec![300, 600, 900, 1200])
}

/// S2 of the iCID paper (spec §7): three zero-mean 2-D Gaussians of 1000 points with covariances
/// [0.9 0.4; 0.4 0.2], [0.5 0.5; 0.5 0.5] and [0.9 0.1; 0.1 0.9]; the marginals barely change, the
/// joint does. Row-major, 2 columns. Change points at 1000 and 2000.
pub fn s2(seed: u64) -> (Vec<f64>, Vec<usize>) {
    let covs: [[f64; 3]; 3] = [[0.9, 0.4, 0.2], [0.5, 0.5, 0.5], [0.9, 0.1, 0.9]]; // [a, b, c] = [[a b],[b c]]
    let mut r = rng(seed);
    let z = Normal::new(0.0, 1.0).expect("unit normal");
    let mut out = Vec::with_capacity(6000);
    for [a, b, c] in covs {
        // Cholesky of [[a b],[b c]]; the second matrix is singular, so clamp at zero.
        let l11: f64 = a.sqrt();
        let l21 = b / l11;
        let l22 = (c - l21 * l21).max(0.0).sqrt();
        for _ in 0..1000 {
            let (z1, z2) = (z.sample(&mut r), z.sample(&mut r));
            out.push(l11 * z1);
            out.push(l21 * z1 + l22 * z2);
        }
    }
    (out, vec![1000, 2000])
}

/// The timing input of the reference's `gen_data.py`, regenerated here with this crate's RNG:
/// `segments` segments of `len` rows, `d` columns, each segment's column means drawn from
/// N(0, 2²), noise N(0, 1). Row-major.
pub fn piecewise_gaussian(segments: usize, len: usize, d: usize, seed: u64) -> Vec<f64> {
    let mut r = rng(seed);
    let mean_dist = Normal::new(0.0, 2.0).expect("finite sd");
    let noise = Normal::new(0.0, 1.0).expect("unit normal");
    let mut out = Vec::with_capacity(segments * len * d);
    for _ in 0..segments {
        let mus: Vec<f64> = (0..d).map(|_| mean_dist.sample(&mut r)).collect();
        for _ in 0..len {
            out.extend(mus.iter().map(|mu| mu + noise.sample(&mut r)));
        }
    }
    out
}

/// What changes between the regimes of [`regime_series`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Regime {
    /// Gaussian noise (sd 1) whose mean alternates 0, 2, 0, ...
    Mean,
    /// Zero-mean Gaussian noise whose sd alternates 1, 3, 1, ...
    Variance,
    /// A sine (amplitude 1, plus noise sd 0.2) whose period alternates 20, 40, 20, ...: the value
    /// distribution barely changes, the rhythm does.
    Frequency,
}

impl Regime {
    /// All kinds.
    pub const ALL: [Regime; 3] = [Regime::Mean, Regime::Variance, Regime::Frequency];
}

/// A series of `len` rows whose regime changes at each row of `change_points` (sorted, inside
/// `1..len`). The sine of [`Regime::Frequency`] keeps its phase continuous across a change, so
/// only the period moves.
pub fn regime_series(kind: Regime, len: usize, change_points: &[usize], seed: u64) -> Vec<f64> {
    let mut r = rng(seed);
    let noise = Normal::new(0.0, 1.0).expect("unit normal");
    let mut out = Vec::with_capacity(len);
    let mut phase = 0.0f64;
    for i in 0..len {
        let regime = change_points.iter().filter(|&&c| c <= i).count() % 2;
        let e = noise.sample(&mut r);
        out.push(match kind {
            Regime::Mean => 2.0 * regime as f64 + e,
            Regime::Variance => {
                if regime == 1 {
                    3.0 * e
                } else {
                    e
                }
            }
            Regime::Frequency => {
                let period = if regime == 1 { 40.0 } else { 20.0 };
                phase += std::f64::consts::TAU / period;
                phase.sin() + 0.2 * e
            }
        });
    }
    out
}

/// Parses a one-column CSV fixture with a header line (the committed `tests/fixtures/*.csv`).
pub fn parse_column(text: &str) -> Vec<f64> {
    text.lines().skip(1).filter(|l| !l.trim().is_empty()).map(|l| l.trim().parse().expect("numeric fixture")).collect()
}

/// Kinds of anomaly [`labeled_series`] injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnomalyKind {
    /// One point 5–8 noise sd away.
    Spike,
    /// The level moves by 3–5 sd for good; the first 10 points after the move are labeled.
    LevelShift,
    /// 20 points with 4× the noise sd.
    VarianceBurst,
    /// 40 points whose seasonal cycle is inverted.
    SeasonalBreak,
}

impl AnomalyKind {
    /// All kinds.
    pub const ALL: [AnomalyKind; 4] = [Self::Spike, Self::LevelShift, Self::VarianceBurst, Self::SeasonalBreak];

    /// Points labeled anomalous from the event's start.
    pub fn labeled_len(self) -> usize {
        match self {
            Self::Spike => 1,
            Self::LevelShift => 10,
            Self::VarianceBurst => 20,
            Self::SeasonalBreak => 40,
        }
    }
}

/// A synthetic series with a 0/1 label per point and its events `(start, kind)`.
#[derive(Debug, Clone, PartialEq)]
pub struct LabeledSeries {
    /// Values.
    pub values: Vec<f64>,
    /// `true` = anomalous point.
    pub labels: Vec<bool>,
    /// Injected events, in time order.
    pub events: Vec<(usize, AnomalyKind)>,
}

/// A seasonal series (period `season`, amplitude 3, noise sd 1, slow drift) of `len` points with
/// `events` anomalies of random kinds at random, well separated places after the first 10 % of
/// the series.
pub fn labeled_series(len: usize, season: usize, events: usize, seed: u64) -> LabeledSeries {
    use rand::RngExt;
    let mut r = rng(seed);
    let noise = Normal::new(0.0, 1.0).expect("unit normal");
    let phase: f64 = r.random_range(0.0..std::f64::consts::TAU);
    let mut level = 0.0;
    let mut values: Vec<f64> = (0..len)
        .map(|t| {
            level += 0.002 * noise.sample(&mut r);
            level + 3.0 * (std::f64::consts::TAU * t as f64 / season as f64 + phase).sin() + noise.sample(&mut r)
        })
        .collect();
    let mut labels = vec![false; len];
    // Events in separate slots of the series after the first 10 %, one per slot.
    let start = len / 10;
    let slot = (len - start) / events.max(1);
    let mut list = Vec::with_capacity(events);
    for e in 0..events {
        let kind = AnomalyKind::ALL[r.random_range(0..AnomalyKind::ALL.len())];
        let lo = start + e * slot;
        let t0 = lo + r.random_range(0..slot.saturating_sub(60).max(1));
        let sign = if r.random::<bool>() { 1.0 } else { -1.0 };
        match kind {
            AnomalyKind::Spike => values[t0] += sign * r.random_range(5.0..8.0),
            AnomalyKind::LevelShift => {
                let d = sign * r.random_range(3.0..5.0);
                values[t0..].iter_mut().for_each(|v| *v += d);
            }
            AnomalyKind::VarianceBurst => {
                for v in &mut values[t0..(t0 + 20).min(len)] {
                    *v += 3.0 * noise.sample(&mut r);
                }
            }
            AnomalyKind::SeasonalBreak => {
                let end = (t0 + 40).min(len);
                for (t, v) in values.iter_mut().enumerate().take(end).skip(t0) {
                    let s = 3.0 * (std::f64::consts::TAU * t as f64 / season as f64 + phase).sin();
                    *v -= 2.0 * s;
                }
            }
        }
        for l in &mut labels[t0..(t0 + kind.labeled_len()).min(len)] {
            *l = true;
        }
        list.push((t0, kind));
    }
    LabeledSeries { values, labels, events: list }
}

/// The synthetic labeled set the LEIAD tests and `leiad synth` use: `series` series of `len`
/// points, seasons of 48 to 144 points, 8 events each.
pub fn labeled_set(series: usize, len: usize, seed: u64) -> Vec<LabeledSeries> {
    (0..series)
        .map(|s| labeled_series(len, 48 + 24 * (s % 5), 8, seed.wrapping_mul(1000).wrapping_add(s as u64)))
        .collect()
}
