//! The OpenAPI document at `/openapi.json`, generated from the handlers' `#[utoipa::path]`
//! annotations (paths, parameters, responses), so it moves with the code.

use utoipa::OpenApi;

use super::auth::required_role;
use super::error::{ErrorBody, ErrorDetail};
use crate::auth::Role;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "driftwatch",
        description = "Streaming change-interval and anomaly detection. Intervals are half-open [start, end) in stream indices and timestamps (epoch ms)."
    ),
    paths(
        super::ops::healthz,
        super::ops::readyz,
        super::ops::metrics,
        super::ingest::ingest,
        super::series::list_series,
        super::series::one_series,
        super::series::delete_series,
        super::series::reset_series,
        super::series::configure_series,
        super::series::series_points,
        super::series::series_scores,
        super::intervals::series_intervals,
        super::intervals::all_intervals,
        super::labeling::list_projects,
        super::labeling::create_project,
        super::labeling::one_project,
        super::labeling::suggestions,
        super::labeling::skip,
        super::labeling::window,
        super::labeling::labels,
        super::labeling::add_label,
        super::labeling::edit_label,
        super::labeling::undo_label,
        super::labeling::undo_newest,
        super::labeling::lfs,
        super::labeling::veto,
        super::labeling::refit,
        super::labeling::progress,
        super::labeling::export,
        super::labeling::interval_feedback,
    ),
    components(schemas(ErrorBody, ErrorDetail))
)]
struct ApiDoc;

/// The document as JSON. Every operation states the role it needs (`x-required-role`, a line
/// in its description, and a bearer `security` requirement), taken from
/// [`required_role`], the function the middleware enforces.
pub(super) fn document() -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document serialises");
    if let Some(paths) = doc["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            let Some(ops) = item.as_object_mut() else { continue };
            for (method, op) in ops.iter_mut() {
                let Ok(m) = method.to_ascii_uppercase().parse::<axum::http::Method>() else { continue };
                let role = required_role(&m, path);
                let name = role.map_or("public", Role::as_str);
                op["x-required-role"] = serde_json::json!(name);
                let line = match role {
                    None => "Role: public (no token).".to_owned(),
                    Some(r) => format!(
                        "Role: {} (with auth.mode = tokens; admin may use every route, analyst every reader route).",
                        r.as_str()
                    ),
                };
                let desc = op["description"].as_str().map_or(line.clone(), |d| format!("{d}\n\n{line}"));
                op["description"] = serde_json::json!(desc);
                if role.is_some() {
                    op["security"] = serde_json::json!([{"bearer": []}]);
                    if let Some(r) = op["responses"].as_object_mut() {
                        r.insert(
                            "401".into(),
                            serde_json::json!({"description": "No token, or an unknown or revoked one"}),
                        );
                        r.insert(
                            "403".into(),
                            serde_json::json!({"description": "The token's role may not use this route"}),
                        );
                    }
                }
            }
        }
    }
    doc["components"]["securitySchemes"] = serde_json::json!({"bearer": {"type": "http", "scheme": "bearer", "description": "dwt_… token from `driftwatch token create`"}});
    doc
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_route_is_documented() {
        let doc = super::document();
        let paths = doc["paths"].as_object().unwrap();
        for p in [
            "/healthz",
            "/readyz",
            "/metrics",
            "/v1/points",
            "/v1/series",
            "/v1/series/{name}",
            "/v1/series/{name}/reset",
            "/v1/series/{name}/config",
            "/v1/series/{name}/points",
            "/v1/series/{name}/scores",
            "/v1/series/{name}/intervals",
            "/v1/intervals",
            "/v1/labeling/projects",
            "/v1/labeling/projects/{project}",
            "/v1/labeling/projects/{project}/suggestions",
            "/v1/labeling/projects/{project}/suggestions/{id}/skip",
            "/v1/labeling/projects/{project}/window",
            "/v1/labeling/projects/{project}/labels",
            "/v1/labeling/projects/{project}/labels/{id}",
            "/v1/labeling/projects/{project}/undo",
            "/v1/labeling/projects/{project}/lfs",
            "/v1/labeling/projects/{project}/lfs/{id}/veto",
            "/v1/labeling/projects/{project}/refit",
            "/v1/labeling/projects/{project}/progress",
            "/v1/labeling/projects/{project}/export",
            "/v1/series/{name}/intervals/{start}/feedback",
        ] {
            assert!(paths.contains_key(p), "{p} missing from the OpenAPI document");
        }
        assert!(
            doc["paths"]["/v1/intervals"]["get"]["parameters"].as_array().unwrap().iter().any(|p| p["name"] == "since")
        );
        assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
        // Every operation states its role.
        for (path, item) in paths {
            for (method, op) in item.as_object().unwrap() {
                let role = op["x-required-role"].as_str().unwrap_or_else(|| panic!("{method} {path} has no role"));
                assert!(["public", "reader", "analyst", "ingest", "admin"].contains(&role), "{method} {path}: {role}");
                assert!(op["description"].as_str().unwrap().contains("Role: "), "{method} {path}");
            }
        }
        assert_eq!(doc["paths"]["/v1/points"]["post"]["x-required-role"], "ingest");
        // Every parameter says what it is, and every success that has a body has its schema.
        let mut missing = Vec::new();
        for (path, item) in paths {
            for (method, op) in item.as_object().unwrap() {
                for p in op["parameters"].as_array().into_iter().flatten() {
                    if p["description"].as_str().is_none_or(|d| d.trim().is_empty()) {
                        missing.push(format!("{method} {path}: parameter {} has no description", p["name"]));
                    }
                }
                for (status, r) in op["responses"].as_object().unwrap() {
                    let documented =
                        r["content"].as_object().is_some_and(|c| c.values().all(|m| m["schema"].is_object()));
                    if status.starts_with('2') && status != "204" && !documented {
                        missing.push(format!("{method} {path}: {status} has no schema"));
                    }
                }
            }
        }
        assert!(missing.is_empty(), "{missing:#?}");
        assert_eq!(doc["paths"]["/metrics"]["get"]["x-required-role"], "public");
    }
}
