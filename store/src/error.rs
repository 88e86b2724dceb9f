//! The crate's error type.

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// PostgreSQL reported an error (or the connection failed).
    #[error("postgres: {source}")]
    Postgres {
        /// The driver's error.
        #[from]
        source: tokio_postgres::Error,
    },
    /// No pooled PostgreSQL connection could be obtained.
    #[error("postgres pool: {source}")]
    Pool {
        /// The pool's error.
        #[from]
        source: deadpool_postgres::PoolError,
    },
    /// The pool could not be built from the configuration.
    #[error("postgres pool configuration: {source}")]
    PoolConfig {
        /// The builder's error.
        #[from]
        source: deadpool_postgres::BuildError,
    },
    /// SQLite reported an error.
    #[error("sqlite: {source}")]
    Sqlite {
        /// The driver's error.
        #[from]
        source: rusqlite::Error,
    },
    /// A blocking task panicked or was cancelled.
    #[error("blocking task: {source}")]
    Join {
        /// The runtime's error.
        #[from]
        source: tokio::task::JoinError,
    },
    /// The embedded store's directory could not be created.
    #[error("cannot create {path}: {source}")]
    Io {
        /// The directory.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The embedded store's connection lock was poisoned by a panic.
    #[error("embedded store lock poisoned")]
    Poisoned,
    /// The database has no schema yet (run `peering migrate`).
    #[error("database has no schema; run the migrations")]
    SchemaMissing,
    /// The database schema is older than this binary.
    #[error("database schema version {database} is older than {binary}; run the migrations")]
    SchemaBehind {
        /// Version in the database.
        database: i64,
        /// Version this binary expects.
        binary: i64,
    },
    /// The database schema is newer than this binary.
    #[error("database schema version {database} is newer than this binary's {binary}")]
    SchemaAhead {
        /// Version in the database.
        database: i64,
        /// Version this binary expects.
        binary: i64,
    },
    /// A change carries a value the registry model refuses.
    #[error("invalid change: {source}")]
    Invalid {
        /// What is wrong.
        #[from]
        source: peering_policy::Error,
    },
    /// An update or reference named a row that does not exist.
    #[error("{what} {key:?} not found")]
    NotFound {
        /// The kind of row.
        what: &'static str,
        /// Its key.
        key: String,
    },
    /// A value read from the database is not valid for the model.
    #[error("invalid value {value:?} in {table}.{column}")]
    InvalidData {
        /// Table.
        table: &'static str,
        /// Column.
        column: &'static str,
        /// The value.
        value: String,
    },
    /// A value read from the database has an unexpected SQL type.
    #[error("unexpected SQL type {found} in column {column}")]
    UnexpectedType {
        /// Column index.
        column: usize,
        /// What was found.
        found: &'static str,
    },
    /// The test harness could not run a PostgreSQL tool.
    #[error("test harness: {step}: {source} (install postgresql to get initdb and pg_ctl)")]
    HarnessIo {
        /// What it was doing.
        step: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A PostgreSQL tool run by the test harness failed.
    #[error("test harness: {step} exited with {code:?}")]
    HarnessFailed {
        /// What it was doing.
        step: &'static str,
        /// Exit code.
        code: Option<i32>,
    },
}

impl Error {
    /// True when the database could not be reached (as opposed to refusing a
    /// statement): the node keeps serving from its cached registry.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Postgres { source } => source.is_closed() || source.code().is_none(),
            Self::Pool { .. } => true,
            Self::Sqlite {
                source: rusqlite::Error::SqliteFailure(e, _),
            } => matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy
                    | rusqlite::ErrorCode::DatabaseLocked
                    | rusqlite::ErrorCode::CannotOpen
            ),
            _ => false,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
