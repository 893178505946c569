//! The database: connection, migrations, entities, and the audit log writer.
//!
//! One code path for SQLite and PostgreSQL: every query goes through sea-orm's
//! parameterised builders; the only backend-specific lines are connection
//! options (SQLite's WAL journal).

pub mod audit;
pub mod audit_chain;
pub mod audit_sinks;
pub mod clients;
pub mod entities;
pub mod grants;
pub mod purge;
pub mod sessions;
pub mod statements;
pub mod users;

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbBackend, DbErr};

pub use audit::{AuditEvent, record as record_audit};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("cannot connect to the database at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("unsupported database URL {0}: use sqlite://FILE?mode=rwc or postgres://…")]
    UnsupportedUrl(String),
    #[error("database migration failed: {0}")]
    Migrate(String),
}

/// The URL with any password replaced, safe for messages and logs.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Opens the connection pool. SQLite files get the WAL journal (readers do not
/// block the writer; acknowledged writes survive a crash) and a busy timeout.
pub async fn connect(url: &str, max_connections: u32) -> Result<DatabaseConnection, StorageError> {
    if !(url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(StorageError::UnsupportedUrl(redact_url(url)));
    }
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.max_connections(max_connections)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(5))
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o| {
            // WAL with synchronous=NORMAL: a commit survives a crash of the
            // process (the WAL is in the OS's hands); only a power loss can
            // take the last commits. One fsync per checkpoint, not per write.
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true)
        });
    let mut db = Database::connect(opts)
        .await
        .map_err(|e| StorageError::Connect { url: redact_url(url), reason: connect_reason(&e) })?;
    db.set_metric_callback(|_| statements::seen());
    Ok(db)
}

/// A short reason without the driver's noise.
fn connect_reason(e: &DbErr) -> String {
    let text = e.to_string();
    text.strip_prefix("Connection Error: ").unwrap_or(&text).to_owned()
}

/// Applies every pending migration.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), StorageError> {
    Migrator::up(db, None).await.map_err(|e| StorageError::Migrate(e.to_string()))
}

/// A cheap round-trip for `/readyz`.
pub async fn ping(db: &DatabaseConnection) -> bool {
    db.ping().await.is_ok()
}

/// Whether the database is SQLite (for the start-up log only).
pub fn backend_name(db: &DatabaseConnection) -> &'static str {
    match db.get_database_backend() {
        DbBackend::Sqlite => "sqlite",
        DbBackend::Postgres => "postgres",
        _ => "other",
    }
}

/// A stored record that does not parse (edited by hand, or written by a
/// bug): the one error every repository of an aggregate (`clients`,
/// `users`, `sessions`, `grants`) gives for it, naming the record and the
/// field — never an "empty" value in its place.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the stored {record} {id:?} is damaged: {field} does not parse ({reason})")]
pub struct Damaged {
    /// "client", "account", "session", "refresh token", …
    pub record: &'static str,
    /// The record's id (never a secret or its hash).
    pub id: String,
    pub field: &'static str,
    pub reason: String,
}

/// Why an aggregate could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Db(#[from] DbErr),
    #[error(transparent)]
    Damaged(#[from] Damaged),
}

/// Is this a unique-constraint violation? (Used to turn a race between two
/// inserts into a clean "already exists" error.)
pub fn is_unique_violation(e: &DbErr) -> bool {
    matches!(e.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_)))
}

/// Starts a transaction that will write. On SQLite it is `BEGIN IMMEDIATE`:
/// a deferred transaction that reads before it writes cannot upgrade to a
/// writer once another connection has committed (SQLITE_BUSY_SNAPSHOT, which
/// the busy timeout does not wait out), so concurrent admin changes would
/// fail; taking the write lock up front makes them queue instead. PostgreSQL
/// ignores the option.
pub async fn begin_write(db: &DatabaseConnection) -> Result<sea_orm::DatabaseTransaction, DbErr> {
    use sea_orm::{SqliteTransactionMode, TransactionOptions, TransactionTrait};
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..Default::default()
    })
    .await
}

/// Commits a write transaction together with the audit record of its change
/// (none where the request turned out to change nothing): every audited
/// change commits through here, so its record goes into the same
/// transaction at the commit and cannot be left out of it.
pub async fn commit_audited(
    txn: sea_orm::DatabaseTransaction,
    record: impl Into<Option<AuditEvent>>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), DbErr> {
    if let Some(event) = record.into() {
        audit::record(&txn, event, now).await?;
    }
    txn.commit().await
}

/// Starts a read-only transaction that sees one consistent snapshot of the
/// database (PostgreSQL: REPEATABLE READ; SQLite: a deferred transaction,
/// whose snapshot is taken at its first read and kept, WAL mode). For
/// reports that read many rows while servers keep writing.
pub async fn begin_snapshot(db: &DatabaseConnection) -> Result<sea_orm::DatabaseTransaction, DbErr> {
    use sea_orm::{AccessMode, IsolationLevel, TransactionTrait};
    if db.get_database_backend() == DbBackend::Postgres {
        db.begin_with_config(Some(IsolationLevel::RepeatableRead), Some(AccessMode::ReadOnly)).await
    } else {
        db.begin().await
    }
}

/// A "contains this text" condition on a column whose `%`, `_` and `\\` in
/// the searched text match themselves only (not "anything").
pub fn contains_literally<C: sea_orm::ColumnTrait>(col: C, text: &str) -> sea_orm::Condition {
    use sea_orm::sea_query::{Expr, ExprTrait, LikeExpr};
    let escaped: String =
        text.chars().flat_map(|c| if matches!(c, '%' | '_' | '\\') { vec!['\\', c] } else { vec![c] }).collect();
    sea_orm::Condition::all().add(Expr::col(col).like(LikeExpr::new(format!("%{escaped}%")).escape('\\')))
}

/// Users whose address is `addr`, compared case-insensitively (the same on
/// SQLite and PostgreSQL: `lower(email) = lower(addr)`).
pub fn email_matches(addr: &str) -> sea_orm::Condition {
    use sea_orm::sea_query::{Expr, ExprTrait, Func};
    sea_orm::Condition::all()
        .add(Expr::expr(Func::lower(Expr::col(entities::user::Column::Email))).eq(addr.trim().to_lowercase()))
}

/// A new account's row, the one way every path makes one (administrator,
/// sign-up, upstream provider): enabled, without phone or postal address;
/// `email_verified` only where the address was just proved.
pub fn new_user_row(
    id: &str,
    username: &crate::domain::Username,
    email: Option<String>,
    display_name: Option<String>,
    email_verified: bool,
    now: chrono::DateTime<chrono::Utc>,
) -> entities::user::ActiveModel {
    use sea_orm::Set;
    entities::user::ActiveModel {
        id: Set(id.to_owned()),
        username: Set(username.to_string()),
        username_key: Set(username.key()),
        email: Set(email),
        display_name: Set(display_name),
        phone_number: Set(None),
        address: Set(None),
        disabled: Set(false),
        email_verified: Set(email_verified),
        created_at: Set(now),
        updated_at: Set(now),
        managed_by: Set(None),
    }
}

/// Why a backup was not written.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0} exists already; a backup never overwrites a file")]
    Exists(std::path::PathBuf),
    #[error(
        "on PostgreSQL, back up with pg_dump (e.g. `pg_dump --format=custom --file=FILE DATABASE_URL`): it is online and consistent; the master key is not in the database either"
    )]
    Postgres,
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// An online, consistent copy of an SQLite database into `file` (SQLite's
/// `VACUUM INTO`: one read transaction, writers are not blocked, the copy is
/// compacted). The master key is not in it. PostgreSQL: `pg_dump`.
pub async fn backup(db: &DatabaseConnection, file: &std::path::Path) -> Result<u64, BackupError> {
    if db.get_database_backend() != sea_orm::DatabaseBackend::Sqlite {
        return Err(BackupError::Postgres);
    }
    if file.exists() {
        return Err(BackupError::Exists(file.to_path_buf()));
    }
    let path = file.to_string_lossy().into_owned();
    sea_orm::ConnectionTrait::execute_raw(
        db,
        sea_orm::Statement::from_sql_and_values(sea_orm::DatabaseBackend::Sqlite, "VACUUM INTO ?", [path.into()]),
    )
    .await?;
    Ok(std::fs::metadata(file).map(|m| m.len()).unwrap_or(0))
}
