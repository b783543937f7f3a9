//! `driftwatch token create|list|revoke`: API tokens in the configured storage. The token is
//! printed once, on creation; storage keeps its key id, role and the hash of its secret.

use std::path::PathBuf;

use clap::Subcommand;
use std::path::Path;

use anyhow::Context;

use crate::auth::{Role, mint};
use crate::clock::now_ms;
use crate::config::Settings;

/// `driftwatch token ...`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a token and print it (only its hash is stored: keep it now).
    Create {
        /// Unique name; writes made with the token are recorded under it.
        #[arg(long)]
        name: String,
        /// What it may do: reader (queries), analyst (queries and labeling), ingest (points),
        /// admin (everything).
        #[arg(long, value_parser = role_parser())]
        role: Role,
        /// TOML settings file (environment variables override it).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// List tokens (names, roles, creation and revocation times; never secrets).
    List {
        /// TOML settings file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Revoke a token by name (running instances stop accepting it within 10 s).
    Revoke {
        /// The token's name.
        name: String,
        /// TOML settings file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// Parses a role by its stored name (`reader`, `analyst`, `ingest`, `admin`); `--help` lists them.
fn role_parser() -> impl clap::builder::TypedValueParser<Value = Role> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(Role::ALL.map(Role::as_str))
        .map(|name: String| Role::parse(&name).expect("one of the possible values"))
}

/// Runs a token command.
///
/// # Errors
/// Whatever the command reports.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Create { name, role, config } => create(&name, role, config.as_deref()),
        Command::List { config } => list(config.as_deref()),
        Command::Revoke { name, config } => revoke(&name, config.as_deref()),
    }
}
use crate::storage::{Storage, TokenRow};

fn with_storage<T>(
    config: Option<&Path>,
    f: impl AsyncFnOnce(Storage, Settings) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let settings = Settings::load(config, std::env::vars())?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        if settings.storage.url.is_none() {
            std::fs::create_dir_all(&settings.storage.data_dir)
                .with_context(|| format!("creating the data directory {}", settings.storage.data_dir.display()))?;
        }
        let storage = Storage::connect(&settings.storage_url(), 1).await.context("opening storage")?;
        f(storage, settings).await
    })
}

/// Creates a token and prints it.
///
/// # Errors
/// A taken or empty name, or storage failures.
pub fn create(name: &str, role: Role, config: Option<&Path>) -> anyhow::Result<()> {
    anyhow::ensure!(
        !name.is_empty() && name.len() <= 100 && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c)),
        "a token name is 1 to 100 letters, digits, '-', '_', '.' or '@'"
    );
    with_storage(config, async move |storage, settings| {
        let t = mint().map_err(|e| anyhow::anyhow!("no random source: {e}"))?;
        let row = TokenRow {
            key_id: t.key_id,
            name: name.to_owned(),
            role: role.as_str().to_owned(),
            hash: t.hash,
            created_at: now_ms(),
            revoked_at: None,
        };
        anyhow::ensure!(storage.create_token(&row, &settings.principal).await?, "a token named {name:?} exists");
        println!("{}", t.token);
        eprintln!(
            "Created token {name:?} with role {}. It is shown only now; send it as `Authorization: Bearer <token>`.",
            role.as_str()
        );
        if !settings.auth.tokens() {
            eprintln!(
                "Note: auth.mode is \"open\" here, so the service does not ask for tokens yet (set auth.mode = \"tokens\")."
            );
        }
        Ok(())
    })
}

/// Prints every token as one JSON line each (never the secret or its hash).
///
/// # Errors
/// Storage failures.
pub fn list(config: Option<&Path>) -> anyhow::Result<()> {
    with_storage(config, async |storage, _| {
        for t in storage.tokens().await? {
            println!(
                "{}",
                serde_json::json!({"name": t.name, "role": t.role, "created_at": t.created_at, "revoked_at": t.revoked_at})
            );
        }
        Ok(())
    })
}

/// Revokes a token by name.
///
/// # Errors
/// No such token in force, or storage failures.
pub fn revoke(name: &str, config: Option<&Path>) -> anyhow::Result<()> {
    with_storage(config, async move |storage, _| {
        anyhow::ensure!(storage.revoke_token(name, now_ms()).await?, "no token named {name:?} in force");
        eprintln!("Revoked token {name:?}; running instances refuse it within {} s.", crate::auth::CACHE_TTL.as_secs());
        Ok(())
    })
}
