//! A database of its own for each test: a SQLite file in a fresh directory, or a fresh
//! database on the PostgreSQL or MariaDB/MySQL server that an environment variable names.
//!
//! A server test whose variable is unset says that it skipped and passes; one whose variable
//! is set but whose server cannot be used fails, because then the backend must be tested.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, Statement};

/// The variable naming the PostgreSQL server for tests, e.g.
/// `postgres://postgres@127.0.0.1:5432/postgres`.
pub const POSTGRES_URL: &str = "KEYWARD_TEST_POSTGRES_URL";

/// The variable naming the MariaDB/MySQL server for tests, e.g.
/// `mysql://root@127.0.0.1:3306/test`.
pub const MYSQL_URL: &str = "KEYWARD_TEST_MYSQL_URL";

/// Every test database and directory is named this, then a UUID v7, whose time tells a later
/// run when it is stale.
const PREFIX: &str = "keyward_test_";

/// Test databases and directories left behind (by a failed test, or on purpose by
/// [`TestDatabase::keep`]) are removed by a later run after this long.
const STALE_AFTER: Duration = Duration::from_secs(3600);

/// A database for one test: its URL, and its removal afterwards.
///
/// # Example
///
/// ```
/// use keyward_test_support::TestDatabase;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let db = TestDatabase::sqlite();
/// assert!(db.url().starts_with("sqlite://"));
/// // A server database, when its variable is set; `None` (and a "skipped" line) when not.
/// if let Some(db) = TestDatabase::postgres().await {
///     let connection = db.connect().await;
///     connection.close().await.unwrap();
///     db.remove().await;
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct TestDatabase {
    url: String,
    place: Place,
}

#[derive(Debug)]
enum Place {
    File(TempDir),
    Server {
        server: String,
        name: String,
        backend: Backend,
    },
}

#[derive(Debug, Clone, Copy)]
enum Backend {
    Postgres,
    MySql,
}

impl Backend {
    fn variable(self) -> &'static str {
        match self {
            Self::Postgres => POSTGRES_URL,
            Self::MySql => MYSQL_URL,
        }
    }

    fn create(self, name: &str) -> String {
        match self {
            Self::Postgres => format!("CREATE DATABASE {name}"),
            // Deliberately not utf8mb4: keyward's migration must not depend on the default.
            Self::MySql => format!("CREATE DATABASE {name} CHARACTER SET latin1"),
        }
    }

    fn drop(self, name: &str) -> String {
        match self {
            // Pools the test left open do not keep the database.
            Self::Postgres => format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            Self::MySql => format!("DROP DATABASE IF EXISTS {name}"),
        }
    }

    fn list(self) -> &'static str {
        match self {
            Self::Postgres => {
                "SELECT datname AS name FROM pg_database WHERE datname LIKE 'keyward\\_test\\_%'"
            }
            Self::MySql => {
                "SELECT schema_name AS name FROM information_schema.schemata \
                 WHERE schema_name LIKE 'keyward\\_test\\_%'"
            }
        }
    }
}

impl TestDatabase {
    /// A fresh SQLite file in a directory of its own, removed when this value is dropped.
    #[must_use]
    pub fn sqlite() -> Self {
        let dir = TempDir::new();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
        Self {
            url,
            place: Place::File(dir),
        }
    }

    /// A fresh database on the server of [`POSTGRES_URL`]; `None`, after saying so, when
    /// the variable is unset.
    ///
    /// # Panics
    ///
    /// When the variable is set but the server cannot be used.
    pub async fn postgres() -> Option<Self> {
        Self::on_server(Backend::Postgres).await
    }

    /// A fresh database (`latin1` by default, so that nothing relies on the server's
    /// default) on the server of [`MYSQL_URL`]; `None`, after saying so, when the variable is
    /// unset.
    ///
    /// # Panics
    ///
    /// When the variable is set but the server cannot be used.
    pub async fn mysql() -> Option<Self> {
        Self::on_server(Backend::MySql).await
    }

    async fn on_server(backend: Backend) -> Option<Self> {
        let variable = backend.variable();
        let Some(server) = std::env::var(variable).ok().filter(|url| !url.is_empty()) else {
            eprintln!("skipped: {variable} is not set");
            return None;
        };
        let admin = admin(&server).await.unwrap_or_else(|err| {
            panic!("{variable} is set, so its server must be reachable: {err}")
        });
        remove_stale(&admin, backend).await;
        let name = format!("{PREFIX}{}", uuid::Uuid::now_v7().simple());
        admin
            .execute_unprepared(&backend.create(&name))
            .await
            .unwrap_or_else(|err| panic!("create a test database on {variable}: {err}"));
        admin.close().await.ok();
        Some(Self {
            url: with_database(&server, &name),
            place: Place::Server {
                server,
                name,
                backend,
            },
        })
    }

    /// The URL to connect to.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Options for a pool of at most 8 connections to it, without SQL logging.
    #[must_use]
    pub fn options(&self) -> ConnectOptions {
        let mut options = ConnectOptions::new(self.url.clone());
        options.max_connections(8).sqlx_logging(false);
        options
    }

    /// A new pool on it ([`options`](Self::options)).
    ///
    /// # Panics
    ///
    /// When it cannot connect.
    pub async fn connect(&self) -> DatabaseConnection {
        Database::connect(self.options())
            .await
            .expect("connect to the test database")
    }

    /// Leaves the database in place after this value is gone, for a store that outlives the
    /// test's own code (the conformance suite takes its store and has no teardown). A later
    /// run removes it once it is stale.
    pub fn keep(self) {
        if let Place::File(dir) = self.place {
            dir.keep();
        }
    }

    /// Removes the database now. A failure is only reported: a later run removes what is
    /// left once it is stale.
    pub async fn remove(self) {
        let Place::Server {
            server,
            name,
            backend,
        } = self.place
        else {
            return;
        };
        let removed = match admin(&server).await {
            Ok(admin) => {
                let removed = admin.execute_unprepared(&backend.drop(&name)).await;
                admin.close().await.ok();
                removed.map(drop)
            }
            Err(err) => Err(err),
        };
        if let Err(err) = removed {
            eprintln!("the test database {name} stays until a later run: {err}");
        }
    }

    /// Runs `test` in a task of its own, then removes the database whether it passed or not,
    /// and fails as it failed.
    ///
    /// # Panics
    ///
    /// With the test's own panic, or when the test task was cancelled.
    pub async fn remove_after(self, test: impl Future<Output = ()> + Send + 'static) {
        let outcome = tokio::spawn(test).await;
        self.remove().await;
        if let Err(err) = outcome {
            if err.is_panic() {
                std::panic::resume_unwind(err.into_panic());
            }
            panic!("the test did not finish: {err}");
        }
    }
}

async fn admin(server: &str) -> Result<DatabaseConnection, sea_orm::DbErr> {
    let mut options = ConnectOptions::new(server.to_owned());
    options
        .max_connections(2)
        .connect_timeout(Duration::from_secs(5))
        .sqlx_logging(false);
    Database::connect(options).await
}

/// Removes the stale test databases of other runs.
async fn remove_stale(admin: &DatabaseConnection, backend: Backend) {
    let rows = admin
        .query_all(Statement::from_string(
            admin.get_database_backend(),
            backend.list(),
        ))
        .await
        .expect("list the test databases");
    for row in rows {
        let name: String = row.try_get("", "name").expect("a database name");
        if is_stale(&name) {
            // Another run may be removing it at the same moment.
            let _ = admin.execute_unprepared(&backend.drop(&name)).await;
        }
    }
}

/// Whether `name` is a test database or directory created more than [`STALE_AFTER`] ago.
fn is_stale(name: &str) -> bool {
    name.strip_prefix(PREFIX)
        .and_then(|id| uuid::Uuid::parse_str(id).ok())
        .and_then(|id| id.get_timestamp())
        .map(|ts| SystemTime::UNIX_EPOCH + Duration::from_secs(ts.to_unix().0))
        .and_then(|created| created.elapsed().ok())
        .is_some_and(|age| age > STALE_AFTER)
}

/// `url` with its database replaced by `database`, its query kept.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}

/// A fresh directory for one test, removed when dropped.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
    kept: bool,
}

impl TempDir {
    /// A new, empty directory under the system's temporary directory. Directories of earlier
    /// runs that are stale are removed.
    ///
    /// # Panics
    ///
    /// When the directory cannot be created.
    #[must_use]
    pub fn new() -> Self {
        let parent = std::env::temp_dir().join("keyward-tests");
        if let Ok(entries) = std::fs::read_dir(&parent) {
            for entry in entries.flatten() {
                if is_stale(&entry.file_name().to_string_lossy()) {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let path = parent.join(format!("{PREFIX}{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        Self { path, kept: false }
    }

    /// Its path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Leaves the directory in place after this value is gone; a later run removes it once
    /// it is stale.
    pub fn keep(mut self) -> PathBuf {
        self.kept = true;
        self.path.clone()
    }
}

impl Default for TempDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_is_replaced_in_urls() {
        assert_eq!(
            with_database("mysql://root@127.0.0.1:3306/test", "kw"),
            "mysql://root@127.0.0.1:3306/kw"
        );
        assert_eq!(
            with_database("mysql://u:p@db/test?ssl-mode=disabled", "kw"),
            "mysql://u:p@db/kw?ssl-mode=disabled"
        );
        assert_eq!(with_database("mysql://root@db", "kw"), "mysql://root@db/kw");
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "kw"),
            "postgres://postgres@127.0.0.1:5432/kw"
        );
    }

    #[test]
    fn only_old_test_names_are_stale() {
        assert!(!is_stale(&format!(
            "{PREFIX}{}",
            uuid::Uuid::now_v7().simple()
        )));
        let old = uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
            uuid::NoContext,
            1_700_000_000,
            0,
        ));
        assert!(is_stale(&format!("{PREFIX}{}", old.simple())));
        assert!(!is_stale("postgres"));
        assert!(!is_stale("keyward_test_not_a_uuid"));
    }

    #[test]
    fn a_sqlite_database_lives_as_long_as_its_value() {
        let db = TestDatabase::sqlite();
        let Place::File(dir) = &db.place else {
            unreachable!("a file")
        };
        let path = dir.path().to_owned();
        assert!(path.is_dir());
        drop(db);
        assert!(!path.exists());

        let db = TestDatabase::sqlite();
        let Place::File(dir) = &db.place else {
            unreachable!("a file")
        };
        let path = dir.path().to_owned();
        db.keep();
        assert!(path.is_dir());
        std::fs::remove_dir_all(path).unwrap();
    }
}
