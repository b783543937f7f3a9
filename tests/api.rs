//! The service over real HTTP: the app is built on port 0 against each storage back-end (a temp
//! SQLite file, and a fresh database on the PostgreSQL that `scripts/test.sh` provides; see
//! `tests/storage.rs` for the `DRIFTWATCH_TEST_PG` rule), points are posted, results queried.

mod common;

use common::{TestApp, base_settings, each_backend, mean_shift};
use serde_json::{Value, json};

const T0: i64 = 1_795_780_800_000;

/// The start indices of an interval listing's intervals.
fn interval_starts(listing: &Value) -> Vec<u64> {
    listing["intervals"].as_array().unwrap().iter().map(|i| i["start"].as_u64().unwrap()).collect()
}

fn batch(series: &str, xs: &[f64], from: usize, to: usize) -> String {
    json!({"series": series, "points": (from..to).map(|i| json!([T0 + 1000 * i as i64, xs[i]])).collect::<Vec<_>>()})
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posted_points_become_change_intervals_found_through_the_api() {
    let xs = mean_shift();
    for (name, settings, _dir) in each_backend("api_intervals", base_settings()).await {
        let app = TestApp::spawn(settings).await;
        for from in (0..3000).step_by(500) {
            let (status, body) = app.post_raw("/v1/points", batch("mean", &xs, from, from + 500)).await;
            assert_eq!((status, body["accepted"].as_u64()), (200, Some(500)), "{name}: {body}");
        }
        let (status, body) = app.get("/v1/series/mean/intervals").await;
        assert_eq!(status, 200);
        let starts = interval_starts(&body);
        assert_eq!(starts, vec![1000, 2000], "{name}: {body}");
        let first = &body["intervals"][0];
        assert_eq!((first["end"].as_u64(), first["status"].as_str()), (Some(1050), Some("closed")));
        assert_eq!(first["start_ts"].as_i64(), Some(T0 + 1_000_000));
        // The change placed to the row, with its time.
        let second = &body["intervals"][1];
        assert_eq!(
            (first["change_point"].as_u64(), second["change_point"].as_u64()),
            (Some(1000), Some(2000)),
            "{name}"
        );
        assert_eq!(first["change_ts"].as_i64(), Some(T0 + 1_000_000));
        assert!(first["explanation"]["during"]["mean"][0].as_f64().unwrap() > 1.0, "{name}: {first}");
        // Across series, paged.
        let (_, page) = app.get("/v1/intervals?limit=1").await;
        assert_eq!(page["intervals"].as_array().unwrap().len(), 1);
        let (_, rest) = app.get(&format!("/v1/intervals?limit=10&after={}", page["next"].as_str().unwrap())).await;
        assert_eq!(rest["intervals"][0]["start"].as_u64(), Some(2000));
        let (_, s) = app.get("/v1/series/mean").await;
        assert_eq!((s["dim"].as_i64(), s["created_by"].as_str()), (Some(1), Some("tester (unauthenticated)")));
        assert_eq!(app.get("/readyz").await.0, 200);
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_are_counted_not_stored_twice_and_a_restart_resumes_without_re_warming() {
    let xs = mean_shift();
    for (name, settings, _dir) in each_backend("api_resume", base_settings()).await {
        let app = TestApp::spawn(settings.clone()).await;
        app.post_raw("/v1/points", batch("mean", &xs, 0, 1500)).await;
        let (_, replay) = app.post_raw("/v1/points", batch("mean", &xs, 1000, 1500)).await;
        assert_eq!(
            (replay["accepted"].as_u64(), replay["duplicate"].as_u64(), replay["late"].as_u64()),
            (Some(0), Some(1), Some(499)),
            "{name}"
        );
        app.stop().await;
        // A new process on the same storage continues the series where it stopped.
        let app = TestApp::spawn(settings.clone()).await;
        let (_, s) = app.get("/v1/series/mean").await;
        assert_eq!(s["points"].as_u64(), Some(1500), "{name}: checkpoint after 1500 points");
        let (_, r) = app.post_raw("/v1/points", batch("mean", &xs, 1500, 3000)).await;
        assert_eq!(r["accepted"].as_u64(), Some(1500));
        let (_, body) = app.get("/v1/series/mean/intervals").await;
        let starts = interval_starts(&body);
        assert_eq!(starts, vec![1000, 2000], "{name}: the change at 2000 is found without a new warm-up");
        // A reset detector stays reset across restarts: it starts after the stored points, and
        // its stored history is not replayed into it.
        assert_eq!(app.client.post(format!("{}/v1/series/mean/reset", app.base)).send().await.unwrap().status(), 200);
        app.stop().await;
        let app = TestApp::spawn(settings.clone()).await;
        app.stop().await;
        let app = TestApp::spawn(settings).await;
        let (_, s) = app.get("/v1/series/mean").await;
        assert_eq!(s["points"].as_u64(), Some(3000), "{name}: the reset detector starts after the stored points: {s}");
        assert_eq!(s["stored_points"].as_u64(), Some(3000), "{name}: a reset keeps the stored points: {s}");
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_ahead_of_storage_is_dropped_and_the_series_replays_its_stored_points() {
    use sqlx::Row;
    let xs = mean_shift();
    for (name, settings, _dir) in each_backend("api_ahead", base_settings()).await {
        let app = TestApp::spawn(settings.clone()).await;
        app.post_raw("/v1/points", batch("mean", &xs, 0, 1000)).await;
        app.post_raw("/v1/points", batch("mean", &xs, 1000, 1500)).await;
        app.stop().await; // checkpoint after 1500 points
        // Storage loses the second block (a restore from an older backup, say): the checkpoint
        // has seen 500 points it no longer holds.
        sqlx::any::install_default_drivers();
        let db = sqlx::AnyPool::connect(&settings.storage_url()).await.unwrap();
        sqlx::query("DELETE FROM point_chunks WHERE first_index >= 1000").execute(&db).await.unwrap();
        let held: i64 = sqlx::query("SELECT CAST(COALESCE(MAX(first_index + n), 0) AS BIGINT) FROM point_chunks")
            .fetch_one(&db)
            .await
            .unwrap()
            .get(0);
        db.close().await;
        assert_eq!(held, 1000, "{name}: one block of 1000 points left");
        // The restart drops the checkpoint and replays the 1000 stored points: of points 500 to
        // 3,000, the ones it holds are refused (one duplicate, 499 late) and the lost ones are
        // accepted again. A detector left fresh would accept all 2,500.
        let app = TestApp::spawn(settings.clone()).await;
        let (_, s) = app.get("/v1/series/mean").await;
        assert_eq!((s["points"].as_u64(), s["stored_points"].as_u64()), (Some(0), Some(1000)), "{name}: {s}");
        let (_, r) = app.post_raw("/v1/points", batch("mean", &xs, 500, 3000)).await;
        assert_eq!(
            (r["accepted"].as_u64(), r["duplicate"].as_u64(), r["late"].as_u64()),
            (Some(2000), Some(1), Some(499)),
            "{name}: {r}"
        );
        let (_, body) = app.get("/v1/series/mean/intervals").await;
        let starts = interval_starts(&body);
        assert_eq!(starts, vec![1000, 2000], "{name}: {body}");
        app.stop().await;
        let app = TestApp::spawn(settings.clone()).await;
        let (_, s) = app.get("/v1/series/mean").await;
        assert_eq!(s["points"].as_u64(), Some(3000), "{name}: checkpoint after all 3,000 points: {s}");
        assert_eq!(s["stored_points"].as_u64(), Some(3000), "{name}: {s}");
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_a_4xx_with_a_reason_and_bad_points_are_counted() {
    let mut settings = each_backend("api_bad", base_settings()).await.remove(0).1; // one back-end is enough here
    settings.http.max_body_bytes = 64 * 1024;
    let dir = tempfile::tempdir().unwrap();
    settings.storage.data_dir = dir.path().to_owned();
    let app = TestApp::spawn(settings).await;
    for (body, code) in [
        ("{not json".to_string(), "invalid_body"),
        (r#"{"series":"a","ts":1,"value":1,"unit":"s"}"#.to_string(), "invalid_body"),
        (r#"{"series":"","ts":1,"value":1}"#.to_string(), "invalid_body"),
        ("".to_string(), "invalid_body"),
    ] {
        let (status, r) = app.post_raw("/v1/points", body.clone()).await;
        assert_eq!((status, r["error"]["code"].as_str()), (400, Some(code)), "{body}: {r}");
        assert!(!r["error"]["message"].as_str().unwrap().is_empty());
    }
    let (status, r) = app.post_raw("/v1/points", "x".repeat(70_000)).await;
    assert_eq!((status, r["error"]["code"].as_str()), (413, Some("body_too_large")), "{r}");
    // One bad point in a good batch: counted, the rest stored.
    let (status, r) =
        app.post_raw("/v1/points", r#"{"series":"a","points":[[1,1],[2,null],["soon",3],[4,4]]}"#.into()).await;
    assert_eq!(status, 200);
    assert_eq!(
        (r["accepted"].as_u64(), r["rejected"]["invalid_value"].as_u64(), r["rejected"]["invalid_timestamp"].as_u64()),
        (Some(2), Some(1), Some(1))
    );
    // NDJSON with one bad line: the good lines go in, the bad one is reported by line.
    let (status, r) = app
        .post_raw(
            "/v1/points",
            "{\"series\":\"b\",\"ts\":1,\"value\":1}\n{oops}\n{\"series\":\"b\",\"ts\":2,\"value\":2}\n".into(),
        )
        .await;
    assert_eq!((status, r["accepted"].as_u64(), r["errors"][0]["line"].as_u64()), (200, Some(2), Some(2)), "{r}");
    assert_eq!(app.get("/v1/series/nope/intervals").await.0, 404);
    let (status, r) = app.get("/v1/intervals?status=maybe").await;
    assert_eq!((status, r["error"]["code"].as_str()), (400, Some("invalid_query")));
    let (status, _) = app.get("/v1/intervals?limit=0").await;
    assert_eq!(status, 400);
    // Every one of those answers is counted, by route template and status.
    let text = app.client.get(format!("{}/metrics", app.base)).send().await.unwrap().text().await.unwrap();
    let count = |route: &str, method: &str, status: u16| {
        let prefix =
            format!("driftwatch_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} ");
        text.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
    };
    assert_eq!(count("/v1/points", "POST", 400), 4, "{text}");
    assert_eq!(count("/v1/points", "POST", 413), 1);
    assert_eq!(count("/v1/points", "POST", 200), 2);
    assert_eq!(count("/v1/series/{name}/intervals", "GET", 404), 1);
    assert_eq!(count("/v1/intervals", "GET", 400), 2);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn points_and_scores_come_back_downsampled_and_series_can_be_configured_reset_and_deleted() {
    let xs = mean_shift();
    for (name, settings, _dir) in each_backend("api_manage", base_settings()).await {
        let app = TestApp::spawn(settings).await;
        app.post_raw("/v1/points", batch("mean", &xs, 0, 3000)).await;
        let (_, raw) = app.get("/v1/series/mean/points").await;
        assert_eq!(raw["points"].as_array().unwrap().len(), 3000, "{name}");
        let (_, some) = app.get(&format!("/v1/series/mean/points?from={}&to={}", T0 + 1_000_000, T0 + 1_010_000)).await;
        assert_eq!(some["points"].as_array().unwrap().len(), 10);
        let (_, ds) = app.get("/v1/series/mean/points?max_points=100").await;
        let buckets = ds["buckets"].as_array().unwrap();
        assert!(ds["downsampled"].as_bool().unwrap() && buckets.len() <= 50, "{name}: {} buckets", buckets.len());
        assert_eq!(buckets.iter().map(|b| b["count"].as_u64().unwrap()).sum::<u64>(), 3000);
        let top = buckets.iter().map(|b| b["max"][0].as_f64().unwrap()).fold(f64::MIN, f64::max);
        assert_eq!(top, xs.iter().copied().fold(f64::MIN, f64::max), "the largest value survives");
        let (status, bad) = app.get("/v1/series/mean/points?from=5&to=1").await;
        assert_eq!((status, bad["error"]["code"].as_str()), (400, Some("invalid_query")));
        let (_, scores) = app.get("/v1/series/mean/scores").await;
        let blocks = scores["points"].as_array().unwrap();
        assert_eq!(blocks.len(), 60, "{name}: 3000 points in blocks of 50, warm-up included");
        assert_eq!(scores["columns"][2], "anomaly_max");
        // The anomaly score warms up over the first 300 points (6 blocks), marked as such; every
        // block holds the calibrated score (version 2).
        let warming: Vec<bool> = blocks.iter().map(|b| b[1][3].as_f64() == Some(1.0)).collect();
        assert_eq!(warming.iter().filter(|w| **w).count(), 6, "{name}: {warming:?}");
        assert!(warming[..6].iter().all(|w| *w), "{name}: the first 6 blocks warm up");
        assert!(blocks.iter().all(|b| b[1][4].as_f64() == Some(2.0)), "{name}: anomaly_version");
        assert_eq!(scores["columns"][3], "anomaly_warming_up");
        // Own settings: merged over the defaults, validated by the engine, recorded.
        let (status, cfg) = app.put("/v1/series/mean/config", &json!({"window": 40, "psi": 8})).await;
        assert_eq!(status, 200, "{cfg}");
        assert_eq!((cfg["config"]["window"].as_u64(), cfg["config"]["psi"].as_str()), (Some(40), Some("8")));
        let (status, err) = app.put("/v1/series/mean/config", &json!({"window": 1})).await;
        assert_eq!((status, err["error"]["code"].as_str()), (400, Some("invalid_config")), "{err}");
        let (status, _) = app.put("/v1/series/mean/config", &json!({"windw": 40})).await;
        assert_eq!(status, 400);
        let (_, s) = app.get("/v1/series/mean").await;
        assert_eq!(s["config"]["window"].as_u64(), Some(40));
        // Reset: the detector starts again; new points warm it up (no change reported yet).
        assert_eq!(app.post_raw("/v1/series/mean/reset", String::new()).await.0, 200);
        let (_, r) =
            app.post_raw("/v1/points", json!({"series": "mean", "points": [[T0 + 4_000_000, 1.0]]}).to_string()).await;
        assert_eq!(r["accepted"].as_u64(), Some(1));
        // Delete: gone from the API and from storage.
        assert_eq!(app.delete("/v1/series/mean").await.0, 204);
        assert_eq!(app.get("/v1/series/mean").await.0, 404);
        assert_eq!(app.delete("/v1/series/mean").await.0, 404);
        assert_eq!(app.get("/v1/series/mean/points").await.0, 404);
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_happened_and_pass_promtool() {
    let xs = mean_shift();
    let (_, settings, _dir) = each_backend("api_metrics", base_settings()).await.remove(0);
    let app = TestApp::spawn(settings).await;
    app.post_raw("/v1/points", batch("mean", &xs, 0, 3000)).await;
    app.post_raw("/v1/points", batch("mean", &xs, 2990, 3000)).await; // 10 replayed points
    app.post_raw("/v1/points", r#"{"series":"mean","points":[[1,null]]}"#.into()).await;
    let r = app.client.get(format!("{}/metrics", app.base)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let text = r.text().await.unwrap();
    for line in [
        "driftwatch_points_ingested_total 3000",
        "driftwatch_points_rejected_total{reason=\"duplicate\"} 1",
        "driftwatch_points_rejected_total{reason=\"late\"} 9",
        "driftwatch_points_rejected_total{reason=\"invalid_value\"} 1",
        "driftwatch_intervals_total{event=\"opened\"} 2",
        "driftwatch_intervals_total{event=\"closed\"} 2",
        "driftwatch_series 1",
        "driftwatch_open_intervals 0",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
    // Two batches reached a detector; the third had no usable point.
    assert!(text.contains("driftwatch_detector_batch_duration_seconds_count 2"), "{text}");
    promtool_check(&text);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_a_file_over_http_finds_its_changes() {
    let (_, settings, _dir) = each_backend("api_replay", base_settings()).await.remove(0);
    let app = TestApp::spawn(settings).await;
    let fixture = common::fixture_path("mean_shift.csv").display().to_string();
    let base = app.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        common::driftwatch(&["replay", &fixture, "--series", "replayed", "--url", &base, "--start-ms", "1795780800000"])
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["accepted"].as_u64(), Some(3000));
    let (_, body) = app.get("/v1/series/replayed/intervals").await;
    let starts = interval_starts(&body);
    assert_eq!(starts, vec![1000, 2000]);
    assert_eq!(body["intervals"][1]["start_ts"].as_i64(), Some(1_795_780_800_000 + 2_000_000));
    // A NAB-style file with its own times (issue 23): refused without --ts-column with a way
    // out, read with it, naive times at --tz.
    let dir = tempfile::tempdir().unwrap();
    let nab = dir.path().join("nab.csv");
    let mut text = String::from("timestamp,value\n");
    for (i, x) in mean_shift().iter().enumerate() {
        let t = 1_404_172_800 + 300 * i as i64; // 2014-07-01 00:00:00 UTC, every 5 minutes
        let (d, s) = (t / 86_400, t % 86_400);
        let day = 1 + d - 16_252; // 10 days in all: July throughout
        text.push_str(&format!("2014-07-{day:02} {:02}:{:02}:{:02},{x}\n", s / 3600, s % 3600 / 60, s % 60));
    }
    std::fs::write(&nab, text).unwrap();
    let (nab, base) = (nab.display().to_string(), app.base.clone());
    let (refused, out) = tokio::task::spawn_blocking(move || {
        (
            common::driftwatch(&["replay", &nab, "--series", "nab", "--url", &base]),
            common::driftwatch(&[
                "replay",
                &nab,
                "--series",
                "nab",
                "--url",
                &base,
                "--ts-column",
                "timestamp",
                "--tz",
                "+01:00",
            ]),
        )
    })
    .await
    .unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && err.contains("row 2: column 1 is not a number") && err.contains("--ts-column"),
        "{err}"
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (_, pts) = app.get("/v1/series/nab/points?limit=2").await;
    let hour = 3_600_000;
    assert_eq!(pts["points"][0][0].as_i64(), Some(1_404_172_800_000 - hour), "{pts}");
    assert_eq!(pts["points"][1][0].as_i64(), Some(1_404_172_800_000 - hour + 300_000), "{pts}");
    let (_, body) = app.get("/v1/series/nab/intervals?since=2014-07-05T00:00:00Z").await;
    assert_eq!(interval_starts(&body), vec![2000], "{body}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_show_their_latest_change_and_intervals_filter_by_since() {
    let xs = mean_shift();
    let (_, settings, _dir) = each_backend("api_latest", base_settings()).await.remove(0);
    let app = TestApp::spawn(settings).await;
    app.post_raw("/v1/points", batch("mean", &xs, 0, 3000)).await;
    let (_, s) = app.get("/v1/series/mean").await;
    assert_eq!(
        (s["latest_change"]["start"].as_u64(), s["latest_change"]["status"].as_str()),
        (Some(2000), Some("closed")),
        "{s}"
    );
    let (_, all) = app.get("/v1/series").await;
    assert_eq!(all["series"][0]["latest_change"]["start_ts"].as_i64(), Some(T0 + 2_000_000));
    let (_, since) = app.get(&format!("/v1/intervals?since={}", T0 + 1_500_000)).await;
    let starts = interval_starts(&since);
    assert_eq!(starts, vec![2000]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_is_served_and_describes_the_api() {
    let (_, settings, _dir) = each_backend("api_openapi", base_settings()).await.remove(0);
    let app = TestApp::spawn(settings).await;
    let (status, doc) = app.get("/openapi.json").await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with('3'));
    assert_eq!(doc["paths"]["/v1/points"]["post"]["tags"][0], "ingest");
    assert!(doc["paths"]["/v1/series/{name}/intervals"]["get"]["responses"]["404"].is_object());
    app.stop().await;
}

/// `promtool check metrics` on a scrape (promtool comes from scripts/test.sh).
fn promtool_check(text: &str) {
    use std::io::Write;
    if std::process::Command::new("promtool").arg("--version").output().is_err() {
        assert_eq!(
            std::env::var("DRIFTWATCH_SKIP_PROMTOOL").as_deref(),
            Ok("1"),
            "promtool is missing: run ./scripts/test.sh (it installs it) or set DRIFTWATCH_SKIP_PROMTOOL=1"
        );
        return;
    }
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_listener_takes_metrics_and_health_and_only_watched_series_get_labels() {
    let xs = mean_shift();
    let (_, mut settings, _dir) = each_backend("api_admin", base_settings()).await.remove(0);
    settings.http.admin_addr = Some("127.0.0.1:0".into());
    settings.metrics.watched_series = vec!["mean".into()];
    let app = TestApp::spawn(settings).await;
    let admin = app.admin.clone().expect("admin listener bound");
    app.post_raw("/v1/points", batch("mean", &xs, 0, 3000)).await;
    app.post_raw("/v1/points", batch("other", &xs, 0, 1500)).await;
    assert_eq!(app.client.get(format!("{}/metrics", app.base)).send().await.unwrap().status().as_u16(), 404);
    assert_eq!(app.client.get(format!("{}/healthz", app.base)).send().await.unwrap().status().as_u16(), 404);
    assert_eq!(app.client.get(format!("{admin}/healthz")).send().await.unwrap().status().as_u16(), 200);
    let text = app.client.get(format!("{admin}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(text.lines().any(|l| l == "driftwatch_watched_series_points_total{series=\"mean\"} 3000"), "{text}");
    assert!(text.lines().any(|l| l == "driftwatch_watched_series_interval_open{series=\"mean\"} 0"), "{text}");
    assert!(text.contains("driftwatch_watched_series_window_score{series=\"mean\"}"));
    assert!(!text.contains("series=\"other\""), "unwatched series must not get labels");
    assert!(text.lines().any(|l| l == "driftwatch_points_ingested_total 4500"));
    promtool_check(&text);
    // A NaN is not JSON: the whole message is refused with a reason.
    let (status, r) = app.post_raw("/v1/points", r#"{"series":"mean","ts":1,"value":NaN}"#.into()).await;
    assert_eq!((status, r["error"]["code"].as_str()), (400, Some("invalid_body")));
    app.stop().await;
}

/// Issue 23 item 8: every refusal is `{"error": {"code", "message"}}`, 404 and 405 included,
/// messages name the parameter and what it must be (no parser internals), and `from` / `to` /
/// `since` take RFC 3339 as well as epoch ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_json_with_plain_messages_and_times_take_rfc_3339() {
    let xs = mean_shift();
    for (name, settings, _dir) in each_backend("api_consistent", base_settings()).await {
        let app = TestApp::spawn(settings).await;
        app.post_raw("/v1/points", batch("mean", &xs, 0, 3000)).await;
        let refused = |(status, body): (u16, Value), want: (u16, &str)| {
            assert_eq!((status, body["error"]["code"].as_str()), (want.0, Some(want.1)), "{name}: {body}");
            let message = body["error"]["message"].as_str().unwrap().to_owned();
            for internal in ["Failed to", "invalid digit", "deserialize", "Cannot parse"] {
                assert!(!message.contains(internal), "{name}: parser internals in {message:?}");
            }
            message
        };
        let m = refused(app.get("/v1/nothing/here").await, (404, "not_found"));
        assert!(m.contains("/v1/nothing/here"), "{m}");
        let m = refused(app.delete("/v1/points").await, (405, "method_not_allowed"));
        assert!(m.contains("DELETE"), "{m}");
        let m = refused(app.get("/v1/intervals?from=yesterday").await, (400, "invalid_query"));
        assert!(m.contains("from") && m.contains("RFC 3339"), "{m}");
        let m = refused(app.get("/v1/intervals?limit=ten").await, (400, "invalid_query"));
        assert_eq!(m, "query parameter limit: must be an integer");
        let m = refused(app.get("/v1/series/mean/points?frm=1").await, (400, "invalid_query"));
        assert!(m.starts_with("unknown query parameter frm"), "{m}");
        let m = refused(
            app.post("/v1/series/mean/intervals/abc/feedback", &json!({"verdict": "confirm", "author": "a"})).await,
            (400, "invalid_path"),
        );
        assert!(m.contains("start") && m.contains("integer") && m.contains("abc"), "{m}");
        let m = refused(
            app.post("/v1/labeling/projects", &json!({"name": 1, "series": [], "author": "a"})).await,
            (400, "invalid_body"),
        );
        assert!(m.starts_with("field name: invalid type"), "{m}");
        let (status, r) = app
            .send_raw(
                app.client
                    .post(format!("{}/v1/labeling/projects", app.base))
                    .header("content-type", "application/json")
                    .body("{oops"),
            )
            .await;
        let m = refused((status, r), (400, "invalid_body"));
        assert_eq!(m, "the body is not valid JSON (line 1, column 2)");
        // The same range as epoch ms and as RFC 3339 (an unencoded `+` offset included).
        let epoch = app.get(&format!("/v1/series/mean/points?from={}&to={}", T0 + 1_000_000, T0 + 1_010_000)).await.1;
        let rfc = app.get("/v1/series/mean/points?from=2026-11-27T12:16:40Z&to=2026-11-27T13:16:50%2B01:00").await.1;
        assert_eq!(epoch["points"].as_array().unwrap().len(), 10, "{name}: {epoch}");
        assert_eq!(epoch, rfc, "{name}");
        let plus = app.get("/v1/series/mean/points?from=2026-11-27T13:16:40+01:00&to=2026-11-27T12:16:50Z").await.1;
        assert_eq!(epoch, plus, "{name}");
        let since = app.get("/v1/intervals?since=2026-11-27T12:20:00Z").await.1;
        assert_eq!(interval_starts(&since), vec![2000], "{name}: {since}");
        let overlapping =
            app.get("/v1/series/mean/intervals?from=2026-11-27T12:16:00Z&to=2026-11-27T12:17:00Z").await.1;
        assert_eq!(interval_starts(&overlapping), vec![1000], "{name}: {overlapping}");
        // Intervals filter by peak score and verdict (issue 23 item 5).
        let all = app.get("/v1/series/mean/intervals").await.1;
        let high = app.get("/v1/series/mean/intervals?min_score=0.9").await.1;
        let scores: Vec<f64> =
            high["intervals"].as_array().unwrap().iter().map(|i| i["peak_score"].as_f64().unwrap()).collect();
        assert!(!scores.is_empty() && scores.iter().all(|s| *s >= 0.9), "{name}: {high}");
        assert!(scores.len() < all["intervals"].as_array().unwrap().len(), "{name}: {all}");
        let none = app.get("/v1/series/mean/intervals?verdict=none").await.1;
        assert_eq!(none["intervals"], all["intervals"], "{name}: no verdicts yet");
        let m = refused(app.get("/v1/intervals?min_score=high").await, (400, "invalid_query"));
        assert_eq!(m, "query parameter min_score: must be a number");
        let m = refused(app.get("/v1/intervals?verdict=maybe").await, (400, "invalid_query"));
        assert!(m.contains("confirm, dismiss or none"), "{m}");
        // The OpenAPI document describes each of those parameters and the answers' schemas.
        let (_, doc) = app.get("/openapi.json").await;
        let params = doc["paths"]["/v1/intervals"]["get"]["parameters"].as_array().unwrap();
        let since = params.iter().find(|p| p["name"] == "since").unwrap();
        assert!(since["description"].as_str().unwrap().contains("RFC 3339"), "{since}");
        let ok = &doc["paths"]["/v1/series/{name}"]["get"]["responses"]["200"]["content"]["application/json"]["schema"];
        assert_eq!(ok["$ref"], "#/components/schemas/SeriesView", "{ok}");
        let fields = doc["components"]["schemas"]["SeriesView"]["properties"].as_object().unwrap();
        let (_, series) = app.get("/v1/series/mean").await;
        for key in series.as_object().unwrap().keys() {
            assert!(fields.contains_key(key), "{name}: {key} is answered but not in the schema");
        }
        app.stop().await;
    }
}

/// Issue 23 item 2: after retention removes old blocks, `stored_points` counts what is still
/// stored, and intervals whose data is gone say so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_shows_in_stored_points_and_in_intervals_whose_data_is_gone() {
    let xs = mean_shift();
    const HALF_HOUR: i64 = 1_800_000;
    for (name, settings, _dir) in each_backend("api_retention", base_settings()).await {
        // 3,000 half-hourly points (62.5 days) in blocks of 500; the default retention keeps 30
        // days back from the newest point, so blocks ending before index 1560 go.
        let app = TestApp::spawn(settings.clone()).await;
        for from in (0..3000).step_by(500) {
            let points: Vec<Value> =
                (from..from + 500).map(|i| json!([T0 - HALF_HOUR * (3000 - i as i64), xs[i]])).collect();
            let (status, r) = app.post("/v1/points", &json!({"series": "old", "points": points})).await;
            assert_eq!(status, 200, "{name}: {r}");
        }
        app.stop().await;
        // Retention runs when the service starts.
        let app = TestApp::spawn(settings).await;
        let mut s = Value::Null;
        for _ in 0..100 {
            s = app.get("/v1/series/old").await.1;
            if s["stored_points"] != 3000 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(
            (s["stored_points"].as_i64(), s["next_index"].as_i64(), s["first_stored_index"].as_i64()),
            (Some(1500), Some(3000), Some(1500)),
            "{name}: {s}"
        );
        assert_eq!(s["first_stored_ts"].as_i64(), Some(T0 - HALF_HOUR * 1500), "{name}");
        let (_, all) = app.get("/v1/series").await;
        assert_eq!(all["series"][0]["stored_points"], 1500, "{name}: {all}");
        let (_, ivs) = app.get("/v1/series/old/intervals").await;
        let data: Vec<(u64, &str)> = ivs["intervals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| (i["start"].as_u64().unwrap(), i["data"].as_str().unwrap()))
            .collect();
        assert_eq!(data, vec![(1000, "removed"), (2000, "stored")], "{name}: {ivs}");
        app.stop().await;
    }
}
