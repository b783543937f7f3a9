//! Operations files, checked without a Docker engine (none runs on these machines):
//!
//! * `docker-compose.yml` parses; its services, ports, health checks, start-up order, mounted
//!   paths and settings are consistent with each other and with the Prometheus scrape targets;
//! * `dashboards/alerts.yml` passes `promtool check rules` and its unit tests
//!   (`promtool test rules dashboards/alerts_test.yml`); `dashboards/prometheus.yml` passes
//!   `promtool check config`;
//! * every Grafana dashboard is well formed, every PromQL expression in it passes promtool, and
//!   every metric it (or an alert) names is exported by a real driftwatch: the binary started
//!   with the compose stack's own config file and environment (only the broker and database
//!   addresses pointed at the local ones), fed by `driftwatch generate`, then scraped.
//!
//! promtool comes from Debian's prometheus package (`scripts/test.sh` installs it); without it
//! these tests fail unless `DRIFTWATCH_SKIP_PROMTOOL=1`. The smoke test needs the suite's broker
//! and PostgreSQL (`DRIFTWATCH_TEST_KAFKA`, `DRIFTWATCH_TEST_PG`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_yaml_ng::Value as Yaml;

mod common;

fn root() -> PathBuf {
    common::root().to_owned()
}

fn compose() -> Yaml {
    let text = std::fs::read_to_string(root().join("docker-compose.yml")).unwrap();
    let mut v: Yaml = serde_yaml_ng::from_str(&text).unwrap();
    v.apply_merge().unwrap();
    v
}

fn promtool() -> Option<&'static str> {
    if std::process::Command::new("promtool").arg("--version").output().is_ok() {
        Some("promtool")
    } else if std::env::var("DRIFTWATCH_SKIP_PROMTOOL").as_deref() == Ok("1") {
        None
    } else {
        panic!(
            "promtool not found: run ./scripts/test.sh (it installs Debian's prometheus package) or set DRIFTWATCH_SKIP_PROMTOOL=1"
        )
    }
}

fn run_promtool(args: &[&str], dir: &Path) {
    let Some(bin) = promtool() else { return };
    let out = std::process::Command::new(bin).args(args).current_dir(dir).output().unwrap();
    assert!(
        out.status.success(),
        "promtool {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn s(v: &Yaml) -> String {
    v.as_str().map(str::to_owned).unwrap_or_else(|| serde_yaml_ng::to_string(v).unwrap().trim().to_owned())
}

/// The compose environment of a service as (name, value) pairs.
fn environment(service: &Yaml) -> Vec<(String, String)> {
    match &service["environment"] {
        Yaml::Mapping(m) => m.iter().map(|(k, v)| (s(k), s(v))).collect(),
        Yaml::Sequence(items) => items
            .iter()
            .filter_map(|i| i.as_str()?.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
            .collect(),
        _ => Vec::new(),
    }
}

#[test]
fn the_compose_file_is_consistent() {
    let c = compose();
    let services = c["services"].as_mapping().expect("services");
    let names: BTreeSet<String> = services.keys().map(s).collect();
    for want in ["kafka", "postgres", "prometheus", "grafana", "driftwatch-1", "driftwatch-2", "generator"] {
        assert!(names.contains(want), "service {want} missing from {names:?}");
    }
    let mut host_ports = BTreeSet::new();
    for (name, svc) in services {
        let name = s(name);
        // Start-up order only names services that exist, with a condition.
        if let Some(deps) = svc["depends_on"].as_mapping() {
            for (dep, how) in deps {
                assert!(names.contains(&s(dep)), "{name} depends on unknown {}", s(dep));
                assert!(how["condition"].as_str().is_some(), "{name} -> {}: no condition", s(dep));
            }
        }
        // Every host port is published once.
        for p in svc["ports"].as_sequence().into_iter().flatten() {
            let host = s(p).split(':').next().unwrap().to_owned();
            assert!(host_ports.insert(host.clone()), "host port {host} published twice");
        }
        // Every mounted path of the repository exists.
        for v in svc["volumes"].as_sequence().into_iter().flatten() {
            let spec = s(v);
            if let Some(local) = spec.split(':').next().filter(|p| p.starts_with("./")) {
                assert!(root().join(local).exists(), "{name} mounts {local}, which does not exist");
            }
        }
        // Long-running services have a health check or depend on one that does.
        if !matches!(name.as_str(), "kafka-init" | "generator" | "grafana") {
            assert!(!svc["healthcheck"].is_null(), "{name} has no health check");
        }
    }
    // Both driftwatch instances: same image, same group, the config file mounted, a health
    // check through `driftwatch probe`, and they wait for PostgreSQL and the topics.
    let mut groups = BTreeSet::new();
    for inst in ["driftwatch-1", "driftwatch-2"] {
        let svc = &c["services"][inst];
        assert_eq!(s(&svc["build"]), ".");
        let cmd: Vec<String> = svc["command"].as_sequence().unwrap().iter().map(s).collect();
        assert_eq!(cmd, ["serve", "--config", "/etc/driftwatch/driftwatch.toml"]);
        let test: Vec<String> = svc["healthcheck"]["test"].as_sequence().unwrap().iter().map(s).collect();
        assert_eq!(test[..3], ["CMD", "driftwatch", "probe"]);
        let env = environment(svc);
        let settings = driftwatch::config::Settings::load(Some(&root().join("deploy/driftwatch.toml")), env).unwrap();
        assert!(settings.storage.url.as_deref().unwrap().contains("@postgres:5432/"));
        assert_eq!(settings.kafka.brokers, "kafka:9092");
        assert_eq!(settings.http.addr, "0.0.0.0:8080");
        groups.insert(settings.kafka.group_id.clone());
        // The generator writes where the instances read.
        let gen_cmd: Vec<String> = c["services"]["generator"]["command"].as_sequence().unwrap().iter().map(s).collect();
        let topic = &gen_cmd[gen_cmd.iter().position(|a| a == "--topic").unwrap() + 1];
        assert!(
            settings.kafka.topics.contains(topic),
            "generator writes {topic}, instances read {:?}",
            settings.kafka.topics
        );
        // kafka-init creates every topic the instances use.
        let init = s(&c["services"]["kafka-init"]["command"][0]);
        for t in settings.kafka.topics.iter().chain([&settings.kafka.dead_letter_topic, &settings.kafka.events_topic]) {
            assert!(init.contains(t.as_str()), "kafka-init does not create {t}");
        }
    }
    assert_eq!(groups.len(), 1, "both instances must share one consumer group");
    // Prometheus scrapes exactly the two instances, on the port they listen on.
    let prom: Yaml =
        serde_yaml_ng::from_str(&std::fs::read_to_string(root().join("dashboards/prometheus.yml")).unwrap()).unwrap();
    let targets: BTreeSet<String> =
        prom["scrape_configs"][0]["static_configs"][0]["targets"].as_sequence().unwrap().iter().map(s).collect();
    assert_eq!(targets, BTreeSet::from(["driftwatch-1:8080".to_owned(), "driftwatch-2:8080".to_owned()]));
    // The image runs as a non-root user.
    let docker = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    assert!(docker.lines().any(|l| l.starts_with("USER ") && !l.contains("root")), "Dockerfile must drop root");
    assert!(docker.matches("FROM ").count() >= 2, "multi-stage build");
}

#[test]
fn alert_rules_pass_promtool_and_their_unit_tests() {
    let dir = root().join("dashboards");
    run_promtool(&["check", "rules", "alerts.yml"], &dir);
    run_promtool(&["test", "rules", "alerts_test.yml"], &dir);
    // Every alert has a summary, a description and a runbook section in the README.
    let rules: Yaml = serde_yaml_ng::from_str(&std::fs::read_to_string(dir.join("alerts.yml")).unwrap()).unwrap();
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let tests = std::fs::read_to_string(dir.join("alerts_test.yml")).unwrap();
    for rule in rules["groups"][0]["rules"].as_sequence().unwrap() {
        let name = s(&rule["alert"]);
        assert!(!s(&rule["annotations"]["summary"]).is_empty() && !s(&rule["annotations"]["description"]).is_empty());
        assert!(readme.contains(&format!("#### {name}")), "README has no runbook section for {name}");
        assert!(tests.contains(&format!("alertname: {name}")), "alerts_test.yml does not test {name}");
    }
    // The Prometheus configuration, with the rule file where the container mounts it.
    let tmp = tempfile::tempdir().unwrap();
    let config = std::fs::read_to_string(dir.join("prometheus.yml"))
        .unwrap()
        .replace("/etc/prometheus/alerts.yml", dir.join("alerts.yml").to_str().unwrap());
    std::fs::write(tmp.path().join("prometheus.yml"), config).unwrap();
    run_promtool(&["check", "config", "prometheus.yml"], tmp.path());
}

/// Every (title, expr) of a dashboard's panels and annotations, after structural checks.
fn dashboard_exprs(path: &Path) -> Vec<(String, String)> {
    let d: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let name = path.display();
    assert!(d["uid"].as_str().is_some_and(|u| !u.is_empty()), "{name}: uid");
    assert!(d["title"].as_str().is_some(), "{name}: title");
    let mut ids = BTreeSet::new();
    let mut out = Vec::new();
    for p in d["panels"].as_array().expect("panels") {
        let title = p["title"].as_str().unwrap_or_default().to_owned();
        assert!(ids.insert(p["id"].as_i64().expect("panel id")), "{name}: duplicate panel id in {title}");
        for k in ["x", "y", "w", "h"] {
            assert!(p["gridPos"][k].as_i64().is_some(), "{name}: {title} gridPos.{k}");
        }
        assert!(
            p["gridPos"]["x"].as_i64().unwrap() + p["gridPos"]["w"].as_i64().unwrap() <= 24,
            "{name}: {title} wider than 24"
        );
        assert_eq!(p["datasource"]["uid"], "prometheus", "{name}: {title} datasource");
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{name}: {title} has no query");
        for t in targets {
            out.push((title.clone(), t["expr"].as_str().expect("expr").to_owned()));
        }
    }
    for a in d["annotations"]["list"].as_array().into_iter().flatten() {
        out.push((format!("annotation {}", a["name"]), a["expr"].as_str().expect("annotation expr").to_owned()));
    }
    for v in d["templating"]["list"].as_array().into_iter().flatten() {
        let q = v["query"]["query"].as_str().unwrap_or_default();
        // label_values(METRIC, label): check the metric like any other.
        if let Some(inner) = q.strip_prefix("label_values(").and_then(|r| r.split(',').next()) {
            out.push((format!("variable {}", v["name"]), inner.trim().to_owned()));
        }
    }
    out
}

fn dashboards() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("dashboards"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

/// driftwatch metric names an expression uses (histogram series mapped to their family).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, _) in expr.match_indices("driftwatch_") {
        if i > 0 && (expr.as_bytes()[i - 1].is_ascii_alphanumeric() || expr.as_bytes()[i - 1] == b'_') {
            continue;
        }
        let name: String = expr[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        let family =
            ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(&name).to_owned();
        names.insert(family);
    }
    names
}

#[test]
fn every_dashboard_query_is_valid_promql() {
    let files = dashboards();
    assert!(files.len() >= 3, "{files:?}");
    let mut uids = BTreeSet::new();
    let mut rules = String::from("groups:\n  - name: dashboards\n    rules:\n");
    for (n, f) in files.iter().enumerate() {
        let d: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        assert!(uids.insert(d["uid"].as_str().unwrap().to_owned()), "duplicate dashboard uid in {}", f.display());
        for (i, (_, expr)) in dashboard_exprs(f).into_iter().enumerate() {
            // Template variables as Grafana would expand "All".
            let expr = expr.replace("$instance", ".*").replace("$series", ".*");
            rules.push_str(&format!(
                "      - record: dashboard:check:{n}_{i}\n        expr: {}\n",
                serde_json::json!(expr)
            ));
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("dashboards.yml"), rules).unwrap();
    run_promtool(&["check", "rules", "dashboards.yml"], tmp.path());
}

/// Kills a child process when dropped (a failing test leaves nothing behind).
struct Kill(std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The compose stack's driftwatch, for real: the `serve` binary with `deploy/driftwatch.toml`
/// and the compose environment, only the database and broker addresses replaced by the local
/// ones; `driftwatch generate` (the stack's generator) feeding it. Then every metric the
/// dashboards and alerts use must be in its scrape, and `promtool check metrics` must pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_configuration_runs_and_exports_every_metric_the_dashboards_use() {
    let (Ok(brokers), Ok(pg)) = (std::env::var("DRIFTWATCH_TEST_KAFKA"), std::env::var("DRIFTWATCH_TEST_PG")) else {
        assert!(
            std::env::var("DRIFTWATCH_SKIP_KAFKA").as_deref() == Ok("1")
                || std::env::var("DRIFTWATCH_SKIP_PG").as_deref() == Ok("1"),
            "DRIFTWATCH_TEST_KAFKA and DRIFTWATCH_TEST_PG are needed: run ./scripts/test.sh"
        );
        return;
    };
    let c = compose();
    let svc = &c["services"]["driftwatch-1"];
    // A fresh database and topic prefix, so this run sees only its own data.
    sqlx::any::install_default_drivers();
    let db = format!("dw_ops_{}", std::process::id());
    let admin = sqlx::AnyPool::connect(&pg).await.unwrap();
    sqlx::query(&format!("DROP DATABASE IF EXISTS {db}")).execute(&admin).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {db}")).execute(&admin).await.unwrap();
    let db_url = format!("{}/{db}", pg.rsplit_once('/').unwrap().0);
    let suffix = format!("{}-{}", std::process::id(), Instant::now().elapsed().as_nanos());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_driftwatch"));
    let args: Vec<String> = svc["command"].as_sequence().unwrap().iter().map(s).collect();
    cmd.args(args.iter().map(|a| {
        a.replace("/etc/driftwatch/driftwatch.toml", root().join("deploy/driftwatch.toml").to_str().unwrap())
    }));
    cmd.env_clear();
    for (k, v) in environment(svc) {
        // The only changes: where PostgreSQL and Kafka are, and a free port.
        cmd.env(k, v.replace("postgres://driftwatch:driftwatch@postgres:5432/driftwatch", &db_url));
    }
    let topic = format!("ops-points-{suffix}");
    cmd.env("DRIFTWATCH__KAFKA__BROKERS", &brokers)
        .env("DRIFTWATCH__KAFKA__TOPICS", format!("[\"{topic}\"]"))
        .env("DRIFTWATCH__KAFKA__DEAD_LETTER_TOPIC", format!("{topic}.dlq"))
        .env("DRIFTWATCH__KAFKA__EVENTS_TOPIC", format!("{topic}.events"))
        .env("DRIFTWATCH__KAFKA__GROUP_ID", format!("ops-{suffix}"))
        .env("DRIFTWATCH__KAFKA__CREATE_TOPICS", "true")
        .env("DRIFTWATCH__KAFKA__PROPERTIES__STATISTICS.INTERVAL.MS", "500")
        .env("DRIFTWATCH__KAFKA__PROPERTIES__SESSION.TIMEOUT.MS", "6000")
        .env("DRIFTWATCH__HTTP__ADDR", format!("127.0.0.1:{port}"))
        .env("DRIFTWATCH__DETECTOR__WARMUP_WINDOWS", "4")
        .stderr(std::process::Stdio::null());
    // The topics exist before the service subscribes (kafka-init's job in the stack).
    {
        use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
        let admin: AdminClient<rdkafka::client::DefaultClientContext> =
            rdkafka::config::ClientConfig::new().set("bootstrap.servers", &brokers).create().unwrap();
        let names = [topic.clone(), format!("{topic}.dlq"), format!("{topic}.events")];
        let new: Vec<NewTopic<'_>> = names.iter().map(|t| NewTopic::new(t, 4, TopicReplication::Fixed(1))).collect();
        for r in admin.create_topics(new.iter(), &AdminOptions::new()).await.unwrap() {
            r.unwrap();
        }
    }
    let _guard = Kill(cmd.spawn().unwrap());
    // The generator as in the compose file (series demo-000..), a few thousand points each.
    let gen_cmd: Vec<String> = c["services"]["generator"]["command"].as_sequence().unwrap().iter().map(s).collect();
    let gen_args: Vec<String> = gen_cmd
        .iter()
        .map(|a| a.replace("kafka:9092", &brokers).replace("driftwatch.points", &topic))
        .chain(["--points", "1500", "--rate", "3000", "--series", "3"].map(String::from))
        .collect();
    let gen_out = std::process::Command::new(env!("CARGO_BIN_EXE_driftwatch")).args(&gen_args).output().unwrap();
    assert!(gen_out.status.success(), "generate {gen_args:?}: {}", String::from_utf8_lossy(&gen_out.stderr));

    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    // The labeling metrics: watched series demo-003 (not fed by the generator here) comes over
    // HTTP, a project over it gets labels and a model, and new points are scored live.
    // The stack runs with auth.mode = tokens: tokens made with the CLI, as the README says.
    let token = |name: &str, role: &str| -> String {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_driftwatch"))
            .args(["token", "create", "--name", name, "--role", role, "--config"])
            .arg(root().join("deploy/driftwatch.toml"))
            .env_clear()
            .env("DATABASE_URL", &db_url)
            .output()
            .unwrap();
        assert!(out.status.success(), "token create: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let (ingest, analyst) = (token("ops-ingest", "ingest"), token("ops-analyst", "analyst"));
    let r = client.get(format!("{base}/v1/series")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401, "the stack's API refuses requests without a token");
    labeling_session(&client, &base, &ingest, &analyst).await;
    let wanted: BTreeSet<String> = dashboards()
        .iter()
        .flat_map(|f| dashboard_exprs(f))
        .flat_map(|(_, e)| metric_names(&e))
        .chain(metric_names(&std::fs::read_to_string(root().join("dashboards/alerts.yml")).unwrap()))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut missing: Vec<String>;
    let mut scrape = String::new();
    loop {
        if let Ok(r) = client.get(format!("{base}/metrics")).send().await {
            scrape = r.text().await.unwrap_or_default();
        }
        let exported: BTreeSet<&str> =
            scrape.lines().filter_map(|l| l.strip_prefix("# TYPE ")).filter_map(|l| l.split(' ').next()).collect();
        missing = wanted.iter().filter(|m| !exported.contains(m.as_str())).cloned().collect();
        if missing.is_empty() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(missing.is_empty(), "metrics used by dashboards or alerts but not exported: {missing:?}\n{scrape}");
    // The watched series of the compose config are the generator's, and they were fed.
    let series: serde_json::Value = client
        .get(format!("{base}/v1/series/demo-000"))
        .header("authorization", format!("Bearer {analyst}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap();
    assert!(series["last_ts"].as_i64().is_some(), "{series}");
    assert!(scrape.contains("driftwatch_watched_series_points_total{series=\"demo-000\"}"), "{scrape}");
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("scrape.txt"), &scrape).unwrap();
    if let Some(bin) = promtool() {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{bin} check metrics < scrape.txt"))
            .current_dir(tmp.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Feeds watched series demo-003 over HTTP, labels five suggested windows of a project over it
/// (one anomaly), waits for its model, and posts new points for the model to score.
async fn labeling_session(client: &reqwest::Client, base: &str, ingest: &str, analyst: &str) {
    let call = |method: reqwest::Method, path: &str, body: Option<serde_json::Value>| {
        let token = if path == "/v1/points" { ingest } else { analyst };
        let mut r = client.request(method, format!("{base}{path}")).header("authorization", format!("Bearer {token}"));
        if let Some(b) = body {
            r = r.header("content-type", "application/json").body(b.to_string());
        }
        async move {
            let r = r.send().await.unwrap();
            let status = r.status().as_u16();
            (status, serde_json::from_str::<serde_json::Value>(&r.text().await.unwrap()).unwrap())
        }
    };
    let ls = driftwatch_testkit::labeled_series(1800, 96, 6, 4);
    let t0 = 1_795_780_800_000i64;
    let points = |from: usize, to: usize| -> serde_json::Value {
        (from..to).map(|i| serde_json::json!([t0 + 60_000 * i as i64, ls.values[i]])).collect()
    };
    let (status, r) = call(
        reqwest::Method::POST,
        "/v1/points",
        Some(serde_json::json!({"series": "demo-003", "points": points(0, 1500)})),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    let project = serde_json::json!({"name": "ops", "series": ["demo-003"], "budget": 10, "author": "ops"});
    let (status, r) = call(reqwest::Method::POST, "/v1/labeling/projects", Some(project)).await;
    assert_eq!(status, 201, "{r}");
    let mut labeled = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while labeled < 5 {
        assert!(Instant::now() < deadline, "the labeling project never took five labels");
        let (status, body) =
            call(reqwest::Method::GET, "/v1/labeling/projects/ops/suggestions?analyst=ops&limit=1", None).await;
        if status == 409 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        assert_eq!(status, 200, "{body}");
        let s = &body["suggestions"][0];
        let c = s["centre"].as_i64().unwrap();
        let anomalies = if labeled == 0 { serde_json::json!([[c, c + 1]]) } else { serde_json::json!([]) };
        let label = serde_json::json!({"author": "ops", "round": body["round"], "suggestion": s["id"],
            "series": "demo-003", "start": s["start"], "end": s["end"], "anomalies": anomalies});
        let (status, r) = call(reqwest::Method::POST, "/v1/labeling/projects/ops/labels", Some(label)).await;
        assert_eq!(status, 201, "{r}");
        labeled += 1;
    }
    loop {
        assert!(Instant::now() < deadline, "no model after five labels");
        let (_, p) = call(reqwest::Method::GET, "/v1/labeling/projects/ops/progress", None).await;
        if p["model_version"].as_i64() >= Some(1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, r) = call(
        reqwest::Method::POST,
        "/v1/points",
        Some(serde_json::json!({"series": "demo-003", "points": points(1500, 1800)})),
    )
    .await;
    assert_eq!(status, 200, "{r}");
}

/// The README's configuration reference names every setting the service reads.
#[test]
fn the_readme_documents_every_setting() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let mut settings = driftwatch::config::Settings::default();
    settings.http.admin_addr = Some("x".into()); // an Option left unset would not serialise
    let tree = toml::Table::try_from(settings).unwrap();
    let mut missing = Vec::new();
    for (key, value) in &tree {
        match value {
            toml::Value::Table(section) => {
                for k in section.keys() {
                    let name = format!("{key}.{k}");
                    // The Kafka table names its keys without the section.
                    let documented =
                        readme.contains(&format!("`{name}`")) || (key == "kafka" && readme.contains(&format!("`{k}`")));
                    if !documented {
                        missing.push(name);
                    }
                }
            }
            _ if !readme.contains(&format!("`{key}`")) => missing.push(key.clone()),
            _ => {}
        }
    }
    assert!(missing.is_empty(), "settings missing from the README: {missing:?}");
}
