//! The byte layout of a stored block of points: for each point its timestamp (i64,
//! little-endian) then its values (f64, little-endian). Fixed width, so a block is validated by
//! its length alone.

use super::StorageError;

/// Encodes points (every point must have the same number of values).
pub fn encode_points(points: &[(i64, Vec<f64>)]) -> Vec<u8> {
    let dim = points.first().map_or(0, |p| p.1.len());
    let mut out = Vec::with_capacity(points.len() * (8 + 8 * dim));
    for (ts, values) in points {
        debug_assert_eq!(values.len(), dim, "one dimension per block");
        out.extend_from_slice(&ts.to_le_bytes());
        for v in values {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

/// Decodes a block of points of `dim` values each.
///
/// # Errors
/// [`StorageError::Corrupt`] when the length is not a whole number of points.
pub fn decode_points(bytes: &[u8], dim: usize) -> Result<Vec<(i64, Vec<f64>)>, StorageError> {
    let width = 8 + 8 * dim;
    if dim == 0 || !bytes.len().is_multiple_of(width) {
        return Err(StorageError::Corrupt(format!(
            "a point block of {} bytes is not whole points of dimension {dim}",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(width)
        .map(|p| {
            let ts = i64::from_le_bytes(p[..8].try_into().expect("8 bytes"));
            let values = p[8..].chunks_exact(8).map(|v| f64::from_le_bytes(v.try_into().expect("8 bytes"))).collect();
            (ts, values)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_round_trip_and_bad_lengths_are_refused() {
        let pts = vec![(-5, vec![1.5, f64::MIN_POSITIVE]), (i64::MAX, vec![-0.0, 1e300])];
        let bytes = encode_points(&pts);
        assert_eq!(bytes.len(), 2 * 24);
        assert_eq!(decode_points(&bytes, 2).unwrap(), pts);
        assert!(decode_points(&bytes[..47], 2).is_err());
        assert!(decode_points(&bytes, 3).is_err());
        assert!(decode_points(&[], 0).is_err());
        assert_eq!(decode_points(&[], 1).unwrap(), vec![]);
    }
}
