//! The streaming detector places the changes it detects to the row: mean, spread and rhythm
//! changes off any window grid, with the service's defaults (window 50, warm-up 500 points).

use driftwatch_icid::{Event, StreamConfig, StreamDetector};
use driftwatch_testkit::{Regime, regime_series};

/// For each true change, the distance from it to the change point of the first interval opened
/// within three windows after it (`None`: missed).
fn placements(kind: Regime, truth: &[usize], seed: u64) -> Vec<Option<usize>> {
    let x = regime_series(kind, 5000, truth, seed);
    let cfg = StreamConfig::new(50);
    let mut det = StreamDetector::new(cfg, 1).expect("a valid configuration");
    let mut events = Vec::new();
    for (i, &v) in x.iter().enumerate() {
        det.push(i as i64, &[v], &mut events);
    }
    let opened: Vec<(u64, u64)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Opened { change_point, detected_at, .. } => Some((*change_point, *detected_at)),
            _ => None,
        })
        .collect();
    truth
        .iter()
        .map(|&c| {
            let c = c as u64;
            opened.iter().find(|&&(_, at)| at > c && at <= c + 150).map(|&(cp, _)| cp.abs_diff(c) as usize)
        })
        .collect()
}

#[test]
fn detected_changes_are_placed_to_the_row() {
    let truth = [1037, 2011, 3533];
    let mut errs = Vec::new();
    let mut missed = 0;
    for kind in Regime::ALL {
        for seed in 0..6 {
            let p = placements(kind, &truth, seed);
            eprintln!("{kind:?} seed {seed}: {p:?}");
            if kind == Regime::Mean {
                assert!(p.iter().flatten().all(|&e| e <= 5), "mean shifts, seed {seed}: {p:?}");
            }
            for e in p {
                match e {
                    Some(e) => errs.push(e),
                    None => missed += 1,
                }
            }
        }
    }
    let within = errs.iter().filter(|&&e| e <= 5).count();
    eprintln!("{within} of {} detected changes within 5 rows; {missed} of 54 missed", errs.len());
    // Measured when written (2026-12-08): with the subsequence embedding at the warm-up's
    // pattern width, 28 of 33 detected changes within 5 rows (three rhythm changes 47 to 94 rows
    // off, one spread change 49); 21 of 54 not detected within three windows (spread changes
    // mostly, and every rhythm change of two seeds). Without the embedding, 1 of 18 rhythm
    // changes was detected.
    assert!(within * 10 >= errs.len() * 8, "{within} of {} within 5 rows", errs.len());
    assert!(errs.len() >= 30, "only {} of 54 changes detected", errs.len());
    let rhythm = (0..6).flat_map(|seed| placements(Regime::Frequency, &truth, seed)).flatten().count();
    assert!(rhythm >= 8, "only {rhythm} of 18 rhythm changes detected");
}
