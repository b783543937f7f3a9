//! Change-point metrics with TCPDBench's definitions (van den Burg and Williams 2020,
//! `analysis/scripts/metrics.py`): the margin F-measure over several annotators and the
//! segmentation covering of Arbelaez et al. (2010, eq. 8), averaged over annotators.
//!
//! A change point is a **0-based row index where a new segment starts**: in a series of `n`
//! rows, the change points `[3, 5]` give the segments `0..3`, `3..5` and `5..n`. Index 0 starts
//! the first segment; TCPDBench adds it to every annotation and to the prediction before the
//! F-measure, and the covering ignores it, as does any index `>= n`.
//!
//! Numbers are computed in the same order of operations as the Python, so the doctest values of
//! `metrics.py` come out bit for bit (see the unit tests).

use std::collections::BTreeSet;
use std::ops::Range;

/// Precision, recall and their F-measure (alpha 0.5, i.e. F1), as [`f_measure_pr`] returns them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FMeasure {
    /// F-measure with alpha 0.5: `P·R / (0.5·R + 0.5·P)`.
    pub f: f64,
    /// True positives against the union of all annotations, over the number of predictions
    /// (0 included).
    pub precision: f64,
    /// Mean over annotators of that annotator's true positives over its number of change
    /// points (0 included).
    pub recall: f64,
}

/// TCPDBench's `true_positives(T, X, margin)`: the change points of `truth` matched by a
/// prediction within `margin` rows, each prediction used at most once.
///
/// The matching is greedy: the points of `truth` are visited in turn and each takes the nearest
/// prediction still free within the margin (on a tie of distance, the smaller index). The order
/// of the visit decides the count when two true change points compete for one prediction, and
/// TCPDBench visits a Python `set`, so this visits `truth` in the order CPython iterates a set
/// built by inserting `truth`'s values in the given order (duplicates ignored). For sets of
/// small indices that is ascending order; beyond the hash table's size it is not. The result is
/// the set of matched true change points.
pub fn true_positives(truth: &[usize], predictions: &[usize], margin: usize) -> BTreeSet<usize> {
    visit_true_positives(&py_set::iteration_order(truth.iter().copied()), predictions, margin)
}

/// The greedy matching of [`true_positives`], visiting `truth` in exactly the given order.
fn visit_true_positives(truth: &[usize], predictions: &[usize], margin: usize) -> BTreeSet<usize> {
    let mut free: BTreeSet<usize> = predictions.iter().copied().collect();
    let mut matched = BTreeSet::new();
    for &tau in truth {
        let lo = tau.saturating_sub(margin);
        let hi = tau.saturating_add(margin);
        // Nearest free prediction in [tau - margin, tau + margin]; ties go to the smaller one,
        // as Python's sort of (distance, x) pairs does.
        let below = free.range(lo..=tau).next_back().copied();
        let above = free.range(tau..=hi).next().copied();
        let best = match (below, above) {
            (Some(b), Some(a)) => {
                if a - tau < tau - b {
                    Some(a)
                } else {
                    Some(b)
                }
            }
            (b, a) => b.or(a),
        };
        if let Some(x) = best {
            matched.insert(tau);
            free.remove(&x);
        }
    }
    matched
}

/// TCPDBench's `f_measure(annotations, predictions, margin, alpha=0.5)`.
///
/// `annotations` holds one list of change points per annotator, in the annotators' order;
/// `predictions` the detector's change points. 0 is added to every set. Precision counts the true
/// positives against the union of all annotations; recall is averaged over annotators.
///
/// # Panics
/// If `annotations` is empty: with no annotator the recall is undefined (TCPDBench divides by
/// zero).
pub fn f_measure(annotations: &[Vec<usize>], predictions: &[usize], margin: usize) -> f64 {
    f_measure_pr(annotations, predictions, margin).f
}

/// [`f_measure`] with its precision and recall (TCPDBench's `return_PR=True`).
///
/// # Panics
/// If `annotations` is empty.
pub fn f_measure_pr(annotations: &[Vec<usize>], predictions: &[usize], margin: usize) -> FMeasure {
    assert!(!annotations.is_empty(), "f_measure needs at least one annotator");
    // Each annotator's set, built as `set(list)` then `.add(0)`, in CPython's iteration order.
    let tks: Vec<Vec<usize>> =
        annotations.iter().map(|a| py_set::iteration_order(a.iter().copied().chain([0]))).collect();
    let mut x: Vec<usize> = predictions.to_vec();
    x.push(0);
    let n_x = x.iter().collect::<BTreeSet<_>>().len();
    // Tstar: the union, built by adding each annotator's points in that set's order; its own
    // iteration order follows from that insertion order.
    let tstar = py_set::iteration_order(tks.iter().flatten().copied());

    let precision = visit_true_positives(&tstar, &x, margin).len() as f64 / n_x as f64;
    let k = tks.len() as f64;
    let mut sum = 0.0;
    for tk in &tks {
        // Each annotator's set is visited as it is (rebuilding it from its own iteration order
        // could order it differently).
        sum += visit_true_positives(tk, &x, margin).len() as f64 / tk.len() as f64;
    }
    let recall = 1.0 / k * sum;
    let alpha = 0.5;
    let f = precision * recall / (alpha * recall + (1.0 - alpha) * precision);
    FMeasure { f, precision, recall }
}

/// Precision and recall of [`f_measure_pr`], as a pair.
///
/// # Panics
/// If `annotations` is empty.
pub fn precision_recall(annotations: &[Vec<usize>], predictions: &[usize], margin: usize) -> (f64, f64) {
    let m = f_measure_pr(annotations, predictions, margin);
    (m.precision, m.recall)
}

/// TCPDBench's `overlap(A, B)`: the Jaccard index `|A ∩ B| / |A ∪ B|` of two sets of rows.
/// Both empty gives NaN (TCPDBench divides by zero).
pub fn overlap(a: &BTreeSet<usize>, b: &BTreeSet<usize>) -> f64 {
    let inter = a.intersection(b).count();
    let union = a.len() + b.len() - inter;
    inter as f64 / union as f64
}

/// The Jaccard index of two row ranges, equal to [`overlap`] of their sets.
fn range_overlap(a: &Range<usize>, b: &Range<usize>) -> f64 {
    let inter = a.end.min(b.end).saturating_sub(a.start.max(b.start));
    let union = a.len() + b.len() - inter;
    inter as f64 / union as f64
}

/// TCPDBench's `partition_from_cps(locations, n_obs)`: the segments of `0..n_obs` that the
/// change points cut, as row ranges in order. Duplicates, 0 and indices `>= n_obs` cut nothing.
/// `n_obs = 0` gives one empty segment, as in TCPDBench.
pub fn partition_from_cps(locations: &[usize], n_obs: usize) -> Vec<Range<usize>> {
    let cuts: BTreeSet<usize> = locations.iter().copied().filter(|&c| c > 0 && c < n_obs).collect();
    let mut out = Vec::with_capacity(cuts.len() + 1);
    let mut start = 0;
    for c in cuts {
        out.push(start..c);
        start = c;
    }
    out.push(start..n_obs);
    out
}

/// TCPDBench's `cover_single(Sprime, S)`: how well the segmentation `s_prime` covers `s`,
/// `Σ_{R ∈ s} |R| · max_{R' ∈ s_prime} J(R, R') / T` with `T` the number of rows (Arbelaez et
/// al. 2010, eq. 8). Segments are row ranges; both segmentations must cover the same rows.
///
/// # Panics
/// If the two segmentations do not have the same number of rows (TCPDBench asserts it), or
/// that number is 0.
pub fn cover_single(s_prime: &[Range<usize>], s: &[Range<usize>]) -> f64 {
    let t: usize = s_prime.iter().map(|r| r.len()).sum();
    assert_eq!(t, s.iter().map(|r| r.len()).sum::<usize>(), "segmentations of different lengths");
    assert!(t > 0, "covering of an empty series");
    let mut c = 0.0;
    for r in s {
        let best = s_prime.iter().map(|rp| range_overlap(r, rp)).fold(f64::NEG_INFINITY, f64::max);
        c += r.len() as f64 * best;
    }
    c / t as f64
}

/// TCPDBench's `covering(annotations, predictions, n_obs)`: the segmentation covering of each
/// annotator's segmentation by the predicted one, averaged over annotators.
///
/// # Panics
/// If `annotations` is empty or `n_obs` is 0 (TCPDBench divides by zero).
pub fn covering(annotations: &[Vec<usize>], predictions: &[usize], n_obs: usize) -> f64 {
    assert!(!annotations.is_empty(), "covering needs at least one annotator");
    assert!(n_obs > 0, "covering of an empty series");
    let px = partition_from_cps(predictions, n_obs);
    let mut sum = 0.0;
    for a in annotations {
        sum += cover_single(&px, &partition_from_cps(a, n_obs));
    }
    sum / annotations.len() as f64
}

/// The iteration order of a CPython `set` of small non-negative ints (CPython 3.7 and later:
/// `setobject.c`, hash of an int below 2^61 − 1 is the int itself, 8-slot minimum table, nine
/// linear probes then perturbed probing, growth to 4× the used count when 3/5 full). Checked
/// against CPython 3.11 on random sets.
mod py_set {
    const MIN_SIZE: usize = 8;
    const LINEAR_PROBES: usize = 9;
    const PERTURB_SHIFT: u32 = 5;

    /// The order in which CPython iterates `s` after `s = set(); for v in values: s.add(v)`
    /// (the same as `set(values)` for a list).
    pub(super) fn iteration_order(values: impl IntoIterator<Item = usize>) -> Vec<usize> {
        let mut table: Vec<Option<usize>> = vec![None; MIN_SIZE];
        let (mut fill, mut used) = (0usize, 0usize);
        for v in values {
            let mask = table.len() - 1;
            let slot = match probe(&table, mask, v, true) {
                Probe::Present => continue,
                Probe::Free(slot) => slot,
            };
            table[slot] = Some(v);
            fill += 1;
            used += 1;
            if fill * 5 >= mask * 3 {
                let min_used = if used > 50_000 { used * 2 } else { used * 4 };
                let mut size = MIN_SIZE;
                while size <= min_used {
                    size <<= 1;
                }
                let old = std::mem::replace(&mut table, vec![None; size]);
                for e in old.into_iter().flatten() {
                    if let Probe::Free(slot) = probe(&table, size - 1, e, false) {
                        table[slot] = Some(e);
                    }
                }
            }
        }
        table.into_iter().flatten().collect()
    }

    enum Probe {
        Present,
        Free(usize),
    }

    fn probe(table: &[Option<usize>], mask: usize, v: usize, look_for_equal: bool) -> Probe {
        let hash = v as u64;
        let mut perturb = hash;
        let mut i = (hash as usize) & mask;
        loop {
            let probes = if i + LINEAR_PROBES <= mask { LINEAR_PROBES } else { 0 };
            for (j, entry) in table.iter().enumerate().skip(i).take(probes + 1) {
                match *entry {
                    None => return Probe::Free(j),
                    Some(e) if look_for_equal && e == v => return Probe::Present,
                    Some(_) => {}
                }
            }
            perturb >>= PERTURB_SHIFT;
            i = (i.wrapping_mul(5).wrapping_add(1).wrapping_add(perturb as usize)) & mask;
        }
    }

    #[cfg(test)]
    mod tests {
        use super::iteration_order;

        #[test]
        fn small_ints_iterate_in_ascending_order() {
            assert_eq!(iteration_order([20, 1, 23, 10]), vec![1, 10, 20, 23]);
        }

        /// Orders printed by CPython 3.11 for `s = set(values); s.add(0); list(s)`.
        #[test]
        fn matches_cpython_3_11() {
            let cases: [(&[usize], &[usize]); 4] = [
                (&[572, 1012, 1232], &[1232, 0, 572, 1012]),
                (&[100, 8, 16, 3], &[0, 3, 100, 8, 16]),
                (&[9, 17, 25, 33, 41], &[0, 33, 9, 41, 17, 25]),
                (&[5000, 5001, 4999, 12, 700, 64], &[64, 0, 4999, 5000, 5001, 12, 700]),
            ];
            for (values, expected) in cases {
                let got = iteration_order(values.iter().copied().chain([0]));
                assert_eq!(got, expected, "values {values:?}");
            }
        }
    }
}

#[cfg(test)]
// One-segment partitions are written as `[0..n]` on purpose.
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;

    fn set(v: &[usize]) -> BTreeSet<usize> {
        v.iter().copied().collect()
    }

    // Every doctest of TCPDBench's analysis/scripts/metrics.py, with the same expected values.

    #[test]
    fn doctest_true_positives() {
        assert_eq!(true_positives(&[1, 10, 20, 23], &[3, 8, 20], 5), set(&[1, 10, 20]));
        assert_eq!(true_positives(&[1, 10, 20, 23], &[1, 3, 8, 20], 5), set(&[1, 10, 20]));
        assert_eq!(true_positives(&[1, 10, 20, 23], &[1, 3, 5, 8, 20], 5), set(&[1, 10, 20]));
        assert_eq!(true_positives(&[], &[1, 2, 3], 5), set(&[]));
        assert_eq!(true_positives(&[1, 2, 3], &[], 5), set(&[]));
    }

    #[test]
    fn doctest_f_measure() {
        let a = vec![vec![10, 20], vec![11, 20], vec![10], vec![0, 5]];
        assert_eq!(f_measure(&a, &[10, 20], 5), 1.0);
        let a = vec![vec![], vec![10], vec![50]];
        assert_eq!(f_measure(&a, &[10], 5), 0.9090909090909091);
        assert_eq!(f_measure(&a, &[], 5), 0.8);
    }

    #[test]
    fn doctest_overlap() {
        assert_eq!(overlap(&set(&[1, 2, 3]), &set(&[])), 0.0);
        assert_eq!(overlap(&set(&[1, 2, 3]), &set(&[2, 5])), 0.25);
        assert_eq!(overlap(&set(&[]), &set(&[1, 2, 3])), 0.0);
        assert_eq!(overlap(&set(&[1, 2, 3]), &set(&[1, 2, 3])), 1.0);
    }

    #[test]
    fn doctest_partition_from_cps() {
        assert_eq!(partition_from_cps(&[], 5), vec![0..5]);
        assert_eq!(partition_from_cps(&[3, 5], 8), vec![0..3, 3..5, 5..8]);
        assert_eq!(partition_from_cps(&[1, 2, 7], 8), vec![0..1, 1..2, 2..7, 7..8]);
        assert_eq!(partition_from_cps(&[0, 4], 6), vec![0..4, 4..6]);
    }

    #[test]
    fn doctest_cover_single() {
        // The doctests' sets are runs of 1..=6.
        assert_eq!(cover_single(&[1..4, 4..6, 6..7], &[1..4, 4..7]), 0.8333333333333334);
        assert_eq!(cover_single(&[1..5, 5..7], &[1..7]), 0.6666666666666666);
        assert_eq!(cover_single(&[1..3, 3..5, 5..7], &[1..4, 4..7]), 0.6666666666666666);
        assert_eq!(cover_single(&[1..7], &[1..2, 2..3, 3..4, 4..7]), 0.3333333333333333);
    }

    #[test]
    fn doctest_covering() {
        let a = vec![vec![10, 20], vec![10], vec![0, 5]];
        assert_eq!(covering(&a, &[10, 20], 45), 0.7962962962962963);
        let a = vec![vec![], vec![10], vec![40]];
        assert_eq!(covering(&a, &[10], 45), 0.7954144620811286);
        assert_eq!(covering(&a, &[], 45), 0.8189300411522634);
    }

    #[test]
    fn range_overlap_equals_set_overlap() {
        let ranges = [0..3, 2..7, 5..6, 0..10, 7..9];
        for a in &ranges {
            for b in &ranges {
                let sa: BTreeSet<usize> = a.clone().collect();
                let sb: BTreeSet<usize> = b.clone().collect();
                assert_eq!(range_overlap(a, b), overlap(&sa, &sb), "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn partition_ignores_duplicates_and_out_of_range_points() {
        assert_eq!(partition_from_cps(&[4, 4, 2, 9, 100], 6), vec![0..2, 2..4, 4..6]);
        assert_eq!(partition_from_cps(&[], 0), vec![0..0]);
    }

    /// The greedy matching depends on the order in which true change points are visited
    /// (expected sets checked against TCPDBench's function under CPython 3.11).
    #[test]
    fn matching_follows_python_set_order() {
        // {0, 6}: CPython visits 0 first; 0 takes 3, 6 takes 9.
        assert_eq!(true_positives(&[6, 0], &[3, 9], 5), set(&[0, 6]));
        // set([16, 8]): in an 8-slot table 16 takes slot 0 and 8 collides and moves on, so
        // CPython visits 16 first: 16 takes 12 and 8 takes 3, two matches. Built as
        // set([8, 16]) the visit is 8 then 16: 8 takes 12 (nearer than 3), 16 finds nothing.
        assert_eq!(true_positives(&[16, 8], &[12, 3], 5), set(&[8, 16]));
        assert_eq!(true_positives(&[8, 16], &[12, 3], 5), set(&[8]));
    }

    /// An annotator's set is visited in its own order, which is not the order of a set rebuilt
    /// from that order. Expected values from TCPDBench's `f_measure` under CPython 3.11.
    #[test]
    fn f_measure_visits_each_annotator_set_as_built() {
        let a = vec![vec![50, 118, 22, 189, 157], vec![39, 57]];
        let m = f_measure_pr(&a, &[106, 83, 81, 160, 94, 90, 48, 139], 30);
        assert_eq!(m.f, 0.6382978723404256);
        assert_eq!(m.precision, 0.5555555555555556);
        assert_eq!(m.recall, 0.75);
    }

    #[test]
    fn perfect_and_empty_predictions() {
        let a = vec![vec![100, 200]];
        assert_eq!(f_measure(&a, &[100, 200], 5), 1.0);
        assert_eq!(covering(&a, &[100, 200], 300), 1.0);
        // Only 0 matches: P = 1/1, R = 1/3, F = 2PR/(P+R) = 0.5.
        let m = f_measure_pr(&a, &[], 5);
        assert_eq!((m.precision, m.recall), (1.0, 1.0 / 3.0));
        assert!((m.f - 0.5).abs() < 1e-15);
        assert_eq!(precision_recall(&a, &[], 5), (m.precision, m.recall));
        // No prediction: the one segment 0..300 covers each third with J = 1/3.
        assert!((covering(&a, &[], 300) - 1.0 / 3.0).abs() < 1e-15);
    }

    #[test]
    fn margin_is_inclusive() {
        let a = vec![vec![100]];
        assert_eq!(true_positives(&[0, 100], &[0, 105], 5), set(&[0, 100]));
        assert_eq!(true_positives(&[0, 100], &[0, 106], 5), set(&[0]));
        assert_eq!(f_measure(&a, &[95], 5), 1.0);
    }
}
