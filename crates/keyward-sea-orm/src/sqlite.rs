//! SQLite files get a pool fit for a server by default: WAL mode and a few connections, so
//! reads go on while a write is in progress.

use sea_orm::ConnectOptions;

/// Connections [`SeaOrmStore::connect`] opens to a SQLite file by default.
const SQLITE_FILE_CONNECTIONS: u32 = 4;

/// Gives a writable SQLite file that `options` leave at SeaORM's one connection a WAL-mode
/// pool (see [`SeaOrmStore::connect`]).
pub(crate) fn sqlite_file_defaults(mut options: ConnectOptions) -> ConnectOptions {
    use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};

    if options.get_max_connections().is_some() || !is_writable_sqlite_file(options.get_url()) {
        return options;
    }
    options
        .max_connections(SQLITE_FILE_CONNECTIONS)
        // sqlx otherwise pings a pooled connection each time it is handed out, one more
        // round trip to the connection's thread per query; a connection to a file in this
        // process cannot have hung up.
        .test_before_acquire(false)
        .map_sqlx_sqlite_opts(|sqlite| {
            sqlite
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(std::time::Duration::from_secs(5))
        });
    options
}

/// Whether `url` names a SQLite database file opened for writing: not in memory, not
/// read-only, not immutable. Read the way sqlx reads it (whose own URL round trip panics on
/// in-memory names, so it is not used here).
fn is_writable_sqlite_file(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("sqlite:") else {
        return false;
    };
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (database, params) = rest.split_once('?').unwrap_or((rest, ""));
    if database.is_empty() || database == ":memory:" {
        return false;
    }
    params.split('&').all(|pair| {
        !matches!(
            pair.split_once('=').unwrap_or((pair, "")),
            ("mode", "memory" | "ro") | ("immutable", "true" | "1")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::is_writable_sqlite_file;

    #[test]
    fn sqlite_files_get_the_pool_and_memory_does_not() {
        for url in [
            "sqlite://books.db?mode=rwc",
            "sqlite:books.db",
            "sqlite:///var/lib/books/books.db?mode=rw&cache=shared",
        ] {
            assert!(is_writable_sqlite_file(url), "{url}");
        }
        for url in [
            "sqlite::memory:",
            "sqlite://:memory:",
            "sqlite://?mode=memory",
            "sqlite://books.db?mode=memory",
            "sqlite://books.db?mode=ro",
            "sqlite://books.db?immutable=true",
            "sqlite://",
            "postgres://localhost/books",
            "mysql://localhost/books",
        ] {
            assert!(!is_writable_sqlite_file(url), "{url}");
        }
    }
}
