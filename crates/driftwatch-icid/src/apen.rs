//! Approximate entropy (Pincus 1991), spec §3, computed exactly without the O(L²) loop.
//!
//! `ApEn(m, r) = Φ^m − Φ^{m+1}`, `Φ^m = (1/L) Σ_j ln C_j`, `C_j` = share of length-`m` templates
//! within Chebyshev distance `r` of template `j` (self-match included, `≤ r`).
//!
//! The series iCID feeds it is piecewise constant (runs of a window's length), so templates are
//! few: inside a run every template is the constant `(v,…,v)` ("pure", one instance with a
//! multiplicity), and only the `m−1` positions before each run boundary give "mixed" templates.
//! Matches are counted by kind:
//! * pure↔pure: a 1-D range count on sorted pure values (binary search + prefix sums);
//! * pure↔mixed: a constant `v` matches a mixed template `T` iff `v` lies in the interval where
//!   every `|v − T_l| ≤ r` holds; stabbing counts over sorted interval ends;
//! * mixed↔mixed: sort by first value, scan only the candidates within `r` of it.
//!
//! Exactness: `|a − b| ≤ r` evaluated in f64 is monotone in `b` on each side of `a`, so every
//! interval end is found as the exact last f64 where the predicate holds (stepping ulps from
//! `a ± r`), and the counts equal the naive loop's. The cost is `O(U log U)` plus the mixed scan,
//! `U ≈ m · runs`.

/// ApEn with embedding dimension `m` and tolerance `r` (exact, fast).
pub fn approximate_entropy(x: &[f64], m: usize, r: f64) -> f64 {
    phi(x, m, r) - phi(x, m + 1, r)
}

/// iCID's setting: `m = 2`, `r = 0.2 ×` sample standard deviation.
pub fn approximate_entropy_default(x: &[f64]) -> f64 {
    approximate_entropy(x, 2, 0.2 * sample_std(x))
}

/// The textbook O(L²) form, for tests.
pub fn approximate_entropy_naive(x: &[f64], m: usize, r: f64) -> f64 {
    let phi = |m: usize| {
        let l = x.len() + 1 - m;
        let mut total = 0.0;
        for i in 0..l {
            let c = (0..l).filter(|&j| (0..m).all(|k| (x[i + k] - x[j + k]).abs() <= r)).count();
            total += (c as f64 / l as f64).ln();
        }
        total / l as f64
    };
    phi(m) - phi(m + 1)
}

/// Sample standard deviation (n − 1 in the denominator); 0 for fewer than two values.
pub fn sample_std(x: &[f64]) -> f64 {
    if x.len() < 2 {
        return 0.0;
    }
    let mean = x.iter().sum::<f64>() / x.len() as f64;
    let ss: f64 = x.iter().map(|v| (v - mean) * (v - mean)).sum();
    (ss / (x.len() - 1) as f64).sqrt()
}

#[inline]
fn close(a: f64, b: f64, r: f64) -> bool {
    (a - b).abs() <= r
}

/// Maps an f64 to an integer with the same order (for bisection over representable values).
fn order_key(x: f64) -> i64 {
    let b = x.to_bits() as i64;
    b ^ ((((b >> 63) as u64) >> 1) as i64)
}

fn from_key(k: i64) -> f64 {
    f64::from_bits((k ^ ((((k >> 63) as u64) >> 1) as i64)) as u64)
}

/// The last value from `yes` towards `no` at which the monotone `pred` still holds
/// (`pred(yes)` is true, `pred(no)` false). Bisection: at most 64 steps.
fn boundary(yes: f64, no: f64, pred: impl Fn(f64) -> bool) -> f64 {
    let (mut y, mut n) = (order_key(yes), order_key(no));
    while (y - n).abs() > 1 {
        let mid = y + (n - y) / 2;
        if pred(from_key(mid)) { y = mid } else { n = mid }
    }
    from_key(y)
}

/// Exact `[lo, hi]` of the values `v` with `|v − a| ≤ r` in f64.
fn interval(a: f64, r: f64) -> (f64, f64) {
    let far = 2.0 * r + a.abs() + 1.0;
    let pred = |v: f64| close(v, a, r);
    (boundary(a, a - far, pred), boundary(a, a + far, pred))
}

fn phi(x: &[f64], m: usize, r: f64) -> f64 {
    if x.len() < m {
        return 0.0;
    }
    let l = x.len() + 1 - m; // number of templates
    // Instances: pure (value, multiplicity) and mixed (start position).
    let mut pure: Vec<(f64, u64)> = Vec::new();
    let mut mixed: Vec<usize> = Vec::new();
    let mut s = 0;
    while s < x.len() {
        let mut e = s + 1;
        while e < x.len() && x[e] == x[s] {
            e += 1;
        }
        // Run [s, e). Positions j in [s, e-m] start pure templates; later ones are mixed.
        let pure_end = if e >= s + m { e + 1 - m } else { s };
        if pure_end > s {
            pure.push((x[s], (pure_end - s) as u64));
        }
        mixed.extend((pure_end..e).filter(|&j| j < l));
        s = e;
    }
    pure.sort_by(|a, b| a.0.total_cmp(&b.0));
    let pure_vals: Vec<f64> = pure.iter().map(|p| p.0).collect();
    let mut prefix = Vec::with_capacity(pure.len() + 1);
    prefix.push(0u64);
    for p in &pure {
        prefix.push(prefix.last().unwrap() + p.1);
    }
    let count_pure_in = |lo: f64, hi: f64| -> u64 {
        if lo > hi {
            return 0;
        }
        let a = pure_vals.partition_point(|&v| v < lo);
        let b = pure_vals.partition_point(|&v| v <= hi);
        if b > a { prefix[b] - prefix[a] } else { 0 }
    };
    // Each mixed template's interval of constants matching it.
    let mixed_iv: Vec<(f64, f64)> = mixed
        .iter()
        .map(|&j| {
            x[j..j + m].iter().fold((f64::NEG_INFINITY, f64::INFINITY), |(lo, hi), &v| {
                let (a, b) = interval(v, r);
                (lo.max(a), hi.min(b))
            })
        })
        .collect();
    let mut los: Vec<f64> = mixed_iv.iter().filter(|iv| iv.0 <= iv.1).map(|iv| iv.0).collect();
    let mut his: Vec<f64> = mixed_iv.iter().filter(|iv| iv.0 <= iv.1).map(|iv| iv.1).collect();
    los.sort_by(f64::total_cmp);
    his.sort_by(f64::total_cmp);
    // Mixed templates sorted by first value for the mixed↔mixed scan.
    let mut by_first: Vec<usize> = mixed.clone();
    by_first.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let firsts: Vec<f64> = by_first.iter().map(|&j| x[j]).collect();

    let ln_l = (l as f64).ln();
    let mut total = 0.0;
    for &(v, mult) in &pure {
        let (lo, hi) = interval(v, r);
        let c_pure = count_pure_in(lo, hi);
        let c_mixed = los.partition_point(|&a| a <= v) as u64 - his.partition_point(|&b| b < v) as u64;
        total += mult as f64 * (((c_pure + c_mixed) as f64).ln() - ln_l);
    }
    for (q, &j) in mixed.iter().enumerate() {
        let (lo, hi) = mixed_iv[q];
        let c_pure = count_pure_in(lo, hi);
        let (flo, fhi) = interval(x[j], r);
        let a = firsts.partition_point(|&v| v < flo);
        let b = firsts.partition_point(|&v| v <= fhi);
        let tj = &x[j..j + m];
        let c_mixed =
            by_first[a..b].iter().filter(|&&i| x[i..i + m].iter().zip(tj).all(|(p, q)| close(*p, *q, r))).count()
                as u64;
        total += ((c_pure + c_mixed) as f64).ln() - ln_l;
    }
    total / l as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_naive_loop_on_piecewise_constant_and_generic_series() {
        let mut state = 12345u64;
        let mut rnd = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let generic: Vec<f64> = (0..300).map(|_| rnd()).collect();
        let runs: Vec<f64> = (0..25).flat_map(|_| std::iter::repeat_n(rnd(), 13)).collect();
        let short_runs: Vec<f64> = (0..120).map(|i| [0.0, 1.0, 0.5][i % 3]).collect();
        let steps: Vec<f64> = [0.0, 1.0, 0.5].iter().flat_map(|&v| std::iter::repeat_n(v, 100)).collect();
        for x in [&generic, &runs, &short_runs, &steps] {
            for m in [1, 2, 3] {
                for r in [0.0, 0.2 * sample_std(x), 0.5] {
                    let (a, b) = (approximate_entropy(x, m, r), approximate_entropy_naive(x, m, r));
                    assert!((a - b).abs() < 1e-10, "m={m} r={r}: {a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn a_constant_series_has_zero_entropy() {
        assert_eq!(approximate_entropy_default(&[0.3; 50]), 0.0);
    }

    #[test]
    fn interval_ends_are_the_last_values_within_r() {
        for &(a, r) in &[(0.3, 0.1), (1.0, 0.02), (0.0, 0.0), (0.123456789, 1e-9)] {
            let (lo, hi) = interval(a, r);
            assert!(close(lo, a, r) && !close(lo.next_down(), a, r));
            assert!(close(hi, a, r) && !close(hi.next_up(), a, r));
        }
    }
}
