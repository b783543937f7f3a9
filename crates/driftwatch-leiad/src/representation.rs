//! The representation Z used for similarity (part A, replacing TS2Vec): the isolation-kernel
//! mean map of a point's causal context. One pooled kernel (`t` partitionings of `psi` centres)
//! is drawn from the per-series min-max scaled values, so maps are comparable across series.
//! `Z_i` = the histogram of the cells of the last `w` points (the context's mean map times `w`)
//! plus `w` at the point's own cell, so the point and its context weigh the same. Similarity is
//! the cosine of two maps.
//!
//! Stored as `u8` counts (`w ≤ 127` keeps every entry ≤ 254): `t·psi` bytes per point, 128 at the
//! defaults, 12.8 MB for 100,000 points.

use driftwatch_icid::{IsolationKernel, NearestPath, Scaled, minmax_scale};

use crate::Pool;
use crate::features::SeriesWindows;

/// Partitionings of the representation kernel.
pub const REPR_T: usize = 8;
/// Centres per partitioning.
pub const REPR_PSI: usize = 16;
/// Entries of one map.
pub const REPR_DIM: usize = REPR_T * REPR_PSI;

/// Z for every pooled point: `n × REPR_DIM` counts, with each row's Euclidean norm.
#[derive(Debug, Clone)]
pub struct Representation {
    counts: Vec<u8>,
    norms: Vec<f32>,
}

impl Representation {
    /// Builds Z for the pool.
    pub fn build(pool: &Pool, windows: &[SeriesWindows], seed: u64) -> Self {
        let n = pool.len();
        let mut scaled = Vec::with_capacity(n);
        for s in pool.series() {
            let sc = minmax_scale(&s.values, 1).expect("pool validated finite values");
            scaled.extend_from_slice(&sc.values);
        }
        let points = Scaled { values: scaled, n, d: 1 };
        let kernel =
            IsolationKernel::sample_lean(&points, REPR_PSI, REPR_T, seed).expect("psi and t are in range, n > 0");
        let psi = kernel.psi();
        let cells = kernel.assign_ids(&points, NearestPath::Auto); // n × t, cell ids < psi
        let mut counts = vec![0u8; n * REPR_DIM];
        let mut hist = [0u8; REPR_DIM];
        for (s, win) in windows.iter().enumerate() {
            let range = pool.range(s);
            let w = win.context.min(127);
            hist.fill(0);
            for i in range.clone() {
                for k in 0..REPR_T {
                    hist[k * REPR_PSI + cells[i * REPR_T + k] as usize] += 1;
                }
                if i >= range.start + w {
                    let o = i - w;
                    for k in 0..REPR_T {
                        hist[k * REPR_PSI + cells[o * REPR_T + k] as usize] -= 1;
                    }
                }
                let row = &mut counts[i * REPR_DIM..(i + 1) * REPR_DIM];
                row.copy_from_slice(&hist);
                for k in 0..REPR_T {
                    row[k * REPR_PSI + cells[i * REPR_T + k] as usize] += w as u8;
                }
            }
        }
        debug_assert!(psi <= REPR_PSI);
        let norms = counts
            .chunks_exact(REPR_DIM)
            .map(|r| r.iter().map(|&c| f32::from(c).powi(2)).sum::<f32>().sqrt())
            .collect();
        Self { counts, norms }
    }

    /// Points.
    pub fn len(&self) -> usize {
        self.norms.len()
    }

    /// Whether there are no points.
    pub fn is_empty(&self) -> bool {
        self.norms.is_empty()
    }

    /// The map of point `i`.
    pub fn row(&self, i: usize) -> &[u8] {
        &self.counts[i * REPR_DIM..(i + 1) * REPR_DIM]
    }

    /// The L2-normalised map of point `i`.
    pub fn unit(&self, i: usize) -> [f32; REPR_DIM] {
        let mut out = [0f32; REPR_DIM];
        let inv = if self.norms[i] > 0.0 { 1.0 / self.norms[i] } else { 0.0 };
        for (o, &c) in out.iter_mut().zip(self.row(i)) {
            *o = f32::from(c) * inv;
        }
        out
    }

    /// Cosine of every point's map with `unit` (an L2-normalised vector), into `out`.
    pub fn cosines(&self, unit: &[f32; REPR_DIM], out: &mut Vec<f32>) {
        out.clear();
        out.extend(self.counts.chunks_exact(REPR_DIM).zip(&self.norms).map(|(row, &norm)| {
            let dot: f32 = row.iter().zip(unit).map(|(&c, &u)| f32::from(c) * u).sum();
            if norm > 0.0 { dot / norm } else { 0.0 }
        }));
    }
}
