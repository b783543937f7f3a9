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
    let mut lo = vec![f64::INFINITY; d];
    let mut hi = vec![f64::NEG_INFINITY; d];
    for row in data.chunks_exact(d) {
        for j in 0..d {
            lo[j] = lo[j].min(row[j]);
            hi[j] = hi[j].max(row[j]);
        }
    }
    let mut values = Vec::with_capacity(data.len());
    for row in data.chunks_exact(d) {
        for j in 0..d {
            let span = hi[j] - lo[j];
            let v = if span > 0.0 { (row[j] - lo[j]) / span } else { 0.5 };
            values.push(v as f32);
        }
    }
    Ok(Scaled { values, n, d })
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
