//! Access control: API tokens with roles, the role each route needs, and the middleware that
//! checks them.
//!
//! * A token is `dwt_<key id>_<secret>` (8 and 32 random bytes, hex). Storage keeps the key id,
//!   the role and SHA-256 of the secret, never the secret; the check finds the row by key id
//!   and compares the hashes in constant time (`subtle`). The secrets are random, so a fast
//!   hash is enough (no password stretching needed).
//! * Roles: `reader` (queries), `analyst` (queries and labeling), `ingest` (points only),
//!   `admin` (everything, including series configuration). [`required_role`] maps every route
//!   to the role it needs, and the OpenAPI document is annotated from the same function, so the
//!   two cannot disagree.
//! * `auth.mode = "open"` (the embedded default) needs no token and is refused at start-up
//!   unless the listener is on a loopback address; `"tokens"` requires a bearer token on every
//!   API route. Health, metrics, the OpenAPI document and the page's static files are public.
//! * Validated tokens are cached for [`CACHE_TTL`], so a revocation by another process (the
//!   `driftwatch token revoke` command) takes effect within that time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::app::AppState;
use crate::http::ApiError;

/// How long a validated token is trusted without asking storage again.
pub const CACHE_TTL: Duration = Duration::from_secs(10);

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Queries.
    Reader,
    /// Queries and labeling.
    Analyst,
    /// Posting points.
    Ingest,
    /// Everything.
    Admin,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [Role::Reader, Role::Analyst, Role::Ingest, Role::Admin];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Analyst => "analyst",
            Role::Ingest => "ingest",
            Role::Admin => "admin",
        }
    }

    /// The role named `s`.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Whether a token with this role may use a route that needs `need`.
    pub fn allows(self, need: Role) -> bool {
        match self {
            Role::Admin => true,
            Role::Analyst => matches!(need, Role::Analyst | Role::Reader),
            Role::Reader => need == Role::Reader,
            Role::Ingest => need == Role::Ingest,
        }
    }
}

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

/// Who made a request (in the request's extensions once authenticated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Token name (or the settings' principal in open mode).
    pub name: String,
    /// Its role.
    pub role: Role,
}

/// A new token: the string to hand out once, and what storage keeps.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// `dwt_<key id>_<secret>`.
    pub token: String,
    /// Key id (hex).
    pub key_id: String,
    /// SHA-256 of the secret (hex).
    pub hash: String,
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// Mints a token from the operating system's random source.
///
/// # Errors
/// The random source failed.
pub fn mint() -> Result<NewToken, getrandom::Error> {
    let mut key = [0u8; 8];
    let mut secret = [0u8; 32];
    getrandom::getrandom(&mut key)?;
    getrandom::getrandom(&mut secret)?;
    let (key_id, secret) = (hex::encode(key), hex::encode(secret));
    Ok(NewToken { token: format!("dwt_{key_id}_{secret}"), hash: sha256_hex(&secret), key_id })
}

/// `(key id, secret)` of a well-formed token.
pub fn split(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix("dwt_")?;
    let (key, secret) = rest.split_once('_')?;
    (key.len() == 16 && secret.len() == 64 && (key.chars().chain(secret.chars())).all(|c| c.is_ascii_hexdigit()))
        .then_some((key, secret))
}

/// Whether `secret` hashes to `stored_hash`, in time independent of where they differ.
pub fn secret_matches(secret: &str, stored_hash: &str) -> bool {
    sha256_hex(secret).as_bytes().ct_eq(stored_hash.as_bytes()).into()
}

/// Recently validated tokens: token hash → (principal, when checked).
#[derive(Debug, Clone, Default)]
pub struct TokenCache {
    inner: Arc<Mutex<HashMap<String, (Principal, Instant)>>>,
}

impl TokenCache {
    fn get(&self, key: &str) -> Option<Principal> {
        let map = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(key).filter(|(_, at)| at.elapsed() < CACHE_TTL).map(|(p, _)| p.clone())
    }

    fn put(&self, key: String, p: Principal) {
        let mut map = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() > 10_000 {
            map.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
        }
        map.insert(key, (p, Instant::now()));
    }
}

async fn authenticate(state: &AppState, header_value: Option<&str>) -> Result<Principal, ApiError> {
    let Some(value) = header_value else {
        return Err(ApiError::unauthorized("this service needs a bearer token: Authorization: Bearer dwt_…"));
    };
    let token = value.strip_prefix("Bearer ").unwrap_or("").trim();
    let (key, secret) = split(token).ok_or_else(|| ApiError::unauthorized("the token is malformed"))?;
    let cache_key = sha256_hex(token);
    if let Some(p) = state.tokens.get(&cache_key) {
        return Ok(p);
    }
    let row = state.storage.token(key).await?;
    match row {
        Some(t) if t.revoked_at.is_none() && secret_matches(secret, &t.hash) => {
            let role = Role::parse(&t.role).ok_or_else(|| ApiError::internal(format!("stored role {:?}", t.role)))?;
            let p = Principal { name: t.name, role };
            state.tokens.put(cache_key, p.clone());
            Ok(p)
        }
        _ => Err(ApiError::unauthorized("the token is unknown or revoked")),
    }
}

/// The middleware: finds the route's role, authenticates the bearer token (in `tokens` mode)
/// and refuses with 401 (no or bad token) or 403 (a role that may not).
pub async fn require(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned());
    let Some(route) = route else { return next.run(request).await };
    let Some(need) = required_role(request.method(), &route) else { return next.run(request).await };
    if !state.settings.auth.tokens() {
        request.extensions_mut().insert(Principal { name: state.settings.principal.clone(), role: Role::Admin });
        return next.run(request).await;
    }
    let value = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    match authenticate(&state, value).await {
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
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_verify_and_near_misses_do_not() {
        let t = mint().unwrap();
        let (key, secret) = split(&t.token).unwrap();
        assert_eq!(key, t.key_id);
        assert!(secret_matches(secret, &t.hash));
        let mut wrong = secret.to_owned();
        wrong.replace_range(63..64, if secret.ends_with('0') { "1" } else { "0" });
        assert!(!secret_matches(&wrong, &t.hash));
        assert_ne!(mint().unwrap().token, t.token);
        for bad in ["", "dwt_", "dwt_abc_def", "xyz_0011223344556677_00", &t.token[..t.token.len() - 1]] {
            assert!(split(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn roles_nest_as_documented() {
        use Role::*;
        assert!(Admin.allows(Ingest) && Admin.allows(Analyst) && Admin.allows(Reader) && Admin.allows(Admin));
        assert!(Analyst.allows(Reader) && Analyst.allows(Analyst) && !Analyst.allows(Ingest) && !Analyst.allows(Admin));
        assert!(Reader.allows(Reader) && !Reader.allows(Analyst) && !Reader.allows(Ingest));
        assert!(Ingest.allows(Ingest) && !Ingest.allows(Reader));
        assert_eq!(required_role(&Method::GET, "/metrics"), None);
        assert_eq!(required_role(&Method::POST, "/v1/points"), Some(Ingest));
        assert_eq!(required_role(&Method::GET, "/v1/labeling/projects/{project}/suggestions"), Some(Analyst));
        assert_eq!(required_role(&Method::GET, "/v1/labeling/projects/{project}/lfs"), Some(Reader));
        assert_eq!(required_role(&Method::PUT, "/v1/series/{name}/config"), Some(Admin));
        assert_eq!(required_role(&Method::POST, "/v1/series/{name}/intervals/{start}/feedback"), Some(Analyst));
    }
}
