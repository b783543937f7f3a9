//! Access control over real HTTP: the service in `auth.mode = "tokens"` with a token of each
//! role made by `driftwatch token create`, and every route tried with each of them (allowed, or
//! refused with 403), without a token and with a bad or revoked one (401). Also: open mode is
//! refused on a non-loopback address.

mod common;

use common::{TestApp, base_settings};
use serde_json::{Value, json};

fn token_cli(data: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_driftwatch"))
        .arg("token")
        .args(args)
        .env_clear()
        .env("DRIFTWATCH__STORAGE__DATA_DIR", data)
        .env("DRIFTWATCH__AUTH__MODE", "tokens")
        .output()
        .unwrap()
}

fn create(data: &std::path::Path, name: &str, role: &str) -> String {
    let out = token_cli(data, &["create", "--name", name, "--role", role]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

async fn call(app: &TestApp, method: &str, path: &str, body: Option<&Value>, token: Option<&str>) -> (u16, Value) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut r = app.client.request(m, format!("{}{path}", app.base));
    if let Some(t) = token {
        r = r.header("authorization", format!("Bearer {t}"));
    }
    if let Some(b) = body {
        r = r.header("content-type", "application/json").body(b.to_string());
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Every route with the role it needs (the spec this test holds the service to).
fn routes(role_tag: &str) -> Vec<(&'static str, String, Option<Value>, &'static str)> {
    let pts = json!({"series": "s", "points": [[1_795_800_000_000i64 + 1, 1.0]]});
    let label = json!({"author": "x", "round": 0, "series": "s", "start": 0, "end": 10, "anomalies": []});
    vec![
        ("GET", "/v1/series".into(), None, "reader"),
        ("GET", "/v1/series/s".into(), None, "reader"),
        ("GET", "/v1/series/s/points".into(), None, "reader"),
        ("GET", "/v1/series/s/scores".into(), None, "reader"),
        ("GET", "/v1/series/s/intervals".into(), None, "reader"),
        ("GET", "/v1/intervals".into(), None, "reader"),
        ("POST", "/v1/points".into(), Some(pts), "ingest"),
        ("PUT", "/v1/series/s/config".into(), Some(json!({"alpha": 2.5})), "admin"),
        ("POST", "/v1/series/s/reset".into(), None, "admin"),
        ("DELETE", format!("/v1/series/victim-{role_tag}"), None, "admin"),
        (
            "POST",
            "/v1/series/s/intervals/0/feedback".into(),
            Some(json!({"author": "x", "verdict": "confirm"})),
            "analyst",
        ),
        ("GET", "/v1/labeling/projects".into(), None, "reader"),
        (
            "POST",
            "/v1/labeling/projects".into(),
            Some(json!({"name": format!("p-{role_tag}"), "series": ["s"], "author": "x"})),
            "analyst",
        ),
        ("GET", "/v1/labeling/projects/p".into(), None, "reader"),
        ("GET", "/v1/labeling/projects/p/suggestions?analyst=x".into(), None, "analyst"),
        ("POST", "/v1/labeling/projects/p/suggestions/999/skip".into(), Some(json!({"author": "x"})), "analyst"),
        ("GET", "/v1/labeling/projects/p/window?series=s&start=0&end=10".into(), None, "reader"),
        ("GET", "/v1/labeling/projects/p/labels".into(), None, "reader"),
        ("GET", "/v1/labeling/projects/p/export?format=csv".into(), None, "reader"),
        ("POST", "/v1/labeling/projects/p/labels".into(), Some(label), "analyst"),
        ("PUT", "/v1/labeling/projects/p/labels/999".into(), Some(json!({"author": "x", "anomalies": []})), "analyst"),
        ("DELETE", "/v1/labeling/projects/p/labels/999?author=x".into(), None, "analyst"),
        ("POST", "/v1/labeling/projects/p/undo".into(), Some(json!({"author": "x"})), "analyst"),
        ("GET", "/v1/labeling/projects/p/lfs".into(), None, "reader"),
        ("POST", "/v1/labeling/projects/p/lfs/0/veto".into(), Some(json!({"author": "x", "vetoed": false})), "analyst"),
        ("POST", "/v1/labeling/projects/p/refit".into(), Some(json!({"author": "x"})), "analyst"),
        ("GET", "/v1/labeling/projects/p/progress".into(), None, "reader"),
    ]
}

fn allows(role: &str, need: &str) -> bool {
    role == "admin" || role == need || (role == "analyst" && need == "reader")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_admits_exactly_the_roles_it_should() {
    let dir = tempfile::tempdir().unwrap();
    let mut tokens = std::collections::BTreeMap::new();
    for role in ["reader", "analyst", "ingest", "admin"] {
        tokens.insert(role, create(dir.path(), &format!("{role}-token"), role));
    }
    let spare = create(dir.path(), "spare", "admin");
    let out = token_cli(dir.path(), &["create", "--name", "spare", "--role", "reader"]);
    assert!(!out.status.success(), "a taken name is refused");
    let mut s = base_settings();
    s.storage.data_dir = dir.path().to_owned();
    s.auth.mode = "tokens".into();
    s.labeling.tick_ms = 100;
    let app = TestApp::spawn(s).await;

    // Data for the routes to find: series s (and one victim per role to delete), project p.
    let admin = tokens["admin"].clone();
    let values: Vec<Value> = (0..400).map(|i| json!([1_795_780_800_000i64 + 60_000 * i, (i % 7) as f64])).collect();
    for name in ["s", "victim-reader", "victim-analyst", "victim-ingest", "victim-admin", "victim-none"] {
        let (st, b) =
            call(&app, "POST", "/v1/points", Some(&json!({"series": name, "points": values})), Some(&admin)).await;
        assert_eq!(st, 200, "{b}");
    }
    let (st, b) = call(
        &app,
        "POST",
        "/v1/labeling/projects",
        Some(&json!({"name": "p", "series": ["s"], "author": "x"})),
        Some(&admin),
    )
    .await;
    assert_eq!(st, 201, "{b}");
    for _ in 0..100 {
        if call(&app, "GET", "/v1/labeling/projects/p/progress", None, Some(&admin)).await.0 == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    let mut checked = 0;
    for (role, token) in &tokens {
        for (method, path, body, need) in routes(role) {
            let (status, b) = call(&app, method, &path, body.as_ref(), Some(token)).await;
            if allows(role, need) {
                assert!(status != 401 && status != 403, "{role} should be allowed {method} {path}: {status} {b}");
            } else {
                assert_eq!(status, 403, "{role} should be refused {method} {path}: {b}");
                assert_eq!(b["error"]["code"], "forbidden");
                assert!(b["error"]["message"].as_str().unwrap().contains(need), "{b}");
            }
            checked += 1;
        }
    }
    // No token, a malformed one, an unknown one: 401 on every route.
    let unknown = "dwt_0011223344556677_".to_owned() + &"ab".repeat(32);
    for (method, path, body, _) in routes("none") {
        for t in [None, Some("nonsense"), Some(unknown.as_str())] {
            let (status, b) = call(&app, method, &path, body.as_ref(), t).await;
            assert_eq!(status, 401, "{method} {path} with {t:?}: {b}");
            assert_eq!(b["error"]["code"], "unauthorized");
        }
    }
    // Public routes need nothing.
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json", "/ui/", "/ui/app.js"] {
        assert_eq!(call(&app, "GET", path, None, None).await.0, 200, "{path}");
    }
    // The page carries the Content-Security-Policy.
    let r = app.client.get(format!("{}/ui/", app.base)).send().await.unwrap();
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    // A revoked token is refused (it was never used, so no cache holds it).
    let out = token_cli(dir.path(), &["revoke", "spare"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(call(&app, "GET", "/v1/series", None, Some(&spare)).await.0, 401);
    assert!(!token_cli(dir.path(), &["revoke", "spare"]).status.success(), "revoking twice is an error");
    // The listing shows names and roles, never secrets.
    let list = String::from_utf8(token_cli(dir.path(), &["list"]).stdout).unwrap();
    assert_eq!(list.lines().count(), 5, "{list}");
    assert!(!list.contains(&admin[4..20]) && list.contains("\"role\":\"analyst\""), "{list}");
    println!("{checked} role-route pairs checked");
    app.stop().await;
}

#[tokio::test]
async fn open_mode_is_refused_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = base_settings();
    s.storage.data_dir = dir.path().to_owned();
    s.http.addr = "0.0.0.0:0".into();
    let err = driftwatch::server::Application::build(s.clone()).await.unwrap_err().to_string();
    assert!(err.contains("auth.mode") && err.contains("loopback"), "{err}");
    s.auth.mode = "tokens".into();
    assert!(driftwatch::server::Application::build(s).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_rate_per_token_deadlines_and_security_headers() {
    let dir = tempfile::tempdir().unwrap();
    let a = create(dir.path(), "a", "reader");
    let b = create(dir.path(), "b", "admin");
    let mut s = base_settings();
    s.storage.data_dir = dir.path().to_owned();
    s.auth.mode = "tokens".into();
    s.auth.rate_per_sec = 0.5;
    s.auth.burst = 2.0;
    s.http.request_timeout_ms = 100;
    s.http.max_batch_points = 300_000;
    let app = TestApp::spawn(s).await;
    // Two requests of burst, then 429 with Retry-After; another token has its own bucket.
    assert_eq!(call(&app, "GET", "/v1/series", None, Some(&a)).await.0, 200);
    assert_eq!(call(&app, "GET", "/v1/series", None, Some(&a)).await.0, 200);
    let r = app.client.get(format!("{}/v1/series", app.base)).bearer_auth(&a).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert!(r.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    let body: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    // A request past the deadline (100 ms for 300,000 points) is abandoned with 503 and counted.
    let values: Vec<Value> = (0..300_000).map(|i| json!([1_795_780_800_000i64 + 1000 * i, (i % 13) as f64])).collect();
    let (status, body) =
        call(&app, "POST", "/v1/points", Some(&json!({"series": "big", "points": values})), Some(&b)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (503, Some("timeout")), "{body}");
    // The abandoned request's points are still all stored: the write path is not cut midway.
    let last = 1_795_780_800_000i64 + 1000 * 299_999;
    let mut stored = false;
    for _ in 0..30 {
        tokio::time::sleep(std::time::Duration::from_secs(2)).await; // b's bucket refills at 0.5/s
        let (status, body) = call(&app, "GET", "/v1/series/big", None, Some(&b)).await;
        if status == 200 && body["last_ts"] == last {
            stored = true;
            break;
        }
    }
    assert!(stored, "the abandoned batch was not stored");
    let metrics = app.client.get(format!("{}/metrics", app.base)).send().await.unwrap();
    let headers = metrics.headers().clone();
    let text = metrics.text().await.unwrap();
    assert!(text.lines().any(|l| l.starts_with("driftwatch_http_timeouts_total ") && !l.ends_with(" 0")), "{text}");
    // Security headers on every answer.
    for (k, v) in
        [("x-content-type-options", "nosniff"), ("x-frame-options", "DENY"), ("referrer-policy", "no-referrer")]
    {
        assert_eq!(headers[k].to_str().unwrap(), v, "{k}");
    }
    assert!(headers["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_creates_at_most_its_series_and_they_are_recorded_as_its() {
    let dir = tempfile::tempdir().unwrap();
    let feeder = create(dir.path(), "feeder", "ingest");
    let other = create(dir.path(), "other", "ingest");
    let admin = create(dir.path(), "root", "admin");
    let mut s = base_settings();
    s.storage.data_dir = dir.path().to_owned();
    s.auth.mode = "tokens".into();
    s.auth.max_series_per_token = 2;
    let app = TestApp::spawn(s).await;
    let msg = |series: &str, t: i64| json!({"series": series, "points": [[1_795_780_800_000i64 + t, 1.0]]}).to_string();
    let body = [msg("a", 0), msg("b", 0), msg("c", 0)].join("\n");
    let (status, r) = call(&app, "POST", "/v1/points", None, Some(&feeder)).await;
    assert_eq!(status, 400, "an empty body is still a 400: {r}");
    let post = |token: &str, body: String| {
        let r = app
            .client
            .post(format!("{}/v1/points", app.base))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body);
        async move {
            let r = r.send().await.unwrap();
            (r.status().as_u16(), serde_json::from_str::<Value>(&r.text().await.unwrap()).unwrap())
        }
    };
    let (status, r) = post(&feeder, body).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["refused_series"], json!(["c"]), "{r}");
    assert_eq!(r["accepted"], 2);
    // Existing series take more points; a new one alone is refused outright.
    assert_eq!(post(&feeder, msg("a", 1000)).await.0, 200);
    let (status, r) = post(&feeder, msg("d", 0)).await;
    assert_eq!((status, r["error"]["code"].as_str()), (403, Some("forbidden")), "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("at most 2 series"), "{r}");
    // Another token has its own allowance; series record who created them.
    assert_eq!(post(&other, msg("c", 0)).await.0, 200);
    let (_, series) = call(&app, "GET", "/v1/series", None, Some(&admin)).await;
    let creators: Vec<(String, String)> = series["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap().to_owned(), s["created_by"].as_str().unwrap().to_owned()))
        .collect();
    let expect: Vec<(String, String)> = [("a", "feeder"), ("b", "feeder"), ("c", "other")]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(creators, expect);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_batch_limit_is_refused_whole() {
    let mut s = base_settings();
    let dir = tempfile::tempdir().unwrap();
    s.storage.data_dir = dir.path().to_owned();
    s.http.max_batch_points = 1000;
    let app = TestApp::spawn(s).await;
    let batch = |series: &str, n: i64| {
        let pts: Vec<Value> = (0..n).map(|i| json!([1_795_780_800_000i64 + 1000 * i, 1.0])).collect();
        json!({"series": series, "points": pts}).to_string()
    };
    // 1,000 points pass; 1,001 do not, and neither do two NDJSON messages of 600.
    assert_eq!(app.post_raw("/v1/points", batch("ok", 1000)).await.0, 200);
    let (status, body) = app.post_raw("/v1/points", batch("big", 1001)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (413, Some("batch_too_large")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("1001 points"), "{body}");
    let (status, _) = app.post_raw("/v1/points", format!("{}\n{}", batch("a", 600), batch("b", 600))).await;
    assert_eq!(status, 413);
    // Nothing of a refused request was stored.
    let (_, series) = app.get("/v1/series").await;
    let names: Vec<&str> = series["series"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["ok"]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_the_in_flight_limit_are_shed_with_503_not_queued() {
    let mut s = base_settings();
    let dir = tempfile::tempdir().unwrap();
    s.storage.data_dir = dir.path().to_owned();
    s.http.max_in_flight = 1;
    let app = TestApp::spawn(s).await;
    // Keep one request in progress (a large batch) and post a small one meanwhile; repeat with
    // fresh batches until the small one lands while the batch is being served.
    let mut shed = None;
    for round in 0..20i64 {
        let pts: Vec<Value> = (0..100_000)
            .map(|i| json!([1_795_780_800_000i64 + 1000 * (round * 100_000 + i), (i % 7) as f64]))
            .collect();
        let body = json!({"series": "big", "points": pts}).to_string();
        let (client, url) = (app.client.clone(), format!("{}/v1/points", app.base));
        // The batch itself may find the slot taken by a query and be shed: it retries. (A shed
        // request is answered before its body is read, so a large one may see its connection
        // closed mid-body instead of the 503.)
        let big = tokio::spawn(async move {
            loop {
                match client.post(&url).header("content-type", "application/json").body(body.clone()).send().await {
                    Ok(r) if r.status().as_u16() != 503 => return r.status().as_u16(),
                    _ => continue,
                }
            }
        });
        // Writes are admitted apart from reads: another write finds the one slot taken.
        while !big.is_finished() {
            let probe = json!({"series": "probe", "points": [[1_795_780_800_000i64 + round, 1.0]]}).to_string();
            let r = app
                .client
                .post(format!("{}/v1/points", app.base))
                .header("content-type", "application/json")
                .body(probe)
                .send()
                .await
                .unwrap();
            if r.status().as_u16() == 503 {
                let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
                let body: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
                shed = Some((body, retry));
                break;
            }
        }
        // The request in progress is not disturbed.
        assert_eq!(big.await.unwrap(), 200);
        if shed.is_some() {
            break;
        }
    }
    let (body, retry) = shed.expect("no request was shed while one was in progress");
    assert_eq!(body["error"]["code"], "overloaded", "{body}");
    assert_eq!(retry.as_deref(), Some("1"));
    // Once the slot is free, requests are served again, and the refusals are counted.
    assert_eq!(app.get("/v1/series").await.0, 200);
    let metrics = app.metrics().await;
    let shed_total: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("driftwatch_http_shed_total ").and_then(|v| v.parse().ok()))
        .unwrap();
    assert!(shed_total >= 1.0, "{shed_total}");
    app.stop().await;
}
