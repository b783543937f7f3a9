//! Per-column min-max scaling to [0, 1] (spec §1, "input normalisation") and the f32 point layout
//! every kernel reads.
//!
//! A constant column maps to 0.5, as in the authors' MATLAB code (0/0 -> NaN -> 0.5). Scaling is
//! computed in f64 and stored as f32: the kernels work in f32 (twice the SIMD lanes of f64 and half
//! the cache footprint); on [0, 1] f32 resolves 6e-8, far below any change worth detecting.

use crate::IcidError;

/// A validated, scaled series: `n` rows of `d` columns, row-major, every value in [0, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct Scaled {
    /// Row-major values, `n * d` long.
    pub values: Vec<f32>,
    /// Rows.
    pub n: usize,
    /// Columns.
    pub d: usize,
}

impl Scaled {
    /// Row `i` as a slice of `d` values.
    #[inline]
    pub fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.d..(i + 1) * self.d]
    }
}

/// Checks that `data` is `n * d` finite values and returns `n`.
///
/// # Errors
/// [`IcidError::Shape`] when the length is not a multiple of `d` (or `d == 0`),
/// [`IcidError::NonFinite`] naming the first NaN or infinity.
pub fn validate(data: &[f64], d: usize) -> Result<usize, IcidError> {
    if d == 0 || !data.len().is_multiple_of(d) {
        return Err(IcidError::Shape { len: data.len(), d });
    }
    if let Some(pos) = data.iter().position(|v| !v.is_finite()) {
        return Err(IcidError::NonFinite { row: pos / d, column: pos % d });
    }
    Ok(data.len() / d)
}

/// Min-max scales every column of the row-major `data` (`d` columns) to [0, 1].
///
/// # Errors
/// As [`validate`].
pub fn minmax_scale(data: &[f64], d: usize) -> Result<Scaled, IcidError> {
    let n = validate(data, d)?;
    let (lo, span) = column_range(data, d);
    let values =
        data.chunks_exact(d).flat_map(|row| (0..d).map(|j| to_f32(scale_one(row[j], lo[j], span[j])))).collect();
    Ok(Scaled { values, n, d })
}

/// Per-column minimum and span (`max − min`) of row-major `data` with `d` columns.
pub fn column_range(data: &[f64], d: usize) -> (Vec<f64>, Vec<f64>) {
    let mut lo = vec![f64::INFINITY; d];
    let mut hi = vec![f64::NEG_INFINITY; d];
    for row in data.chunks_exact(d) {
        for ((l, h), &v) in lo.iter_mut().zip(hi.iter_mut()).zip(row) {
            *l = l.min(v);
            *h = h.max(v);
        }
    }
    // A range wider than f64 holds (values of both signs near f64::MAX) saturates: the span is
    // part of a detector's checkpoint, and JSON has no infinity.
    let span = lo.iter().zip(&hi).map(|(l, h)| (h - l).min(f64::MAX)).collect();
    (lo, span)
}

/// One value scaled by its column's `lo` and `span`: `(v − lo) / span`, 0.5 for a constant
/// column. Always finite for finite input: where `v − lo` overflows it is computed as
/// `v/span − lo/span`, and a quotient beyond f64 saturates (only a value far outside a tiny
/// reference range gets there).
#[inline]
pub fn scale_one(v: f64, lo: f64, span: f64) -> f64 {
    if span > 0.0 {
        let diff = v - lo;
        let x = if diff.is_finite() { diff / span } else { v / span - lo / span };
        x.clamp(-f64::MAX, f64::MAX)
    } else {
        0.5
    }
}

/// A scaled value as the f32 the kernels read, saturating instead of becoming infinite (a
/// streaming point far outside the warm-up range can scale beyond f32).
#[inline]
pub fn to_f32(x: f64) -> f32 {
    (x as f32).clamp(-f32::MAX, f32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_each_column_and_maps_constant_columns_to_one_half() {
        let s = minmax_scale(&[1.0, 5.0, 3.0, 5.0, 2.0, 5.0], 2).unwrap();
        assert_eq!(s.n, 3);
        assert_eq!(s.values, vec![0.0, 0.5, 1.0, 0.5, 0.5, 0.5]);
    }

    #[test]
    fn extreme_finite_values_scale_to_finite_values() {
        // Found by the streaming property tests: a range wider than f64 (span = inf) made every
        // scaled value 0 or NaN, and the infinite span could not be checkpointed.
        let s = minmax_scale(&[-f64::MAX, 0.0, f64::MAX], 1).unwrap();
        assert!(s.values.iter().all(|v| v.is_finite()), "{:?}", s.values);
        assert!(s.values[0] < s.values[1] && s.values[1] < s.values[2], "{:?}", s.values);
        let (lo, span) = column_range(&[-f64::MAX, f64::MAX], 1);
        assert_eq!((lo[0], span[0]), (-f64::MAX, f64::MAX));
        // Far outside a tiny range: saturates instead of overflowing.
        assert_eq!(scale_one(1e300, 0.0, 1e-300), f64::MAX);
        assert_eq!(to_f32(scale_one(1e10, 0.0, 1e-30)), f32::MAX);
        assert_eq!(to_f32(scale_one(-1e10, 0.0, 1e-30)), -f32::MAX);
        // Ordinary values are unchanged.
        assert_eq!(scale_one(3.0, 1.0, 4.0), 0.5);
    }

    #[test]
    fn rejects_ragged_and_non_finite_input() {
        assert_eq!(minmax_scale(&[1.0, 2.0, 3.0], 2), Err(IcidError::Shape { len: 3, d: 2 }));
        assert_eq!(minmax_scale(&[1.0, 2.0, f64::NAN, 4.0], 2), Err(IcidError::NonFinite { row: 1, column: 0 }));
        assert!(minmax_scale(&[1.0], 0).is_err());
    }
}
