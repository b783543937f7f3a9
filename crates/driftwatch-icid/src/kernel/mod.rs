//! The aNNE isolation-kernel feature map (spec §1): `t` partitionings, each of `psi` centres drawn
//! without replacement from the scaled series; a point falls in the Voronoi cell of its nearest
//! centre (Euclidean, first drawn centre on ties). The one-hot `n × t·psi` matrix never exists:
//! callers ask for the cell of a point in one partitioning at a time.
//!
//! # Paths
//! * [`NearestPath::Scalar`] — the reference: a plain loop over the centres in draw order.
//!   For `d = 1` it compares `|x - c|`; for `d > 1` it compares `‖c‖² - 2·x·c`, accumulated
//!   over the columns in order with one fused multiply-add per column, all in f32.
//! * Fast paths — `d = 1`: the cells of a partitioning are intervals between sorted centres
//!   ([`sorted`]); a 4096-bucket lookup table resolves most points with one load and the rest
//!   with one or two threshold compares, and for small psi the window scorer skips per-point
//!   cells altogether and counts values above each threshold (`score::threshold_stats`). `d > 1`: SIMD across points, the same fused multiply-adds
//!   in the same order as the scalar path ([`dense`]), dispatched at run time to AVX-512 or
//!   AVX2+FMA on x86-64, with a portable fallback everywhere else.
//!
//! # Invariants
//! * For `d > 1` every fast path returns exactly the scalar path's cell (same operations, same
//!   order, same rounding; "<" keeps the first centre on ties).
//! * For `d = 1` the fast path equals the scalar path except where two centres are at exactly the
//!   same computed f32 distance from the point and are not neighbours in sorted order (a rounding
//!   tie across an intervening centre); there either centre is a nearest one. Ties between
//!   neighbouring centres are broken like the scalar path, by draw order. `tests/kernel_paths.rs`
//!   checks both statements.
//! * Sampling is a pure function of (data, psi, t, seed): partitioning `k` draws from ChaCha8
//!   seeded with `seed`, stream `k`, so results never depend on how work is split over threads.

pub(crate) mod dense;
pub(crate) mod sorted;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::{IcidError, Scaled};

/// Largest psi the engine accepts: cell indices are stored in one byte.
pub const MAX_PSI: usize = 256;

/// The instruction set a fast path runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum SimdLevel {
    /// Plain Rust, compiles anywhere.
    Portable,
    /// x86-64 AVX2 with FMA, 8 f32 lanes.
    Avx2,
    /// x86-64 AVX-512F, 16 f32 lanes.
    Avx512,
}

impl SimdLevel {
    /// The widest level this CPU supports.
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return SimdLevel::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                return SimdLevel::Avx2;
            }
        }
        SimdLevel::Portable
    }

    /// Every level this CPU can run, narrowest first.
    pub fn available() -> Vec<SimdLevel> {
        let top = Self::detect();
        [SimdLevel::Portable, SimdLevel::Avx2, SimdLevel::Avx512].into_iter().filter(|l| *l <= top).collect()
    }

    /// Name for reports.
    pub fn name(self) -> &'static str {
        match self {
            SimdLevel::Portable => "portable",
            SimdLevel::Avx2 => "avx2+fma",
            SimdLevel::Avx512 => "avx512f",
        }
    }
}

/// Which nearest-centre implementation to use. A restored `Forced` level above what the CPU
/// has runs on the widest level it does have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum NearestPath {
    /// The reference loop.
    Scalar,
    /// The fast path on the widest instruction set present.
    #[default]
    Auto,
    /// The fast path on a given level (it must be available: see [`SimdLevel::available`]).
    Forced(SimdLevel),
}

impl NearestPath {
    /// The names [`NearestPath::parse`] accepts.
    pub const NAMES: &'static str = "auto, scalar, portable, avx2, avx512";

    pub(crate) fn level(self) -> Option<SimdLevel> {
        match self {
            NearestPath::Scalar => None,
            NearestPath::Auto => Some(SimdLevel::detect()),
            NearestPath::Forced(l) => Some(l.min(SimdLevel::detect())),
        }
    }

    /// A path by name (`auto`, `scalar`, `portable`, `avx2`, `avx512`; the report names
    /// `avx2+fma` and `avx512f` too), checked against this CPU.
    ///
    /// # Errors
    /// [`IcidError::Param`] (`simd`) for an unknown name or a level this CPU lacks.
    pub fn parse(name: &str) -> Result<Self, IcidError> {
        Self::parse_on(name, &SimdLevel::available())
    }

    /// As [`NearestPath::parse`], against the levels `available` (tests stand in for other CPUs).
    ///
    /// # Errors
    /// As [`NearestPath::parse`].
    pub fn parse_on(name: &str, available: &[SimdLevel]) -> Result<Self, IcidError> {
        let path = match name.trim().to_ascii_lowercase().as_str() {
            "auto" => NearestPath::Auto,
            "scalar" => NearestPath::Scalar,
            "portable" => NearestPath::Forced(SimdLevel::Portable),
            "avx2" | "avx2+fma" => NearestPath::Forced(SimdLevel::Avx2),
            "avx512" | "avx512f" => NearestPath::Forced(SimdLevel::Avx512),
            _ => return Err(IcidError::param("simd", format!("{name:?} is not one of {}", Self::NAMES))),
        };
        path.check_on(available)
    }

    /// This path, when this CPU can run it.
    ///
    /// # Errors
    /// [`IcidError::Param`] (`simd`) for a forced level this CPU lacks.
    pub fn check(self) -> Result<Self, IcidError> {
        self.check_on(&SimdLevel::available())
    }

    /// As [`NearestPath::check`], against the levels `available`.
    ///
    /// # Errors
    /// As [`NearestPath::check`].
    pub fn check_on(self, available: &[SimdLevel]) -> Result<Self, IcidError> {
        match self {
            NearestPath::Forced(l) if !available.contains(&l) => {
                let has: Vec<&str> = available.iter().map(|l| l.name()).collect();
                Err(IcidError::param(
                    "simd",
                    format!("this CPU does not support {} (it has: scalar, {})", l.name(), has.join(", ")),
                ))
            }
            _ => Ok(self),
        }
    }

    /// What this path runs on here: `scalar` or the name of the SIMD level.
    pub fn used(self) -> &'static str {
        self.level().map_or("scalar", SimdLevel::name)
    }
}

/// An isolation kernel fitted to one series: `t` partitionings of `psi` centres each.
#[derive(Debug, Clone)]
pub struct IsolationKernel {
    psi: usize,
    t: usize,
    d: usize,
    /// Centres in draw order: partitioning `k`, centre `c`, column `j` at `(k*psi + c)*d + j`.
    centres: Vec<f32>,
    index: Index,
}

#[derive(Debug, Clone)]
enum Index {
    Sorted(sorted::Sorted1d),
    Dense(dense::Dense),
}

impl IsolationKernel {
    /// Draws `t` partitionings of `min(psi, n)` centres from the rows of `points`.
    ///
    /// # Errors
    /// [`IcidError::Param`] when `psi` is outside `1..=MAX_PSI`, `t == 0`, or `points` is empty.
    pub fn sample(points: &Scaled, psi: usize, t: usize, seed: u64) -> Result<Self, IcidError> {
        Self::sample_with(points, psi, t, seed, false)
    }

    /// As [`IsolationKernel::sample`], without the 1-D bucket tables (1.6 MB at t = 200): what a
    /// per-series streaming detector keeps. Scores are identical; only the per-point 1-D lookup
    /// falls back to counting thresholds.
    ///
    /// # Errors
    /// As [`IsolationKernel::sample`].
    pub fn sample_lean(points: &Scaled, psi: usize, t: usize, seed: u64) -> Result<Self, IcidError> {
        Self::sample_with(points, psi, t, seed, true)
    }

    fn sample_with(points: &Scaled, psi: usize, t: usize, seed: u64, lean: bool) -> Result<Self, IcidError> {
        if psi == 0 || psi > MAX_PSI {
            return Err(IcidError::param("psi", format!("must be between 1 and {MAX_PSI}, got {psi}")));
        }
        if t == 0 {
            return Err(IcidError::param("t", "must be at least 1"));
        }
        if points.n == 0 {
            return Err(IcidError::param("data", "is empty"));
        }
        let psi = psi.min(points.n);
        Ok(Self::from_centres_with(Self::draw(points, psi, t, seed), psi, t, points.d, lean))
    }

    fn draw(points: &Scaled, psi: usize, t: usize, seed: u64) -> Vec<f32> {
        let mut centres = Vec::with_capacity(t * psi * points.d);
        for k in 0..t {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(k as u64);
            for i in rand::seq::index::sample(&mut rng, points.n, psi) {
                centres.extend_from_slice(points.row(i));
            }
        }
        centres
    }

    /// Heap bytes this kernel holds (centres and indexes).
    pub fn heap_bytes(&self) -> usize {
        self.centres.len() * 4
            + match &self.index {
                Index::Sorted(s) => s.heap_bytes(),
                Index::Dense(dn) => dn.heap_bytes(),
            }
    }

    /// Whether this kernel was built lean (no 1-D bucket tables).
    pub fn is_lean(&self) -> bool {
        matches!(&self.index, Index::Sorted(s) if !s.has_tables())
    }

    /// Builds a kernel from explicit centres (draw order; layout as in [`IsolationKernel::centres`]).
    pub fn from_centres(centres: Vec<f32>, psi: usize, t: usize, d: usize) -> Self {
        Self::from_centres_with(centres, psi, t, d, false)
    }

    /// As [`IsolationKernel::from_centres`]; `lean` skips the 1-D bucket tables.
    pub fn from_centres_with(centres: Vec<f32>, psi: usize, t: usize, d: usize, lean: bool) -> Self {
        assert_eq!(centres.len(), psi * t * d, "centres must be t*psi*d long");
        assert!((1..=MAX_PSI).contains(&psi) && d > 0);
        let index = if d == 1 {
            Index::Sorted(sorted::Sorted1d::build(&centres, psi, t, lean))
        } else {
            Index::Dense(dense::Dense::build(&centres, psi, t, d))
        };
        Self { psi, t, d, centres, index }
    }

    /// Centres per partitioning (after clipping to `n`).
    pub fn psi(&self) -> usize {
        self.psi
    }

    /// Number of partitionings.
    pub fn t(&self) -> usize {
        self.t
    }

    /// Columns.
    pub fn d(&self) -> usize {
        self.d
    }

    /// All centres, partitioning-major, draw order, row-major.
    pub fn centres(&self) -> &[f32] {
        &self.centres
    }

    /// The reference nearest centre (draw index) of `x` in partitioning `k`.
    pub fn nearest_scalar(&self, k: usize, x: &[f32]) -> usize {
        debug_assert_eq!(x.len(), self.d);
        match &self.index {
            Index::Sorted(_) => {
                let cs = &self.centres[k * self.psi..(k + 1) * self.psi];
                let mut best = f32::INFINITY;
                let mut idx = 0;
                for (c, &cv) in cs.iter().enumerate() {
                    let dist = (x[0] - cv).abs();
                    if dist < best {
                        best = dist;
                        idx = c;
                    }
                }
                idx
            }
            Index::Dense(dn) => dn.nearest_scalar(k, x),
        }
    }

    /// Distance-like value the scalar path minimises (for tie diagnostics in tests).
    pub fn scalar_key(&self, k: usize, c: usize, x: &[f32]) -> f32 {
        match &self.index {
            Index::Sorted(_) => (x[0] - self.centres[k * self.psi + c]).abs(),
            Index::Dense(dn) => dn.key(k, c, x),
        }
    }

    /// Nearest centre (draw index) of every row of `points` in every partitioning, row-major
    /// `n × t`, computed on `path`. For tests and tools; the detector never materialises this.
    pub fn assign(&self, points: &Scaled, path: NearestPath) -> Vec<u8> {
        self.assign_with(points, path, true)
    }

    /// The 1-D index, when this kernel has one (d = 1).
    pub(crate) fn sorted(&self) -> Option<&sorted::Sorted1d> {
        match &self.index {
            Index::Sorted(s) => Some(s),
            Index::Dense(_) => None,
        }
    }

    /// Cell of every row in every partitioning (`n × t`), with the ids histograms use: the
    /// sorted rank in 1-D, the draw index otherwise. On the scalar path a 1-D kernel finds the
    /// nearest centre with the reference loop and maps it to its rank.
    pub fn assign_ids(&self, points: &Scaled, path: NearestPath) -> Vec<u8> {
        self.assign_with(points, path, false)
    }

    fn assign_with(&self, points: &Scaled, path: NearestPath, draw_ids: bool) -> Vec<u8> {
        let to_rank = !draw_ids && path.level().is_none() && self.sorted().is_some();
        let mut out = vec![0u8; points.n * self.t];
        let mut cells = Vec::new();
        let mut block = BlockScratch::default();
        for r0 in (0..points.n).step_by(BLOCK_ROWS) {
            let r1 = (r0 + BLOCK_ROWS).min(points.n);
            block.load(self, points, r0, r1, path);
            for k in 0..self.t {
                self.cells_into(k, &block, path, &mut cells, draw_ids);
                for (i, &c) in cells.iter().enumerate() {
                    out[(r0 + i) * self.t + k] = if to_rank { self.cell_of_centre(k, c as usize) as u8 } else { c };
                }
            }
        }
        out
    }

    /// The histogram cell id of centre `c` (draw index) of partitioning `k`.
    pub fn cell_of_centre(&self, k: usize, c: usize) -> usize {
        match &self.index {
            Index::Sorted(s) => {
                let v = self.centres[k * self.psi + c];
                s.thresholds(k).iter().filter(|&&tv| v > tv).count()
            }
            Index::Dense(_) => c,
        }
    }

    /// The centre (row of `d` values) of histogram cell `id` of partitioning `k`.
    pub fn centre_of_cell(&self, k: usize, id: usize) -> &[f32] {
        let draw = match &self.index {
            Index::Sorted(s) => s.draw_of_rank(k, id),
            Index::Dense(_) => id,
        };
        let at = (k * self.psi + draw) * self.d;
        &self.centres[at..at + self.d]
    }

    /// Cell ids of the rows loaded in `block` for partitioning `k`. With `draw_ids == false` the
    /// ids are only consistent within the partitioning (the 1-D fast path then skips mapping its
    /// sorted rank back to a draw index: scores are invariant to relabelling cells).
    pub(crate) fn cells_into(
        &self,
        k: usize,
        block: &BlockScratch,
        path: NearestPath,
        out: &mut Vec<u8>,
        draw_ids: bool,
    ) {
        out.clear();
        match (path.level(), &self.index) {
            (None, _) => {
                for i in 0..block.rows {
                    let x = &block.rowmajor[i * self.d..(i + 1) * self.d];
                    out.push(self.nearest_scalar(k, x) as u8);
                }
            }
            (Some(_), Index::Sorted(s)) => s.cells(k, &block.rowmajor[..block.rows], &block.buckets, out, draw_ids),
            (Some(level), Index::Dense(dn)) => dn.cells(k, &block.soa, block.soa_stride, block.rows, level, out),
        }
    }
}

/// Rows per block in the scoring loop: the block's points stay in L1/L2 while every partitioning
/// passes over them.
pub(crate) const BLOCK_ROWS: usize = 2048;

/// A block of rows prepared for the kernels: row-major copy, 1-D bucket ids, SoA copy for SIMD.
#[derive(Debug, Default)]
pub(crate) struct BlockScratch {
    pub(crate) rows: usize,
    pub(crate) rowmajor: Vec<f32>,
    pub(crate) buckets: Vec<u16>,
    pub(crate) soa: Vec<f32>,
    pub(crate) soa_stride: usize,
}

impl BlockScratch {
    pub(crate) fn load(&mut self, kernel: &IsolationKernel, points: &Scaled, r0: usize, r1: usize, path: NearestPath) {
        let d = points.d;
        self.rows = r1 - r0;
        self.rowmajor.clear();
        self.rowmajor.extend_from_slice(&points.values[r0 * d..r1 * d]);
        if path.level().is_none() {
            return;
        }
        match kernel.index {
            Index::Sorted(_) => {
                self.buckets.clear();
                self.buckets.extend(self.rowmajor.iter().map(|&x| sorted::bucket(x) as u16));
            }
            Index::Dense(_) => {
                // Pad to a whole number of 16-lane vectors; padded lanes are computed and dropped.
                let stride = self.rows.div_ceil(16) * 16;
                self.soa_stride = stride;
                self.soa.clear();
                self.soa.resize(stride * d, 0.0);
                for i in 0..self.rows {
                    for j in 0..d {
                        self.soa[j * stride + i] = self.rowmajor[i * d + j];
                    }
                }
            }
        }
    }
}
