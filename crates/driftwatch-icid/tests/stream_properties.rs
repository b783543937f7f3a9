//! Property tests of the streaming detector on arbitrary input: every configuration the
//! validator accepts (small windows, few partitionings, every psi, refresh and gap policy),
//! arbitrary finite values (ordinary, with level shifts, constant runs, and the extremes of f64),
//! timestamps with gaps, duplicates and late points, and some invalid points.
//!
//! * no panic, and the events are well formed: intervals are half-open `[start, end)` with
//!   `start < end`, open → extend → close in order, one at a time, never overlapping, at indices
//!   the stream has reached; scores and anomaly scores are in [0, 1];
//! * the state stays bounded: the serialised checkpoint's size (its count of JSON values, which
//!   does not depend on how many digits the numbers happen to print with) stays under a bound
//!   computed from the configuration alone, however long the stream;
//! * a checkpoint taken anywhere mid-stream restores to a detector that gives the same events,
//!   anomaly scores, counters and completed blocks as the original from then on.
//!
//! `stream_behaviour.rs` and `stream_equivalence.rs` test the same detector on chosen series;
//! these properties are about arbitrary input. The cases are small (windows of at most 12
//! points, t ≤ 16) so the whole file runs in about a second in release mode.

use driftwatch_icid::{Event, NearestPath, PsiPolicy, Pushed, Refresh, StreamConfig, StreamDetector};
use proptest::prelude::*;

/// One input to `push`.
#[derive(Debug, Clone)]
enum Op {
    /// A point `dt` after the previous timestamp (`dt ≤ 0`: a duplicate or late point).
    Point { dt: i64, row: Vec<f64> },
    /// A point with a non-finite value or the wrong number of values.
    Invalid { dt: i64, row: Vec<f64> },
}

fn config() -> impl Strategy<Value = StreamConfig> {
    let window_hop = prop::sample::select(vec![2usize, 3, 4, 5, 6, 8, 10, 12]).prop_flat_map(|w| {
        let divisors: Vec<usize> = (1..=w).filter(|h| w % h == 0).collect();
        (Just(w), prop::sample::select(divisors))
    });
    let psi = prop_oneof![
        prop::sample::select(vec![1usize, 2, 4, 8]).prop_map(PsiPolicy::Fixed),
        prop::sample::subsequence(vec![1usize, 2, 4, 8], 1..=3).prop_map(PsiPolicy::AtWarmup),
        (prop::sample::subsequence(vec![2usize, 4, 8], 1..=3), 2usize..6, 1usize..4)
            .prop_map(|(candidates, history, every)| PsiPolicy::Online { candidates, history, every }),
    ];
    let refresh = prop_oneof![
        2 => Just(Refresh::Never),
        1 => (1usize..6).prop_map(Refresh::EveryWindows),
        1 => (0.0f64..0.9, 1usize..3).prop_map(|(share, windows)| Refresh::OnDrift { share, windows }),
    ];
    let gap = prop_oneof![Just(None), (1.5f64..10.0).prop_map(Some)];
    let flags = (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>());
    (window_hop, psi, refresh, gap, flags, 2usize..=4, 2usize..=12, 1usize..=16, -1.0f64..4.0, any::<u64>()).prop_map(
        |(
            (window, hop),
            psi,
            refresh,
            max_gap_factor,
            (anomaly, explain, scalar, collect_blocks),
            warmup_windows,
            history,
            t,
            alpha,
            seed,
        )| {
            StreamConfig {
                window,
                hop,
                alpha,
                t,
                psi,
                warmup_windows,
                history,
                refresh,
                max_gap_factor,
                anomaly,
                anomaly_config: driftwatch_icid::anomaly::AnomalyConfig::default(),
                explain,
                seed,
                path: if scalar { NearestPath::Scalar } else { NearestPath::Auto },
                collect_blocks,
            }
        },
    )
}

/// A finite value: mostly ordinary, sometimes a round number (constant runs, ties), sometimes
/// one of f64's extremes.
fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        20 => -5.0f64..5.0,
        3 => (-2i32..=2).prop_map(f64::from),
        1 => prop::sample::select(vec![f64::MAX, -f64::MAX, f64::MIN_POSITIVE, -f64::MIN_POSITIVE, 5e-324, 1e300, -1e300]),
        1 => any::<f64>().prop_filter("finite", |v| v.is_finite()),
    ]
}

/// Values without extremes, with level shifts: the kind of series that opens and closes
/// intervals.
fn shifted_rows(n: usize, d: usize) -> impl Strategy<Value = Vec<Vec<f64>>> {
    (
        prop::collection::vec(prop::collection::vec(-1.0f64..1.0, d), n),
        prop::collection::vec((0..n.max(1), -8.0f64..8.0), 0..4),
    )
        .prop_map(|(mut rows, shifts)| {
            for (at, by) in shifts {
                for row in rows.iter_mut().skip(at) {
                    for v in row.iter_mut() {
                        *v += by;
                    }
                }
            }
            rows
        })
}

fn ops(d: usize, max_len: usize) -> impl Strategy<Value = Vec<Op>> {
    let dt = prop_oneof![12 => Just(1i64), 3 => 1i64..5, 1 => 20i64..200, 1 => -3i64..=0];
    let rows = prop_oneof![
        prop::collection::vec(prop::collection::vec(value(), d), 0..max_len),
        (0..max_len).prop_flat_map(move |n| shifted_rows(n, d)),
    ];
    let extra = prop::collection::vec((any::<prop::sample::Index>(), any::<bool>()), 0..4);
    (rows, prop::collection::vec(dt, max_len), extra).prop_map(move |(rows, dts, extra)| {
        let mut ops: Vec<Op> = rows.into_iter().zip(dts).map(|(row, dt)| Op::Point { dt, row }).collect();
        for (at, nan) in extra {
            let row = if nan { vec![f64::NAN; d] } else { vec![0.0; d + 1] };
            let i = at.index(ops.len() + 1);
            ops.insert(i, Op::Invalid { dt: 1, row });
        }
        ops
    })
}

fn case(max_len: usize) -> impl Strategy<Value = (StreamConfig, usize, i64, Vec<Op>)> {
    let t0 = prop_oneof![4 => Just(0i64), 1 => any::<i64>()];
    (config(), 1usize..=3, t0).prop_flat_map(move |(cfg, d, t0)| (Just(cfg), Just(d), Just(t0), ops(d, max_len)))
}

/// Feeds `ops` from timestamp `ts`, checking every event; returns the events and the
/// anomaly scores after each push.
struct Run {
    ts: i64,
    events: Vec<Event>,
    anomaly: Vec<Vec<f32>>,
    blocks: Vec<driftwatch_icid::stream::BlockScore>,
    checker: Checker,
}

impl Run {
    fn new(t0: i64) -> Self {
        Self { ts: t0, events: Vec::new(), anomaly: Vec::new(), blocks: Vec::new(), checker: Checker::default() }
    }

    fn feed(&mut self, det: &mut StreamDetector, ops: &[Op]) -> Result<(), TestCaseError> {
        for op in ops {
            let (dt, row, valid) = match op {
                Op::Point { dt, row } => (*dt, row, true),
                Op::Invalid { dt, row } => (*dt, row, false),
            };
            let ts = self.ts.saturating_add(dt);
            let expected = if !valid {
                Pushed::Invalid
            } else if det.last_ts().is_some_and(|last| ts <= last) {
                Pushed::Late
            } else {
                Pushed::Accepted
            };
            let before = det.stats();
            let mut events = Vec::new();
            let pushed = det.push(ts, row, &mut events);
            let after = det.stats();
            prop_assert_eq!(pushed, expected, "{:?}", op);
            match pushed {
                Pushed::Accepted => {
                    prop_assert_eq!(after.points, before.points + 1);
                    prop_assert_eq!(det.last_ts(), Some(ts));
                    self.ts = ts;
                }
                Pushed::Late => prop_assert_eq!(after.late, before.late + 1),
                Pushed::Invalid => prop_assert_eq!(after.invalid, before.invalid + 1),
            }
            if pushed != Pushed::Accepted {
                prop_assert!(events.is_empty(), "a refused point gave events {:?}", events);
            }
            for e in &events {
                self.checker.check(e, det, self.ts)?;
            }
            let anomaly = det.last_anomaly_scores();
            prop_assert!(anomaly.iter().all(|a| (0.0..=1.0).contains(a)), "anomaly scores {anomaly:?}");
            if let Some(s) = det.last_window_score() {
                prop_assert!((0.0..=1.0).contains(&s), "window score {s}");
            }
            self.anomaly.push(anomaly.to_vec());
            self.blocks.extend(det.drain_blocks());
            self.events.extend(events);
        }
        Ok(())
    }
}

/// Follows the event sequence and checks each event against what came before.
#[derive(Debug, Default)]
struct Checker {
    warmed: bool,
    /// The open interval: start, end so far, highest score so far, start timestamp.
    open: Option<(u64, u64, f64, i64)>,
    /// Start and end of the last closed interval.
    closed_start: Option<u64>,
    closed_end: u64,
}

impl Checker {
    fn check(&mut self, e: &Event, det: &StreamDetector, last_ts: i64) -> Result<(), TestCaseError> {
        let seen = det.stats().points;
        let cfg = det.config();
        match e {
            Event::WarmedUp { at, psi, threshold } => {
                prop_assert!(self.open.is_none(), "warm-up with an open interval");
                prop_assert!(*at <= seen);
                let max_psi = match &cfg.psi {
                    PsiPolicy::Fixed(p) => *p,
                    PsiPolicy::AtWarmup(c) | PsiPolicy::Online { candidates: c, .. } => *c.iter().max().unwrap(),
                };
                prop_assert!((1..=max_psi).contains(psi), "psi {psi}");
                prop_assert!(!threshold.is_nan(), "threshold {threshold}");
                self.warmed = true;
            }
            Event::Opened { start, start_ts, change_point, change_ts, detected_at, score, threshold } => {
                prop_assert!(self.warmed, "opened before warm-up");
                // The change is placed inside the flagged window or the two windows before it.
                prop_assert!(
                    *change_point + 2 * cfg.window as u64 >= *start && change_point < detected_at,
                    "change point {change_point} outside [{start} - 2 window, {detected_at})"
                );
                prop_assert!(*change_ts <= last_ts);
                prop_assert!(self.open.is_none(), "opened {start} while {:?} is open", self.open);
                prop_assert!(start < detected_at && *detected_at <= seen, "opened [{start}, {detected_at}) at {seen}");
                // With hop < window the first flagged window may begin inside the last interval
                // (that window ends at least a hop after it, so the overlap is at most
                // `window − hop` rows); with hop = window intervals never overlap.
                let (w, hop) = (cfg.window as u64, cfg.hop as u64);
                prop_assert!(
                    *start + w >= self.closed_end + hop,
                    "opened at {start}, more than window - hop inside the last interval (end {})",
                    self.closed_end
                );
                prop_assert!(self.closed_start.is_none_or(|s| *start > s), "starts do not increase");
                prop_assert!(score > threshold && (0.0..=1.0).contains(score), "score {score} threshold {threshold}");
                prop_assert!(*start_ts <= last_ts);
                self.open = Some((*start, *detected_at, *score, *start_ts));
            }
            Event::Extended { start, end, score } => {
                let Some((s, e, peak, ts)) = self.open else {
                    return Err(TestCaseError::fail(format!("extended [{start}, {end}) with nothing open")));
                };
                prop_assert_eq!(*start, s);
                prop_assert!(*end > e && *end <= seen, "extended [{start}, {e}) to {end} at {seen}");
                prop_assert!((0.0..=1.0).contains(score), "score {score}");
                self.open = Some((s, *end, peak.max(*score), ts));
            }
            Event::Closed(ci) => {
                let Some((s, e, peak, ts)) = self.open.take() else {
                    return Err(TestCaseError::fail(format!("closed {ci:?} with nothing open")));
                };
                prop_assert_eq!((ci.start, ci.end, ci.start_ts), (s, e, ts));
                prop_assert!(ci.start < ci.end && ci.end <= seen, "closed [{}, {}) at {seen}", ci.start, ci.end);
                prop_assert!(ci.start < ci.detected_at && ci.detected_at <= ci.end, "detected at {}", ci.detected_at);
                prop_assert!(ci.start_ts <= ci.end_ts && ci.end_ts <= last_ts);
                prop_assert_eq!(ci.peak_score.to_bits(), peak.to_bits());
                prop_assert_eq!(ci.explanation.is_some(), cfg.explain);
                if let Some(x) = &ci.explanation {
                    let d = det.dim();
                    prop_assert_eq!(x.contributions.len(), d);
                    prop_assert!(x.contributions.iter().all(|c| (0.0..=1.0).contains(c)), "{:?}", x.contributions);
                    let sum: f64 = x.contributions.iter().sum();
                    prop_assert!((sum - 1.0).abs() < 1e-9, "contributions sum to {sum}");
                    prop_assert_eq!(x.during.count, ci.end - ci.start);
                    prop_assert!(x.before.count > 0);
                    for s in [&x.before, &x.during] {
                        prop_assert!(s.mean.len() == d && s.std.len() == d && s.quantiles.len() == d);
                        prop_assert!(s.quantiles.iter().all(|q| q.is_sorted()), "quantiles {:?}", s.quantiles);
                    }
                }
                self.closed_start = Some(ci.start);
                self.closed_end = ci.end;
            }
            Event::Gap { at, from_ts, to_ts, dropped } => {
                prop_assert_eq!(*at, seen - 1, "a gap is reported at the point after it");
                prop_assert!(from_ts < to_ts && *to_ts == last_ts);
                prop_assert!(2 * dropped < cfg.hop, "dropped {dropped} of a hop of {}", cfg.hop);
            }
            Event::Refreshed { at, .. } => {
                prop_assert!(self.open.is_none(), "refreshed with an open interval");
                prop_assert!(*at <= seen);
                self.warmed = false;
            }
        }
        Ok(())
    }
}

/// An upper bound on the number of JSON values in a serialised detector, from its
/// configuration alone (what each field holds at most), with room for the scalar fields.
fn state_bound(cfg: &StreamConfig, d: usize) -> usize {
    let (w, hop, t) = (cfg.window, cfg.hop, cfg.t);
    let warm = cfg.warmup_windows * w;
    let candidates: Vec<usize> = match &cfg.psi {
        PsiPolicy::Fixed(p) => vec![*p],
        PsiPolicy::AtWarmup(c) | PsiPolicy::Online { candidates: c, .. } => c.clone(),
    };
    let tracks: Vec<usize> = match &cfg.psi {
        PsiPolicy::Online { .. } => candidates.clone(),
        _ => vec![*candidates.iter().max().unwrap()],
    };
    let per_track = |psi: usize| t * psi * d + t * psi + (2 * w / hop) * t * psi + cfg.history + 16;
    let config = 32 + candidates.len();
    let refresh = if cfg.refresh == Refresh::Never { 0 } else { warm * (d + 1) };
    let warming_up = warm * (d + 1);
    let running = 2 * d
        + tracks.iter().map(|&p| per_track(p)).sum::<usize>()
        + hop * (2 * d + 1)
        + 2 * w * (d + 1)
        + hop
        + 32
        + w * d
        + 3 * d
        + 513 * d;
    // The anomaly scorer: per channel a reference and a calibration window (arrival order, sorted
    // run and unsorted tail, each at most `size + 64` values), then the smoothing window, the
    // last point, the repeat-suppression deque and the pending scores.
    let a = &cfg.anomaly_config;
    let channels = d * (1 + usize::from(a.differences) + usize::from(a.smooth > 0));
    let window = |size: usize| 4 + 2 * (size + 64) + 64;
    let scorer = if cfg.anomaly {
        32 + channels * (3 + window(a.reference) + window(a.calibration))
            + a.smooth * d
            + 3 * d
            + 3 * (a.refractory + 1)
            + 16
    } else {
        0
    };
    config + 32 + refresh + 16 + warming_up.max(running) + scorer + hop + 8
}

fn json_values(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Array(a) => 1 + a.iter().map(json_values).sum::<usize>(),
        serde_json::Value::Object(o) => 1 + o.values().map(json_values).sum::<usize>(),
        _ => 1,
    }
}

// proptest's default of 256 cases each (PROPTEST_CASES overrides it; 20,000 take about a minute).
proptest! {
    #[test]
    fn arbitrary_streams_give_well_formed_events((cfg, d, t0, ops) in case(240)) {
        let mut det = StreamDetector::new(cfg, d).unwrap();
        let mut run = Run::new(t0);
        run.feed(&mut det, &ops)?;
        let mut tail = Vec::new();
        det.flush(&mut tail);
        for e in &tail {
            run.checker.check(e, &det, run.ts)?;
        }
        prop_assert!(run.checker.open.is_none() || tail.is_empty());
        let s = det.stats();
        prop_assert_eq!(s.points + s.late + s.invalid, ops.len() as u64);
    }

    #[test]
    fn a_checkpoint_anywhere_restores_to_the_same_detector((cfg, d, t0, ops) in case(160), cut in any::<prop::sample::Index>()) {
        let cut = cut.index(ops.len() + 1);
        let mut a = StreamDetector::new(cfg, d).unwrap();
        let mut ra = Run::new(t0);
        ra.feed(&mut a, &ops[..cut])?;
        let json = serde_json::to_string(&a).map_err(|e| TestCaseError::fail(format!("serialise: {e}")))?;
        let mut b: StreamDetector =
            serde_json::from_str(&json).map_err(|e| TestCaseError::fail(format!("restore: {e}\n{json}")))?;
        b.check_version().map_err(TestCaseError::fail)?;
        prop_assert_eq!(serde_json::to_string(&b).unwrap(), json, "re-serialising changed the state");
        let mut rb = Run::new(ra.ts);
        rb.checker = std::mem::take(&mut ra.checker);
        let mut ra2 = Run::new(ra.ts);
        ra2.checker = Checker {
            warmed: rb.checker.warmed,
            open: rb.checker.open,
            closed_start: rb.checker.closed_start,
            closed_end: rb.checker.closed_end,
        };
        ra2.feed(&mut a, &ops[cut..])?;
        rb.feed(&mut b, &ops[cut..])?;
        prop_assert_eq!(&ra2.events, &rb.events);
        prop_assert_eq!(&ra2.anomaly, &rb.anomaly);
        prop_assert_eq!(&ra2.blocks, &rb.blocks);
        prop_assert_eq!(a.stats(), b.stats());
        prop_assert_eq!(a.open_interval(), b.open_interval());
    }

    #[test]
    fn the_checkpoint_stays_under_a_bound_set_by_the_configuration(
        (cfg, d, t0, ops) in case(60),
        repeats in 10usize..40,
    ) {
        // The generated ops repeated many times: a stream many windows long.
        let long: Vec<Op> = std::iter::repeat_n(ops.iter().cloned(), repeats).flatten().collect();
        let bound = state_bound(&cfg, d);
        let mut det = StreamDetector::new(cfg, d).unwrap();
        let mut run = Run::new(t0);
        let chunk = ops.len().max(1);
        let mut sizes = Vec::new();
        for part in long.chunks(chunk) {
            run.feed(&mut det, part)?;
            let v = serde_json::to_value(&det).unwrap();
            let n = json_values(&v);
            prop_assert!(n <= bound, "{n} JSON values after {} points, bound {bound}", det.stats().points);
            sizes.push(n);
        }
    }
}
