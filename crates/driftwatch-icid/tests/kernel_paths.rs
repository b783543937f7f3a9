//! The fast nearest-centre paths against the scalar reference (issue: "property tests prove [the
//! fast path] gives the same cell assignments").
//!
//! * `d > 1`: every SIMD level this CPU has, and the portable fallback, must return exactly the
//!   scalar cell for every point and partitioning (same fused multiply-adds in the same order;
//!   ties keep the first drawn centre).
//! * `d = 1`: the sorted-threshold path may differ from the scalar loop only at an exact tie:
//!   where it does, the two centres' f32 distances to the point must be equal, so both are
//!   nearest. (Ties between sorted neighbours are broken by draw order like the scalar loop; the
//!   only remaining case is a rounding tie across an intervening centre.)

use driftwatch_icid::{IsolationKernel, Layout, NearestPath, Params, PsiChoice, SimdLevel, detect, minmax_scale};
use proptest::prelude::*;

fn fast_paths() -> Vec<NearestPath> {
    let mut p = vec![NearestPath::Auto];
    p.extend(SimdLevel::available().into_iter().map(NearestPath::Forced));
    p
}

/// Values either continuous or from a small grid (many exact duplicates, so equal centres and
/// points sitting exactly on centres are common).
fn values(len: usize) -> impl Strategy<Value = Vec<f64>> {
    prop_oneof![
        prop::collection::vec(-1e3f64..1e3, len),
        prop::collection::vec((0i32..12).prop_map(|v| v as f64), len),
        prop::collection::vec((-3i32..3).prop_map(|v| v as f64 * 0.1), len),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn multivariate_fast_paths_equal_the_scalar_path(
        d in 2usize..=10,
        rows in 1usize..200,
        psi in 1usize..=64,
        t in 1usize..6,
        seed in any::<u64>(),
        pool in values(2000),
    ) {
        let data = &pool[..rows * d];
        let pts = minmax_scale(data, d).unwrap();
        let kernel = IsolationKernel::sample(&pts, psi, t, seed).unwrap();
        let scalar = kernel.assign(&pts, NearestPath::Scalar);
        for path in fast_paths() {
            prop_assert_eq!(&kernel.assign(&pts, path), &scalar, "{:?} d={} psi={}", path, d, psi);
        }
    }

    #[test]
    fn univariate_fast_path_differs_from_scalar_only_at_exact_ties(
        rows in 1usize..2000,
        psi in 1usize..=64,
        t in 1usize..6,
        seed in any::<u64>(),
        pool in values(2000),
    ) {
        let pts = minmax_scale(&pool[..rows], 1).unwrap();
        let kernel = IsolationKernel::sample(&pts, psi, t, seed).unwrap();
        let scalar = kernel.assign(&pts, NearestPath::Scalar);
        for path in fast_paths() {
            let fast = kernel.assign(&pts, path);
            for (i, (&a, &b)) in scalar.iter().zip(&fast).enumerate() {
                if a != b {
                    let (row, k) = (i / kernel.t(), i % kernel.t());
                    let x = pts.row(row);
                    prop_assert_eq!(kernel.scalar_key(k, a as usize, x), kernel.scalar_key(k, b as usize, x),
                        "row {} partitioning {}: scalar {} fast {} are not tied", row, k, a, b);
                }
            }
        }
    }
}

#[test]
fn equal_centres_resolve_to_the_first_drawn_on_every_path() {
    // Two distinct values only: every partitioning of psi 6 draws duplicates.
    let data: Vec<f64> = (0..40).flat_map(|i| [(i % 2) as f64, ((i / 2) % 2) as f64]).collect();
    for d in [1usize, 2] {
        let pts = minmax_scale(&data[..40 * d], d).unwrap();
        let kernel = IsolationKernel::sample(&pts, 6, 8, 11).unwrap();
        let scalar = kernel.assign(&pts, NearestPath::Scalar);
        for (i, &c) in scalar.iter().enumerate() {
            let (row, k) = (i / kernel.t(), i % kernel.t());
            let centres = &kernel.centres()[k * 6 * d..(k + 1) * 6 * d];
            let first_equal = centres.chunks(d).position(|cv| cv == &centres[c as usize * d..(c as usize + 1) * d]);
            assert_eq!(first_equal, Some(c as usize), "not the first drawn copy");
            assert_eq!(
                kernel.scalar_key(k, c as usize, pts.row(row)),
                (0..6).map(|j| kernel.scalar_key(k, j, pts.row(row))).fold(f32::INFINITY, f32::min)
            );
        }
        for path in fast_paths() {
            assert_eq!(kernel.assign(&pts, path), scalar, "d={d} {path:?}");
        }
    }
}

#[test]
fn detection_is_identical_on_the_scalar_and_fast_paths() {
    let data = driftwatch_testkit::piecewise_gaussian(6, 500, 3, 9);
    for (d, layout) in [(1usize, Layout::Shared), (3, Layout::Shared), (3, Layout::HalfOpen)] {
        let x: Vec<f64> = if d == 1 { data.iter().step_by(3).copied().collect() } else { data.clone() };
        let mut p = Params::new(50, 1.0);
        p.layout = layout;
        p.psi = PsiChoice::Auto(vec![4, 16, 64]); // 1-D: per-threshold and table paths
        p.path = NearestPath::Scalar;
        let scalar = detect(&x, d, &p).unwrap();
        for path in fast_paths() {
            p.path = path;
            assert_eq!(detect(&x, d, &p).unwrap(), scalar, "d={d} {layout:?} {path:?}");
        }
    }
}

#[test]
fn paths_parse_by_name_and_a_level_the_cpu_lacks_is_refused() {
    let all = [SimdLevel::Portable, SimdLevel::Avx2, SimdLevel::Avx512];
    for (name, path) in [
        ("auto", NearestPath::Auto),
        ("scalar", NearestPath::Scalar),
        ("portable", NearestPath::Forced(SimdLevel::Portable)),
        ("AVX2", NearestPath::Forced(SimdLevel::Avx2)),
        ("avx2+fma", NearestPath::Forced(SimdLevel::Avx2)),
        ("avx512", NearestPath::Forced(SimdLevel::Avx512)),
        ("avx512f", NearestPath::Forced(SimdLevel::Avx512)),
    ] {
        assert_eq!(NearestPath::parse_on(name, &all), Ok(path), "{name}");
    }
    assert!(NearestPath::parse_on("sse9", &all).unwrap_err().to_string().contains("auto, scalar, portable"));
    // An AVX2-only CPU and an ARM server.
    let avx2 = [SimdLevel::Portable, SimdLevel::Avx2];
    let e = NearestPath::parse_on("avx512", &avx2).unwrap_err().to_string();
    assert!(e.contains("does not support avx512f") && e.contains("portable, avx2+fma"), "{e}");
    for name in ["avx2", "avx512"] {
        assert!(NearestPath::parse_on(name, &[SimdLevel::Portable]).is_err(), "{name}");
    }
    assert!(NearestPath::parse_on("portable", &[SimdLevel::Portable]).is_ok());
    // On this CPU: exactly the levels it reports, and the level a path runs on is the one named.
    for level in all {
        let here = NearestPath::Forced(level).check();
        assert_eq!(here.is_ok(), SimdLevel::available().contains(&level), "{level:?}");
        if here.is_ok() {
            assert_eq!(NearestPath::Forced(level).used(), level.name());
        }
    }
    assert_eq!(NearestPath::Scalar.used(), "scalar");
    assert_eq!(NearestPath::Auto.used(), SimdLevel::detect().name());
}
