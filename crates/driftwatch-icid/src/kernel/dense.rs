//! The `d > 1` nearest-centre search: `argmin_c ‖c‖² − 2·x·c`.
//!
//! Per centre the key starts at `‖c‖²` and takes one fused multiply-add per column,
//! `key = x_j · (−2 c_j) + key`, columns in order. The scalar path does exactly that with
//! `f32::mul_add`; the SIMD paths do it for 8 (AVX2) or 16 (AVX-512) points at once, one lane per
//! point, so every lane performs the scalar path's operations in the scalar path's order and
//! rounds the same way. Centres are visited in draw order and only a strictly smaller key
//! replaces the best, so ties keep the first drawn centre on every path.
//!
//! Layout: points arrive structure-of-arrays (`soa[j*stride + i]`) so one vector load gives one
//! column of 8/16 points; centre values are broadcast from memory.

use super::SimdLevel;

#[derive(Debug, Clone)]
pub(crate) struct Dense {
    psi: usize,
    d: usize,
    /// `t × psi`: ‖c‖².
    cc: Vec<f32>,
    /// `t × psi × d`: −2·c.
    m2c: Vec<f32>,
}

impl Dense {
    pub(crate) fn build(centres: &[f32], psi: usize, t: usize, d: usize) -> Self {
        let cc = centres.chunks_exact(d).map(|c| c.iter().fold(0.0f32, |acc, &v| v.mul_add(v, acc))).collect();
        let m2c = centres.iter().map(|&v| -2.0 * v).collect();
        debug_assert_eq!(centres.len(), t * psi * d);
        Self { psi, d, cc, m2c }
    }

    /// Heap bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        (self.cc.len() + self.m2c.len()) * 4
    }

    #[inline]
    pub(crate) fn key(&self, k: usize, c: usize, x: &[f32]) -> f32 {
        let g = k * self.psi + c;
        let m = &self.m2c[g * self.d..(g + 1) * self.d];
        let mut acc = self.cc[g];
        for j in 0..self.d {
            acc = x[j].mul_add(m[j], acc);
        }
        acc
    }

    pub(crate) fn nearest_scalar(&self, k: usize, x: &[f32]) -> usize {
        let mut best = f32::INFINITY;
        let mut idx = 0;
        for c in 0..self.psi {
            let key = self.key(k, c, x);
            if key < best {
                best = key;
                idx = c;
            }
        }
        idx
    }

    /// Cells (draw indices) of `rows` points stored SoA with `stride` (a multiple of 16).
    pub(crate) fn cells(&self, k: usize, soa: &[f32], stride: usize, rows: usize, level: SimdLevel, out: &mut Vec<u8>) {
        debug_assert!(stride.is_multiple_of(16) && soa.len() >= stride * self.d);
        out.clear();
        out.resize(stride, 0);
        let cc = &self.cc[k * self.psi..(k + 1) * self.psi];
        let m2c = &self.m2c[k * self.psi * self.d..(k + 1) * self.psi * self.d];
        match level {
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Avx512 => {
                // SAFETY: `NearestPath::level` never returns a level above `SimdLevel::detect()`.
                unsafe { x86::cells_avx512(soa, stride, self.d, cc, m2c, out) }
            }
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Avx2 => {
                // SAFETY: as above.
                unsafe { x86::cells_avx2(soa, stride, self.d, cc, m2c, out) }
            }
            _ => portable_cells(soa, stride, self.d, cc, m2c, out),
        }
        out.truncate(rows);
    }
}

/// Plain-Rust lanes of 16 points: the compiler vectorises what it can; correctness never depends
/// on it.
fn portable_cells(soa: &[f32], stride: usize, d: usize, cc: &[f32], m2c: &[f32], out: &mut [u8]) {
    const L: usize = 16;
    for p0 in (0..stride).step_by(L) {
        let mut best = [f32::INFINITY; L];
        let mut idx = [0u8; L];
        for (c, &ccv) in cc.iter().enumerate() {
            let mut acc = [ccv; L];
            for j in 0..d {
                let m = m2c[c * d + j];
                let xs = &soa[j * stride + p0..j * stride + p0 + L];
                for l in 0..L {
                    acc[l] = xs[l].mul_add(m, acc[l]);
                }
            }
            for l in 0..L {
                if acc[l] < best[l] {
                    best[l] = acc[l];
                    idx[l] = c as u8;
                }
            }
        }
        out[p0..p0 + L].copy_from_slice(&idx);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! AVX-512 and AVX2 kernels. For `d <= 8` a copy specialised on `d` keeps a block of points
    //! in registers and runs four centres' FMA chains side by side (FMA latency is 4 cycles, so
    //! one chain at a time would leave the FMA units idle); wider inputs use the general loop.
    //! Either way each lane does the scalar path's fused multiply-adds in the scalar order, and
    //! centres are compared in draw order with a strict "<".

    use std::arch::x86_64::*;

    macro_rules! dispatch_d {
        ($d:expr, $specialised:ident, $general:ident, ($($arg:expr),*)) => {
            match $d {
                2 => $specialised::<2>($($arg),*),
                3 => $specialised::<3>($($arg),*),
                4 => $specialised::<4>($($arg),*),
                5 => $specialised::<5>($($arg),*),
                6 => $specialised::<6>($($arg),*),
                7 => $specialised::<7>($($arg),*),
                8 => $specialised::<8>($($arg),*),
                _ => $general($($arg,)* $d),
            }
        };
    }

    /// # Safety
    /// The CPU must support AVX-512F; `soa` holds `d` columns of `stride` floats, `stride % 16 == 0`,
    /// `out.len() >= stride`, `m2c.len() == cc.len() * d`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn cells_avx512(soa: &[f32], stride: usize, d: usize, cc: &[f32], m2c: &[f32], out: &mut [u8]) {
        assert!(
            soa.len() >= stride * d && out.len() >= stride && m2c.len() == cc.len() * d && stride.is_multiple_of(16)
        );
        // SAFETY: the assert establishes every bound the kernels rely on.
        unsafe { dispatch_d!(d, avx512_fixed, avx512_general, (soa, stride, cc, m2c, out)) }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn avx512_fixed<const D: usize>(soa: &[f32], stride: usize, cc: &[f32], m2c: &[f32], out: &mut [u8]) {
        const G: usize = 4;
        let base = soa.as_ptr();
        let psi = cc.len();
        for p0 in (0..stride).step_by(16) {
            // SAFETY: j < D = d and p0 + 16 <= stride (caller's assert).
            let x: [__m512; D] = std::array::from_fn(|j| unsafe { _mm512_loadu_ps(base.add(j * stride + p0)) });
            let mut best = _mm512_set1_ps(f32::INFINITY);
            let mut idx = _mm512_setzero_si512();
            let mut c = 0;
            while c + G <= psi {
                let mut acc: [__m512; G] = std::array::from_fn(|q| _mm512_set1_ps(cc[c + q]));
                for (j, xj) in x.iter().enumerate() {
                    for (q, a) in acc.iter_mut().enumerate() {
                        *a = _mm512_fmadd_ps(*xj, _mm512_set1_ps(m2c[(c + q) * D + j]), *a);
                    }
                }
                for (q, a) in acc.iter().enumerate() {
                    let lt = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(*a, best);
                    best = _mm512_mask_mov_ps(best, lt, *a);
                    idx = _mm512_mask_mov_epi32(idx, lt, _mm512_set1_epi32((c + q) as i32));
                }
                c += G;
            }
            while c < psi {
                let mut a = _mm512_set1_ps(cc[c]);
                for (j, xj) in x.iter().enumerate() {
                    a = _mm512_fmadd_ps(*xj, _mm512_set1_ps(m2c[c * D + j]), a);
                }
                let lt = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(a, best);
                best = _mm512_mask_mov_ps(best, lt, a);
                idx = _mm512_mask_mov_epi32(idx, lt, _mm512_set1_epi32(c as i32));
                c += 1;
            }
            // SAFETY: p0 + 16 <= stride <= out.len().
            unsafe { _mm_storeu_si128(out.as_mut_ptr().add(p0).cast(), _mm512_cvtepi32_epi8(idx)) };
        }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn avx512_general(soa: &[f32], stride: usize, cc: &[f32], m2c: &[f32], out: &mut [u8], d: usize) {
        let base = soa.as_ptr();
        for p0 in (0..stride).step_by(16) {
            let mut best = _mm512_set1_ps(f32::INFINITY);
            let mut idx = _mm512_setzero_si512();
            for (c, &ccv) in cc.iter().enumerate() {
                let mut acc = _mm512_set1_ps(ccv);
                for (j, &mj) in m2c[c * d..c * d + d].iter().enumerate() {
                    // SAFETY: j < d and p0 + 16 <= stride.
                    let x = unsafe { _mm512_loadu_ps(base.add(j * stride + p0)) };
                    acc = _mm512_fmadd_ps(x, _mm512_set1_ps(mj), acc);
                }
                let lt = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(acc, best);
                best = _mm512_mask_mov_ps(best, lt, acc);
                idx = _mm512_mask_mov_epi32(idx, lt, _mm512_set1_epi32(c as i32));
            }
            // SAFETY: p0 + 16 <= stride <= out.len().
            unsafe { _mm_storeu_si128(out.as_mut_ptr().add(p0).cast(), _mm512_cvtepi32_epi8(idx)) };
        }
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA; the slice conditions of [`cells_avx512`] with 8 lanes.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn cells_avx2(soa: &[f32], stride: usize, d: usize, cc: &[f32], m2c: &[f32], out: &mut [u8]) {
        assert!(
            soa.len() >= stride * d && out.len() >= stride && m2c.len() == cc.len() * d && stride.is_multiple_of(8)
        );
        // SAFETY: the assert establishes every bound the kernels rely on.
        unsafe { dispatch_d!(d, avx2_fixed, avx2_general, (soa, stride, cc, m2c, out)) }
    }

    #[target_feature(enable = "avx2,fma")]
    fn avx2_store(idx: __m256i, out: &mut [u8], p0: usize) {
        let mut lanes = [0i32; 8];
        // SAFETY: `lanes` is 32 bytes.
        unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), idx) };
        for (l, v) in lanes.iter().enumerate() {
            out[p0 + l] = *v as u8;
        }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2_fixed<const D: usize>(soa: &[f32], stride: usize, cc: &[f32], m2c: &[f32], out: &mut [u8]) {
        let base = soa.as_ptr();
        let psi = cc.len();
        for p0 in (0..stride).step_by(8) {
            // SAFETY: j < D = d and p0 + 8 <= stride.
            let x: [__m256; D] = std::array::from_fn(|j| unsafe { _mm256_loadu_ps(base.add(j * stride + p0)) });
            let mut best = _mm256_set1_ps(f32::INFINITY);
            let mut idx = _mm256_setzero_si256();
            let mut c = 0;
            while c + 2 <= psi {
                let mut acc = [_mm256_set1_ps(cc[c]), _mm256_set1_ps(cc[c + 1])];
                for (j, xj) in x.iter().enumerate() {
                    for (q, a) in acc.iter_mut().enumerate() {
                        *a = _mm256_fmadd_ps(*xj, _mm256_set1_ps(m2c[(c + q) * D + j]), *a);
                    }
                }
                for (q, a) in acc.iter().enumerate() {
                    let lt = _mm256_cmp_ps::<_CMP_LT_OQ>(*a, best);
                    best = _mm256_blendv_ps(best, *a, lt);
                    idx = _mm256_blendv_epi8(idx, _mm256_set1_epi32((c + q) as i32), _mm256_castps_si256(lt));
                }
                c += 2;
            }
            if c < psi {
                let mut a = _mm256_set1_ps(cc[c]);
                for (j, xj) in x.iter().enumerate() {
                    a = _mm256_fmadd_ps(*xj, _mm256_set1_ps(m2c[c * D + j]), a);
                }
                let lt = _mm256_cmp_ps::<_CMP_LT_OQ>(a, best);
                best = _mm256_blendv_ps(best, a, lt);
                idx = _mm256_blendv_epi8(idx, _mm256_set1_epi32(c as i32), _mm256_castps_si256(lt));
            }
            avx2_store(idx, out, p0);
        }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2_general(soa: &[f32], stride: usize, cc: &[f32], m2c: &[f32], out: &mut [u8], d: usize) {
        let base = soa.as_ptr();
        for p0 in (0..stride).step_by(8) {
            let mut best = _mm256_set1_ps(f32::INFINITY);
            let mut idx = _mm256_setzero_si256();
            for (c, &ccv) in cc.iter().enumerate() {
                let mut acc = _mm256_set1_ps(ccv);
                for (j, &mj) in m2c[c * d..c * d + d].iter().enumerate() {
                    // SAFETY: j < d and p0 + 8 <= stride.
                    let x = unsafe { _mm256_loadu_ps(base.add(j * stride + p0)) };
                    acc = _mm256_fmadd_ps(x, _mm256_set1_ps(mj), acc);
                }
                let lt = _mm256_cmp_ps::<_CMP_LT_OQ>(acc, best);
                best = _mm256_blendv_ps(best, acc, lt);
                idx = _mm256_blendv_epi8(idx, _mm256_set1_epi32(c as i32), _mm256_castps_si256(lt));
            }
            avx2_store(idx, out, p0);
        }
    }
}
