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
        data.chunks_exact(d).flat_map(|row| (0..d).map(|j| scale_one(row[j], lo[j], span[j]) as f32)).collect();
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
    let span = lo.iter().zip(&hi).map(|(l, h)| h - l).collect();
    (lo, span)
}

/// One value scaled by its column's `lo` and `span`: `(v − lo) / span`, 0.5 for a constant
/// column.
#[inline]
pub fn scale_one(v: f64, lo: f64, span: f64) -> f64 {
    if span > 0.0 { (v - lo) / span } else { 0.5 }
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
    fn rejects_ragged_and_non_finite_input() {
        assert_eq!(minmax_scale(&[1.0, 2.0, 3.0], 2), Err(IcidError::Shape { len: 3, d: 2 }));
        assert_eq!(minmax_scale(&[1.0, 2.0, f64::NAN, 4.0], 2), Err(IcidError::NonFinite { row: 1, column: 0 }));
        assert!(minmax_scale(&[1.0], 0).is_err());
    }
}
