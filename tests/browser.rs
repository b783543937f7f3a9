//! The analyst web page in headless Chromium: the service runs in-process (SQLite, port 0) with
//! a labeling project over the mean-shift fixture, and `tests/browser/labeling.mjs` (Playwright,
//! Debian's Chromium) labels a suggested window by dragging, sees the suggestions change, undoes,
//! vetoes an LF and confirms a change interval, checking each step through the API. Screenshots
//! are kept in `target/browser-artifacts/`.
//!
//! Needs Node.js, `tests/browser/node_modules` (`npm ci`) and `/usr/bin/chromium`, which
//! `scripts/test.sh` installs; without them the test fails saying so, unless
//! `DRIFTWATCH_SKIP_BROWSER=1`.

mod common;

use common::{TestApp, base_settings};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_analyst_labels_undoes_and_vetoes_in_the_browser() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let ready = dir.join("node_modules/playwright-core").exists() && std::path::Path::new(&chromium).exists();
    if !ready {
        if std::env::var("DRIFTWATCH_SKIP_BROWSER").as_deref() == Ok("1") {
            return;
        }
        panic!(
            "the browser test needs {chromium} (apt-get install -y chromium) and tests/browser/node_modules \
             (cd tests/browser && npm ci): run ./scripts/test.sh, which installs both, or set DRIFTWATCH_SKIP_BROWSER=1"
        );
    }
    let data = tempfile::tempdir().unwrap();
    let mut settings = base_settings();
    settings.storage.data_dir = data.path().to_owned();
    settings.labeling.tick_ms = 200;
    let xs = common::mean_shift();
    let t0 = 1_795_780_800_000i64;
    // A series of 62.5 days, half-hourly: the default retention (30 days) removes its first
    // half when the service next starts.
    let before = TestApp::spawn(settings.clone()).await;
    for from in (0..3000).step_by(500) {
        let points: Vec<_> = (from..from + 500).map(|i| json!([t0 - 1_800_000 * (3000 - i as i64), xs[i]])).collect();
        let (status, body) = before.post("/v1/points", &json!({"series": "demo.old", "points": points})).await;
        assert_eq!(status, 200, "{body}");
    }
    before.stop().await;
    let app = TestApp::spawn(settings).await;
    let points: Vec<_> = xs.iter().enumerate().map(|(i, x)| json!([t0 + 60_000 * i as i64, x])).collect();
    let (status, body) = app.post("/v1/points", &json!({"series": "demo.shift", "points": points})).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .post(
            "/v1/labeling/projects",
            &json!({"name": "browser", "series": ["demo.shift"], "budget": 10, "author": "setup"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    let artifacts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser-artifacts");
    let _ = std::fs::remove_dir_all(&artifacts);
    let (dir2, base, arts, chrome) = (dir.clone(), app.base.clone(), artifacts.clone(), chromium.clone());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg("labeling.mjs")
            .current_dir(&dir2)
            .env("BASE_URL", &base)
            .env("PROJECT", "browser")
            .env("SERIES", format!("demo.shift:{}", xs.len()))
            .env("RETENTION_SERIES", "demo.old")
            .env("ARTIFACTS", &arts)
            .env("CHROMIUM", &chrome)
            .env("READY_TIMEOUT_MS", "60000")
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{log}");
    assert!(out.status.success(), "the browser test failed (screenshots in {}):\n{log}", artifacts.display());
    for shot in [
        "01-projects.png",
        "04-submitted.png",
        "05-exported.png",
        "06-undone.png",
        "08-vetoed.png",
        "09-free-window.png",
        "10-intervals.png",
        "11-retention.png",
    ] {
        let meta = std::fs::metadata(artifacts.join(shot)).unwrap_or_else(|_| panic!("no screenshot {shot}"));
        assert!(meta.len() > 10_000, "{shot} is nearly empty");
    }
    // What the page did is in the store: a label made and undone, by the page's analyst.
    let (_, labels) = app.get("/v1/labeling/projects/browser/labels").await;
    let labels = labels["labels"].as_array().unwrap();
    assert!(
        labels
            .iter()
            .any(|l| l["in_force"] == false && l["undone_by"].as_str().is_some_and(|a| a.starts_with("playwright"))),
        "{labels:?}"
    );
    let (_, ivs) = app.get("/v1/series/demo.shift/intervals").await;
    assert!(ivs["intervals"].as_array().unwrap().iter().any(|i| i["feedback"]["verdict"] == "confirm"), "{ivs}");
    app.stop().await;
}
