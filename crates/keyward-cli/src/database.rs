//! Opening the application's database: only `migrate` may create a SQLite file, and every
//! other command first checks that keyward's tables are there.

use std::path::{Path, PathBuf};
use std::time::Duration;

use keyward_sea_orm::SeaOrmStore;
use sea_orm::{ConnectOptions, DatabaseConnection};
use sea_orm_migration::SchemaManager;

use crate::Failure;

/// The URL used when neither `--database-url` nor `DATABASE_URL` is given.
pub(crate) const DEFAULT_URL: &str = "sqlite://keyward.db?mode=rwc";

/// The tables every command but `migrate` needs.
const TABLES: [&str; 2] = ["keyward_keys", "keyward_settings"];

/// Connects to `url`. Unless `create` is set, a SQLite file must exist already: a mistyped
/// or missing `DATABASE_URL` is reported, not answered with a new, empty database.
pub(crate) async fn connect(url: &str, create: bool) -> Result<DatabaseConnection, Failure> {
    let file = sqlite_file(url);
    if let Some(path) = &file {
        if !create && !path.exists() {
            return Err(Failure::Database(format!(
                "there is no database at {}: set DATABASE_URL (or --database-url) to the \
                 application's database, or run `keyward migrate` to create keyward's tables \
                 there",
                path.display()
            )));
        }
    }
    let mut options = ConnectOptions::new(url);
    // An operator waiting on an unreachable database wants to know soon; one connection is
    // all a command needs.
    options
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(5))
        .max_connections(1)
        .sqlx_logging(false);
    #[cfg(feature = "sqlite")]
    if file.is_some() && !create {
        // Even if the file disappears after the check above.
        options.map_sqlx_sqlite_opts(|sqlite| sqlite.create_if_missing(false));
    }
    let store = SeaOrmStore::connect(options).await?;
    Ok(store.connection().clone())
}

/// Fails with a message that says to run `keyward migrate` unless keyward's tables exist.
pub(crate) async fn ensure_tables(db: &DatabaseConnection, url: &str) -> Result<(), Failure> {
    let manager = SchemaManager::new(db);
    let mut missing = Vec::new();
    for table in TABLES {
        let exists = manager
            .has_table(table)
            .await
            .map_err(|err| Failure::Store(keyward_core::StoreError::unavailable(err)))?;
        if !exists {
            missing.push(table);
        }
    }
    let place = describe(url);
    if missing.contains(&"keyward_keys") {
        Err(Failure::Database(format!(
            "the database at {place} has no keyward tables: run `keyward migrate` to create \
             them, or set DATABASE_URL (or --database-url) to the application's database"
        )))
    } else if missing.is_empty() {
        Ok(())
    } else {
        Err(Failure::Database(format!(
            "keyward's tables at {place} are from an older version (missing: {}): run \
             `keyward migrate`",
            missing.join(", ")
        )))
    }
}

/// The file a SQLite URL names; `None` for other databases and in-memory ones.
fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (database, params) = rest.split_once('?').unwrap_or((rest, ""));
    let in_memory = database == ":memory:" || params.split('&').any(|pair| pair == "mode=memory");
    if in_memory {
        return None;
    }
    Some(Path::new(&percent_decode(database)).to_path_buf())
}

/// `%XX` sequences decoded, as the SQLite driver reads the file name.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Where `url` points, for messages: the file of a SQLite URL, the URL without its password
/// otherwise.
pub(crate) fn describe(url: &str) -> String {
    if let Some(path) = sqlite_file(url) {
        return path.display().to_string();
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info
                .split_once(':')
                .map_or(user_info, |(user, _)| user);
            format!("{scheme}://{user}@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_files_are_found_and_memory_is_not() {
        for (url, path) in [
            ("sqlite://keyward.db?mode=rwc", "keyward.db"),
            ("sqlite:books.db", "books.db"),
            (
                "sqlite:///var/lib/books/books.db?mode=rw",
                "/var/lib/books/books.db",
            ),
            ("sqlite://my%20books.db", "my books.db"),
        ] {
            assert_eq!(sqlite_file(url), Some(PathBuf::from(path)), "{url}");
        }
        for url in [
            "sqlite::memory:",
            "sqlite://:memory:",
            "sqlite://books.db?mode=memory",
            "postgres://localhost/books",
        ] {
            assert_eq!(sqlite_file(url), None, "{url}");
        }
    }

    #[test]
    fn descriptions_never_show_a_password() {
        assert_eq!(
            describe("postgres://books:s3cret@db.internal:5432/books?sslmode=require"),
            "postgres://books@db.internal:5432/books?sslmode=require"
        );
        assert_eq!(
            describe("mysql://root@127.0.0.1/test"),
            "mysql://root@127.0.0.1/test"
        );
        assert_eq!(describe("sqlite://books.db?mode=rwc"), "books.db");
    }
}
