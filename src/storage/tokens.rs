//! Storage of API tokens: key id, name, role and the secret's hash (see `auth`).

use super::{Storage, StorageError};

/// A stored token.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TokenRow {
    /// Public key id.
    pub key_id: String,
    /// Unique name (the principal).
    pub name: String,
    /// Role name.
    pub role: String,
    /// SHA-256 of the secret, hex.
    pub hash: String,
    /// Creation time (epoch ms).
    pub created_at: i64,
    /// Revocation time, if revoked.
    pub revoked_at: Option<i64>,
}

const COLUMNS: &str = "key_id, name, role, hash, created_at, revoked_at";

impl Storage {
    /// Stores a token; `false` when the name is taken.
    ///
    /// # Errors
    /// A database failure.
    pub async fn create_token(&self, t: &TokenRow, created_by: &str) -> Result<bool, StorageError> {
        let done = sqlx::query(
            "INSERT INTO api_tokens (key_id, name, role, hash, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(&t.key_id)
        .bind(&t.name)
        .bind(&t.role)
        .bind(&t.hash)
        .bind(t.created_at)
        .bind(created_by)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The token with this key id.
    ///
    /// # Errors
    /// A database failure.
    pub async fn token(&self, key_id: &str) -> Result<Option<TokenRow>, StorageError> {
        Ok(sqlx::query_as(&format!("SELECT {COLUMNS} FROM api_tokens WHERE key_id = $1"))
            .bind(key_id)
            .fetch_optional(&self.read)
            .await?)
    }

    /// Every token, by name.
    ///
    /// # Errors
    /// A database failure.
    pub async fn tokens(&self) -> Result<Vec<TokenRow>, StorageError> {
        Ok(sqlx::query_as(&format!("SELECT {COLUMNS} FROM api_tokens ORDER BY name")).fetch_all(&self.read).await?)
    }

    /// Revokes the token named `name`; `false` when there is no such token in force.
    ///
    /// # Errors
    /// A database failure.
    pub async fn revoke_token(&self, name: &str, now: i64) -> Result<bool, StorageError> {
        let done = sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
