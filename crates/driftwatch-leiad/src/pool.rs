//! The pool: every point of every series of a labeling project, under one global index
//! `i = offset(series) + t`. Owns the mapping between the two and the validation of input series.
//! Everything else in the crate works on global indices.

use crate::LeiadError;

/// One input series: values in time order and, when known, the sampling period in seconds
/// (rolling-window lengths are derived from it).
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesInput {
    /// Name, for errors and reports.
    pub name: String,
    /// Values, oldest first.
    pub values: Vec<f64>,
    /// Seconds between samples, if known.
    pub period_secs: Option<f64>,
}

/// A half-open range of points `[start, end)` of one series (indices within the series).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    /// Series number in the pool.
    pub series: usize,
    /// First point.
    pub start: usize,
    /// One past the last point.
    pub end: usize,
}

impl Window {
    /// Points in the window.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether the window is empty.
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    /// Whether two windows of the same series share a point.
    pub fn overlaps(&self, other: &Window) -> bool {
        self.series == other.series && self.start < other.end && other.start < self.end
    }
}

/// Shortest series accepted: the rolling features and detectors need some history.
pub const MIN_SERIES_LEN: usize = 16;

/// The pooled series.
#[derive(Debug, Clone)]
pub struct Pool {
    series: Vec<SeriesInput>,
    offsets: Vec<usize>,
}

impl Pool {
    /// Validates and pools the series.
    ///
    /// # Errors
    /// [`LeiadError::Series`] when there are no series, or a series is shorter than
    /// [`MIN_SERIES_LEN`], holds a non-finite value or has a non-positive period.
    pub fn new(series: Vec<SeriesInput>) -> Result<Self, LeiadError> {
        if series.is_empty() {
            return Err(LeiadError::Series { series: String::new(), reason: "no series given".into() });
        }
        let mut offsets = Vec::with_capacity(series.len() + 1);
        let mut n = 0usize;
        for s in &series {
            let bad = |reason: String| LeiadError::Series { series: s.name.clone(), reason };
            if s.values.len() < MIN_SERIES_LEN {
                return Err(bad(format!("has {} points; at least {MIN_SERIES_LEN} needed", s.values.len())));
            }
            if let Some(t) = s.values.iter().position(|v| !v.is_finite()) {
                return Err(bad(format!("value at index {t} is not a finite number")));
            }
            if let Some(p) = s.period_secs
                && !(p.is_finite() && p > 0.0)
            {
                return Err(bad(format!("sampling period {p} is not a positive number of seconds")));
            }
            offsets.push(n);
            n += s.values.len();
        }
        offsets.push(n);
        if n > u32::MAX as usize {
            return Err(LeiadError::Series { series: String::new(), reason: "more than 2^32 pooled points".into() });
        }
        Ok(Self { series, offsets })
    }

    /// Total points.
    pub fn len(&self) -> usize {
        *self.offsets.last().expect("offsets has n_series + 1 entries")
    }

    /// Whether the pool has no points (never, once constructed).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The series, in pool order.
    pub fn series(&self) -> &[SeriesInput] {
        &self.series
    }

    /// Global index of the first point of series `s`.
    pub fn offset(&self, s: usize) -> usize {
        self.offsets[s]
    }

    /// Global index range of series `s`.
    pub fn range(&self, s: usize) -> std::ops::Range<usize> {
        self.offsets[s]..self.offsets[s + 1]
    }

    /// `(series, t)` of global index `i`.
    pub fn locate(&self, i: usize) -> (usize, usize) {
        let s = self.offsets.partition_point(|&o| o <= i) - 1;
        (s, i - self.offsets[s])
    }

    /// Global index range of a window.
    pub fn global(&self, w: &Window) -> std::ops::Range<usize> {
        self.offsets[w.series] + w.start..self.offsets[w.series] + w.end
    }

    /// Checks that a window lies inside its series and is not empty.
    ///
    /// # Errors
    /// [`LeiadError::Window`] otherwise.
    pub fn check(&self, w: &Window) -> Result<(), LeiadError> {
        if w.series >= self.series.len() {
            return Err(LeiadError::Window(format!(
                "series {} does not exist ({} series)",
                w.series,
                self.series.len()
            )));
        }
        let len = self.series[w.series].values.len();
        if w.is_empty() || w.end > len {
            return Err(LeiadError::Window(format!(
                "[{}, {}) is empty or outside series {:?} of {len} points",
                w.start, w.end, self.series[w.series].name
            )));
        }
        Ok(())
    }

    /// The window of half-width `half` around global index `i`, clipped to its series.
    pub fn window_around(&self, i: usize, half: usize) -> Window {
        let (s, t) = self.locate(i);
        let len = self.series[s].values.len();
        Window { series: s, start: t.saturating_sub(half), end: (t + half).min(len) }
    }
}
