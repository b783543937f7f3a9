//! NAB's file formats, parsed from and rendered to text (no file access): data CSVs
//! (`timestamp,value`), `combined_windows.json`, `combined_labels.json`, and the results CSV a
//! detector leaves for NAB's own scorer (`timestamp,value,anomaly_score,label`).
//!
//! NAB's timestamps are naive `YYYY-MM-DD HH:MM:SS` (labels add `.ffffff`); they are read as UTC
//! and kept as epoch milliseconds.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

use crate::EvalError;

/// A NAB data file's columns.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NabSeries {
    /// Row timestamps, epoch milliseconds (UTC).
    pub timestamps: Vec<i64>,
    /// The `value` column.
    pub values: Vec<f64>,
}

fn ts_error(text: &str, reason: &str) -> EvalError {
    EvalError::Timestamp { text: text.to_string(), reason: reason.to_string() }
}

/// Parses `YYYY-MM-DD HH:MM:SS`, optionally followed by `.` and 1 to 9 digits of a second, as
/// UTC, to epoch milliseconds. A fraction that is not a whole number of milliseconds is refused
/// rather than rounded.
///
/// # Errors
/// [`EvalError::Timestamp`] for anything else, or a date or time that does not exist.
pub fn parse_timestamp(text: &str) -> Result<i64, EvalError> {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Result<u32, EvalError> {
        let part = b.get(range).ok_or_else(|| ts_error(text, "expected YYYY-MM-DD HH:MM:SS"))?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return Err(ts_error(text, "expected YYYY-MM-DD HH:MM:SS"));
        }
        Ok(part.iter().fold(0, |a, &d| a * 10 + u32::from(d - b'0')))
    };
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[10] != b' ' || b[13] != b':' || b[16] != b':' {
        return Err(ts_error(text, "expected YYYY-MM-DD HH:MM:SS"));
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    let mut nanos = 0u32;
    if b.len() > 19 {
        if b[19] != b'.' || b.len() == 20 || b.len() > 29 {
            return Err(ts_error(text, "a fraction of a second is '.' and 1 to 9 digits"));
        }
        let frac = digits(20..b.len())?;
        nanos = frac * 10u32.pow((29 - b.len()) as u32);
        if !nanos.is_multiple_of(1_000_000) {
            return Err(ts_error(text, "finer than a millisecond"));
        }
    }
    let month = Month::try_from(month as u8).map_err(|_| ts_error(text, "no such month"))?;
    let date = Date::from_calendar_date(year as i32, month, day as u8).map_err(|_| ts_error(text, "no such date"))?;
    let time = Time::from_hms_nano(hour as u8, minute as u8, second as u8, nanos)
        .map_err(|_| ts_error(text, "no such time of day"))?;
    let ms = PrimitiveDateTime::new(date, time).assume_utc().unix_timestamp_nanos() / 1_000_000;
    Ok(ms as i64)
}

/// Renders epoch milliseconds as NAB does: `YYYY-MM-DD HH:MM:SS` (UTC), with `.fff` only when the
/// milliseconds are not 0. Years outside 0..=9999 are written as the `time` crate writes them.
pub fn format_timestamp(ms: i64) -> String {
    let dt =
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let mut s = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    );
    if dt.millisecond() != 0 {
        let _ = write!(s, ".{:03}", dt.millisecond());
    }
    s
}

/// Parses a NAB CSV: a header naming a `timestamp` and a `value` column (other columns, as in a
/// results file, are skipped), then one row per line. Blank lines are skipped; `\r\n` is accepted.
///
/// # Errors
/// [`EvalError::Parse`] with the 1-based line of the first bad row or header.
pub fn parse_data_csv(text: &str) -> Result<NabSeries, EvalError> {
    let mut lines =
        text.lines().enumerate().map(|(i, l)| (i + 1, l.trim_end_matches('\r'))).filter(|(_, l)| !l.trim().is_empty());
    let (hline, header) = lines.next().ok_or(EvalError::Parse { line: 1, message: "empty CSV".into() })?;
    let cols: Vec<&str> = header.split(',').map(str::trim).collect();
    let find = |name: &str| {
        cols.iter()
            .position(|c| *c == name)
            .ok_or(EvalError::Parse { line: hline, message: format!("no {name:?} column in header {header:?}") })
    };
    let (ti, vi) = (find("timestamp")?, find("value")?);
    let mut out = NabSeries::default();
    for (line, l) in lines {
        let fields: Vec<&str> = l.split(',').map(str::trim).collect();
        if fields.len() != cols.len() {
            return Err(EvalError::Parse {
                line,
                message: format!("{} fields, header has {}", fields.len(), cols.len()),
            });
        }
        let t = parse_timestamp(fields[ti]).map_err(|e| EvalError::Parse { line, message: e.to_string() })?;
        let v: f64 = fields[vi]
            .parse()
            .map_err(|_| EvalError::Parse { line, message: format!("value {:?} is not a number", fields[vi]) })?;
        out.timestamps.push(t);
        out.values.push(v);
    }
    Ok(out)
}

fn json_object(text: &str) -> Result<serde_json::Map<String, serde_json::Value>, EvalError> {
    match serde_json::from_str(text) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        Ok(_) => Err(EvalError::Json("expected an object keyed by file".into())),
        Err(e) => Err(EvalError::Json(e.to_string())),
    }
}

fn json_timestamp(key: &str, v: &serde_json::Value) -> Result<i64, EvalError> {
    let s = v.as_str().ok_or_else(|| EvalError::Json(format!("{key}: expected a timestamp string, got {v}")))?;
    parse_timestamp(s).map_err(|e| EvalError::Json(format!("{key}: {e}")))
}

/// Parses `combined_windows.json`: `{"category/file.csv": [["start", "end"], ...], ...}` to
/// windows `(start, end)` in epoch milliseconds, keys sorted.
///
/// # Errors
/// [`EvalError::Json`] for invalid JSON, another shape, or a bad timestamp.
pub fn parse_windows_json(text: &str) -> Result<BTreeMap<String, Vec<(i64, i64)>>, EvalError> {
    json_object(text)?
        .iter()
        .map(|(key, v)| {
            let list = v.as_array().ok_or_else(|| EvalError::Json(format!("{key}: expected a list of windows")))?;
            let windows = list
                .iter()
                .map(|w| match w.as_array().map(Vec::as_slice) {
                    Some([a, b]) => Ok((json_timestamp(key, a)?, json_timestamp(key, b)?)),
                    _ => Err(EvalError::Json(format!("{key}: a window is [start, end], got {w}"))),
                })
                .collect::<Result<_, _>>()?;
            Ok((key.clone(), windows))
        })
        .collect()
}

/// Parses `combined_labels.json`: `{"category/file.csv": ["timestamp", ...], ...}` to the
/// labelled anomaly timestamps in epoch milliseconds, keys sorted.
///
/// # Errors
/// [`EvalError::Json`] for invalid JSON, another shape, or a bad timestamp.
pub fn parse_labels_json(text: &str) -> Result<BTreeMap<String, Vec<i64>>, EvalError> {
    json_object(text)?
        .iter()
        .map(|(key, v)| {
            let list = v.as_array().ok_or_else(|| EvalError::Json(format!("{key}: expected a list of timestamps")))?;
            let labels = list.iter().map(|t| json_timestamp(key, t)).collect::<Result<_, _>>()?;
            Ok((key.clone(), labels))
        })
        .collect()
}

/// Splits a `category/file.csv` key at its last `/`.
pub fn split_key(key: &str) -> Option<(&str, &str)> {
    key.rsplit_once('/')
}

/// Where NAB looks for a detector's results for the data file `category/file.csv`, relative to
/// its results folder: `detector/category/detector_file.csv`.
pub fn results_file_path(detector: &str, key: &str) -> String {
    match split_key(key) {
        Some((category, file)) => format!("{detector}/{category}/{detector}_{file}"),
        None => format!("{detector}/{detector}_{key}"),
    }
}

/// Renders one results file in NAB's layout, `timestamp,value,anomaly_score,label`, where label
/// is 1 for rows whose timestamp lies in a window (inclusive, as NAB's `CorpusLabel` marks them)
/// and 0 otherwise. NAB's `Corpus` and scorer read this back.
///
/// # Errors
/// [`EvalError::InvalidInput`] if the three columns differ in length.
pub fn render_results_csv(
    timestamps: &[i64],
    values: &[f64],
    scores: &[f64],
    windows: &[(i64, i64)],
) -> Result<String, EvalError> {
    if values.len() != timestamps.len() || scores.len() != timestamps.len() {
        return Err(EvalError::InvalidInput(format!(
            "{} timestamps, {} values, {} scores",
            timestamps.len(),
            values.len(),
            scores.len()
        )));
    }
    let mut out = String::with_capacity(48 * (timestamps.len() + 1));
    out.push_str("timestamp,value,anomaly_score,label\n");
    for ((&t, &v), &s) in timestamps.iter().zip(values).zip(scores) {
        let label = u8::from(windows.iter().any(|&(a, b)| a <= t && t <= b));
        let _ = writeln!(out, "{},{v},{s},{label}", format_timestamp(t));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_as_utc() {
        assert_eq!(parse_timestamp("1970-01-01 00:00:00"), Ok(0));
        assert_eq!(parse_timestamp("2014-02-19 10:50:00"), Ok(1_392_807_000_000));
        assert_eq!(parse_timestamp("2014-02-19 10:50:00.000000"), Ok(1_392_807_000_000));
        assert_eq!(parse_timestamp("2014-02-19 10:50:00.25"), Ok(1_392_807_000_250));
        assert_eq!(format_timestamp(1_392_807_000_000), "2014-02-19 10:50:00");
        assert_eq!(format_timestamp(1_392_807_000_250), "2014-02-19 10:50:00.250");
        // No daylight-saving gap: naive times are UTC (NAB's ec2_request_latency file repeats
        // 2014-03-09 03:00:00; both parse to the same instant).
        assert_eq!(
            parse_timestamp("2014-03-09 02:30:00").unwrap() + 1_800_000,
            parse_timestamp("2014-03-09 03:00:00").unwrap()
        );
    }

    #[test]
    fn bad_timestamps_are_refused() {
        for bad in [
            "",
            "2014-02-19",
            "2014-02-19T10:50:00",
            "2014-02-30 10:50:00",
            "2014-13-01 10:50:00",
            "2014-02-19 24:00:00",
            "2014-02-19 10:50:00.",
            "2014-02-19 10:50:00.0001",
            "2014-02-19 10:50:00Z",
            "2014-0a-19 10:50:00",
        ] {
            assert!(parse_timestamp(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn data_csv() {
        let text = "timestamp,value\r\n2015-02-26 21:42:53,104\r\n2015-02-26 21:47:53,1.5e2\r\n\n";
        let s = parse_data_csv(text).unwrap();
        assert_eq!(s.values, vec![104.0, 150.0]);
        assert_eq!(s.timestamps[1] - s.timestamps[0], 300_000);
        // A results file reads too: extra columns are skipped.
        let r = parse_data_csv("timestamp,value,anomaly_score,label\n2015-02-26 21:42:53,7,0.5,0\n").unwrap();
        assert_eq!(r.values, vec![7.0]);
        let e = parse_data_csv("timestamp,value\n2015-02-26 21:42:53,x\n").unwrap_err();
        assert!(matches!(e, EvalError::Parse { line: 2, .. }), "{e}");
        assert!(parse_data_csv("time,value\n").is_err());
        assert!(parse_data_csv("timestamp,value\n2015-02-26 21:42:53\n").is_err());
    }

    #[test]
    fn windows_and_labels_json() {
        let w = parse_windows_json(
            r#"{"b/y.csv": [], "a/x.csv": [["2014-04-10 07:15:00.000000", "2014-04-11 16:45:00.000000"]]}"#,
        )
        .unwrap();
        assert_eq!(w.keys().collect::<Vec<_>>(), ["a/x.csv", "b/y.csv"]);
        let (a, b) = w["a/x.csv"][0];
        assert_eq!(format_timestamp(a), "2014-04-10 07:15:00");
        assert_eq!(b - a, (33 * 60 + 30) * 60_000);
        assert!(w["b/y.csv"].is_empty());
        let l = parse_labels_json(r#"{"a/x.csv": ["2014-04-11 00:00:00"]}"#).unwrap();
        assert_eq!(format_timestamp(l["a/x.csv"][0]), "2014-04-11 00:00:00");
        assert!(parse_windows_json("[]").is_err());
        assert!(parse_windows_json(r#"{"a": [["2014-04-11 00:00:00"]]}"#).is_err());
        assert!(parse_labels_json(r#"{"a": [3]}"#).is_err());
        assert!(parse_labels_json("{").is_err());
    }

    #[test]
    fn results_csv_marks_window_rows() {
        let t0 = parse_timestamp("2014-04-01 00:00:00").unwrap();
        let ts: Vec<i64> = (0..4).map(|i| t0 + i * 300_000).collect();
        let csv = render_results_csv(&ts, &[1.0, 2.5, 3.0, 4.0], &[0.0, 0.5, 1.0, 0.25], &[(ts[1], ts[2])]).unwrap();
        assert_eq!(
            csv,
            "timestamp,value,anomaly_score,label\n\
             2014-04-01 00:00:00,1,0,0\n\
             2014-04-01 00:05:00,2.5,0.5,1\n\
             2014-04-01 00:10:00,3,1,1\n\
             2014-04-01 00:15:00,4,0.25,0\n"
        );
        // It parses back.
        assert_eq!(parse_data_csv(&csv).unwrap().timestamps, ts);
        assert!(render_results_csv(&ts, &[1.0], &[0.0], &[]).is_err());
        assert_eq!(
            results_file_path("driftwatch", "realKnownCause/nyc_taxi.csv"),
            "driftwatch/realKnownCause/driftwatch_nyc_taxi.csv"
        );
        assert_eq!(split_key("a/b/c.csv"), Some(("a/b", "c.csv")));
    }
}
