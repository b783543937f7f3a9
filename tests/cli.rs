//! The `driftwatch` binary as a user runs it: real files, real process, JSON on stdout, one-line
//! errors on stderr with a non-zero exit.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::driftwatch;
use serde_json::Value;

fn fixture(name: &str) -> String {
    common::fixture_path(name).display().to_string()
}

fn json_ok(out: &Output) -> Value {
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON object")
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn one_line_error(out: &Output) -> String {
    assert!(!out.status.success(), "expected failure, got {}", String::from_utf8_lossy(&out.stdout));
    let err = String::from_utf8_lossy(&out.stderr).trim_end().to_string();
    assert_eq!(err.lines().count(), 1, "error is not one line: {err}");
    err
}

#[test]
fn detect_prints_the_change_points_intervals_and_chosen_values() {
    let f = fixture("mean_shift.csv");
    let v = json_ok(&driftwatch(&["detect", &f, "--method", "icid", "--window", "50", "--alpha", "2"]));
    assert_eq!(v["n"], 3000);
    assert_eq!(v["d"], 1);
    assert_eq!(v["window"], 50);
    assert_eq!(v["change_points"], serde_json::json!([1000, 2000]));
    let iv = v["intervals"].as_array().unwrap();
    assert_eq!((iv[0]["start"].as_u64(), iv[0]["end"].as_u64()), (Some(1000), Some(1050)));
    assert!(iv.iter().all(|i| i["peak_score"].as_f64().unwrap() > v["threshold"].as_f64().unwrap()));
    assert!([2, 4, 8, 16, 32, 64].contains(&v["psi"].as_u64().unwrap()));
    assert_eq!(v["apen"].as_object().unwrap().len(), 6);
    assert!(v.get("scores").is_none(), "scores only with --scores");
    assert!(v["defaults"].get("window").is_none(), "the window was given");
}

#[test]
fn the_default_method_prints_row_precise_change_points_and_every_choice() {
    // The README's first command.
    let v = json_ok(&driftwatch(&["detect", &fixture("mean_shift.csv")]));
    assert_eq!(v["method"], "auto");
    assert_eq!(v["change_points"], serde_json::json!([1000, 2000]));
    for key in ["width", "psi", "z"] {
        assert!(v["defaults"][key].is_string(), "defaults.{key} missing: {}", v["defaults"]);
    }
    assert_eq!(v["width"], 1, "a mean shift has no repeating pattern: {}", v["defaults"]["width"]);
    let iv = v["intervals"].as_array().unwrap();
    assert_eq!(iv.len(), 2);
    for i in iv {
        let (start, end, cp) =
            (i["start"].as_u64().unwrap(), i["end"].as_u64().unwrap(), i["change_point"].as_u64().unwrap());
        assert!(start <= cp && cp < end, "{i}");
        assert!(i["peak_score"].as_f64().unwrap() > v["z"].as_f64().unwrap());
        assert!(i["p_value"].as_f64().unwrap() < 0.05);
    }
    // Settings given are used and not reported as defaults.
    let v = json_ok(&driftwatch(&["detect", &fixture("mean_shift.csv"), "--width", "4", "--psi", "16", "--z", "3"]));
    assert_eq!((v["width"].as_u64(), v["psi"].as_u64(), v["z"].as_f64()), (Some(4), Some(16), Some(3.0)));
    assert!(v["defaults"].get("width").is_none() && v["defaults"].get("psi").is_none());
}

#[test]
fn the_default_method_handles_files_too_short_for_icid() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(&dir, "short.csv", "x\n1\n2\n3\n");
    let v = json_ok(&driftwatch(&["detect", f.to_str().unwrap()]));
    assert_eq!(v["n"], 3);
    assert_eq!(v["change_points"], serde_json::json!([]));
    // Twenty rows with a clear level shift in the middle.
    let text: String = std::iter::once("x".to_string())
        .chain((0..20).map(|i| format!("{}", if i < 10 { 0.0 } else { 5.0 } + (i % 3) as f64 * 0.1)))
        .collect::<Vec<_>>()
        .join("\n");
    let f = write(&dir, "twenty.csv", &text);
    let v = json_ok(&driftwatch(&["detect", f.to_str().unwrap()]));
    assert_eq!(v["change_points"], serde_json::json!([10]), "{v}");
}

#[test]
fn detect_without_options_chooses_the_window_and_says_so() {
    let f = fixture("variance_shift.csv");
    let v = json_ok(&driftwatch(&["detect", &f, "--method", "icid", "--scores"]));
    assert_eq!(v["window"], 55);
    assert!(v["defaults"]["window"].as_str().unwrap().starts_with("55"));
    assert!(v["defaults"]["psi"].as_str().unwrap().starts_with("auto"));
    assert_eq!(v["scores"].as_array().unwrap().len(), 3000);
    // Every true change lies in a reported interval, give or take one window. (With w = 55 the
    // changes at 1000 and 2000 fall inside windows; the numpy reference reports the same
    // intervals, including one around row 550 that the data's own fluctuation causes.)
    let iv = v["intervals"].as_array().unwrap();
    for truth in [1000u64, 2000] {
        let covered =
            iv.iter().any(|i| i["start"].as_u64().unwrap() <= truth + 55 && truth < i["end"].as_u64().unwrap() + 55);
        assert!(covered, "{truth} not in {iv:?}");
    }
}

#[test]
fn detect_reads_selected_columns_and_the_halfopen_layout() {
    let dir = tempfile::tempdir().unwrap();
    let (x, _) = driftwatch_testkit::s2(3);
    let mut text = String::from("time,a,b\n");
    for (i, r) in x.chunks(2).enumerate() {
        text.push_str(&format!("{i},{},{}\n", r[0], r[1]));
    }
    let f = write(&dir, "s2.csv", &text);
    let f = f.to_str().unwrap();
    let v = json_ok(&driftwatch(&[
        "detect",
        f,
        "--method",
        "icid",
        "--columns",
        "a,b",
        "--window",
        "100",
        "--alpha",
        "1",
        "--layout",
        "halfopen",
        "--scores",
    ]));
    assert_eq!((v["n"].as_u64(), v["d"].as_u64()), (Some(3000), Some(2)));
    assert_eq!(v["columns"], serde_json::json!(["a", "b"]));
    assert_eq!(v["layout"], "halfopen");
    assert_eq!(v["windows"], 30);
    assert_eq!(v["scores"].as_array().unwrap().len(), 3000);
    let cps: Vec<u64> = v["change_points"].as_array().unwrap().iter().map(|c| c.as_u64().unwrap()).collect();
    assert!(cps.contains(&1000) && cps.contains(&2000), "{cps:?}");
    // Index selection picks the same columns.
    let w = json_ok(&driftwatch(&[
        "detect",
        f,
        "--method",
        "icid",
        "--columns",
        "1,2",
        "--window",
        "100",
        "--alpha",
        "1",
        "--layout",
        "halfopen",
    ]));
    assert_eq!(w["change_points"], v["change_points"]);
}

#[test]
fn results_do_not_depend_on_the_thread_count_or_the_nearest_centre_path() {
    let f = fixture("mean_shift.csv");
    let base =
        json_ok(&driftwatch(&["detect", &f, "--method", "icid", "--scores", "--threads", "1", "--path", "scalar"]));
    for extra in [["--threads", "2"], ["--path", "auto"]] {
        let mut args = vec!["detect", f.as_str(), "--method", "icid", "--scores"];
        args.extend(extra);
        assert_eq!(json_ok(&driftwatch(&args)), base, "{extra:?}");
    }
    // The default method too.
    let base = json_ok(&driftwatch(&["detect", &f, "--threads", "1", "--path", "scalar"]));
    for extra in [["--threads", "2"], ["--path", "auto"]] {
        let mut args = vec!["detect", f.as_str()];
        args.extend(extra);
        assert_eq!(json_ok(&driftwatch(&args)), base, "auto {extra:?}");
    }
    // Every level this CPU has, in every mode; a level it lacks is refused in one line.
    for mode in [&["--method", "auto"][..], &["--method", "icid", "--scores"], &["--mode", "online", "--scores"]] {
        let run = |level: &str| {
            let mut args = vec!["detect", f.as_str(), "--threads", "1", "--level", level];
            args.extend(mode);
            driftwatch(&args)
        };
        let base = json_ok(&run("scalar"));
        for level in ["portable", "avx2", "avx512"] {
            let out = run(level);
            if !out.status.success() {
                assert!(one_line_error(&out).contains("does not support"), "{level}");
                continue;
            }
            assert_eq!(json_ok(&out), base, "{mode:?} {level}");
        }
    }
}

#[test]
fn bench_engine_all_levels_runs_every_level_and_compares_it_with_portable() {
    let out =
        driftwatch(&["bench", "engine", "--points", "3000", "--series", "2", "--only", "change_only", "--all-levels"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let levels: Vec<&str> = lines
        .iter()
        .filter(|l| l["scenario"] == "uni_psi16_change_only")
        .map(|l| l["simd"].as_str().unwrap())
        .collect();
    assert_eq!(levels[0], "portable", "{lines:?}");
    assert!(levels.len() >= 2 || !cfg!(target_arch = "x86_64"), "x86-64 has AVX2 at least here: {levels:?}");
    for l in
        lines.iter().filter(|l| l["scenario"] == "mv8_psi16_change_only" || l["scenario"] == "uni_psi16_change_only")
    {
        let r = l["vs_portable"].as_f64().unwrap();
        assert!(r > 0.0 && (l["simd"] != "portable" || r == 1.0), "{l}");
    }
    let scalar: Vec<&Value> =
        lines.iter().filter(|l| l["scenario"].as_str().is_some_and(|s| s.ends_with("_scalar_path"))).collect();
    assert_eq!(scalar.len(), 2, "the scalar baselines run once");
    assert!(scalar.iter().all(|l| l["simd"] == "scalar" && l.get("vs_portable").is_none()));
    let gains = lines.iter().filter(|l| l.get("simd_gain").is_some()).count();
    assert_eq!(gains, 2 * levels.len(), "a gain over scalar per level and scenario");
}

#[test]
fn bench_engine_runs_on_the_forced_level_and_names_the_level_each_line_used() {
    let out = driftwatch(&[
        "bench",
        "engine",
        "--points",
        "3000",
        "--series",
        "2",
        "--only",
        "uni_psi16_change",
        "--level",
        "portable",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let simd_of = |name: &str| lines.iter().find(|l| l["scenario"] == name).map(|l| l["simd"].clone());
    assert_eq!(simd_of("uni_psi16_change_only"), Some("portable".into()), "{lines:?}");
    assert_eq!(simd_of("uni_psi16_change_only_scalar_path"), Some("scalar".into()), "{lines:?}");
    assert!(lines.iter().any(|l| l["simd_gain"] == "uni_psi16_change_only" && l["ratio"].as_f64().unwrap() > 0.0));
}

#[test]
fn the_service_refuses_an_unknown_simd_level_in_one_line() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_driftwatch"))
        .args(["config", "show"])
        .env("DRIFTWATCH__PIPELINE__SIMD", "avx9")
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(err.contains("pipeline.simd") && err.contains("avx512"), "{err}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_driftwatch"))
        .args(["config", "show"])
        .env("DRIFTWATCH__PIPELINE__SIMD", "portable")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("simd = \"portable\""));
}

#[test]
fn bad_input_gives_a_one_line_error_naming_file_row_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("nan.csv", "x\n1\n2\n3\nNaN\n5\n", "row 5: column 1 is not finite"),
        ("inf.csv", "1\n2\ninf\n", "row 3: column 1 is not finite"),
        ("ragged.csv", "a,b\n1,2\n3\n", "row 3: has 1 fields, expected 2"),
        ("text.csv", "v\n1\nabc\n", "row 3: column 1 is not a number"),
        ("empty.csv", "", "no numeric data rows"),
        ("header_only.csv", "a,b\n", "no numeric data rows"),
        ("short.csv", "x\n1\n2\n3\n", "iCID needs at least two windows"),
    ];
    for (name, text, reason) in cases {
        let f = write(&dir, name, text);
        let err = one_line_error(&driftwatch(&["detect", f.to_str().unwrap(), "--method", "icid", "--window", "3"]));
        assert!(err.contains(name), "{err}");
        assert!(err.contains(reason), "{name}: {err}");
    }
    let err = one_line_error(&driftwatch(&["detect", "/nonexistent/data.csv"]));
    assert!(err.contains("/nonexistent/data.csv"), "{err}");
    let f = fixture("mean_shift.csv");
    for method in ["auto", "icid"] {
        let err = one_line_error(&driftwatch(&["detect", &f, "--method", method, "--psi", "lots"]));
        assert!(err.contains("--psi"), "{err}");
        let err = one_line_error(&driftwatch(&["detect", &f, "--method", method, "--psi", "1000"]));
        assert!(err.contains("psi: must be between 1 and 256"), "{method}: {err}");
    }
    // iCID's options are refused by the default method, with the reason.
    let err = one_line_error(&driftwatch(&["detect", &f, "--window", "50"]));
    assert!(err.contains("--window applies to --method icid"), "{err}");
}

#[test]
fn online_mode_streams_the_file_and_reports_intervals_with_explanations() {
    let f = fixture("mean_shift.csv");
    let v = json_ok(&driftwatch(&["detect", &f, "--mode", "online", "--window", "50", "--scores"]));
    assert_eq!(v["mode"], "online");
    assert_eq!(v["warmup_points"], 500, "the default warm-up: 500 points");
    assert_eq!(v["change_points"], serde_json::json!([1000, 2000]));
    let iv = &v["intervals"][0];
    assert_eq!(
        (iv["start"].as_u64(), iv["end"].as_u64(), iv["detected_at"].as_u64(), iv["change_point"].as_u64()),
        (Some(1000), Some(1050), Some(1050), Some(1000))
    );
    let ex = &iv["explanation"];
    let (before, during) = (ex["before"]["mean"][0].as_f64().unwrap(), ex["during"]["mean"][0].as_f64().unwrap());
    assert!(during - before > 1.0, "mean 0 -> 2 at row 1000: before {before}, during {during}");
    assert_eq!(v["stats"]["points"], 3000);
    assert_eq!(v["window_scores"].as_array().unwrap().len(), 50, "(3000 - 500) / 50");
    assert_eq!(v["anomaly_scores"].as_array().unwrap().len(), 3000, "one per point, warm-up included");
    assert_eq!(v["anomaly_warmup_points"], 300, "the anomaly score's own warm-up");
    assert!(v["state_bytes"].as_u64().unwrap() < 128 * 1024);
    let events: Vec<String> =
        v["events"].as_array().unwrap().iter().map(|e| e.as_object().unwrap().keys().next().unwrap().clone()).collect();
    assert_eq!(events, vec!["WarmedUp", "Opened", "Closed", "Opened", "Closed"]);
}

#[test]
fn online_mode_refuses_a_file_shorter_than_warm_up_plus_a_window() {
    let dir = tempfile::tempdir().unwrap();
    let text: String =
        std::iter::once("x".to_string()).chain((0..520).map(|i| (i % 7).to_string())).collect::<Vec<_>>().join("\n");
    let f = write(&dir, "short.csv", &text);
    let err = one_line_error(&driftwatch(&["detect", f.to_str().unwrap(), "--mode", "online", "--window", "50"]));
    assert!(err.contains("short.csv") && err.contains("too few for online mode"), "{err}");
    // A shorter warm-up makes it fit.
    let v = json_ok(&driftwatch(&[
        "detect",
        f.to_str().unwrap(),
        "--mode",
        "online",
        "--window",
        "50",
        "--warmup-windows",
        "5",
    ]));
    assert_eq!(v["warmup_points"], 250);
}

#[test]
fn replay_embedded_twice_stores_once_and_counts_the_second_pass_as_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture("mean_shift.csv");
    let run = || {
        let out = Command::new(env!("CARGO_BIN_EXE_driftwatch"))
            .args(["replay", &f, "--series", "mean", "--batch", "700"])
            .env("DRIFTWATCH__STORAGE__DATA_DIR", dir.path())
            .output()
            .unwrap();
        json_ok(&out)
    };
    let first = run();
    assert_eq!((first["rows"].as_u64(), first["accepted"].as_u64()), (Some(3000), Some(3000)));
    let second = run();
    assert_eq!(
        (second["accepted"].as_u64(), second["duplicate"].as_u64(), second["late"].as_u64()),
        (Some(0), Some(1), Some(2999))
    );
    assert!(dir.path().join("driftwatch.db").is_file());
}

#[test]
fn bench_soak_smoke_runs_the_service_with_queries_and_labeling_and_prints_figures() {
    // The 10-minute soak is a separate command; this is its smoke size (12 s, fixed rate).
    let out = driftwatch(&[
        "bench",
        "soak",
        "--seconds",
        "12",
        "--rate",
        "20000",
        "--query-rate",
        "50",
        "--label-every-ms",
        "500",
        "--report-secs",
        "4",
    ]);
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("JSON lines")).collect();
    let periods = lines.iter().filter(|l| l["bench"] == "soak_period").count();
    assert!(periods >= 2, "{lines:?}");
    let summary = lines.iter().find(|l| l["bench"] == "soak").expect("a summary line");
    // The service took the load: every batch acknowledged, at about the rate asked for.
    assert_eq!(summary["ingest_failed"], 0, "{summary}");
    let achieved = summary["achieved_points_per_sec"].as_f64().unwrap();
    assert!(achieved > 10_000.0, "{summary}");
    assert!(summary["rss_mib_end"].as_f64().unwrap() > 1.0, "{summary}");
    assert_eq!(summary["query_failed"], 0, "{summary}");
    assert!(summary["query"]["n"].as_u64().unwrap() > 100, "{summary}");
    // The analyst's requests ran (project creation, suggestions, labels, progress).
    assert!(summary["labeling"]["n"].as_u64().unwrap() > 3, "{summary}");
    assert_eq!(summary["labeling_failed"], 0, "{summary}");
}

#[test]
fn eval_cpd_scores_a_generated_benchmark_folder_in_both_layouts_and_cross_validates() {
    use driftwatch_testkit::{Regime, regime_series};
    let dir = tempfile::tempdir().unwrap();
    // TSSB layout: desc.txt (with a WINDOW hint the detector must ignore) and NAME.txt files.
    let mut desc = String::new();
    let cases = [
        ("mean", Regime::Mean, vec![400, 800]),
        ("spread", Regime::Variance, vec![500]),
        ("rhythm", Regime::Frequency, vec![600]),
        ("none", Regime::Mean, vec![]),
    ];
    for (i, (name, kind, cps)) in cases.iter().enumerate() {
        let x = regime_series(*kind, 1200, cps, i as u64);
        let text: String = x.iter().map(|v| format!("{v}\n")).collect();
        write(&dir, &format!("{name}.txt"), &text);
        desc.push_str(&format!("{name},999{}\n", cps.iter().map(|c| format!(",{c}")).collect::<String>()));
    }
    write(&dir, "desc.txt", &desc);
    let v = json_ok(&driftwatch(&[
        "eval",
        "cpd",
        dir.path().to_str().unwrap(),
        "--json",
        "--folds",
        "2",
        "--grid",
        "z=2,4",
    ]));
    assert_eq!(v["series"], 4);
    for s in v["per_series"].as_array().unwrap() {
        assert!(s["covering"].as_f64().unwrap() > 0.9, "{s}");
        let (found, truth) = (s["found"].as_array().unwrap(), s["truth"][0].as_array().unwrap());
        assert_eq!(found.len(), truth.len(), "{s}");
    }
    assert_eq!(v["folds"].as_array().unwrap().len(), 2);
    assert_eq!(v["grid"].as_array().unwrap().len(), 2);
    let cv = v["cross_validated"]["covering"].as_f64().unwrap();
    assert!(cv > 0.9 && cv <= 1.0, "{cv}");
    // The paper's method on the same folder scores lower or equal, and its figures are reported too.
    let icid = json_ok(&driftwatch(&["eval", "cpd", dir.path().to_str().unwrap(), "--json", "--method", "icid"]));
    assert!(icid["defaults"]["covering"].as_f64().unwrap() <= v["defaults"]["covering"].as_f64().unwrap() + 1e-9);

    // CSV layout: files and a truth.json with several annotators for one of them.
    let csv = tempfile::tempdir().unwrap();
    let x = regime_series(Regime::Mean, 900, &[300], 9);
    let text: String = std::iter::once("value\n".to_string()).chain(x.iter().map(|v| format!("{v}\n"))).collect();
    write(&csv, "a.csv", &text);
    write(&csv, "truth.json", r#"{"a.csv": [[300], [298, 600]]}"#);
    let v = json_ok(&driftwatch(&["eval", "cpd", csv.path().to_str().unwrap(), "--json"]));
    let s = &v["per_series"][0];
    assert_eq!(s["found"], serde_json::json!([300]));
    // F1 against two annotators (TCPDBench): precision 1, recall (1 + 2/3) / 2.
    let (p, r) = (1.0, (1.0 + 2.0 / 3.0) / 2.0);
    assert!((s["f1"].as_f64().unwrap() - 2.0 * p * r / (p + r)).abs() < 1e-12, "{s}");
    // A folder without either layout is refused with the reason.
    let empty = tempfile::tempdir().unwrap();
    let err = one_line_error(&driftwatch(&["eval", "cpd", empty.path().to_str().unwrap()]));
    assert!(err.contains("neither desc.txt"), "{err}");
}

/// Issue 23 item 8: `serve` logging into a file (not a terminal) writes no ANSI colour codes.
#[test]
fn serve_logs_without_colour_codes_when_stderr_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log = dir.path().join("serve.log");
    let env = [
        ("DRIFTWATCH__STORAGE__DATA_DIR", dir.path().join("data").display().to_string()),
        ("DRIFTWATCH__HTTP__ADDR", format!("127.0.0.1:{port}")),
    ];
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut svc = common::Service::start(&log, &env);
    runtime.block_on(svc.ready(port));
    svc.terminate();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("INFO"), "the log holds lines: {text}");
    assert!(!text.contains('\u{1b}'), "colour codes in a log file: {text:?}");
}

/// Issue 23 item 2: `replay` refuses to load rows retention would delete at once, unless told.
#[test]
fn replay_refuses_rows_retention_would_delete_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    // 60 days of daily rows with NAB-style times: the default retention keeps 30.
    let mut text = String::from("timestamp,value\n");
    for d in 0..60 {
        let (month, day) = if d < 31 { (7, d + 1) } else { (8, d - 30) };
        text.push_str(&format!("2014-{month:02}-{day:02} 00:00:00,{}\n", d % 7));
    }
    let file = write(&dir, "long.csv", &text);
    let data = dir.path().join("data");
    let run = |extra: &[&str]| {
        let mut args = vec!["replay", file.to_str().unwrap(), "--series", "long", "--ts-column", "timestamp"];
        args.extend_from_slice(extra);
        Command::new(env!("CARGO_BIN_EXE_driftwatch"))
            .args(&args)
            .env("DRIFTWATCH__STORAGE__DATA_DIR", &data)
            .output()
            .unwrap()
    };
    let refused = run(&[]);
    let err = one_line_error(&refused);
    assert!(
        err.contains("retention would delete up to 29 of the 60 rows (those before 2014-07-30 00:00:00 UTC)")
            && err.contains("storage.retention_days_points = 30")
            && err.contains("--allow-retention-loss"),
        "{err}"
    );
    let loaded = run(&["--allow-retention-loss"]);
    let summary = json_ok(&loaded);
    assert_eq!(summary["accepted"], 60, "{summary}");
    assert!(String::from_utf8_lossy(&loaded.stderr).contains("warning: retention would delete"), "warns");
}
