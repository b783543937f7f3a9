//! Cross-validation helpers: deterministic k-fold assignment of named items, leave-one-group-out
//! splits, choosing a setting on the training items of each split and scoring it on the held-out
//! ones, and a 95 % confidence interval of a mean.
//!
//! Items are referred to by their index in the slice given to the split functions; a
//! [`Split`] holds such indices. Higher scores are better throughout.

use std::collections::{BTreeMap, BTreeSet};

use crate::EvalError;

/// One train/test split, as indices into the items given to the function that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Items to choose on, ascending.
    pub train: Vec<usize>,
    /// Held-out items, ascending.
    pub test: Vec<usize>,
}

/// The fold of each name for `k`-fold cross-validation: names sorted by byte order, the `i`-th
/// sorted name in fold `i mod k`. Deterministic and independent of the input order.
///
/// # Errors
/// [`EvalError::InvalidInput`] for a repeated name or `k` outside `2..=names.len()`.
pub fn k_fold_assignment<S: AsRef<str>>(names: &[S], k: usize) -> Result<BTreeMap<String, usize>, EvalError> {
    if k < 2 || k > names.len() {
        return Err(EvalError::InvalidInput(format!("{k} folds for {} items (need 2 <= k <= items)", names.len())));
    }
    let sorted: BTreeSet<&str> = names.iter().map(AsRef::as_ref).collect();
    if sorted.len() != names.len() {
        return Err(EvalError::InvalidInput("repeated name".into()));
    }
    Ok(sorted.into_iter().enumerate().map(|(i, n)| (n.to_string(), i % k)).collect())
}

/// The `k` splits of [`k_fold_assignment`]: split `f` holds out fold `f`.
///
/// # Errors
/// As [`k_fold_assignment`].
pub fn k_fold_splits<S: AsRef<str>>(names: &[S], k: usize) -> Result<Vec<Split>, EvalError> {
    let fold = k_fold_assignment(names, k)?;
    let of: Vec<usize> = names.iter().map(|n| fold[n.as_ref()]).collect();
    Ok((0..k).map(|f| split_by(&of, |g| *g == f)).collect())
}

/// One split per distinct group, groups in sorted order: the items of that group held out, all
/// others trained on. `groups[i]` is item `i`'s group (e.g. a NAB category).
pub fn leave_one_group_out<S: AsRef<str>>(groups: &[S]) -> Vec<(String, Split)> {
    let distinct: BTreeSet<&str> = groups.iter().map(AsRef::as_ref).collect();
    distinct
        .into_iter()
        .map(|g| {
            let of: Vec<&str> = groups.iter().map(AsRef::as_ref).collect();
            (g.to_string(), split_by(&of, |x| *x == g))
        })
        .collect()
}

fn split_by<T>(of: &[T], held_out: impl Fn(&T) -> bool) -> Split {
    let (test, train): (Vec<usize>, Vec<usize>) = (0..of.len()).partition(|&i| held_out(&of[i]));
    Split { train, test }
}

/// What one split chose and how it did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FoldChoice {
    /// Index of the chosen setting.
    pub setting: usize,
    /// Its score on the training items.
    pub train_score: f64,
    /// Its score on the held-out items.
    pub held_out: f64,
}

/// For each split, the setting with the highest `train_score(setting, train)` (on a tie, the
/// first in order `0..n_settings`), and `held_out_score(setting, train, test)` for it. The
/// held-out score gets the training items too, e.g. to score a NAB fold at the threshold
/// optimised on the training folds.
///
/// # Errors
/// [`EvalError::InvalidInput`] if there is no setting or a training score is NaN.
pub fn cross_validate<T, H>(
    n_settings: usize,
    splits: &[Split],
    mut train_score: T,
    mut held_out_score: H,
) -> Result<Vec<FoldChoice>, EvalError>
where
    T: FnMut(usize, &[usize]) -> f64,
    H: FnMut(usize, &[usize], &[usize]) -> f64,
{
    if n_settings == 0 {
        return Err(EvalError::InvalidInput("no setting to choose from".into()));
    }
    splits
        .iter()
        .map(|split| {
            let mut best: Option<(usize, f64)> = None;
            for s in 0..n_settings {
                let score = train_score(s, &split.train);
                if score.is_nan() {
                    return Err(EvalError::InvalidInput(format!("setting {s}: NaN training score")));
                }
                if best.is_none_or(|(_, b)| score > b) {
                    best = Some((s, score));
                }
            }
            let (setting, train_score) = best.expect("n_settings > 0");
            Ok(FoldChoice { setting, train_score, held_out: held_out_score(setting, &split.train, &split.test) })
        })
        .collect()
}

/// [`cross_validate`] over a table `table[setting][item]` of per-item scores (e.g. covering per
/// series): each split picks the setting with the best mean over its training items and reports
/// that setting's mean over its held-out items.
///
/// # Errors
/// [`EvalError::InvalidInput`] for an empty or ragged table, an item index out of range, an empty
/// side of a split, or a NaN training mean.
pub fn select_by_mean(table: &[Vec<f64>], splits: &[Split]) -> Result<Vec<FoldChoice>, EvalError> {
    let n_items = table.first().map_or(0, Vec::len);
    if table.iter().any(|row| row.len() != n_items) {
        return Err(EvalError::InvalidInput("ragged score table".into()));
    }
    for s in splits {
        if s.train.is_empty() || s.test.is_empty() {
            return Err(EvalError::InvalidInput("a split with no training or no held-out item".into()));
        }
        if let Some(&i) = s.train.iter().chain(&s.test).find(|&&i| i >= n_items) {
            return Err(EvalError::InvalidInput(format!("item {i} out of range ({n_items} items)")));
        }
    }
    let mean = |s: usize, items: &[usize]| items.iter().map(|&i| table[s][i]).sum::<f64>() / items.len() as f64;
    cross_validate(table.len(), splits, mean, |s, _, test| mean(s, test))
}

/// A mean with its 95 % confidence interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeanCi {
    /// Number of values.
    pub n: usize,
    /// Arithmetic mean.
    pub mean: f64,
    /// Half-width of the interval: `1.959964 · s / √n`, `s` the sample standard deviation
    /// (divisor `n − 1`).
    pub half_width: f64,
    /// `mean − half_width`.
    pub low: f64,
    /// `mean + half_width`.
    pub high: f64,
}

/// The mean and its 95 % confidence interval by the **normal approximation**,
/// `mean ± z₀.₉₇₅ · s/√n` with `z₀.₉₇₅ = 1.959963984540054` and the sample standard deviation
/// `s`. Deterministic (no resampling). For few values it is narrower than a Student-t interval.
///
/// # Errors
/// [`EvalError::InvalidInput`] for fewer than two values or a value that is not finite.
pub fn mean_ci95(values: &[f64]) -> Result<MeanCi, EvalError> {
    if values.len() < 2 {
        return Err(EvalError::InvalidInput(format!(
            "a confidence interval needs two values or more, got {}",
            values.len()
        )));
    }
    if values.iter().any(|v| !v.is_finite()) {
        return Err(EvalError::InvalidInput("a value is not finite".into()));
    }
    const Z: f64 = 1.959963984540054;
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let half_width = Z * (var / n).sqrt();
    Ok(MeanCi { n: values.len(), mean, half_width, low: mean - half_width, high: mean + half_width })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k_fold_assignment_is_sorted_index_mod_k() {
        let names = ["d", "a", "c", "e", "b"];
        let f = k_fold_assignment(&names, 2).unwrap();
        let got: Vec<(&str, usize)> = f.iter().map(|(n, &k)| (n.as_str(), k)).collect();
        assert_eq!(got, [("a", 0), ("b", 1), ("c", 0), ("d", 1), ("e", 0)]);
        // The same whatever the input order.
        assert_eq!(k_fold_assignment(&["e", "d", "c", "b", "a"], 2).unwrap(), f);
        let splits = k_fold_splits(&names, 2).unwrap();
        // Indices refer to `names` as given: a=1, c=2, e=3 in fold 0.
        assert_eq!(splits[0], Split { train: vec![0, 4], test: vec![1, 2, 3] });
        assert_eq!(splits[1], Split { train: vec![1, 2, 3], test: vec![0, 4] });
        assert!(k_fold_assignment(&names, 1).is_err());
        assert!(k_fold_assignment(&names, 6).is_err());
        assert!(k_fold_assignment(&["a", "a"], 2).is_err());
    }

    #[test]
    fn leave_one_group_out_splits() {
        let groups = ["web", "db", "web", "cache", "db"];
        let s = leave_one_group_out(&groups);
        let names: Vec<&str> = s.iter().map(|(g, _)| g.as_str()).collect();
        assert_eq!(names, ["cache", "db", "web"]);
        assert_eq!(s[1].1, Split { train: vec![0, 2, 3], test: vec![1, 4] });
        assert_eq!(s[2].1, Split { train: vec![1, 3, 4], test: vec![0, 2] });
    }

    #[test]
    fn selection_on_training_items_ties_to_first_setting() {
        // On items 0 and 1 settings 0, 1 and 3 all have mean 0.5; on items 2 and 3 setting 2
        // is best (0.9).
        let table = vec![
            vec![0.5, 0.5, 0.0, 0.0],
            vec![0.9, 0.1, 0.2, 0.2],
            vec![0.0, 0.0, 0.9, 0.9],
            vec![0.5, 0.5, 0.0, 0.0],
        ];
        let splits = vec![Split { train: vec![0, 1], test: vec![2, 3] }, Split { train: vec![2, 3], test: vec![0, 1] }];
        let c = select_by_mean(&table, &splits).unwrap();
        // The first of the tied settings is chosen.
        assert_eq!(c[0].setting, 0);
        assert_eq!(c[0].train_score, 0.5);
        assert_eq!(c[0].held_out, 0.0);
        assert_eq!(c[1].setting, 2);
        assert_eq!(c[1].held_out, 0.0);
        assert!(select_by_mean(&[vec![1.0], vec![]], &splits).is_err());
        assert!(select_by_mean(&table, &[Split { train: vec![0], test: vec![9] }]).is_err());
        assert!(select_by_mean(&table, &[Split { train: vec![], test: vec![1] }]).is_err());
    }

    #[test]
    fn cross_validate_passes_training_items_to_the_held_out_score() {
        let splits = vec![Split { train: vec![0, 1], test: vec![2] }];
        let c = cross_validate(
            3,
            &splits,
            |s, _| [1.0, 3.0, 2.0][s],
            |s, train, test| (s * 100 + train.len() * 10 + test.len()) as f64,
        )
        .unwrap();
        assert_eq!(c, vec![FoldChoice { setting: 1, train_score: 3.0, held_out: 121.0 }]);
        assert!(cross_validate(0, &splits, |_, _| 0.0, |_, _, _| 0.0).is_err());
        assert!(cross_validate(2, &splits, |_, _| f64::NAN, |_, _, _| 0.0).is_err());
    }

    #[test]
    fn mean_ci95_normal_approximation() {
        // mean 3, s = sqrt(2.5), half-width 1.959964 * sqrt(2.5 / 5) = 1.385904...
        let ci = mean_ci95(&[1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
        assert_eq!(ci.n, 5);
        assert_eq!(ci.mean, 3.0);
        assert!((ci.half_width - 1.959963984540054 * 0.5f64.sqrt()).abs() < 1e-15);
        assert_eq!((ci.low, ci.high), (3.0 - ci.half_width, 3.0 + ci.half_width));
        assert_eq!(mean_ci95(&[2.0, 2.0]).unwrap().half_width, 0.0);
        assert!(mean_ci95(&[1.0]).is_err());
        assert!(mean_ci95(&[1.0, f64::NAN]).is_err());
    }
}
