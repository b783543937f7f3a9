//! Window layouts (spec §2): how a series of `n` rows is cut into windows, which rows each window
//! holds, and how window scores are spread back over points.
//!
//! * [`Layout::Shared`] — the authors' MATLAB layout and the default: boundaries `0, w, 2w, …` plus
//!   `n-1`; window `i` holds rows `b[i]..=b[i+1]`, so neighbours share one row and there are
//!   `ceil((n-1)/w)` windows.
//! * [`Layout::HalfOpen`] — boundaries `0, w, 2w, …, n`; window `i` holds `b[i]..b[i+1]`, no shared
//!   rows, `ceil(n/w)` windows, the last possibly a single row.
//!
//! In both, window `i`'s score is attributed to rows `b[i]..b[i+1]` (the final row `n-1` of the
//! shared layout takes the last window's score): a change is reported as "this interval differs
//! from the one before it".

use crate::IcidError;

/// Which window layout to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// The authors' layout: neighbouring windows share their boundary row.
    #[default]
    Shared,
    /// Half-open windows `[b[i], b[i+1])`, no shared rows.
    HalfOpen,
}

impl Layout {
    /// The name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Shared => "shared",
            Layout::HalfOpen => "halfopen",
        }
    }
}

/// The windows of one series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Windows {
    layout: Layout,
    n: usize,
    bounds: Vec<usize>,
}

impl Windows {
    /// Cuts `n` rows into windows of `w` rows.
    ///
    /// # Errors
    /// [`IcidError::Param`] when `w == 0`, [`IcidError::TooFewWindows`] when fewer than two windows
    /// result.
    pub fn new(n: usize, w: usize, layout: Layout) -> Result<Self, IcidError> {
        if w == 0 {
            return Err(IcidError::param("window", "must be at least 1"));
        }
        let mut bounds: Vec<usize> = (0..n).step_by(w).collect();
        match layout {
            Layout::Shared => {
                if bounds.last().is_some_and(|&b| b != n - 1) {
                    bounds.push(n - 1);
                }
            }
            Layout::HalfOpen => bounds.push(n),
        }
        let windows = bounds.len().saturating_sub(1);
        if windows < 2 {
            return Err(IcidError::TooFewWindows { n, window: w, windows });
        }
        Ok(Self { layout, n, bounds })
    }

    /// Number of windows.
    pub fn len(&self) -> usize {
        self.bounds.len() - 1
    }

    /// Always false: construction guarantees two windows.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Rows in the series.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The first row of each window.
    pub fn starts(&self) -> &[usize] {
        &self.bounds[..self.bounds.len() - 1]
    }

    /// The rows window `i` holds, as a half-open range.
    pub fn rows(&self, i: usize) -> std::ops::Range<usize> {
        match self.layout {
            Layout::Shared => self.bounds[i]..self.bounds[i + 1] + 1,
            Layout::HalfOpen => self.bounds[i]..self.bounds[i + 1],
        }
    }

    /// The rows window `i`'s score is attributed to (a partition of `0..n`).
    pub fn attributed_rows(&self, i: usize) -> std::ops::Range<usize> {
        let end = if self.layout == Layout::Shared && i + 1 == self.len() { self.n } else { self.bounds[i + 1] };
        self.bounds[i]..end
    }

    /// Row at which window `i` is complete, and whether that row also opens window `i + 1`.
    pub(crate) fn close_row(&self, i: usize) -> (usize, bool) {
        match self.layout {
            Layout::Shared => (self.bounds[i + 1], i + 1 < self.len()),
            Layout::HalfOpen => (self.bounds[i + 1] - 1, false),
        }
    }

    /// Spreads window scores over the `n` points (see the module docs).
    pub fn point_scores(&self, window_scores: &[f64]) -> Vec<f64> {
        let mut out = Vec::with_capacity(self.n);
        for (i, &s) in window_scores.iter().enumerate() {
            let r = self.attributed_rows(i);
            out.extend(std::iter::repeat_n(s, r.len()));
        }
        debug_assert_eq!(out.len(), self.n);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_layout_matches_the_authors_boundaries() {
        let w = Windows::new(10, 3, Layout::Shared).unwrap();
        assert_eq!(w.starts(), &[0, 3, 6]);
        assert_eq!(w.len(), 3); // ceil((10-1)/3)
        assert_eq!(w.rows(0), 0..4);
        assert_eq!(w.rows(2), 6..10);
        let lens: Vec<_> = (0..3).map(|i| w.attributed_rows(i).len()).collect();
        assert_eq!(lens, vec![3, 3, 4]);
    }

    #[test]
    fn shared_layout_when_n_minus_one_is_a_multiple_of_w_has_no_short_last_window() {
        let w = Windows::new(7, 3, Layout::Shared).unwrap();
        assert_eq!(w.len(), 2);
        assert_eq!(w.rows(1), 3..7);
    }

    #[test]
    fn halfopen_layout_keeps_a_short_last_window() {
        let w = Windows::new(10, 3, Layout::HalfOpen).unwrap();
        assert_eq!(w.len(), 4); // ceil(10/3)
        assert_eq!(w.rows(3), 9..10);
        assert_eq!(w.point_scores(&[0.0, 1.0, 2.0, 3.0]), vec![0., 0., 0., 1., 1., 1., 2., 2., 2., 3.]);
    }

    #[test]
    fn fewer_than_two_windows_is_an_error() {
        assert!(matches!(Windows::new(4, 3, Layout::Shared), Err(IcidError::TooFewWindows { windows: 1, .. })));
        assert!(matches!(Windows::new(3, 3, Layout::HalfOpen), Err(IcidError::TooFewWindows { windows: 1, .. })));
        assert!(Windows::new(1, 1, Layout::Shared).is_err());
        assert!(Windows::new(0, 1, Layout::HalfOpen).is_err());
        assert!(Windows::new(5, 0, Layout::HalfOpen).is_err());
    }
}
