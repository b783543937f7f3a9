//! Request parts read the same way by every handler: a JSON body, a query string or path
//! segments, refused with `400 invalid_body` / `400 invalid_query` / `400 invalid_path` and a
//! message for people (the parameter or field and what it must be, never a parser's internals
//! such as "invalid digit found in string"); and [`Time`], the query parameters that take epoch
//! milliseconds or an RFC 3339 time, as ingest does.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A JSON body, or `400 invalid_body` (`413 body_too_large` past `http.max_body_bytes`).
pub(super) fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    b.map(|Json(v)| v).map_err(|e| match e {
        JsonRejection::JsonSyntaxError(e) => {
            ApiError::bad_request("invalid_body", format!("the body is not valid JSON{}", position(&e.body_text())))
        }
        JsonRejection::JsonDataError(e) => ApiError::bad_request("invalid_body", body_message(&e.body_text())),
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::bad_request("invalid_body", "the body must be JSON (Content-Type: application/json)")
        }
        JsonRejection::BytesRejection(e) if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::body_too_large()
        }
        _ => ApiError::bad_request("invalid_body", "the body could not be read"),
    })
}

/// A query string, or `400 invalid_query`.
pub(super) fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(v)| v).map_err(|e| ApiError::bad_request("invalid_query", query_message(&e.body_text())))
}

/// Path segments, refused with `400 invalid_path` (axum's own `Path` answers plain text).
#[derive(Debug)]
pub(super) struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(e) => {
                // A tuple's error names the segment by position: name it by the route's key.
                let keys = match axum::extract::RawPathParams::from_request_parts(parts, state).await {
                    Ok(raw) => raw.iter().map(|(k, _)| k.to_owned()).collect(),
                    Err(_) => Vec::new(),
                };
                Err(path_error(&e, &keys))
            }
        }
    }
}

fn path_error(e: &PathRejection, keys: &[String]) -> ApiError {
    use axum::extract::path::ErrorKind;
    let message = match e {
        PathRejection::FailedToDeserializePathParams(inner) => match inner.kind() {
            ErrorKind::ParseErrorAtKey { key, value, expected_type } => {
                format!("path segment {key} must be {}, not {value:?}", kind_of(expected_type))
            }
            ErrorKind::ParseErrorAtIndex { index, value, expected_type } => match keys.get(*index) {
                Some(key) => format!("path segment {key} must be {}, not {value:?}", kind_of(expected_type)),
                None => format!("path segment {} must be {}, not {value:?}", index + 1, kind_of(expected_type)),
            },
            ErrorKind::ParseError { value, expected_type } => {
                format!("a path segment must be {}, not {value:?}", kind_of(expected_type))
            }
            ErrorKind::InvalidUtf8InPathParam { key } => format!("path segment {key} is not UTF-8"),
            _ => "the path is not one of this API's routes".to_owned(),
        },
        _ => "the path is not one of this API's routes".to_owned(),
    };
    ApiError::bad_request("invalid_path", message)
}

/// What a Rust type name means to a client.
fn kind_of(rust_type: &str) -> &'static str {
    match rust_type.rsplit("::").next().unwrap_or(rust_type) {
        "i64" | "i32" | "u64" | "u32" | "usize" | "isize" => "an integer",
        "f64" | "f32" => "a number",
        "bool" => "true or false",
        _ => "text",
    }
}

/// ` (line 1, column 5)` from a serde_json message ending `at line 1 column 5`, or nothing.
fn position(text: &str) -> String {
    match text.rfind(" at line ") {
        Some(at) => {
            let mut words = text[at + 9..].split(' ');
            match (words.next(), words.next(), words.next()) {
                (Some(line), Some("column"), Some(col)) => format!(" (line {line}, column {col})"),
                _ => String::new(),
            }
        }
        None => String::new(),
    }
}

/// `Failed to deserialize query string: from: invalid digit found in string` becomes
/// `query parameter from: must be an integer`.
fn query_message(text: &str) -> String {
    let detail = text.strip_prefix("Failed to deserialize query string: ").unwrap_or(text);
    field_message("query parameter", detail)
}

/// A JSON data error (`Failed to deserialize the JSON body into the target type: series:
/// invalid type: integer `1`, expected a string at line 1 column 13`) without the prefix.
fn body_message(text: &str) -> String {
    let detail = text.strip_prefix("Failed to deserialize the JSON body into the target type: ").unwrap_or(text);
    let detail = match detail.rfind(" at line ") {
        Some(at) => &detail[..at],
        None => detail,
    };
    field_message("field", detail)
}

/// `path: reason` from serde, worded for a client: unknown and missing fields say so, and
/// the standard library's number parse errors become what the value must be.
fn field_message(what: &str, detail: &str) -> String {
    let (field, reason) = match detail.split_once(": ") {
        Some((f, r)) if !f.contains(' ') => (f, r),
        _ => ("", detail),
    };
    if let Some(rest) = reason.strip_prefix("unknown field ") {
        let (name, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        let allowed = match expected.strip_prefix("one of ") {
            Some(list) => format!(" (allowed: {})", list.replace('`', "")),
            None if !expected.is_empty() => format!(" (allowed: {})", expected.replace('`', "")),
            None => String::new(),
        };
        return format!("unknown {what} {}{allowed}", name.trim_matches('`'));
    }
    if let Some(rest) = reason.strip_prefix("missing field ") {
        return format!("{what} {} is required", rest.trim_matches('`'));
    }
    let reason = plain_reason(reason);
    if field.is_empty() || field == "." { reason } else { format!("{what} {field}: {reason}") }
}

/// The standard library's parse errors, as what the value must be.
fn plain_reason(reason: &str) -> String {
    let internal = [
        ("invalid digit found in string", "must be an integer"),
        ("cannot parse integer from empty string", "must be an integer, not empty"),
        ("number too large to fit in target type", "is too large"),
        ("number too small to fit in target type", "is too small"),
        ("invalid float literal", "must be a number"),
        ("provided string was not `true` or `false`", "must be true or false"),
    ];
    for (from, to) in internal {
        if reason.contains(from) {
            return to.to_owned();
        }
    }
    reason.to_owned()
}

/// A time in a query: epoch milliseconds (`1795780800000`) or RFC 3339
/// (`2026-11-27T12:00:00Z`; a `+` offset read as a space, as an unencoded `+` in a query is,
/// is taken as `+`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Time(pub i64);

impl<'de> serde::Deserialize<'de> for Time {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Time;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("epoch milliseconds or an RFC 3339 time such as 2026-11-27T12:00:00Z")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Time, E> {
                Ok(Time(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Time, E> {
                i64::try_from(v).map(Time).map_err(|_| E::custom("must be epoch milliseconds or an RFC 3339 time"))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Time, E> {
                crate::decode::parse_time(s).map(Time).ok_or_else(|| {
                    E::custom(format!(
                        "must be epoch milliseconds or an RFC 3339 time such as 2026-11-27T12:00:00Z, not {s:?}"
                    ))
                })
            }
        }
        d.deserialize_str(V)
    }
}

impl utoipa::PartialSchema for Time {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Int64)))
                    .description(Some("epoch milliseconds")),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::DateTime)))
                    .description(Some("RFC 3339")),
            )
            .into()
    }
}

impl utoipa::ToSchema for Time {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_parameter_and_what_it_must_be() {
        assert_eq!(
            query_message("Failed to deserialize query string: from: invalid digit found in string"),
            "query parameter from: must be an integer"
        );
        assert_eq!(
            query_message("Failed to deserialize query string: frm: unknown field `frm`, expected one of `from`, `to`"),
            "unknown query parameter frm (allowed: from, to)"
        );
        assert_eq!(
            query_message("Failed to deserialize query string: missing field `series`"),
            "query parameter series is required"
        );
        assert_eq!(
            body_message(
                "Failed to deserialize the JSON body into the target type: series: invalid type: integer `1`, expected a string at line 1 column 13"
            ),
            "field series: invalid type: integer `1`, expected a string"
        );
    }

    #[test]
    fn times_are_epoch_ms_or_rfc_3339() {
        #[derive(serde::Deserialize)]
        struct Q {
            t: Time,
        }
        let q = |s: &str| {
            let uri: axum::http::Uri = format!("/x?{s}").parse().unwrap();
            Query::<Q>::try_from_uri(&uri).map(|q| q.0.t.0).map_err(|e| e.body_text())
        };
        assert_eq!(q("t=1795780800000").unwrap(), 1_795_780_800_000);
        assert_eq!(q("t=2026-11-27T12:00:00Z").unwrap(), 1_795_780_800_000);
        assert_eq!(q("t=2026-11-27T13:00:00%2B01:00").unwrap(), 1_795_780_800_000);
        assert_eq!(q("t=2026-11-27T13:00:00+01:00").unwrap(), 1_795_780_800_000, "an unencoded +");
        assert_eq!(q("t=-5").unwrap(), -5);
        assert!(q("t=yesterday").unwrap_err().contains("RFC 3339"));
    }
}
