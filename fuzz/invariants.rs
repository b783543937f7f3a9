//! What the fuzz targets check beyond "no panic", shared by the libFuzzer targets
//! (`fuzz/fuzz_targets/*.rs`) and the corpus smoke test of the normal suite
//! (`tests/fuzz_corpus.rs`), which include this file as a module.
//!
//! Each check runs the decoder or reader under test and compares it with a small reference
//! written from the documented format (the module docs of `src/ingest/decode.rs`, the input
//! rules of `src/input.rs`), so a disagreement in any point, count, reason or row number fails,
//! not only a panic.

#![allow(dead_code)] // each includer uses some of the checks

use std::path::Path;

use driftwatch::decode::{
    DecodeError, MAX_DIM, MAX_SERIES_LEN, MAX_TS_MS, MIN_TS_MS, Message, Point, RejectReason, decode_body,
    decode_keyed, decode_message, is_invisible,
};
use driftwatch::input::{InputError, Table, parse_csv};
use serde_json::Value;

/// A target's check: panics when an invariant does not hold.
pub type Check = fn(&[u8]);

/// The fuzz targets, each with its check: the corpus directory name and the function.
pub const TARGETS: [(&str, Check); 3] =
    [("decode_keyed", check_decode_keyed), ("decode_body", check_decode_body), ("csv", check_csv)];

// ---------------------------------------------------------------------------------------------
// The point format: a reference decoder.

/// What the reference expects of one message.
#[derive(Debug, PartialEq)]
enum Expected {
    /// Understood: series, accepted points, rejected count per reason (in `RejectReason::ALL`
    /// order).
    Message(String, Vec<Point>, [u64; 5]),
    /// Not understood, with this reason.
    Error(&'static str),
}

fn reason_index(r: RejectReason) -> usize {
    RejectReason::ALL.iter().position(|&x| x == r).expect("every reason is listed")
}

/// RFC 3339 or integer epoch milliseconds, in years 1..=9999. The string case uses the same
/// parser as the decoder (the `time` crate): what is checked here is everything around it, and
/// the range of the result.
fn reference_ts(v: &Value) -> Option<i64> {
    let in_range = |ms: i64| (MIN_TS_MS..=MAX_TS_MS).contains(&ms).then_some(ms);
    match v {
        Value::Number(n) => n.as_i64().and_then(in_range),
        Value::String(s) => {
            let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
            let ms = i64::try_from(t.unix_timestamp_nanos().div_euclid(1_000_000)).ok()?;
            // RFC 3339 years are 0000..=9999, offsets under a day.
            assert!((-62_167_305_600_000..=253_402_387_199_999).contains(&ms), "{s:?} decoded to {ms} ms");
            in_range(ms)
        }
        _ => None,
    }
}

/// One point: a timestamp and its values, or why it is rejected.
fn reference_point(ts: &Value, values: &[Value]) -> Result<Point, RejectReason> {
    let ts_ms = reference_ts(ts).ok_or(RejectReason::InvalidTimestamp)?;
    if values.is_empty() || values.len() > MAX_DIM {
        return Err(RejectReason::InvalidValue);
    }
    let mut out = Vec::with_capacity(values.len());
    for v in values {
        match v {
            Value::Number(n) => {
                let x = n.as_f64().ok_or(RejectReason::InvalidValue)?;
                if !x.is_finite() {
                    return Err(RejectReason::InvalidValue);
                }
                out.push(x);
            }
            _ => return Err(RejectReason::InvalidValue),
        }
    }
    Ok(Point { ts_ms, values: out })
}

fn reference_series(v: Option<&Value>) -> Result<String, &'static str> {
    match v {
        None => Err("missing_field"),
        Some(Value::String(s))
            if !s.is_empty() && s.len() <= MAX_SERIES_LEN && !s.chars().any(|c| c.is_control() || is_invisible(c)) =>
        {
            Ok(s.clone())
        }
        Some(_) => Err("invalid_series"),
    }
}

/// The format as the module docs of `ingest::decode` state it.
fn reference_message(value: &Value) -> Expected {
    let Value::Object(obj) = value else { return Expected::Error("not_an_object") };
    if obj.keys().any(|k| !matches!(k.as_str(), "series" | "ts" | "value" | "values" | "points")) {
        return Expected::Error("unknown_field");
    }
    let series = match reference_series(obj.get("series")) {
        Ok(s) => s,
        Err(r) => return Expected::Error(r),
    };
    let mut rejected = [0u64; 5];
    let mut points = Vec::new();
    if let Some(batch) = obj.get("points") {
        if ["ts", "value", "values"].iter().any(|k| obj.contains_key(*k)) {
            return Expected::Error("invalid_shape");
        }
        let Value::Array(entries) = batch else { return Expected::Error("invalid_shape") };
        let mut dim = None;
        for entry in entries {
            let p = match entry {
                Value::Array(pair) if pair.len() == 2 => match &pair[1] {
                    Value::Array(values) => reference_point(&pair[0], values),
                    value => reference_point(&pair[0], std::slice::from_ref(value)),
                },
                _ => Err(RejectReason::MalformedPoint),
            };
            match p {
                Ok(p) if *dim.get_or_insert(p.values.len()) == p.values.len() => points.push(p),
                Ok(_) => rejected[reason_index(RejectReason::DimensionMismatch)] += 1,
                Err(r) => rejected[reason_index(r)] += 1,
            }
        }
    } else {
        let Some(ts) = obj.get("ts") else { return Expected::Error("missing_field") };
        let values = match (obj.get("value"), obj.get("values")) {
            (Some(_), Some(_)) => return Expected::Error("invalid_shape"),
            (Some(v), None) => vec![v.clone()],
            (None, Some(Value::Array(vs))) => vs.clone(),
            (None, Some(_)) => return Expected::Error("invalid_shape"),
            (None, None) => return Expected::Error("missing_field"),
        };
        match reference_point(ts, &values) {
            Ok(p) => points.push(p),
            Err(r) => rejected[reason_index(r)] += 1,
        }
    }
    Expected::Message(series, points, rejected)
}

fn entries(value: &Value) -> u64 {
    match value.get("points") {
        Some(Value::Array(a)) => a.len() as u64,
        _ => 1,
    }
}

/// Invariants of any decoded message, then agreement with the reference.
fn check_message(got: &Result<Message, DecodeError>, value: Option<&Value>) {
    match got {
        Ok(m) => {
            assert!(!m.series.is_empty() && m.series.len() <= MAX_SERIES_LEN, "series {:?}", m.series);
            assert!(!m.series.chars().any(char::is_control), "series {:?}", m.series);
            let dim = m.points.first().map(|p| p.values.len());
            for p in &m.points {
                assert!((1..=MAX_DIM).contains(&p.values.len()), "{} values", p.values.len());
                assert!(p.values.iter().all(|v| v.is_finite()), "accepted {:?}", p.values);
                assert_eq!(Some(p.values.len()), dim, "points of one message differ in dimension");
            }
            let value = value.expect("a decoded message is JSON");
            assert_eq!(m.points.len() as u64 + m.rejected.total(), entries(value), "accepted + rejected != entries");
            let rejected = RejectReason::ALL.map(|r| m.rejected.get(r));
            assert_eq!(
                Expected::Message(m.series.clone(), m.points.clone(), rejected),
                reference_message(value),
                "decoder and reference disagree"
            );
        }
        Err(e) => {
            assert!(DecodeError::REASONS.contains(&e.reason()), "unknown reason {}", e.reason());
            assert!(!e.to_string().is_empty());
            match value {
                None => assert_eq!(e.reason(), "invalid_json", "{e}"),
                Some(v) => assert_eq!(Expected::Error(e.reason()), reference_message(v), "{e}"),
            }
        }
    }
}

/// A Kafka record from fuzz bytes: a leading 0x00 means no key (the rest is the body);
/// otherwise the key is everything before the first newline and the body everything after it.
pub fn split_keyed(data: &[u8]) -> (Option<&[u8]>, &[u8]) {
    match data.split_first() {
        Some((0, body)) => (None, body),
        _ => match data.iter().position(|&b| b == b'\n') {
            Some(i) => (Some(&data[..i]), &data[i + 1..]),
            None => (Some(data), &[]),
        },
    }
}

/// `decode_keyed`: the key rules of the Kafka source on top of the point format.
pub fn check_decode_keyed(data: &[u8]) {
    let (key, body) = split_keyed(data);
    let got = decode_keyed(body, key);
    let Some(key) = key else {
        assert_eq!(got, Err(DecodeError::MissingKey));
        return;
    };
    let key_str = match std::str::from_utf8(key)
        .map_err(|_| "invalid_series")
        .and_then(|k| reference_series(Some(&Value::String(k.to_owned()))))
    {
        Ok(k) => k,
        Err(r) => {
            let e = got.expect_err("a bad key is refused");
            assert_eq!(e.reason(), r, "{e}");
            assert!(e.to_string().contains("key"), "{e}");
            return;
        }
    };
    let value: Option<Value> = serde_json::from_slice(body).ok();
    // The key is the series: a body without one takes it, a body naming another is refused.
    let effective = match value {
        Some(Value::Object(mut obj)) => match obj.get("series") {
            None => {
                obj.insert("series".into(), Value::String(key_str.clone()));
                Some(Value::Object(obj))
            }
            Some(Value::String(s)) if *s != key_str => {
                assert_eq!(got, Err(DecodeError::KeyMismatch { key: key_str, body: s.clone() }));
                return;
            }
            Some(_) => Some(Value::Object(obj)),
        },
        other => other,
    };
    check_message(&got, effective.as_ref());
    if let Ok(m) = &got {
        assert_eq!(m.series, key_str, "the key is the series");
    }
    // Without the key rules, the keyless decoder agrees on a body that names its series.
    if let Ok(m0) = decode_message(body) {
        assert_eq!(decode_keyed(body, Some(m0.series.as_bytes())), Ok(m0));
    }
}

/// `decode_body`: one JSON message, or NDJSON with one result per non-blank line.
pub fn check_decode_body(data: &[u8]) {
    let got = decode_body(data);
    if let Ok(value) = serde_json::from_slice::<Value>(data) {
        assert_eq!(got.len(), 1, "a single JSON value is one message");
        let r = got[0].clone().map_err(|e| {
            assert_eq!(e.line, 1);
            e.error
        });
        check_message(&r, Some(&value));
        return;
    }
    let lines: Vec<(usize, &[u8])> = data
        .split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, l)| l.iter().any(|b| !b.is_ascii_whitespace()))
        .map(|(i, l)| (i + 1, l))
        .collect();
    assert_eq!(got.len(), lines.len(), "one result per non-blank line");
    for (r, (line, bytes)) in got.iter().zip(lines) {
        let value: Option<Value> = serde_json::from_slice(bytes).ok();
        let r = r.clone().map_err(|e| {
            assert_eq!(e.line, line, "line number");
            assert!(e.to_string().starts_with(&format!("line {line}: ")), "{e}");
            assert!(!matches!(e.error, DecodeError::MissingKey | DecodeError::KeyMismatch { .. }));
            e.error
        });
        check_message(&r, value.as_ref());
    }
}

// ---------------------------------------------------------------------------------------------
// CSV.

/// Fuzz bytes to a `--columns` selection and a file: a first line `@cols:a,b,..` is the
/// selection, the rest the file; otherwise everything is the file and all columns are read.
pub fn split_csv(data: &[u8]) -> (Option<Vec<String>>, &[u8]) {
    if let Some(rest) = data.strip_prefix(b"@cols:") {
        let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        let cols = String::from_utf8_lossy(&rest[..end]).split(',').map(str::to_owned).collect();
        return (Some(cols), rest.get(end + 1..).unwrap_or(&[]));
    }
    (None, data)
}

const FILE: &str = "fuzz.csv";

/// The input rules of `src/input.rs` for files without quotes: records end at `\n`, `\r\n` or
/// `\r`; fields are split at commas and trimmed; empty and whitespace-only lines are skipped;
/// the first other line is a header when any field is not a number.
fn reference_csv(text: &str, columns: Option<&[String]>) -> Result<Table, String> {
    // Split at every line end; a record's line is one more than the `\n`s before it (how the csv
    // reader counts: a lone `\r` ends a record but not a line).
    let bytes = text.as_bytes();
    let mut numbered = Vec::new();
    let (mut start, mut line, mut i) = (0, 1, 0);
    while i <= bytes.len() {
        if i == bytes.len() || matches!(bytes[i], b'\r' | b'\n') {
            numbered.push((line, &text[start..i]));
            if i < bytes.len() && bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
                i += 1;
            }
            if i < bytes.len() && bytes[i] == b'\n' {
                line += 1;
            }
            start = i + 1;
        }
        i += 1;
    }
    let mut names: Option<Vec<String>> = None;
    let mut width: Option<usize> = None;
    let mut selected: Option<Vec<usize>> = None;
    let (mut data, mut n, mut first) = (Vec::new(), 0usize, true);
    for (line, content) in numbered {
        if content.is_empty() {
            continue; // the csv reader skips empty lines
        }
        let fields: Vec<&str> = content.split(',').map(str::trim).collect();
        if fields.len() == 1 && fields[0].is_empty() {
            continue;
        }
        if std::mem::take(&mut first) && fields.iter().any(|f| f.parse::<f64>().is_err()) {
            names = Some(fields.iter().map(|f| (*f).to_owned()).collect());
            width = Some(fields.len());
            continue;
        }
        let w = *width.get_or_insert(fields.len());
        if fields.len() != w {
            return Err(format!("{FILE}: row {line}: has {} fields, expected {w}", fields.len()));
        }
        if selected.is_none() {
            selected = Some(match columns {
                None => (0..w).collect(),
                Some([]) => return Err(format!("{FILE}: --columns names no column")),
                Some(cols) => {
                    let mut out = Vec::new();
                    for c in cols {
                        if let Some(p) = names.as_ref().and_then(|ns| ns.iter().position(|x| x == c)) {
                            out.push(p);
                            continue;
                        }
                        match c.parse::<usize>() {
                            Ok(i) if i < w => out.push(i),
                            Ok(i) => {
                                return Err(format!(
                                    "{FILE}: column index {i} is out of range (the file has {w} columns)"
                                ));
                            }
                            Err(_) => return Err(format!("{FILE}: no column named {c:?}")),
                        }
                    }
                    out
                }
            });
        }
        for &c in selected.as_ref().expect("set above") {
            let f = fields[c];
            let v: f64 = f.parse().map_err(|_| {
                format!(
                    "{FILE}: row {line}: column {} is not a number: {f:?}{}",
                    c + 1,
                    driftwatch::input::NOT_A_NUMBER_HINT
                )
            })?;
            if !v.is_finite() {
                return Err(format!("{FILE}: row {line}: column {} is not finite: {f:?}", c + 1));
            }
            data.push(v);
        }
        n += 1;
    }
    if n == 0 {
        return Err(format!("{FILE}: no numeric data rows"));
    }
    let sel = selected.expect("set with the first data row");
    let names = names.map(|all| sel.iter().map(|&c| all[c].clone()).collect());
    Ok(Table { data, n, d: sel.len(), names, ts: None })
}

/// The reasons `parse_csv` gives, as the start of the message after the file (and row).
const CSV_REASONS: [&str; 7] = [
    "has ",
    "column ",
    "CSV parse error",
    "no numeric data rows",
    "--columns names no column",
    "no column named ",
    "column index ",
];

/// `parse_csv`: invariants of any result, a round trip of the values, and agreement with the
/// reference on files without quotes.
pub fn check_csv(data: &[u8]) {
    let (columns, file) = split_csv(data);
    let got = parse_csv(file, Path::new(FILE), columns.as_deref());
    let lines = file.iter().filter(|&&b| b == b'\n').count() + 1;
    match &got {
        Ok(t) => {
            assert!(t.n >= 1 && t.d >= 1, "{} x {}", t.n, t.d);
            assert_eq!(t.data.len(), t.n * t.d);
            assert!(t.data.iter().all(|v| v.is_finite()));
            if let Some(names) = &t.names {
                assert_eq!(names.len(), t.d);
            }
            if let Some(cols) = &columns {
                assert_eq!(t.d, cols.len(), "one column per selection");
            }
            // The values written back out read back the same, bit for bit.
            let text: String = t
                .data
                .chunks_exact(t.d)
                .map(|row| row.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(",") + "\n")
                .collect();
            let back = parse_csv(text.as_bytes(), Path::new(FILE), None).expect("written values read back");
            assert_eq!((back.n, back.d, back.names), (t.n, t.d, None));
            assert!(
                back.data.iter().zip(&t.data).all(|(a, b)| a.to_bits() == b.to_bits()),
                "round trip changed values"
            );
        }
        Err(e) => {
            let msg = e.to_string();
            let rest =
                msg.strip_prefix(&format!("{FILE}: ")).unwrap_or_else(|| panic!("{msg:?} does not name the file"));
            let reason = match e {
                InputError::Row { row, .. } => {
                    assert!((1..=lines).contains(row), "row {row} of {lines} lines: {msg}");
                    rest.strip_prefix(&format!("row {row}: ")).expect("names the row")
                }
                InputError::File { .. } => rest,
                InputError::Io { .. } => panic!("reading from memory cannot fail: {msg}"),
            };
            assert!(CSV_REASONS.iter().any(|r| reason.starts_with(r)), "unknown reason: {msg}");
        }
    }
    // Files without quotes have a simple grammar: compare with the reference.
    if let Ok(text) = std::str::from_utf8(file)
        && !text.contains('"')
    {
        let want = reference_csv(text, columns.as_deref());
        match (&got, &want) {
            (Ok(a), Ok(b)) => {
                assert_eq!((a.n, a.d, &a.names), (b.n, b.d, &b.names));
                assert!(a.data.iter().zip(&b.data).all(|(x, y)| x.to_bits() == y.to_bits()));
            }
            (Err(a), Err(b)) => assert_eq!(&a.to_string(), b),
            _ => panic!("parse_csv gave {got:?}, the reference {want:?}"),
        }
    }
}
