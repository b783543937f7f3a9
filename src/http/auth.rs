//! The role each route needs and the middleware that enforces it. The OpenAPI document is
//! annotated from the same [`required_role`], so the two cannot disagree.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::state::ApiState;
use crate::auth::{Principal, Role, authenticate};

/// The role a route needs (`None`: public). `route` is the router's path template.
pub fn required_role(method: &Method, route: &str) -> Option<Role> {
    if matches!(route, "/healthz" | "/readyz" | "/metrics" | "/openapi.json" | "/" | "/ui" | "/ui/" | "/ui/{*file}") {
        return None;
    }
    if route == "/v1/points" {
        return Some(Role::Ingest);
    }
    if route.starts_with("/v1/labeling") {
        // Asking for suggestions claims windows: a labeling action.
        let read = *method == Method::GET && !route.ends_with("/suggestions");
        return Some(if read { Role::Reader } else { Role::Analyst });
    }
    if route.ends_with("/feedback") {
        return Some(Role::Analyst);
    }
    if *method == Method::GET {
        return Some(Role::Reader);
    }
    // Series configuration, reset, delete.
    Some(Role::Admin)
}

/// The middleware: finds the route's role, authenticates the bearer token (in `tokens` mode)
/// and refuses with 401 (no or bad token) or 403 (a role that may not).
pub async fn require(State(state): State<ApiState>, mut request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned());
    let Some(route) = route else { return next.run(request).await };
    let Some(need) = required_role(request.method(), &route) else { return next.run(request).await };
    let settings = &state.service.settings;
    if !settings.auth.tokens() {
        request.extensions_mut().insert(Principal {
            name: settings.principal.clone(),
            role: Role::Admin,
            authenticated: false,
        });
        return next.run(request).await;
    }
    let value = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    match authenticate(&state.service.storage, &state.tokens, value).await {
        Ok(p) if p.role.allows(need) => {
            request.extensions_mut().insert(p);
            next.run(request).await
        }
        Ok(p) => ApiError::forbidden(format!(
            "token {:?} has role {}; {} {route} needs {}",
            p.name,
            p.role.as_str(),
            request.method(),
            need.as_str()
        ))
        .into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// The author a change is recorded under ([`Principal::author`]): with a token, the token's
/// name (whatever `claimed` says); without, the name the request gives, which must be 1 to 100
/// characters without control or invisible characters (else `400 invalid_author`).
pub(super) fn author(p: &Principal, claimed: Option<&str>) -> Result<String, ApiError> {
    if p.authenticated {
        return Ok(p.author(None));
    }
    match claimed {
        Some(c)
            if !c.trim().is_empty()
                && c.len() <= 100
                && !c.chars().any(|ch| ch.is_control() || crate::decode::is_invisible(ch)) =>
        {
            Ok(p.author(Some(c)))
        }
        _ => Err(ApiError::bad_request(
            "invalid_author",
            "without a token, give your name as author: 1 to 100 characters, without control or invisible characters",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_needs_the_documented_role() {
        use Role::*;
        assert_eq!(required_role(&Method::GET, "/metrics"), None);
        assert_eq!(required_role(&Method::POST, "/v1/points"), Some(Ingest));
        assert_eq!(required_role(&Method::GET, "/v1/labeling/projects/{project}/suggestions"), Some(Analyst));
        assert_eq!(required_role(&Method::GET, "/v1/labeling/projects/{project}/lfs"), Some(Reader));
        assert_eq!(required_role(&Method::PUT, "/v1/series/{name}/config"), Some(Admin));
        assert_eq!(required_role(&Method::POST, "/v1/series/{name}/intervals/{start}/feedback"), Some(Analyst));
    }

    #[test]
    fn authors_are_the_tokens_name_or_marked_unauthenticated() {
        let token = Principal { name: "alice".into(), role: Role::Analyst, authenticated: true };
        assert_eq!(author(&token, Some("bob")).unwrap(), "alice", "a token's holder cannot write as another");
        assert_eq!(author(&token, None).unwrap(), "alice");
        let open = Principal { name: "local".into(), role: Role::Admin, authenticated: false };
        assert_eq!(author(&open, Some("bob")).unwrap(), "bob (unauthenticated)");
        assert!(author(&open, None).is_err() && author(&open, Some(" ")).is_err(), "open mode needs a name");
        assert!(author(&open, Some("b\u{202E}ob")).is_err());
        assert!(author(&open, Some(&"x".repeat(101))).is_err());
    }
}
