//! The 1-D fast path. In one dimension a Voronoi cell is an interval, so a partitioning is a
//! sorted list of thresholds: a point's cell (by sorted rank) is the number of thresholds below
//! it. A 4096-bucket table per partitioning maps `bucket(x)` to the rank of the bucket's first
//! threshold and the number of thresholds inside the bucket; most points need no compare at all,
//! the rest one or two.
//!
//! Thresholds are exact: for neighbouring distinct centres `a < b` the threshold is the largest
//! f32 at which the scalar comparison (`|x-b| < |x-a|`, ties to the earlier drawn) still picks
//! `a`, found by stepping ulps from the midpoint. So the rank equals the scalar answer except at
//! rounding ties across an intervening centre (see the module docs of `kernel`).
//!
//! The streaming detector's histograms count values between thresholds ([`cell_counts`]), once
//! per level: AVX-512 and AVX2 broadcast each value against every threshold at once (up to 64
//! and 32 thresholds, lanes of counts), the portable path (and larger psi) counts per threshold
//! in a loop the compiler vectorises ([`count_above`]). All give the same integers.

/// Buckets per table (2^12): one partitioning's table is 8 KiB and stays in L1 while the loop
/// walks a block of points.
pub(crate) const BUCKETS: usize = 4096;

/// Bucket of a scaled value; monotone in `x` (saturating casts clamp values outside [0, 1]).
#[inline(always)]
pub(crate) fn bucket(x: f32) -> usize {
    ((x * BUCKETS as f32) as usize).min(BUCKETS - 1)
}

#[derive(Debug, Clone)]
pub(crate) struct Sorted1d {
    psi: usize,
    /// Threshold slots per partitioning (`psi`; at most `psi − 1` are used, the rest are +inf).
    stride: usize,
    /// `t × stride`: sorted thresholds of partitioning k at `k*stride ..`, at most `psi − 1` used.
    thresholds: Vec<f32>,
    /// Thresholds in use per partitioning (distinct centres − 1).
    used: Vec<u8>,
    /// `t × psi`: draw index of the centre with sorted rank r.
    rank_to_draw: Vec<u8>,
    /// `t × BUCKETS`: low byte = rank at the bucket's start, high byte = thresholds in the bucket.
    /// Empty for a lean index (streaming), which counts per threshold only.
    lut: Vec<u16>,
}

impl Sorted1d {
    pub(crate) fn build(centres: &[f32], psi: usize, t: usize, lean: bool) -> Self {
        let stride = psi;
        let mut thresholds = vec![f32::INFINITY; t * stride];
        let mut rank_to_draw = vec![0u8; t * psi];
        let mut lut = if lean { Vec::new() } else { vec![0u16; t * BUCKETS] };
        let mut used_per = Vec::with_capacity(t);
        let mut order: Vec<(f32, usize)> = Vec::with_capacity(psi);
        for k in 0..t {
            order.clear();
            order.extend(centres[k * psi..(k + 1) * psi].iter().copied().zip(0..psi));
            // By value, then by draw index: the first of equal centres is the one the scalar keeps.
            order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            order.dedup_by(|later, first| later.0 == first.0);
            let thr = &mut thresholds[k * stride..(k + 1) * stride];
            for (r, &(_, draw)) in order.iter().enumerate() {
                rank_to_draw[k * psi + r] = draw as u8;
            }
            for (r, pair) in order.windows(2).enumerate() {
                thr[r] = split_point(pair[0], pair[1]);
            }
            let used = order.len() - 1;
            used_per.push(used as u8);
            if lean {
                continue;
            }
            let table = &mut lut[k * BUCKETS..(k + 1) * BUCKETS];
            let mut j = 0; // thresholds with bucket < q
            for (q, slot) in table.iter_mut().enumerate() {
                while j < used && bucket(thr[j]) < q {
                    j += 1;
                }
                let mut len = 0;
                while j + len < used && bucket(thr[j + len]) == q {
                    len += 1;
                }
                *slot = (j as u16) | ((len as u16) << 8);
            }
        }
        Self { psi, stride, thresholds, used: used_per, rank_to_draw, lut }
    }

    /// Sorted rank of `x` (whose bucket is `q`) in one partitioning (`lut`, `thr` its slices).
    /// Most buckets hold no threshold, so the loop is usually skipped and its branch predicts
    /// well; a branch-free variant comparing two thresholds every time measured 25 % slower.
    #[inline(always)]
    fn rank(x: f32, q: usize, lut: &[u16], thr: &[f32]) -> usize {
        let e = lut[q];
        let base = (e & 0xff) as usize;
        let len = (e >> 8) as usize;
        let mut r = base;
        for &tv in &thr[base..base + len] {
            r += (x > tv) as usize;
        }
        r
    }

    /// The sorted thresholds partitioning `k` uses: a point's cell rank is how many it exceeds.
    /// Draw index of the centre whose sorted rank is `r` in partitioning `k`.
    pub(crate) fn draw_of_rank(&self, k: usize, r: usize) -> usize {
        self.rank_to_draw[k * self.psi + r] as usize
    }

    /// Whether the bucket tables were built.
    pub(crate) fn has_tables(&self) -> bool {
        !self.lut.is_empty()
    }

    /// Heap bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.thresholds.len() * 4 + self.used.len() + self.rank_to_draw.len() + self.lut.len() * 2
    }

    pub(crate) fn thresholds(&self, k: usize) -> &[f32] {
        &self.thresholds[k * self.stride..k * self.stride + self.used[k] as usize]
    }

    pub(crate) fn cells(&self, k: usize, xs: &[f32], buckets: &[u16], out: &mut Vec<u8>, draw_ids: bool) {
        if self.lut.is_empty() {
            // Lean index: rank by counting thresholds.
            let thr = self.thresholds(k);
            let map = &self.rank_to_draw[k * self.psi..(k + 1) * self.psi];
            out.extend(xs.iter().map(|&x| {
                let r = thr.iter().filter(|&&tv| x > tv).count();
                if draw_ids { map[r] } else { r as u8 }
            }));
            return;
        }
        let lut = &self.lut[k * BUCKETS..(k + 1) * BUCKETS];
        let thr = &self.thresholds[k * self.stride..(k + 1) * self.stride];
        out.reserve(xs.len());
        if draw_ids {
            let map = &self.rank_to_draw[k * self.psi..(k + 1) * self.psi];
            out.extend(xs.iter().zip(buckets).map(|(&x, &q)| map[Self::rank(x, q as usize, lut, thr)]));
        } else {
            out.extend(xs.iter().zip(buckets).map(|(&x, &q)| Self::rank(x, q as usize, lut, thr) as u8));
        }
    }
}

/// Largest f32 `x` at which the scalar rule still prefers centre `a` over `b` (`a.0 < b.0`).
fn split_point(a: (f32, usize), b: (f32, usize)) -> f32 {
    let prefers_b = |x: f32| {
        let (da, db) = ((x - a.0).abs(), (x - b.0).abs());
        db < da || (db == da && b.1 < a.1)
    };
    // Bisection over the f32 values between the centres (ordered as non-negative bit patterns
    // when both are >= 0, which scaled data always are; the general key handles negatives).
    let key = |x: f32| {
        let b = x.to_bits() as i32;
        b ^ ((((b >> 31) as u32) >> 1) as i32)
    };
    let unkey = |k: i32| f32::from_bits((k ^ ((((k >> 31) as u32) >> 1) as i32)) as u32);
    let (mut lo, mut hi) = (key(a.0), key(b.0)); // prefers_b(a) is false, prefers_b(b) true
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if prefers_b(unkey(mid)) { hi = mid } else { lo = mid }
    }
    unkey(lo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_point_separates_the_two_centres_exactly() {
        for &(a, b) in &[(0.1f32, 0.3f32), (0.0, 1.0), (0.5, 0.5000001), (0.2, 0.7)] {
            for order in [(0usize, 1usize), (1, 0)] {
                let s = split_point((a, order.0), (b, order.1));
                let pick_b = |x: f32| {
                    let (da, db) = ((x - a).abs(), (x - b).abs());
                    db < da || (db == da && order.1 < order.0)
                };
                assert!(!pick_b(s), "{a} {b} {s}");
                assert!(pick_b(s.next_up()), "{a} {b} {s}");
            }
        }
    }

    #[test]
    fn cell_counts_are_the_same_at_every_level() {
        use crate::SimdLevel;
        let mut state = 7u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 40) as f32) / (1u64 << 24) as f32
        };
        for used in [0usize, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 200] {
            for len in [0usize, 1, 2, 3, 49, 50, 51, 2048] {
                let mut thr: Vec<f32> = (0..used).map(|_| next()).collect();
                thr.sort_by(f32::total_cmp);
                // Values on thresholds too: "above" is strict.
                let xs: Vec<f32> =
                    (0..len).map(|i| if i % 5 == 0 && used > 0 { thr[i % used] } else { next() }).collect();
                let mut want = vec![0u16; used + 1];
                for &x in &xs {
                    want[thr.iter().filter(|&&t| x > t).count()] += 1;
                }
                for level in SimdLevel::available() {
                    let mut got = vec![0u16; used + 1];
                    cell_counts(level, &xs, &thr, &mut got);
                    assert_eq!(got, want, "{level:?} used {used} len {len}");
                }
            }
        }
    }

    #[test]
    fn bucket_is_monotone_and_clamps() {
        assert_eq!(bucket(-1.0), 0);
        assert_eq!(bucket(0.0), 0);
        assert_eq!(bucket(1.0), BUCKETS - 1);
        assert_eq!(bucket(7.0), BUCKETS - 1);
        let mut prev = 0;
        for i in 0..10_000 {
            let b = bucket(i as f32 / 9_999.0);
            assert!(b >= prev);
            prev = b;
        }
    }
}

/// For each threshold `thr[j]`, how many of `xs` exceed it (`out[j]`). Compare-and-count over
/// contiguous values, which the compiler vectorises; called through `target_feature` wrappers so
/// it gets the widest vectors present.
#[inline(always)]
fn count_above_generic(xs: &[f32], thr: &[f32], out: &mut [u32]) {
    for (o, &t) in out.iter_mut().zip(thr) {
        *o = xs.iter().map(|&x| (x > t) as u32).sum();
    }
}

/// AVX-512: up to 8 chunks of 16 values stay in registers (a tail chunk is padded with −inf,
/// which exceeds nothing); each threshold is then 1 compare and 1 popcount per chunk.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,popcnt")]
fn count_above_avx512(xs: &[f32], thr: &[f32], out: &mut [u32]) {
    use std::arch::x86_64::*;
    const MAX_CHUNKS: usize = 8;
    let chunks = xs.len().div_ceil(16);
    if chunks > MAX_CHUNKS {
        return count_above_generic(xs, thr, out);
    }
    let neg = _mm512_set1_ps(f32::NEG_INFINITY);
    let mut v = [neg; MAX_CHUNKS];
    for (c, slot) in v.iter_mut().enumerate().take(chunks) {
        let rem = (xs.len() - c * 16).min(16);
        let mask: __mmask16 = if rem == 16 { 0xffff } else { (1u16 << rem) - 1 };
        // SAFETY: the mask covers only the `rem` values that exist from `c * 16` on.
        *slot = unsafe { _mm512_mask_loadu_ps(neg, mask, xs.as_ptr().add(c * 16)) };
    }
    for (o, &t) in out.iter_mut().zip(thr) {
        let tv = _mm512_set1_ps(t);
        let mut n = 0u32;
        for slot in v.iter().take(chunks) {
            n += _mm512_cmp_ps_mask::<_CMP_GT_OQ>(*slot, tv).count_ones();
        }
        *o = n;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn count_above_avx2(xs: &[f32], thr: &[f32], out: &mut [u32]) {
    count_above_generic(xs, thr, out)
}

/// [`count_above_generic`] on the given instruction set.
pub(crate) fn count_above(level: super::SimdLevel, xs: &[f32], thr: &[f32], out: &mut [u32]) {
    match level {
        // SAFETY (both arms): `NearestPath::level` never returns a level above `SimdLevel::detect()`
        // (AVX-512F implies POPCNT on every CPU that has it).
        #[cfg(target_arch = "x86_64")]
        super::SimdLevel::Avx512
            if std::arch::is_x86_feature_detected!("avx512bw") && std::arch::is_x86_feature_detected!("avx512vl") =>
        unsafe { count_above_avx512(xs, thr, out) },
        #[cfg(target_arch = "x86_64")]
        super::SimdLevel::Avx512 | super::SimdLevel::Avx2 => unsafe { count_above_avx2(xs, thr, out) },
        _ => count_above_generic(xs, thr, out),
    }
}

/// Cell counts (`out[c]`, `c = 0..=thr.len()`) of `xs` for one partitioning: the values above
/// threshold `c−1` and not above threshold `c`. `out` has room for `thr.len() + 1` cells.
pub(crate) fn cell_counts(level: super::SimdLevel, xs: &[f32], thr: &[f32], out: &mut [u16]) {
    let used = thr.len();
    #[cfg(target_arch = "x86_64")]
    if level == super::SimdLevel::Avx512 && used <= 64 {
        // SAFETY: Avx512 is only ever passed when the CPU has AVX-512F.
        unsafe { cell_counts_lanes_avx512(xs, thr, out) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if level == super::SimdLevel::Avx2 && used <= AVX2_LANES_MAX {
        // SAFETY: Avx2 is only ever passed when the CPU has AVX2 (and FMA).
        unsafe { cell_counts_lanes_avx2(xs, thr, out) };
        return;
    }
    let mut above = [0u32; super::MAX_PSI];
    count_above(level, xs, thr, &mut above[..used]);
    cells_from_above(xs.len(), &above[..used], out);
}

/// Cell counts from the counts above each threshold: cell `c` holds the values above threshold
/// `c − 1` (all `n` for cell 0) and not above threshold `c`.
fn cells_from_above(n: usize, above: &[u32], out: &mut [u16]) {
    let mut more = n as u32;
    for (slot, &next) in out.iter_mut().zip(above) {
        *slot = (more - next) as u16;
        more = next;
    }
    out[above.len()] = more as u16;
}

/// Up to 64 thresholds, one per lane of up to four vectors (unused lanes +inf): every value is
/// broadcast, compared with all thresholds at once, and counted into the lanes it exceeds. Lane
/// `j` ends holding how many values exceed threshold `j`; cell `c`'s count is lane `c−1` minus
/// lane `c` (lane −1 = all values).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn cell_counts_lanes_avx512(xs: &[f32], thr: &[f32], out: &mut [u16]) {
    use std::arch::x86_64::*;
    let used = thr.len();
    debug_assert!(used <= 64 && out.len() > used);
    let vecs = used.div_ceil(16).max(1);
    let inf = _mm512_set1_ps(f32::INFINITY);
    let mut t = [inf; 4];
    for (v, tv) in t.iter_mut().enumerate().take(vecs) {
        let rem = used.saturating_sub(v * 16).min(16);
        let lanes: __mmask16 = if rem == 16 { 0xffff } else { (1u16 << rem) - 1 };
        // SAFETY: the mask covers only thresholds that exist from `v * 16` on.
        *tv = unsafe { _mm512_mask_loadu_ps(inf, lanes, thr.as_ptr().add(v * 16)) };
    }
    let one = _mm512_set1_epi32(1);
    let mut acc = [_mm512_setzero_si512(); 4];
    match vecs {
        1 => {
            // Two accumulators so consecutive values do not wait on each other.
            let mut b = _mm512_setzero_si512();
            let mut pairs = xs.chunks_exact(2);
            for p in &mut pairs {
                let m0 = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(t[0], _mm512_set1_ps(p[0]));
                acc[0] = _mm512_mask_add_epi32(acc[0], m0, acc[0], one);
                let m1 = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(t[0], _mm512_set1_ps(p[1]));
                b = _mm512_mask_add_epi32(b, m1, b, one);
            }
            for &x in pairs.remainder() {
                let m = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(t[0], _mm512_set1_ps(x));
                acc[0] = _mm512_mask_add_epi32(acc[0], m, acc[0], one);
            }
            acc[0] = _mm512_add_epi32(acc[0], b);
        }
        _ => {
            for &x in xs {
                let xv = _mm512_set1_ps(x);
                for (a, tv) in acc.iter_mut().zip(&t).take(vecs) {
                    let m = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(*tv, xv);
                    *a = _mm512_mask_add_epi32(*a, m, *a, one);
                }
            }
        }
    }
    let mut above = [0u32; 64];
    for (v, a) in acc.iter().enumerate().take(vecs) {
        // SAFETY: `above` holds 64 lanes; v < 4.
        unsafe { _mm512_storeu_si512(above.as_mut_ptr().add(v * 16).cast(), *a) };
    }
    cells_from_above(xs.len(), &above[..used], out);
}

/// Most thresholds [`cell_counts_lanes_avx2`] takes: four vectors of eight (psi up to 33; the
/// streaming default candidates are 2 to 16), leaving registers for the counts.
#[cfg(target_arch = "x86_64")]
const AVX2_LANES_MAX: usize = 32;

/// AVX2 version of [`cell_counts_lanes_avx512`]: up to 32 thresholds in four 8-lane vectors
/// (unused lanes +inf); every value is broadcast and compared with all of them, and the compare
/// mask (all ones, −1 as an integer) is subtracted from the lanes' counts.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn cell_counts_lanes_avx2(xs: &[f32], thr: &[f32], out: &mut [u16]) {
    let used = thr.len();
    debug_assert!(used <= AVX2_LANES_MAX && out.len() > used);
    let mut padded = [f32::INFINITY; AVX2_LANES_MAX];
    padded[..used].copy_from_slice(thr);
    let mut above = [0u32; AVX2_LANES_MAX];
    // SAFETY (every arm): the caller guarantees AVX2.
    match used.div_ceil(8) {
        0 | 1 => unsafe { lanes_avx2::<1>(xs, &padded, &mut above) },
        2 => unsafe { lanes_avx2::<2>(xs, &padded, &mut above) },
        3 => unsafe { lanes_avx2::<3>(xs, &padded, &mut above) },
        _ => unsafe { lanes_avx2::<4>(xs, &padded, &mut above) },
    }
    cells_from_above(xs.len(), &above[..used], out);
}

/// `above[j]` = values of `xs` above `thr[j]`, for the first `V * 8` thresholds.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn lanes_avx2<const V: usize>(xs: &[f32], thr: &[f32; AVX2_LANES_MAX], above: &mut [u32; AVX2_LANES_MAX]) {
    use std::arch::x86_64::*;
    let mut t = [_mm256_setzero_ps(); V];
    for (v, tv) in t.iter_mut().enumerate() {
        // SAFETY: `thr` holds AVX2_LANES_MAX >= V * 8 values.
        *tv = unsafe { _mm256_loadu_ps(thr.as_ptr().add(v * 8)) };
    }
    // Two sets of counts so consecutive values do not wait on each other.
    let mut a = [_mm256_setzero_si256(); V];
    let mut b = [_mm256_setzero_si256(); V];
    let mut pairs = xs.chunks_exact(2);
    for p in &mut pairs {
        let (x0, x1) = (_mm256_set1_ps(p[0]), _mm256_set1_ps(p[1]));
        for v in 0..V {
            let m0 = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_LT_OQ>(t[v], x0));
            a[v] = _mm256_sub_epi32(a[v], m0);
            let m1 = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_LT_OQ>(t[v], x1));
            b[v] = _mm256_sub_epi32(b[v], m1);
        }
    }
    for &x in pairs.remainder() {
        let xv = _mm256_set1_ps(x);
        for v in 0..V {
            let m = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_LT_OQ>(t[v], xv));
            a[v] = _mm256_sub_epi32(a[v], m);
        }
    }
    for v in 0..V {
        // SAFETY: `above` holds AVX2_LANES_MAX >= V * 8 lanes.
        unsafe { _mm256_storeu_si256(above.as_mut_ptr().add(v * 8).cast(), _mm256_add_epi32(a[v], b[v])) };
    }
}
