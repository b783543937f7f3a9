//! One conformance suite for both storage back-ends: every test runs against an embedded SQLite
//! file and against a fresh database on a real PostgreSQL server.
//!
//! PostgreSQL comes from `DRIFTWATCH_TEST_PG` (an admin URL such as
//! `postgres://postgres@127.0.0.1:55432/postgres`), which `scripts/test.sh` sets after starting
//! or reusing a server. Without it the PostgreSQL half fails with a message saying so, unless
//! `DRIFTWATCH_SKIP_PG=1` is set explicitly: a missing server is never a silent pass.

mod common;

use driftwatch::storage::{IntervalQuery, IntervalRow, PointChunk, ScoreRow, Storage, WriteBatch};

struct Backend {
    name: &'static str,
    url: String,
    _dir: Option<tempfile::TempDir>,
}

async fn backends(test: &str) -> Vec<Backend> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}", dir.path().join("driftwatch.db").display());
    let mut out = vec![Backend { name: "sqlite", url: sqlite, _dir: Some(dir) }];
    if let Some(url) = common::fresh_pg(test).await {
        out.push(Backend { name: "postgres", url, _dir: None });
    }
    out
}

fn chunk(first_index: i64, t0: i64, n: usize) -> PointChunk {
    PointChunk { first_index, points: (0..n).map(|i| (t0 + i as i64 * 1000, vec![i as f64, -(i as f64)])).collect() }
}

fn interval(series_id: i64, start_index: i64, end_index: i64, open: bool) -> IntervalRow {
    IntervalRow {
        series_id,
        start_index,
        end_index,
        start_ts: start_index * 1000,
        end_ts: (end_index - 1) * 1000,
        detected_at: end_index,
        peak_score: 0.5,
        psi: 16,
        open,
        explanation: (!open).then(|| r#"{"contributions":[0.9,0.1]}"#.to_string()),
        change_point: Some(start_index + 7),
        change_ts: Some((start_index + 7) * 1000),
    }
}

async fn count(store: &Storage, table: &str) -> i64 {
    let c = store.counts().await.unwrap();
    match table {
        "series" => c.series,
        "point_chunks" => c.point_chunks,
        "intervals" => c.intervals,
        "score_chunks" => c.score_chunks,
        other => panic!("no table {other}"),
    }
}

async fn open(b: &Backend) -> Storage {
    Storage::connect(&b.url, 4).await.unwrap_or_else(|e| panic!("{}: {e}", b.name))
}

#[tokio::test]
async fn series_are_created_once_with_their_author_and_keep_config_and_checkpoints() {
    for b in backends("series").await {
        let s = open(&b).await;
        assert!(s.ping().await);
        let a = s.ensure_series("cpu.host1", 2, "alice", 1000).await.unwrap();
        let again = s.ensure_series("cpu.host1", 2, "bob", 2000).await.unwrap();
        assert_eq!(a, again, "{}: ensure is idempotent", b.name);
        assert_eq!((a.created_by.as_str(), a.dim), ("alice", 2));
        s.ensure_series("mem.host1", 1, "alice", 1000).await.unwrap();
        let names: Vec<String> = s.list_series().await.unwrap().into_iter().map(|r| r.name).collect();
        assert_eq!(names, vec!["cpu.host1", "mem.host1"]);
        s.set_config(a.id, Some(r#"{"window":40}"#), "carol", 3000).await.unwrap();
        let a2 = s.series("cpu.host1").await.unwrap().unwrap();
        assert_eq!((a2.config.as_deref(), a2.updated_by.as_str()), (Some(r#"{"window":40}"#), "carol"));
        assert_eq!(s.checkpoint(a.id).await.unwrap(), None);
        let state: Vec<u8> = (0..=255).collect();
        s.save_checkpoint(a.id, &state, 1234).await.unwrap();
        assert_eq!(s.checkpoint(a.id).await.unwrap(), Some((state, 1234)));
        assert!(s.series("nope").await.unwrap().is_none());
        // A restart finds everything again (migrations are not re-applied destructively).
        drop(s);
        let s = open(&b).await;
        assert_eq!(s.series("cpu.host1").await.unwrap().unwrap().checkpoint_points, 1234);
    }
}

#[tokio::test]
async fn writing_the_same_batch_twice_leaves_the_same_rows_and_points_come_back_by_time() {
    for b in backends("batches").await {
        let s = open(&b).await;
        let id = s.ensure_series("s", 2, "ingest", 0).await.unwrap().id;
        let batch = WriteBatch {
            chunks: vec![chunk(0, 0, 50), chunk(50, 50_000, 50)],
            intervals: vec![interval(id, 50, 100, true)],
            scores: vec![ScoreRow {
                first_index: 50,
                end_ts: 99_000,
                score: Some(0.7),
                threshold: Some(0.3),
                anomaly: vec![0.1; 50],
                warming_up: true,
                anomaly_version: driftwatch::storage::ANOMALY_VERSION,
            }],
            last_ts: Some(99_000),
        };
        s.write(id, &batch).await.unwrap();
        s.write(id, &batch).await.unwrap();
        for (table, n) in [("point_chunks", 2), ("intervals", 1), ("score_chunks", 1)] {
            assert_eq!(count(&s, table).await, n, "{}: {table}", b.name);
        }
        // The interval closes in a later batch: the same row is updated.
        s.write(id, &WriteBatch { intervals: vec![interval(id, 50, 150, false)], ..Default::default() }).await.unwrap();
        let ivs = s.intervals(&IntervalQuery { limit: 10, ..Default::default() }).await.unwrap();
        // The row keeps when it was first reported.
        assert_eq!(ivs, vec![IntervalRow { detected_at: 100, ..interval(id, 50, 150, false) }], "{}", b.name);
        // The score block keeps its warm-up flag and version; the interval its change point.
        let sc = s.scores(id, 0, 100_000).await.unwrap();
        assert_eq!((sc.len(), sc[0].warming_up, sc[0].anomaly_version), (1, true, 2), "{}", b.name);
        assert_eq!((ivs[0].change_point, ivs[0].change_ts), (Some(57), Some(57_000)), "{}", b.name);
        // Points in [30 s, 70 s): 40 points across both chunks, in order.
        let pts = s.points(id, 2, 30_000, 70_000).await.unwrap();
        assert_eq!(pts.len(), 40);
        assert_eq!(pts[0], (30_000, vec![30.0, -30.0]));
        assert!(pts.windows(2).all(|w| w[0].0 < w[1].0));
        // last_ts only moves forward.
        s.write(id, &WriteBatch { last_ts: Some(5), ..Default::default() }).await.unwrap();
        assert_eq!(s.series("s").await.unwrap().unwrap().last_ts, Some(99_000));
    }
}

#[tokio::test]
async fn interval_queries_filter_by_series_status_and_time_and_page_in_key_order() {
    for b in backends("intervals").await {
        let s = open(&b).await;
        let a = s.ensure_series("a", 1, "x", 0).await.unwrap().id;
        let c = s.ensure_series("c", 1, "x", 0).await.unwrap().id;
        for (id, start, open) in [(a, 100, false), (a, 300, false), (a, 500, true), (c, 200, false), (c, 400, true)] {
            s.write(id, &WriteBatch { intervals: vec![interval(id, start, start + 50, open)], ..Default::default() })
                .await
                .unwrap();
        }
        let all = |q: IntervalQuery| {
            let s = s.clone();
            async move { s.intervals(&q).await.unwrap().iter().map(|r| (r.series_id, r.start_index)).collect::<Vec<_>>() }
        };
        assert_eq!(all(IntervalQuery { limit: 100, ..Default::default() }).await.len(), 5);
        assert_eq!(
            all(IntervalQuery { series_id: Some(a), limit: 100, ..Default::default() }).await,
            vec![(a, 100), (a, 300), (a, 500)]
        );
        assert_eq!(
            all(IntervalQuery { open: Some(true), limit: 100, ..Default::default() }).await,
            vec![(a, 500), (c, 400)]
        );
        // Overlapping [250 s, 420 s): ends at or after 250 s, starts before 420 s.
        let window = IntervalQuery { from_ts: Some(250_000), to_ts: Some(420_000), limit: 100, ..Default::default() };
        assert_eq!(all(window).await, vec![(a, 300), (c, 400)], "{}", b.name);
        // Pages of two, in (series, start) order.
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = all(IntervalQuery { after, limit: 2, ..Default::default() }).await;
            if page.is_empty() {
                break;
            }
            after = page.last().copied();
            seen.extend(page);
        }
        assert_eq!(seen, vec![(a, 100), (a, 300), (a, 500), (c, 200), (c, 400)]);
        // Filters combine (each appears in the statement only when given).
        let combined = IntervalQuery {
            series_id: Some(a),
            open: Some(false),
            after: Some((a, 100)),
            since: Some(0),
            limit: 100,
            ..Default::default()
        };
        assert_eq!(all(combined).await, vec![(a, 300)], "{}", b.name);
        // By peak score and by verdict (issue 23): c's interval at 200 peaks higher; a's at 100
        // is confirmed, a's at 300 dismissed.
        s.write(
            c,
            &WriteBatch {
                intervals: vec![IntervalRow { peak_score: 0.9, ..interval(c, 200, 250, false) }],
                ..Default::default()
            },
        )
        .await
        .unwrap();
        s.set_feedback(a, 100, "confirm", "ann", 1).await.unwrap();
        s.set_feedback(a, 300, "dismiss", "ann", 2).await.unwrap();
        let q = |min_score: Option<f64>, verdict: Option<&str>| IntervalQuery {
            min_score,
            verdict: verdict.map(str::to_owned),
            limit: 100,
            ..Default::default()
        };
        assert_eq!(all(q(Some(0.8), None)).await, vec![(c, 200)], "{}", b.name);
        assert_eq!(all(q(Some(0.5), None)).await.len(), 5, "{}", b.name);
        assert_eq!(all(q(None, Some("confirm"))).await, vec![(a, 100)], "{}", b.name);
        assert_eq!(all(q(None, Some("dismiss"))).await, vec![(a, 300)], "{}", b.name);
        assert_eq!(all(q(None, Some("none"))).await, vec![(a, 500), (c, 200), (c, 400)], "{}", b.name);
        assert_eq!(all(q(Some(0.8), Some("none"))).await, vec![(c, 200)], "{}", b.name);
    }
}

#[tokio::test]
async fn deleting_a_series_removes_its_rows_and_retention_drops_old_blocks() {
    for b in backends("delete").await {
        let s = open(&b).await;
        let a = s.ensure_series("a", 2, "x", 0).await.unwrap().id;
        let keep = s.ensure_series("keep", 2, "x", 0).await.unwrap().id;
        let batch = |id| WriteBatch {
            chunks: vec![chunk(0, 0, 10), chunk(10, 1_000_000, 10)],
            intervals: vec![interval(id, 0, 10, false)],
            scores: vec![ScoreRow {
                first_index: 0,
                end_ts: 9_000,
                score: None,
                threshold: None,
                anomaly: vec![],
                warming_up: false,
                anomaly_version: 2,
            }],
            last_ts: Some(1_009_000),
        };
        s.write(a, &batch(a)).await.unwrap();
        s.write(keep, &batch(keep)).await.unwrap();
        assert!(s.delete_series("a").await.unwrap());
        assert!(!s.delete_series("a").await.unwrap());
        assert_eq!(count(&s, "point_chunks").await, 2);
        assert_eq!(count(&s, "intervals").await, 1);
        // Retention keeps 500 s back from the series' newest point (1009 s): the block ending at
        // 9 s goes, the one ending at 1009 s stays.
        assert_eq!(s.apply_retention(500_000, 500_000).await.unwrap(), 2);
        assert_eq!(s.points(keep, 2, 0, i64::MAX).await.unwrap().len(), 10);
        assert_eq!(count(&s, "score_chunks").await, 0);
    }
}

#[tokio::test]
async fn an_unsupported_url_is_refused_with_its_scheme_only() {
    let err = Storage::connect("mysql://user:secret@host/db", 1).await.unwrap_err().to_string();
    assert!(err.contains("mysql") && !err.contains("secret"), "{err}");
}
