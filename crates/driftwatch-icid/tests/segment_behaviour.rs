//! Behaviour of the `auto` method ([`driftwatch_icid::segment`]) with its defaults: changes of
//! mean, spread and rhythm off any window grid are placed to the row; short, constant and long
//! series get sensible automatic choices and never degenerate.

use driftwatch_icid::segment::{DEFAULT_PSI, MIN_SEGMENT, SegmentParams, auto_psi, segment};
use driftwatch_testkit::{Regime, gaussian_segments, regime_series};

/// Distance from each true change to the nearest change point found.
fn errors(kind: Regime, len: usize, truth: &[usize], seed: u64) -> (Vec<usize>, usize) {
    let x = regime_series(kind, len, truth, seed);
    let rows = segment(&x, 1, &SegmentParams::default()).unwrap().rows();
    let errs = truth.iter().map(|&c| rows.iter().map(|r| r.abs_diff(c)).min().unwrap_or(usize::MAX)).collect();
    (errs, rows.len().saturating_sub(truth.len()))
}

#[test]
fn changes_of_mean_spread_and_rhythm_off_the_grid_are_placed_to_the_row() {
    // 3 kinds × 6 seeds × 2 lengths: 90 changes. Measured when written: 86 within 5 rows, the
    // rest within 11 (two spread changes at 11, one at 8, one rhythm change at 7).
    let (mut all, mut extra) = (Vec::new(), 0);
    for kind in Regime::ALL {
        for seed in 0..6 {
            for (len, truth) in [(3000, vec![1037, 2011]), (5000, vec![1037, 2011, 3533])] {
                let (errs, more) = errors(kind, len, &truth, seed);
                assert!(errs.iter().all(|&e| e <= 15), "{kind:?} len {len} seed {seed}: errors {errs:?}");
                all.extend(errs);
                extra += more;
            }
        }
    }
    let within = all.iter().filter(|&&e| e <= 5).count();
    assert!(within * 100 >= 90 * all.len(), "{within} of {} changes within 5 rows", all.len());
    assert!(extra <= 15, "{extra} change points beyond the true ones in 36 series");
}

#[test]
fn the_mean_shift_fixture_of_the_readme_gives_1000_and_2000() {
    let x = driftwatch_testkit::parse_column(include_str!("../../../tests/fixtures/mean_shift.csv"));
    assert_eq!(segment(&x, 1, &SegmentParams::default()).unwrap().rows(), vec![1000, 2000]);
}

#[test]
fn short_series_get_width_one_small_psi_and_still_find_a_clear_shift() {
    for (n, seed) in [(15usize, 0u64), (24, 1), (40, 2), (60, 3)] {
        let half = n / 2;
        let x = gaussian_segments(&[(0.0, 1.0, half), (6.0, 1.0, n - half)], seed);
        let s = segment(&x, 1, &SegmentParams::default()).unwrap();
        assert_eq!(s.width, 1, "n = {n}");
        assert_eq!(s.psi, auto_psi(n), "n = {n}");
        assert!(s.psi >= 2 && s.psi <= n / 4 + 1);
        assert!(s.min_size >= MIN_SEGMENT);
        assert!(s.defaults.iter().any(|(k, v)| *k == "psi" && v.contains("quarter")), "{:?}", s.defaults);
        let rows = s.rows();
        assert!(rows.iter().any(|&r| r.abs_diff(half) <= 1), "n = {n}: {rows:?}");
        // No change in pure noise of the same length.
        let flat = gaussian_segments(&[(0.0, 1.0, n)], seed + 100);
        assert!(segment(&flat, 1, &SegmentParams::default()).unwrap().rows().len() <= 1, "n = {n}");
    }
}

#[test]
fn constant_series_of_any_length_have_no_change() {
    for n in [2usize, 15, 60, 1000, 20_000] {
        let s = segment(&vec![7.5; n], 1, &SegmentParams::default()).unwrap();
        assert!(s.change_points.is_empty(), "n = {n}");
        assert_eq!(s.width, 1);
    }
}

#[test]
fn long_series_use_the_default_psi_and_an_embedding_when_periodic() {
    let truth = [20_011, 40_037];
    let x = regime_series(Regime::Frequency, 60_000, &truth, 7);
    let s = segment(&x, 1, &SegmentParams::default()).unwrap();
    assert_eq!(s.psi, DEFAULT_PSI);
    assert!(s.width >= 15 && s.width <= 45, "width {}", s.width);
    let rows = s.rows();
    for c in truth {
        assert!(rows.iter().any(|r| r.abs_diff(c) <= 5), "{c} not in {rows:?}");
    }
}

#[test]
fn every_change_point_lies_inside_the_series_and_respects_the_minimum_segment() {
    let x = regime_series(Regime::Mean, 2000, &[300, 900, 1500], 11);
    let s = segment(&x, 1, &SegmentParams::default()).unwrap();
    let rows = s.rows();
    assert!(rows.windows(2).all(|w| w[1] - w[0] >= s.min_size), "{rows:?}");
    assert!(rows.iter().all(|&r| r > 0 && r < 2000));
    for c in &s.change_points {
        assert!(c.p_value > 0.0 && c.p_value <= 1.0 && c.z > 2.0 && c.gain >= 0.0);
        assert!(c.interval.0 <= c.row && c.row < c.interval.1);
    }
}
