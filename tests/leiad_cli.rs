//! `driftwatch leiad` as a user runs it: the synthetic set written to files, replayed with the
//! simulated analyst, one JSON line per round; NAB-layout input with a labels file; clear errors.
//! Never reads `../shared`: every file is made here.

mod common;

use std::process::Output;

use common::driftwatch;
use serde_json::Value;

fn lines(out: &Output) -> Vec<Value> {
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("each line is JSON")).collect()
}

/// Writes a small synthetic labeled set (2 series × 2,000 points) into `dir/synth`.
fn small_synthetic_set(dir: &std::path::Path) -> std::path::PathBuf {
    let data = dir.join("synth");
    let out = driftwatch(&["leiad", "synth", data.to_str().unwrap(), "--series", "2", "--len", "2000"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    data
}

#[test]
fn simulate_prints_one_json_line_per_round_and_a_summary_at_the_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_synthetic_set(dir.path());
    let out = driftwatch(&[
        "leiad",
        "simulate",
        data.to_str().unwrap(),
        "--seeds",
        "2",
        "--max-windows",
        "4",
        "--checkpoints",
        "2,4",
        "--half-window",
        "100",
        "--json",
    ]);
    let lines = lines(&out);
    assert_eq!(lines[0]["dataset"]["points"], 4000);
    let rounds: Vec<&Value> = lines.iter().filter(|l| l.get("round").is_some()).collect();
    for r in &rounds {
        for key in ["round", "windows_labeled", "ap", "roc_auc", "round_ms"] {
            assert!(r.get(key).is_some(), "{key} missing in {r}");
        }
        for m in [
            "leiad",
            "leiad_random",
            "labels_only",
            "labels_prior",
            "icid_change",
            "idk_point",
            "robust_z",
            "spectral_residual",
            "isolation_forest",
        ] {
            let ap = r["ap"][m].as_f64().unwrap();
            let auc = r["roc_auc"][m].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&ap) && (0.0..=1.0).contains(&auc), "{m}: {ap} {auc}");
        }
    }
    // Both seeds reach both checkpoints exactly.
    for seed in 0..2 {
        let counts: Vec<u64> =
            rounds.iter().filter(|r| r["seed"] == seed).map(|r| r["windows_labeled"].as_u64().unwrap()).collect();
        assert!(counts.contains(&2) && counts.contains(&4), "seed {seed}: {counts:?}");
    }
    let summary = &lines.last().unwrap()["summary"];
    assert_eq!(summary["4"]["leiad"]["seeds"], 2);
    assert!(summary["2"]["isolation_forest"]["leiad_minus_ci"].is_array());
}

#[test]
fn simulate_reads_the_nab_layout_with_a_labels_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("realSomething");
    std::fs::create_dir(&data).unwrap();
    let series = driftwatch_testkit::labeled_series(2000, 288, 3, 5);
    let mut text = String::from("timestamp,value\n");
    for (t, v) in series.values.iter().enumerate() {
        let (d, s) = (t / 288, t % 288);
        text.push_str(&format!("2014-03-{:02} {:02}:{:02}:00,{v}\n", d + 1, s / 12, (s % 12) * 5));
    }
    std::fs::write(data.join("a.csv"), text).unwrap();
    let stamp = |t: usize| format!("2014-03-{:02} {:02}:{:02}:00", t / 288 + 1, (t % 288) / 12, (t % 12) * 5);
    let events: Vec<String> = series.events.iter().map(|e| stamp(e.0)).collect();
    let labels = serde_json::json!({ "realSomething/a.csv": events });
    std::fs::write(dir.path().join("combined_labels.json"), labels.to_string()).unwrap();
    let out = driftwatch(&[
        "leiad",
        "simulate",
        data.to_str().unwrap(),
        "--seeds",
        "1",
        "--max-windows",
        "2",
        "--checkpoints",
        "2",
        "--json",
    ]);
    let lines = lines(&out);
    // ±5 samples around each of the three events.
    assert_eq!(lines[0]["dataset"]["anomalous_points"], 33);
    // Without the labels file the error says what is missing.
    std::fs::remove_file(dir.path().join("combined_labels.json")).unwrap();
    let out = driftwatch(&["leiad", "simulate", data.to_str().unwrap(), "--seeds", "1"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("combined_labels.json") && err.contains("--labels"), "{err}");
}

#[test]
fn simulate_refuses_a_csv_without_labels_and_bad_weights() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("x.csv");
    std::fs::write(&f, "value\n1\n2\n3\n").unwrap();
    let out = driftwatch(&["leiad", "simulate", f.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("label"), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(&f, "value,label\n1,0\n2,maybe\n").unwrap();
    let out = driftwatch(&["leiad", "simulate", f.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("row 3"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = driftwatch(&["leiad", "simulate", f.to_str().unwrap(), "--weights", "1,2"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("five"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn simulate_lists_the_labeled_windows_and_the_lfs_against_the_ground_truth() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_synthetic_set(dir.path());
    let args = [
        "leiad",
        "simulate",
        data.to_str().unwrap(),
        "--seeds",
        "1",
        "--max-windows",
        "4",
        "--checkpoints",
        "4",
        "--half-window",
        "100",
        "--show-labels",
        "--show-lfs",
    ];
    let json_args: Vec<&str> = args.iter().copied().chain(["--json"]).collect();
    let rows = lines(&driftwatch(&json_args));
    // Each round reports every gate candidate's AP next to LEIAD's.
    let round = rows.iter().find(|l| l.get("round").is_some()).unwrap();
    for m in ["gate_trees", "gate_anchored", "gate_supervised"] {
        assert!(round["ap"][m].as_f64().is_some(), "{m} missing in {round}");
    }
    let labels = rows.iter().find_map(|l| l.get("labels")).expect("a labels line").as_array().unwrap();
    assert_eq!(labels.len(), 4);
    // Each labeled window's anomalous points are the ground truth's in that window of its file.
    for l in labels {
        let file = data.join(l["series"].as_str().unwrap());
        let text = std::fs::read_to_string(file).unwrap();
        let truth: Vec<bool> = text.lines().skip(1).map(|r| r.rsplit(',').next().unwrap().trim() == "1").collect();
        let (a, b) = (l["start"].as_u64().unwrap() as usize, l["end"].as_u64().unwrap() as usize);
        assert_eq!(l["anomalous_points"].as_u64().unwrap() as usize, truth[a..b].iter().filter(|&&t| t).count(), "{l}");
    }
    let lfs = rows.iter().find_map(|l| l.get("lfs")).expect("an lfs line").as_array().unwrap();
    assert_eq!(lfs.iter().filter(|f| f["kind"].as_str().unwrap().starts_with("seed:")).count(), 6);
    for f in lfs {
        let p = &f["truth_precision_anomaly"];
        assert_eq!(p.is_null(), f["anomaly_votes"] == 0, "{f}");
        assert!(p.is_null() || (0.0..=1.0).contains(&p.as_f64().unwrap()), "{f}");
    }
    // The text form lists the same windows.
    let out = driftwatch(&args);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().filter(|l| l.starts_with("  label ")).count(), 4);
    assert!(text.lines().any(|l| l.starts_with("  lf ") && l.contains("truth: anomaly votes")), "{text}");
    // A bad EM weight is refused by name; `balanced` is accepted.
    let out = driftwatch(&["leiad", "simulate", data.to_str().unwrap(), "--set", "em_unlabeled_weight=-1"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("em_unlabeled_weight"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let balanced: Vec<&str> = json_args.iter().copied().chain(["--set", "em_unlabeled_weight=balanced"]).collect();
    assert!(lines(&driftwatch(&balanced)).iter().any(|l| l.get("summary").is_some()));
}

#[test]
fn simulate_suite_runs_each_category_as_its_own_pool_and_prints_one_table_with_the_mean() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("suite");
    for (name, seed) in [("alpha", "3"), ("beta", "4")] {
        let out = driftwatch(&[
            "leiad",
            "synth",
            root.join(name).to_str().unwrap(),
            "--series",
            "2",
            "--len",
            "2000",
            "--seed",
            seed,
        ]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let args = [
        "leiad",
        "simulate",
        "--suite",
        root.to_str().unwrap(),
        "--seeds",
        "2",
        "--max-windows",
        "2",
        "--checkpoints",
        "1,2",
    ];
    let out = driftwatch(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    for row in
        ["| alpha | leiad |", "| beta | labels_prior |", "| mean over 2 | leiad_random |", "| alpha | anomaly_score |"]
    {
        assert!(text.contains(row), "{row} missing:\n{text}");
    }
    assert!(text.contains("LEIAD − method @2 [95% CI]"), "{text}");
    // Each category's pool is its own: the dataset lines name them, with every seed's AP.
    let datasets: Vec<&str> = text.lines().filter(|l| l.starts_with("dataset: ")).collect();
    assert_eq!(datasets.len(), 2, "{text}");
    assert!(datasets[0].contains("\"data\":\"alpha\"") && datasets[0].contains("\"seed_ap\""), "{}", datasets[0]);
    // JSON: round lines carry their category, and one suite line closes.
    let mut json = args.to_vec();
    json.push("--json");
    let rows = lines(&driftwatch(&json));
    assert!(rows.iter().any(|r| r["category"] == "beta" && r["windows_labeled"] == 2));
    let suite = &rows.last().unwrap()["suite"];
    assert!(suite["alpha"]["summary"]["2"]["leiad"]["ap"].is_number(), "{suite}");
    assert_eq!(suite["mean"]["2"]["labels_only"]["sets"], 2, "{suite}");
}
