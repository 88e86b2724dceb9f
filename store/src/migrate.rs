//! The migration files, embedded at build time, and the dialect translation
//! documented in `migrations/README.md`.

/// One numbered migration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    /// The number in the file name.
    pub version: i64,
    /// The rest of the file name, without `.sql`.
    pub name: &'static str,
    /// The file's text, untranslated.
    pub sql: &'static str,
}

/// `0000_schema_migrations.sql`: run before every migration run, never
/// recorded.
pub const BOOKKEEPING: &str = include_str!("../../migrations/0000_schema_migrations.sql");

/// All migrations, in order.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "init",
    sql: include_str!("../../migrations/0001_init.sql"),
}];

/// The schema version this binary expects.
pub fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// A SQL dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL.
    Postgres,
    /// SQLite.
    Sqlite,
}

/// Applies the dialect translation: keeps or drops `-- @postgres-only` /
/// `-- @sqlite-only` blocks (up to `-- @end`), and on SQLite rewrites
/// `BIGSERIAL PRIMARY KEY` to `INTEGER PRIMARY KEY AUTOINCREMENT`.
pub fn translate(sql: &str, dialect: Dialect) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut keep = true;
    for line in sql.lines() {
        match line.trim() {
            "-- @postgres-only" => keep = dialect == Dialect::Postgres,
            "-- @sqlite-only" => keep = dialect == Dialect::Sqlite,
            "-- @end" => keep = true,
            _ if keep => {
                if dialect == Dialect::Sqlite {
                    out.push_str(
                        &line.replace("BIGSERIAL PRIMARY KEY", "INTEGER PRIMARY KEY AUTOINCREMENT"),
                    );
                } else {
                    out.push_str(line);
                }
                out.push('\n');
            }
            _ => {}
        }
    }
    out
}

/// What a migration run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// Versions applied by this run, in order.
    pub applied: Vec<i64>,
    /// The schema version after the run.
    pub version: i64,
}

/// Compares the database's version with the binary's.
pub(crate) fn check_version(database: Option<i64>) -> crate::Result<i64> {
    let binary = latest_version();
    match database {
        None => Err(crate::Error::SchemaMissing),
        Some(d) if d < binary => Err(crate::Error::SchemaBehind {
            database: d,
            binary,
        }),
        Some(d) if d > binary => Err(crate::Error::SchemaAhead {
            database: d,
            binary,
        }),
        Some(d) => Ok(d),
    }
}
