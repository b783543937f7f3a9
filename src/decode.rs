//! The one point format, shared by every input (HTTP bodies, Kafka messages, files), and its
//! decoder. Pure: bytes in, points and reasons out; no I/O, no clock.
//!
//! A message is one JSON object, either a point or a batch for one series:
//!
//! ```json
//! {"series": "cpu.host1", "ts": "2026-11-27T12:00:00Z", "value": 0.42}
//! {"series": "cpu.host1", "ts": 1795780800000, "values": [0.42, 17.0]}
//! {"series": "cpu.host1", "points": [[1795780800000, 0.42], ["2026-11-27T12:00:01Z", 0.40]]}
//! {"series": "cpu.host1", "points": [[1795780800000, [0.42, 17.0]]]}
//! ```
//!
//! `ts` is an RFC 3339 string or integer epoch milliseconds. A body is one message (JSON) or
//! one message per line (NDJSON); [`decode_body`] decodes either.
//!
//! Two kinds of failure, kept apart on purpose:
//! * a **message** that cannot be understood (not JSON, not an object, a missing or unknown
//!   field, a bad series name, a `points` that is not a list) is a [`DecodeError`] with a
//!   message a person can act on; the caller answers 4xx or dead-letters it;
//! * a **point** inside an understood message that is unusable (a value that is not a finite
//!   number, a timestamp that does not parse or lies outside years 1..=9999, a dimension
//!   different from the message's first point) is rejected and counted by [`RejectReason`]; the
//!   rest of the message goes on. The caller may also refuse points dated past its clock
//!   ([`reject_after`]; the decoder itself reads no clock).
//!
//! [`decode_lines`] decodes a body lazily, one message at a time, so a caller can stop early
//! (a body of millions of bad lines costs only as much work as the caller allows).

use std::fmt;

use serde_json::Value;
use thiserror::Error;

/// Longest accepted series name, in bytes.
pub const MAX_SERIES_LEN: usize = 256;
/// Most values one point may carry.
pub const MAX_DIM: usize = 64;
/// Earliest accepted timestamp: 0001-01-01T00:00:00Z, epoch milliseconds.
pub const MIN_TS_MS: i64 = -62_135_596_800_000;
/// Latest accepted timestamp: 9999-12-31T23:59:59.999Z, epoch milliseconds (so `i64::MAX` and
/// its neighbours, which no range query can reach, are never stored).
pub const MAX_TS_MS: i64 = 253_402_300_799_999;

/// One observation of a series.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Epoch milliseconds.
    pub ts_ms: i64,
    /// One value per dimension, all finite.
    pub values: Vec<f64>,
}

/// Why a point inside an understood message was set aside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// A value is missing, not a number, or not finite.
    InvalidValue,
    /// The timestamp is neither RFC 3339 nor integer epoch milliseconds.
    InvalidTimestamp,
    /// The point has a different number of values than the message's first point.
    DimensionMismatch,
    /// A batch entry is not a `[ts, value]` or `[ts, [values]]` pair.
    MalformedPoint,
    /// The timestamp is further past the receiver's clock than it allows ([`reject_after`]).
    FutureTimestamp,
}

impl RejectReason {
    /// Every reason, for metrics.
    pub const ALL: [RejectReason; 5] = [
        RejectReason::InvalidValue,
        RejectReason::InvalidTimestamp,
        RejectReason::DimensionMismatch,
        RejectReason::MalformedPoint,
        RejectReason::FutureTimestamp,
    ];

    /// Stable name for metrics labels and API counts.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::InvalidValue => "invalid_value",
            RejectReason::InvalidTimestamp => "invalid_timestamp",
            RejectReason::DimensionMismatch => "dimension_mismatch",
            RejectReason::MalformedPoint => "malformed_point",
            RejectReason::FutureTimestamp => "future_timestamp",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Rejected points of one message, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rejected([u64; 5]);

impl Rejected {
    fn add(&mut self, r: RejectReason) {
        self.0[r as usize] += 1;
    }

    /// Count for one reason.
    pub fn get(&self, r: RejectReason) -> u64 {
        self.0[r as usize]
    }

    /// All rejected points.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Adds another message's counts.
    pub fn merge(&mut self, other: &Rejected) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
    }

    /// The non-zero counts as `3 invalid_value, 1 future_timestamp`, for messages to people.
    pub fn describe(&self) -> String {
        RejectReason::ALL
            .iter()
            .filter(|r| self.get(**r) > 0)
            .map(|r| format!("{} {}", self.get(*r), r.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Sets aside the points of `m` dated after `limit_ms` (counted as
/// [`RejectReason::FutureTimestamp`]); returns how many. The caller picks the limit (its clock
/// plus an allowed skew): one point dated in year 9999 would otherwise make every real point of
/// its series "late" for good.
pub fn reject_after(m: &mut Message, limit_ms: i64) -> u64 {
    let before = m.points.len();
    m.points.retain(|p| p.ts_ms <= limit_ms);
    let n = (before - m.points.len()) as u64;
    m.rejected.0[RejectReason::FutureTimestamp as usize] += n;
    n
}

/// A decoded message: the series, its usable points in message order, what was set aside.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Series name.
    pub series: String,
    /// Usable points.
    pub points: Vec<Point>,
    /// Points set aside, by reason.
    pub rejected: Rejected,
}

/// A message that cannot be understood.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// Not valid JSON.
    #[error("not valid JSON: {0}")]
    Json(String),
    /// Valid JSON, but not an object.
    #[error("a message must be a JSON object, got {0}")]
    NotAnObject(&'static str),
    /// A required field is absent.
    #[error("missing field {0:?}")]
    Missing(&'static str),
    /// A field this format does not have.
    #[error("unknown field {0:?} (fields are series, ts, value, values, points)")]
    Unknown(String),
    /// Fields that cannot go together or a field of the wrong type.
    #[error("{0}")]
    Shape(String),
    /// The series name is unusable.
    #[error("invalid series name: {0}")]
    Series(String),
    /// A Kafka message without a key (the key is the series id and decides the partition).
    #[error("the message has no key; the key must be the series id")]
    MissingKey,
    /// A Kafka message whose key names another series than its body.
    #[error("the message key {key:?} names another series than the body ({body:?})")]
    KeyMismatch {
        /// The key.
        key: String,
        /// The body's series.
        body: String,
    },
}

impl DecodeError {
    /// Stable name for metrics labels and dead-letter headers.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::Json(_) => "invalid_json",
            DecodeError::NotAnObject(_) => "not_an_object",
            DecodeError::Missing(_) => "missing_field",
            DecodeError::Unknown(_) => "unknown_field",
            DecodeError::Shape(_) => "invalid_shape",
            DecodeError::Series(_) => "invalid_series",
            DecodeError::MissingKey => "missing_key",
            DecodeError::KeyMismatch { .. } => "key_mismatch",
        }
    }

    /// Every reason, for metrics.
    pub const REASONS: [&'static str; 8] = [
        "invalid_json",
        "not_an_object",
        "missing_field",
        "unknown_field",
        "invalid_shape",
        "invalid_series",
        "missing_key",
        "key_mismatch",
    ];
}

/// An NDJSON line that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("line {line}: {error}")]
pub struct LineError {
    /// 1-based line number.
    pub line: usize,
    /// What was wrong.
    pub error: DecodeError,
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Decodes one message.
///
/// # Errors
/// [`DecodeError`] when the message as a whole cannot be understood.
pub fn decode_message(bytes: &[u8]) -> Result<Message, DecodeError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| DecodeError::Json(e.to_string()))?;
    decode_value(value)
}

/// Decodes one Kafka message. The key is the series id and is required: it decides the
/// partition, so it is what keeps one series on one partition, in order, on one instance. A
/// body without `"series"` takes it from the key; a body naming another series is refused.
///
/// # Errors
/// As [`decode_message`], plus an unusable key or a key/body mismatch.
pub fn decode_keyed(bytes: &[u8], key: Option<&[u8]>) -> Result<Message, DecodeError> {
    let key = match key {
        None => return Err(DecodeError::MissingKey),
        Some(k) => Some(
            series_name(Some(Value::String(
                String::from_utf8(k.to_vec())
                    .map_err(|_| DecodeError::Series("the message key is not UTF-8".into()))?,
            )))
            .map_err(|e| match e {
                DecodeError::Series(why) => DecodeError::Series(format!("the message key {why}")),
                other => other,
            })?,
        ),
    };
    let mut value: Value = serde_json::from_slice(bytes).map_err(|e| DecodeError::Json(e.to_string()))?;
    if let (Some(k), Value::Object(obj)) = (&key, &mut value) {
        match obj.get("series") {
            None => {
                obj.insert("series".into(), Value::String(k.clone()));
            }
            Some(Value::String(body)) if body != k => {
                return Err(DecodeError::KeyMismatch { key: k.clone(), body: body.clone() });
            }
            Some(_) => {}
        }
    }
    decode_value(value)
}

/// Decodes a body that is one JSON message, or NDJSON (one message per non-blank line). A body
/// whose first non-blank line is a whole JSON value followed by more lines is NDJSON.
/// Returns one result per message, so one bad line costs only itself. Everything is decoded:
/// callers that must bound their work use [`decode_lines`].
pub fn decode_body(bytes: &[u8]) -> Vec<Result<Message, LineError>> {
    decode_lines(bytes).collect()
}

/// [`decode_body`] one message at a time, in body order: stop consuming to stop decoding.
pub fn decode_lines(bytes: &[u8]) -> impl Iterator<Item = Result<Message, LineError>> + '_ {
    // One message (possibly pretty-printed over several lines)? Only a body that starts like
    // an object and has no line of its own that parses can be one (a cheap test first, so an
    // NDJSON body is not parsed twice).
    let whole = if looks_like_one_message(bytes) { serde_json::from_slice::<Value>(bytes).ok() } else { None };
    let single = whole.map(|value| decode_value(value).map_err(|error| LineError { line: 1, error }));
    let lines = single.is_none().then(|| {
        bytes
            .split(|&b| b == b'\n')
            .enumerate()
            .filter(|(_, line)| line.iter().any(|b| !b.is_ascii_whitespace()))
            .map(|(i, line)| decode_message(line).map_err(|error| LineError { line: i + 1, error }))
    });
    single.into_iter().chain(lines.into_iter().flatten())
}

/// Whether the body can be a single JSON value: it is one line, or its first non-blank line
/// does not parse on its own (a pretty-printed message).
fn looks_like_one_message(bytes: &[u8]) -> bool {
    let mut lines = bytes.split(|&b| b == b'\n').filter(|l| l.iter().any(|b| !b.is_ascii_whitespace()));
    match (lines.next(), lines.next()) {
        (None, _) | (Some(_), None) => true,
        (Some(first), Some(_)) => serde_json::from_slice::<serde::de::IgnoredAny>(first).is_err(),
    }
}

fn decode_value(value: Value) -> Result<Message, DecodeError> {
    let Value::Object(mut obj) = value else {
        return Err(DecodeError::NotAnObject(kind(&value)));
    };
    if let Some(k) = obj.keys().find(|k| !matches!(k.as_str(), "series" | "ts" | "value" | "values" | "points")) {
        return Err(DecodeError::Unknown(k.clone()));
    }
    let series = series_name(obj.remove("series"))?;
    let mut rejected = Rejected::default();
    let mut points = Vec::new();
    if let Some(batch) = obj.remove("points") {
        if let Some(k) = ["ts", "value", "values"].into_iter().find(|k| obj.contains_key(*k)) {
            return Err(DecodeError::Shape(format!("a batch has \"points\" only; {k:?} is for a single point")));
        }
        let Value::Array(entries) = batch else {
            return Err(DecodeError::Shape(format!(
                "\"points\" must be a list of [ts, value] pairs, got {}",
                kind(&batch)
            )));
        };
        points.reserve(entries.len());
        let mut dim = None;
        for entry in entries {
            match batch_point(entry) {
                Ok(p) => push_checked(&mut points, &mut dim, p, &mut rejected),
                Err(r) => rejected.add(r),
            }
        }
    } else {
        let ts = obj.remove("ts").ok_or(DecodeError::Missing("ts"))?;
        let values = match (obj.remove("value"), obj.remove("values")) {
            (Some(_), Some(_)) => return Err(DecodeError::Shape("give \"value\" or \"values\", not both".into())),
            (Some(v), None) => Ok(vec![v]),
            (None, Some(Value::Array(vs))) => Ok(vs),
            (None, Some(other)) => {
                Err(DecodeError::Shape(format!("\"values\" must be a list of numbers, got {}", kind(&other))))
            }
            (None, None) => Err(DecodeError::Missing("value")),
        }?;
        match point(&ts, &values) {
            Ok(p) => points.push(p),
            Err(r) => rejected.add(r),
        }
    }
    Ok(Message { series, points, rejected })
}

fn push_checked(points: &mut Vec<Point>, dim: &mut Option<usize>, p: Point, rejected: &mut Rejected) {
    let d = *dim.get_or_insert(p.values.len());
    if p.values.len() == d {
        points.push(p);
    } else {
        rejected.add(RejectReason::DimensionMismatch);
    }
}

fn series_name(v: Option<Value>) -> Result<String, DecodeError> {
    let s = match v {
        None => return Err(DecodeError::Missing("series")),
        Some(Value::String(s)) => s,
        Some(other) => return Err(DecodeError::Series(format!("must be a string, got {}", kind(&other)))),
    };
    if s.is_empty() {
        return Err(DecodeError::Series("is empty".into()));
    }
    if s.len() > MAX_SERIES_LEN {
        return Err(DecodeError::Series(format!("is {} bytes, at most {MAX_SERIES_LEN}", s.len())));
    }
    if s.chars().any(char::is_control) {
        return Err(DecodeError::Series("contains control characters".into()));
    }
    if let Some(c) = s.chars().find(|c| is_invisible(*c)) {
        return Err(DecodeError::Series(format!(
            "contains the invisible or bidirectional character U+{:04X}; names must read as they are",
            c as u32
        )));
    }
    Ok(s)
}

/// Characters that print as nothing or reorder the text around them (Unicode format characters,
/// bidirectional controls and isolates, zero-width and filler characters, variation selectors,
/// tags, line and paragraph separators): a name holding one can look like another name.
pub fn is_invisible(c: char) -> bool {
    matches!(c as u32,
        0x00AD | 0x034F | 0x061C | 0x115F | 0x1160 | 0x17B4 | 0x17B5 | 0x180B..=0x180F
        | 0x200B..=0x200F | 0x2028..=0x202E | 0x2060..=0x206F | 0x3164 | 0xFE00..=0xFE0F | 0xFEFF
        | 0xFFA0 | 0xFFF0..=0xFFFB | 0x1D173..=0x1D17A | 0xE0000..=0xE0FFF)
}

fn batch_point(entry: Value) -> Result<Point, RejectReason> {
    let Value::Array(pair) = entry else {
        return Err(RejectReason::MalformedPoint);
    };
    match pair.as_slice() {
        [ts, Value::Array(values)] => point(ts, values),
        [ts, value] => point(ts, std::slice::from_ref(value)),
        _ => Err(RejectReason::MalformedPoint),
    }
}

fn point(ts: &Value, values: &[Value]) -> Result<Point, RejectReason> {
    let ts_ms = timestamp(ts).ok_or(RejectReason::InvalidTimestamp)?;
    if values.is_empty() || values.len() > MAX_DIM {
        return Err(RejectReason::InvalidValue);
    }
    let values = values
        .iter()
        .map(|v| v.as_f64().filter(|x| x.is_finite()).ok_or(RejectReason::InvalidValue))
        .collect::<Result<Vec<f64>, _>>()?;
    Ok(Point { ts_ms, values })
}

/// A time written as text: integer epoch milliseconds or RFC 3339, in years 1..=9999 (as a
/// point's `ts`). A space where an RFC 3339 offset's `+` belongs (an unencoded `+` in a URL
/// query reads as a space) is taken as the `+`.
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim_start();
    if let Ok(ms) = s.parse::<i64>() {
        return Some(ms);
    }
    let fixed;
    let s = match s.rfind(' ') {
        Some(at) if at > 10 && s[at + 1..].len() == 5 => {
            fixed = format!("{}+{}", &s[..at], &s[at + 1..]);
            fixed.as_str()
        }
        _ => s.trim_end(),
    };
    timestamp(&Value::String(s.to_owned()))
}

/// RFC 3339 string or integer epoch milliseconds, in years 1..=9999 ([`MIN_TS_MS`],
/// [`MAX_TS_MS`]); sub-millisecond digits are truncated.
fn timestamp(v: &Value) -> Option<i64> {
    let ms = match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => {
            let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
            i64::try_from(t.unix_timestamp_nanos().div_euclid(1_000_000)).ok()
        }
        _ => None,
    }?;
    (MIN_TS_MS..=MAX_TS_MS).contains(&ms).then_some(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Message {
        decode_message(s.as_bytes()).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &str) -> String {
        decode_message(s.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn decodes_every_form_of_point_and_batch() {
        let m = ok(r#"{"series":"a","ts":"2026-11-27T12:00:00Z","value":0.5}"#);
        assert_eq!(m.points, vec![Point { ts_ms: 1_795_780_800_000, values: vec![0.5] }]);
        let m = ok(r#"{"series":"a","ts":1795780800123,"values":[1,2.5]}"#);
        assert_eq!(m.points, vec![Point { ts_ms: 1_795_780_800_123, values: vec![1.0, 2.5] }]);
        let m = ok(r#"{"series":"a","points":[[1000,1.0],["1970-01-01T00:00:02.5+00:00",2.0]]}"#);
        assert_eq!(m.points.iter().map(|p| p.ts_ms).collect::<Vec<_>>(), vec![1000, 2500]);
        let m = ok(r#"{"series":"a","points":[[1,[1,2]],[2,[3,4]]]}"#);
        assert_eq!(m.points[1].values, vec![3.0, 4.0]);
        assert_eq!(m.rejected.total(), 0);
        // Time zones and sub-millisecond digits.
        let m = ok(r#"{"series":"a","ts":"2026-11-27T13:00:00.000999+01:00","value":1}"#);
        assert_eq!(m.points[0].ts_ms, 1_795_780_800_000);
    }

    #[test]
    fn bad_points_in_a_good_batch_are_counted_by_reason_and_the_rest_kept() {
        let m = ok(r#"{"series":"a","points":[[1,1],[2,null],[3,"x"],["yesterday",1],[4,[1,2]],[5],7,[6,1e3]]}"#);
        assert_eq!(m.points.iter().map(|p| p.ts_ms).collect::<Vec<_>>(), vec![1, 6]);
        assert_eq!(m.rejected.get(RejectReason::InvalidValue), 2);
        assert_eq!(m.rejected.get(RejectReason::InvalidTimestamp), 1);
        assert_eq!(m.rejected.get(RejectReason::DimensionMismatch), 1);
        assert_eq!(m.rejected.get(RejectReason::MalformedPoint), 2);
        // A single bad point: the message is understood, the point rejected.
        let m = ok(r#"{"series":"a","ts":1.5,"value":1}"#);
        assert_eq!((m.points.len(), m.rejected.get(RejectReason::InvalidTimestamp)), (0, 1));
    }

    #[test]
    fn messages_that_cannot_be_understood_say_why() {
        assert!(err("{").starts_with("not valid JSON"));
        assert_eq!(err("[1,2]"), "a message must be a JSON object, got an array");
        assert_eq!(err(r#"{"ts":1,"value":1}"#), "missing field \"series\"");
        // Kafka: the key is the series when the body has none, and must agree when it has one.
        let m = decode_keyed(br#"{"ts":1,"value":2}"#, Some(b"k1")).unwrap();
        assert_eq!((m.series.as_str(), m.points.len()), ("k1", 1));
        assert_eq!(decode_keyed(br#"{"series":"k1","ts":1,"value":2}"#, Some(b"k1")).unwrap().series, "k1");
        let e = decode_keyed(br#"{"series":"other","ts":1,"value":2}"#, Some(b"k1")).unwrap_err();
        assert_eq!(e.reason(), "key_mismatch");
        assert!(e.to_string().contains("\"k1\"") && e.to_string().contains("\"other\""), "{e}");
        assert_eq!(decode_keyed(br#"{"series":"a","ts":1,"value":2}"#, None).unwrap_err().reason(), "missing_key");
        assert_eq!(decode_keyed(b"{", Some(b"k")).unwrap_err().reason(), "invalid_json");
        assert!(decode_keyed(br#"{"ts":1,"value":2}"#, Some(&[0xff])).unwrap_err().to_string().contains("not UTF-8"));
        assert!(decode_keyed(br#"{"ts":1,"value":2}"#, Some(b"")).unwrap_err().to_string().contains("key is empty"));
        assert_eq!(err(r#"{"series":"a","value":1}"#), "missing field \"ts\"");
        assert_eq!(err(r#"{"series":"a","ts":1}"#), "missing field \"value\"");
        assert_eq!(
            err(r#"{"series":"a","ts":1,"value":1,"unit":"s"}"#),
            "unknown field \"unit\" (fields are series, ts, value, values, points)"
        );
        assert_eq!(err(r#"{"series":"a","ts":1,"value":1,"values":[1]}"#), "give \"value\" or \"values\", not both");
        assert_eq!(
            err(r#"{"series":"a","ts":1,"points":[]}"#),
            "a batch has \"points\" only; \"ts\" is for a single point"
        );
        assert_eq!(
            err(r#"{"series":"a","points":{}}"#),
            "\"points\" must be a list of [ts, value] pairs, got an object"
        );
        assert_eq!(err(r#"{"series":"","ts":1,"value":1}"#), "invalid series name: is empty");
        assert_eq!(err(r#"{"series":7,"ts":1,"value":1}"#), "invalid series name: must be a string, got a number");
        assert!(err(&format!(r#"{{"series":"{}","ts":1,"value":1}}"#, "x".repeat(300))).contains("at most 256"));
        // Invisible and bidirectional characters would let one name pass for another.
        for bad in ["cpu\u{200B}.host1", "abc\u{202E}1gp.exe", "a\u{2066}b", "\u{FEFF}cpu", "a\u{E0041}"] {
            let e = err(&serde_json::json!({"series": bad, "ts": 1, "value": 1}).to_string());
            assert!(e.starts_with("invalid series name: contains the invisible"), "{bad:?}: {e}");
        }
        assert_eq!(ok(r#"{"series":"température.zürich-東京","ts":1,"value":1}"#).points.len(), 1);
        // Non-finite numbers are not JSON; the parser refuses them as a whole message.
        assert!(err(r#"{"series":"a","ts":1,"value":NaN}"#).starts_with("not valid JSON"));
    }

    #[test]
    fn timestamps_outside_years_1_to_9999_and_past_the_callers_limit_are_rejected() {
        let m = ok(&format!(
            r#"{{"series":"a","points":[[{},1],[{},1],["9999-12-31T23:59:59.999Z",1],[{},1],[{},1]]}}"#,
            i64::MAX,
            MAX_TS_MS + 1,
            MIN_TS_MS - 1,
            MIN_TS_MS
        ));
        assert_eq!(m.points.iter().map(|p| p.ts_ms).collect::<Vec<_>>(), vec![MAX_TS_MS, MIN_TS_MS]);
        assert_eq!(m.rejected.get(RejectReason::InvalidTimestamp), 3);
        let mut m = ok(r#"{"series":"a","points":[[1000,1],[5000,2],[2000,3]]}"#);
        assert_eq!(reject_after(&mut m, 2000), 1);
        assert_eq!(m.points.iter().map(|p| p.ts_ms).collect::<Vec<_>>(), vec![1000, 2000]);
        assert_eq!(m.rejected.describe(), "1 future_timestamp");
    }

    #[test]
    fn lines_decode_lazily_so_a_caller_can_stop() {
        let mut body = b"{\"series\":\"a\",\"ts\":1,\"value\":1}\n".to_vec();
        body.extend(b"x\n".repeat(1000));
        let mut it = decode_lines(&body);
        assert!(it.next().unwrap().is_ok());
        assert_eq!(it.next().unwrap().unwrap_err().line, 2);
        assert_eq!(decode_lines(&body).count(), 1001);
        // A pretty-printed message is still one message.
        assert_eq!(decode_lines(b"{\n \"series\": \"a\",\n \"ts\": 1, \"value\": 2\n}").count(), 1);
    }

    #[test]
    fn a_body_is_one_message_or_ndjson_and_one_bad_line_costs_only_itself() {
        let one = decode_body(b"{\n  \"series\": \"a\",\n  \"ts\": 1,\n  \"value\": 2\n}\n");
        assert_eq!(one.len(), 1);
        assert!(one[0].is_ok());
        let body = b"{\"series\":\"a\",\"ts\":1,\"value\":1}\n\n{\"series\":\"b\",\"ts\":1,\"value\":\n{\"series\":\"c\",\"points\":[[1,1],[2,2]]}\n";
        let r = decode_body(body);
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].as_ref().unwrap().series, "a");
        assert_eq!(r[1].as_ref().unwrap_err().line, 3);
        assert_eq!(r[2].as_ref().unwrap().points.len(), 2);
        assert!(decode_body(b"").is_empty());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = decode_body(&bytes);
            let _ = decode_message(&bytes);
        }

        #[test]
        fn encoded_batches_decode_to_the_same_points(
            series in "[a-z][a-z0-9._-]{0,20}",
            pts in proptest::collection::vec((MIN_TS_MS..=MAX_TS_MS, -1e12f64..1e12), 0..50),
        ) {
            let msg = serde_json::json!({"series": series, "points": pts.iter().map(|(t, v)| serde_json::json!([t, v])).collect::<Vec<_>>()});
            let m = decode_message(msg.to_string().as_bytes()).unwrap();
            proptest::prop_assert_eq!(m.series, series);
            proptest::prop_assert_eq!(m.points.len(), pts.len());
            for (p, (t, v)) in m.points.iter().zip(&pts) {
                proptest::prop_assert_eq!(p.ts_ms, *t);
                proptest::prop_assert_eq!(p.values[0], *v);
            }
        }
    }
}
