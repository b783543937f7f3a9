//! Misuse and bad input (issue 22), over real HTTP against the in-process service: each test is
//! one finding of the review, written so that it failed before the fix.
//!
//! 1. error amplification by NDJSON bodies of bad lines; a batch of only rejected points;
//! 2. a reset or a configuration change losing stored history;
//! 3. a far-future timestamp blocking a series; `i64::MAX` stored but never returned;
//! 4. authors taken from the request body instead of the token;
//! 5. the per-token series cap passed by concurrent first points;
//! 6. the points API answering a whole series at once;
//! 7. open mode answering foreign `Host`s, foreign `Origin`s and non-JSON writes;
//! 8. a delete during ingest: 500s, orphaned blocks, wrong counts;
//! 9. one token holding every in-flight slot; connections that never send their headers;
//! 10. unbounded projects per author; invisible characters in series names.

mod common;

use std::time::{Duration, Instant};

use common::{TestApp, base_settings, each_backend};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const T0: i64 = 1_795_780_800_000;

fn batch(series: &str, from: usize, to: usize) -> Value {
    let pts: Vec<Value> = (from..to).map(|i| json!([T0 + 1000 * i as i64, ((i * 7) % 13) as f64])).collect();
    json!({"series": series, "points": pts})
}

async fn sqlite_app(tweak: impl FnOnce(&mut driftwatch::config::Settings)) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut s = base_settings();
    s.storage.data_dir = dir.path().to_owned();
    tweak(&mut s);
    (TestApp::spawn(s).await, dir)
}

/// A raw request, to send headers reqwest would fix.
async fn raw(app: &TestApp, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, Value) {
    let mut r =
        app.client.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), format!("{}{path}", app.base));
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let r = r.body(body.to_owned()).send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn token(data: &std::path::Path, name: &str, role: &str) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_driftwatch"))
        .args(["token", "create", "--name", name, "--role", role])
        .env_clear()
        .env("DRIFTWATCH__STORAGE__DATA_DIR", data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

async fn with_token(app: &TestApp, method: &str, path: &str, t: &str, body: Option<Value>) -> (u16, Value) {
    let mut r =
        app.client.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), format!("{}{path}", app.base));
    r = r.bearer_auth(t);
    if let Some(b) = body {
        r = r.header("content-type", "application/json").body(b.to_string());
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, serde_json::from_str(&r.text().await.unwrap()).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_ndjson_lines_cost_a_bounded_answer_and_all_rejected_batches_are_refused_with_reasons() {
    let (app, _dir) = sqlite_app(|_| {}).await;
    // One good line and 300,000 bad ones: refused at the 101st bad line, a small answer.
    let mut body = batch("good", 0, 1).to_string();
    body.push('\n');
    body.push_str(&"{bad\n".repeat(300_000));
    let started = Instant::now();
    let r =
        app.client.post(format!("{}/v1/points", app.base)).header("content-type", "application/x-ndjson").body(body);
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert_eq!(status, 400, "{}", &text[..text.len().min(300)]);
    assert!(text.len() < 4096, "an answer of {} bytes", text.len());
    assert!(text.contains("too_many_errors") && text.contains("line 2"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert_eq!(app.get("/v1/series/good").await.0, 404, "nothing of a refused body is stored");
    // Under the limit: the good line is stored, 20 errors listed, all counted.
    let mut body = batch("good", 0, 1).to_string();
    body.push('\n');
    body.push_str(&"{bad\n".repeat(50));
    let (status, r) = app.post_raw("/v1/points", body).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        (r["accepted"].as_u64(), r["errors"].as_array().unwrap().len(), r["errors_total"].as_u64()),
        (Some(1), 20, Some(50))
    );
    // A batch whose every point is rejected: 422 with the reasons.
    let (status, r) = app.post("/v1/points", &json!({"series": "x", "points": [[1, "a"], ["soon", 1], [2]]})).await;
    assert_eq!(status, 422, "{r}");
    assert_eq!(r["error"]["code"], "points_rejected");
    let m = r["error"]["message"].as_str().unwrap();
    assert!(
        m.contains("1 invalid_value") && m.contains("1 invalid_timestamp") && m.contains("1 malformed_point"),
        "{m}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_and_reconfiguration_forget_the_detector_never_the_stored_points() {
    for (backend, mut s, _dir) in each_backend("reset_keeps", base_settings()).await {
        s.detector.window = 20;
        s.detector.warmup_windows = 4;
        s.detector.t = 50;
        let settings = s.clone();
        let app = TestApp::spawn(s).await;
        assert_eq!(app.post("/v1/points", &batch("s", 0, 200)).await.0, 200);
        assert_eq!(app.post("/v1/series/s/reset", &json!({})).await.0, 200, "{backend}");
        // Points not newer than the stored ones stay late after a reset.
        let (_, r) = app.post("/v1/points", &batch("s", 150, 200)).await;
        assert_eq!(
            (r["accepted"].as_u64(), r["late"].as_u64(), r["duplicate"].as_u64()),
            (Some(0), Some(49), Some(1)),
            "{backend}: {r}"
        );
        let (status, r) = app.post("/v1/points", &batch("s", 200, 250)).await;
        assert_eq!((status, r["accepted"].as_u64()), (200, Some(50)), "{backend}: {r}");
        let (_, one) = app.get("/v1/series/s").await;
        assert_eq!(one["stored_points"], 250, "{backend}: {one}");
        let (_, pts) = app.get("/v1/series/s/points").await;
        let ts: Vec<i64> = pts["points"].as_array().unwrap().iter().map(|p| p[0].as_i64().unwrap()).collect();
        assert_eq!(ts, (0..250).map(|i| T0 + 1000 * i).collect::<Vec<_>>(), "{backend}: every point once, in order");
        // A configuration change likewise; then a restart continues after all of it.
        assert_eq!(app.put("/v1/series/s/config", &json!({"window": 25})).await.0, 200);
        assert_eq!(app.post("/v1/points", &batch("s", 250, 300)).await.1["accepted"], 50);
        app.stop().await;
        let app = TestApp::spawn(settings).await;
        assert_eq!(app.post("/v1/points", &batch("s", 300, 320)).await.1["accepted"], 20, "{backend}");
        let (_, pts) = app.get("/v1/series/s/points").await;
        assert_eq!(pts["points"].as_array().unwrap().len(), 320, "{backend}");
        assert_eq!(app.get("/v1/series/s").await.1["stored_points"], 320, "{backend}");
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_far_future_point_is_refused_and_does_not_block_its_series() {
    let (app, _dir) = sqlite_app(|_| {}).await;
    let (status, r) = app.post("/v1/points", &json!({"series": "f", "ts": "9999-12-31T00:00:00Z", "value": 1})).await;
    assert_eq!((status, r["error"]["code"].as_str()), (422, Some("points_rejected")), "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("future_timestamp"), "{r}");
    let (status, r) = app.post("/v1/points", &json!({"series": "f", "ts": i64::MAX, "value": 1})).await;
    assert!(status == 422 && r["error"]["message"].as_str().unwrap().contains("invalid_timestamp"), "{r}");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let (status, r) = app.post("/v1/points", &json!({"series": "f", "ts": now, "value": 1})).await;
    assert_eq!((status, r["accepted"].as_u64()), (200, Some(1)), "{r}");
    // A batch mixing both keeps the good point and counts the other.
    let (_, r) = app
        .post("/v1/points", &json!({"series": "f", "points": [[now + 1000, 1], [now + 10 * 86_400_000i64, 1]]}))
        .await;
    assert_eq!((r["accepted"].as_u64(), r["rejected"]["future_timestamp"].as_u64()), (Some(1), Some(1)), "{r}");
    app.stop().await;
    // With the bound off (synthetic time), the year 9999 is still the last accepted.
    let (app, _dir) = sqlite_app(|s| s.pipeline.max_future_ms = 0).await;
    assert_eq!(app.post("/v1/points", &json!({"series": "f", "ts": "9999-12-31T00:00:00Z", "value": 1})).await.0, 200);
    let (_, pts) = app.get("/v1/series/f/points").await;
    assert_eq!(pts["points"].as_array().unwrap().len(), 1, "a stored point is returned: {pts}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authors_are_the_tokens_and_open_mode_names_are_marked_unauthenticated() {
    let dir = tempfile::tempdir().unwrap();
    let alice = token(dir.path(), "alice", "analyst");
    let root = token(dir.path(), "root", "admin");
    let mut s = base_settings();
    s.storage.data_dir = dir.path().to_owned();
    s.auth.mode = "tokens".into();
    let app = TestApp::spawn(s).await;
    assert_eq!(with_token(&app, "POST", "/v1/points", &root, Some(batch("s", 0, 100))).await.0, 200);
    let project = json!({"name": "p", "series": ["s"], "author": "bob"});
    let (status, r) = with_token(&app, "POST", "/v1/labeling/projects", &alice, Some(project)).await;
    assert_eq!((status, r["created_by"].as_str()), (201, Some("alice")), "{r}");
    let (status, _) = with_token(&app, "PUT", "/v1/series/s/config", &root, Some(json!({"window": 30}))).await;
    assert_eq!(status, 200);
    let (_, one) = with_token(&app, "GET", "/v1/series/s", &root, None).await;
    assert_eq!((one["created_by"].as_str(), one["updated_by"].as_str()), (Some("root"), Some("root")), "{one}");
    app.stop().await;
    // Open mode: the name given, marked.
    let (app, _dir) = sqlite_app(|_| {}).await;
    assert_eq!(app.post("/v1/points", &batch("s", 0, 100)).await.0, 200);
    let (status, r) = app.post("/v1/labeling/projects", &json!({"name": "p", "series": ["s"], "author": "bob"})).await;
    assert_eq!((status, r["created_by"].as_str()), (201, Some("bob (unauthenticated)")), "{r}");
    assert_eq!(app.post("/v1/series/s/reset", &json!({})).await.0, 200);
    let (_, one) = app.get("/v1/series/s").await;
    assert_eq!(one["updated_by"], "tester (unauthenticated)", "{one}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_points_cannot_pass_the_series_cap() {
    for (backend, mut s, dir) in each_backend("series_cap", base_settings()).await {
        // Tokens live in the service's storage: the SQLite directory or the PostgreSQL database.
        let data = dir.as_ref().map_or_else(|| std::path::PathBuf::from("/nonexistent"), |d| d.path().to_owned());
        let feeder = match &s.storage.url {
            None => token(&data, "feeder", "ingest"),
            Some(url) => {
                let out = std::process::Command::new(env!("CARGO_BIN_EXE_driftwatch"))
                    .args(["token", "create", "--name", "feeder", "--role", "ingest"])
                    .env_clear()
                    .env("DATABASE_URL", url)
                    .output()
                    .unwrap();
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                String::from_utf8(out.stdout).unwrap().trim().to_owned()
            }
        };
        s.auth.mode = "tokens".into();
        s.auth.max_series_per_token = 3;
        let app = std::sync::Arc::new(TestApp::spawn(s).await);
        let mut tasks = Vec::new();
        for i in 0..20 {
            let (app, feeder) = (app.clone(), feeder.clone());
            tasks.push(tokio::spawn(async move {
                with_token(&app, "POST", "/v1/points", &feeder, Some(batch(&format!("new-{i}"), 0, 1))).await.0
            }));
        }
        let mut created = 0;
        for t in tasks {
            let status = t.await.unwrap();
            assert!(status == 200 || status == 403, "{backend}: {status}");
            created += usize::from(status == 200);
        }
        assert_eq!(created, 3, "{backend}");
        let (_, list) = with_token(&app, "GET", "/v1/series", &feeder, None).await;
        let _ = list; // an ingest token may not list; the count above is the answer
        let app = std::sync::Arc::try_unwrap(app).ok().unwrap();
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_points_api_answers_pages_of_at_most_its_cap() {
    let (app, _dir) = sqlite_app(|s| s.http.max_points_per_page = 1000).await;
    for from in (0..2500).step_by(500) {
        assert_eq!(app.post("/v1/points", &batch("big", from, from + 500)).await.0, 200);
    }
    let (mut got, mut from) = (Vec::new(), None::<i64>);
    loop {
        let q = from.map_or_else(String::new, |f| format!("?from={f}"));
        let (status, page) = app.get(&format!("/v1/series/big/points{q}")).await;
        assert_eq!(status, 200, "{page}");
        let pts = page["points"].as_array().unwrap();
        assert!(pts.len() <= 1000, "{}", pts.len());
        got.extend(pts.iter().map(|p| p[0].as_i64().unwrap()));
        match page["next"].as_i64() {
            Some(n) => from = Some(n),
            None => break,
        }
    }
    assert_eq!(got, (0..2500).map(|i| T0 + 1000 * i).collect::<Vec<_>>());
    let (_, page) = app.get("/v1/series/big/points?limit=10").await;
    assert_eq!((page["points"].as_array().unwrap().len(), page["next"].as_i64()), (10, Some(T0 + 10_000)));
    assert_eq!(app.get("/v1/series/big/points?limit=1001").await.0, 400);
    assert_eq!(app.get("/v1/series/big/points?max_points=5000").await.0, 400);
    // Downsampled: every point counted, a few blocks at a time.
    let (_, d) = app.get("/v1/series/big/points?max_points=100").await;
    let n: u64 = d["buckets"].as_array().unwrap().iter().map(|b| b["count"].as_u64().unwrap()).sum();
    assert_eq!((d["downsampled"].as_bool(), n), (Some(true), 2500), "{d}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_mode_refuses_foreign_hosts_foreign_origins_and_writes_that_are_not_json() {
    let (app, _dir) = sqlite_app(|_| {}).await;
    let body = batch("c", 0, 5).to_string();
    let json_ct = ("content-type", "application/json");
    let (status, r) = raw(&app, "POST", "/v1/points", &[("host", "attacker.example"), json_ct], &body).await;
    assert_eq!((status, r["error"]["code"].as_str()), (403, Some("host_not_allowed")), "{r}");
    assert_eq!(raw(&app, "GET", "/v1/series", &[("host", "attacker.example:8080")], "").await.0, 403);
    let (status, r) = raw(&app, "POST", "/v1/points", &[("origin", "http://attacker.example"), json_ct], &body).await;
    assert_eq!((status, r["error"]["code"].as_str()), (403, Some("origin_not_allowed")), "{r}");
    let (status, r) = raw(&app, "POST", "/v1/points", &[("content-type", "text/plain")], &body).await;
    assert_eq!((status, r["error"]["code"].as_str()), (415, Some("unsupported_media_type")), "{r}");
    assert_eq!(raw(&app, "POST", "/v1/points", &[], &body).await.0, 415, "a body without a type");
    assert_eq!(app.get("/v1/series/c").await.0, 404, "nothing was ingested");
    assert_eq!(raw(&app, "POST", "/v1/points", &[("origin", "http://127.0.0.1:8080"), json_ct], &body).await.0, 200);
    let form = ("content-type", "application/x-www-form-urlencoded");
    assert_eq!(raw(&app, "POST", "/v1/series/c/reset", &[form], "x=1").await.0, 415);
    assert_eq!(raw(&app, "POST", "/v1/series/c/reset", &[("host", "localhost:1234")], "").await.0, 200);
    app.stop().await;
    // With tokens, any Host (a proxy's) is fine; the content type is still checked.
    let dir = tempfile::tempdir().unwrap();
    let t = token(dir.path(), "root", "admin");
    let mut s = base_settings();
    s.storage.data_dir = dir.path().to_owned();
    s.auth.mode = "tokens".into();
    let app = TestApp::spawn(s).await;
    let auth = format!("Bearer {t}");
    let (status, r) =
        raw(&app, "POST", "/v1/points", &[("host", "dw.example"), json_ct, ("authorization", &auth)], &body).await;
    assert_eq!(status, 200, "{r}");
    let (status, _) =
        raw(&app, "POST", "/v1/points", &[("content-type", "text/plain"), ("authorization", &auth)], &body).await;
    assert_eq!(status, 415);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_series_during_ingest_leaves_no_orphan_and_consistent_counts() {
    let (app, dir) = sqlite_app(|_| {}).await;
    let app = std::sync::Arc::new(app);
    let ingest = {
        let app = app.clone();
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            for k in 0..60 {
                statuses.push(app.post("/v1/points", &batch("d", k * 20, k * 20 + 20)).await.0);
            }
            statuses
        })
    };
    let mut deletes = 0;
    while !ingest.is_finished() {
        let status = app.delete("/v1/series/d").await.0;
        assert!(status == 204 || status == 404, "{status}");
        deletes += usize::from(status == 204);
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    let statuses = ingest.await.unwrap();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert!(deletes > 0);
    // No block outlives its series.
    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}", dir.path().join("driftwatch.db").display());
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    let (orphans,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM point_chunks WHERE series_id NOT IN (SELECT id FROM series)")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(orphans, 0);
    // The series as it stands now reports what it returns.
    if let (200, one) = app.get("/v1/series/d").await {
        let (_, pts) = app.get("/v1/series/d/points").await;
        assert_eq!(one["stored_points"].as_u64(), Some(pts["points"].as_array().unwrap().len() as u64), "{one}");
    }
    std::sync::Arc::try_unwrap(app).ok().unwrap().stop().await;
}

/// Opens a request whose body never completes: headers and part of the body.
async fn slow_write(base: &str, t: &str) -> tokio::net::TcpStream {
    let addr = base.trim_start_matches("http://");
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/points HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {t}\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n{{\"series\":"
    );
    c.write_all(head.as_bytes()).await.unwrap();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_token_holds_only_its_share_and_silent_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let slow = token(dir.path(), "slow", "admin");
    let other = token(dir.path(), "other", "admin");
    let mut s = base_settings();
    s.storage.data_dir = dir.path().to_owned();
    s.auth.mode = "tokens".into();
    s.http.max_in_flight = 4;
    s.http.header_timeout_ms = 1000;
    let app = TestApp::spawn(s).await;
    // Two slow bodies take the token's share of the write slots (4 × 0.5).
    let _held = [slow_write(&app.base, &slow).await, slow_write(&app.base, &slow).await];
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, r) = with_token(&app, "POST", "/v1/points", &slow, Some(batch("x", 0, 1))).await;
    assert_eq!((status, r["error"]["code"].as_str()), (503, Some("overloaded")), "{r}");
    // Another token still reads and writes.
    assert_eq!(with_token(&app, "GET", "/v1/series", &other, None).await.0, 200);
    assert_eq!(with_token(&app, "POST", "/v1/points", &other, Some(batch("y", 0, 1))).await.0, 200);
    // A connection that sends nothing, or stops mid-headers, is closed after the header timeout.
    let addr = app.base.trim_start_matches("http://").to_owned();
    for partial in ["", "GET /v1/series HTTP/1.1\r\nhost: x\r\n"] {
        let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
        c.write_all(partial.as_bytes()).await.unwrap();
        let started = Instant::now();
        let mut buf = [0u8; 256];
        let read = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf)).await;
        assert!(read.is_ok(), "still open after 5 s ({partial:?})");
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    }
    drop(_held);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projects_per_author_are_capped_and_invisible_characters_refused_in_series_names() {
    let (app, _dir) = sqlite_app(|s| s.labeling.max_projects_per_author = 2).await;
    assert_eq!(app.post("/v1/points", &batch("s", 0, 100)).await.0, 200);
    for name in ["p1", "p2"] {
        assert_eq!(
            app.post("/v1/labeling/projects", &json!({"name": name, "series": ["s"], "author": "ann"})).await.0,
            201
        );
    }
    let (status, r) = app.post("/v1/labeling/projects", &json!({"name": "p3", "series": ["s"], "author": "ann"})).await;
    assert_eq!((status, r["error"]["code"].as_str()), (409, Some("too_many_projects")), "{r}");
    assert_eq!(
        app.post("/v1/labeling/projects", &json!({"name": "p3", "series": ["s"], "author": "bob"})).await.0,
        201
    );
    for bad in ["cpu\u{200B}host", "abc\u{202E}gpj.exe"] {
        let (status, r) = app.post("/v1/points", &json!({"series": bad, "ts": T0, "value": 1})).await;
        assert_eq!(status, 400, "{r}");
        assert!(r["error"]["message"].as_str().unwrap().contains("invisible"), "{r}");
    }
    app.stop().await;
}
