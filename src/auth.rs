//! Access control's domain: API tokens with roles, who made a request, and the check of a
//! bearer token against storage (with a short-lived cache). Which role each route needs, and
//! the middleware that enforces it, are HTTP's (`http::auth`).
//!
//! * A token is `dwt_<key id>_<secret>` (8 and 32 random bytes, hex). Storage keeps the key id,
//!   the role and SHA-256 of the secret, never the secret; the check finds the row by key id
//!   and compares the hashes in constant time (`subtle`). The secrets are random, so a fast
//!   hash is enough (no password stretching needed).
//! * Roles: `reader` (queries), `analyst` (queries and labeling), `ingest` (points only),
//!   `admin` (everything, including series configuration).
//! * `auth.mode = "open"` (the embedded default) needs no token and is refused at start-up
//!   unless the listener is on a loopback address; `"tokens"` requires a bearer token on every
//!   API route. Health, metrics, the OpenAPI document and the page's static files are public.
//! * Validated tokens are cached for [`CACHE_TTL`], so a revocation by another process (the
//!   `driftwatch token revoke` command) takes effect within that time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::storage::{Storage, StorageError};

/// How long a validated token is trusted without asking storage again.
pub const CACHE_TTL: Duration = Duration::from_secs(10);

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
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

/// Who made a request (in the request's extensions once authenticated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Token name (or the settings' principal in open mode).
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Whether a token proved the name (tokens mode); in open mode anyone may claim any name.
    pub authenticated: bool,
}

/// What a name recorded from an open-mode request carries: nobody proved it.
pub const UNAUTHENTICATED: &str = " (unauthenticated)";

impl Principal {
    /// The name recorded as the author of a change: with a token, the token's name, whatever
    /// the request claims; in open mode, the name the request gives (`claimed`, else the
    /// settings' principal) marked [`UNAUTHENTICATED`].
    pub fn author(&self, claimed: Option<&str>) -> String {
        if self.authenticated {
            self.name.clone()
        } else {
            format!("{}{UNAUTHENTICATED}", claimed.unwrap_or(&self.name))
        }
    }
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

/// Why a bearer token was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header.
    #[error("this service needs a bearer token: Authorization: Bearer dwt_…")]
    Missing,
    /// Not `Bearer dwt_<key id>_<secret>`.
    #[error("the token is malformed")]
    Malformed,
    /// No such token, a revoked one, or a wrong secret.
    #[error("the token is unknown or revoked")]
    Unknown,
    /// A stored role this version does not know.
    #[error("stored role {0:?}")]
    StoredRole(String),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The principal behind an `Authorization` header value, from the cache or from storage.
///
/// # Errors
/// [`AuthError`]: no, a malformed, an unknown or a revoked token; storage failures.
pub async fn authenticate(
    storage: &Storage,
    cache: &TokenCache,
    header_value: Option<&str>,
) -> Result<Principal, AuthError> {
    let value = header_value.ok_or(AuthError::Missing)?;
    let token = value.strip_prefix("Bearer ").unwrap_or("").trim();
    let (key, secret) = split(token).ok_or(AuthError::Malformed)?;
    let cache_key = sha256_hex(token);
    if let Some(p) = cache.get(&cache_key) {
        return Ok(p);
    }
    match storage.token(key).await? {
        Some(t) if t.revoked_at.is_none() && secret_matches(secret, &t.hash) => {
            let role = Role::parse(&t.role).ok_or_else(|| AuthError::StoredRole(t.role.clone()))?;
            let p = Principal { name: t.name, role, authenticated: true };
            cache.put(cache_key, p.clone());
            Ok(p)
        }
        _ => Err(AuthError::Unknown),
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
    }
}
