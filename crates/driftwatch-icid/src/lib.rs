//! # driftwatch-icid
//!
//! A pure implementation of iCID — change-interval detection with the Isolation Distributional
//! Kernel (Cao et al., JAIR 79, 2024) — following the authors' code where the paper is silent.
//!
//! The crate does no I/O, spawns no tasks, reads no clock and logs nothing. It takes slices of
//! `f64` (row-major, `d` columns) and returns plain data. Randomness is seeded by the caller.
//! With the `parallel` feature, psi candidates and partitionings run on rayon's pool; results are
//! identical with or without it, on any number of threads.
//!
//! ```
//! use driftwatch_icid::{detect, Params, PsiChoice};
//! // 400 points around 0, then 400 around 5: one change at row 400.
//! let data: Vec<f64> = (0..800).map(|i| ((i * 37) % 11) as f64 / 10.0 + if i >= 400 { 5.0 } else { 0.0 }).collect();
//! let mut params = Params::new(40, 1.0);
//! params.psi = PsiChoice::Fixed(8);
//! let det = detect(&data, 1, &params).unwrap();
//! assert_eq!(det.change_points(), vec![400]);
//! ```
//!
//! # Layout
//! * [`scale`] — validation and per-column min-max scaling to f32 points.
//! * [`windows`] — the two window layouts and score attribution to points.
//! * [`kernel`] — the aNNE feature map: sampling, scalar reference, 1-D sorted and SIMD fast paths.
//! * [`score`] — window histograms and `1 − cos` window scores.
//! * [`apen`] — exact approximate entropy for psi selection.
//! * [`offline`] — the paper's batch method end to end (`--method icid`).
//! * [`embed`] — pattern width from the autocorrelation and the subsequence (PAA) embedding.
//! * [`segment`] — the `auto` batch method: binary segmentation in the kernel's feature space with
//!   block-permutation significance and row-precise change points.
//! * [`anomaly`] — the streaming anomaly score: nearest-neighbour rarity against a long reference,
//!   calibrated on the series' own history, repeats suppressed.
//! * [`stream`] — the per-series streaming detector: warm-up, windows scored as they complete,
//!   events, point anomaly scores, explanations, bounded and serialisable state.

#![warn(missing_docs, unreachable_pub)]

pub mod anomaly;
pub mod apen;
pub mod embed;
mod error;
pub mod kernel;
pub mod offline;
pub mod scale;
pub mod score;
pub mod segment;
pub mod stream;
pub mod windows;

pub use error::IcidError;
pub use kernel::{IsolationKernel, NearestPath, SimdLevel};
pub use offline::{Candidate, Detection, Interval, Params, PsiChoice, detect, suggest_window};
pub use scale::{Scaled, minmax_scale};
pub use stream::{
    BlockScore, ClosedInterval, Event, Explanation, PsiPolicy, Pushed, Refresh, StreamConfig, StreamDetector,
    StreamStats, Summary,
};
pub use windows::{Layout, Windows};

/// How many ways work is split: rayon's pool size with `parallel`, else 1.
fn parallelism() -> usize {
    #[cfg(feature = "parallel")]
    {
        rayon::current_num_threads()
    }
    #[cfg(not(feature = "parallel"))]
    {
        1
    }
}
