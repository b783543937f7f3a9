//! Storage of API tokens: key id, name, role and the secret's hash (see `crate::auth`).

use sqlx::Row;

use super::{Storage, StorageError};

/// A stored token.
#[derive(Debug, Clone, PartialEq, Eq)]
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

fn row(r: &sqlx::any::AnyRow) -> Result<TokenRow, StorageError> {
    Ok(TokenRow {
        key_id: r.try_get(0)?,
        name: r.try_get(1)?,
        role: r.try_get(2)?,
        hash: r.try_get(3)?,
        created_at: r.try_get(4)?,
        revoked_at: r.try_get(5)?,
    })
}

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
        let r = sqlx::query(&format!("SELECT {COLUMNS} FROM api_tokens WHERE key_id = $1"))
            .bind(key_id)
            .fetch_optional(&self.read)
            .await?;
        r.map(|r| row(&r)).transpose()
    }

    /// Every token, by name.
    ///
    /// # Errors
    /// A database failure.
    pub async fn tokens(&self) -> Result<Vec<TokenRow>, StorageError> {
        let rows =
            sqlx::query(&format!("SELECT {COLUMNS} FROM api_tokens ORDER BY name")).fetch_all(&self.read).await?;
        rows.iter().map(row).collect()
    }

    /// Series created by `who`.
    ///
    /// # Errors
    /// A database failure.
    pub async fn series_created_by(&self, who: &str) -> Result<i64, StorageError> {
        let r =
            sqlx::query("SELECT COUNT(*) FROM series WHERE created_by = $1").bind(who).fetch_one(&self.read).await?;
        Ok(r.try_get(0)?)
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
