//! Every command of the `keyward` binary against a fresh SQLite file.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

mod common;

use assert_cmd::Command;
use keyward_core::{AppSettings, ScopeCatalog, TokenFormat, TokenHasher};

/// A fresh database in its own directory, removed on drop.
struct Db {
    dir: PathBuf,
}

/// A fresh directory of its own.
fn fresh_dir() -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "keyward-cli-{}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The binary with none of its environment variables set.
fn keyward() -> Command {
    let mut cmd = Command::cargo_bin("keyward").unwrap();
    cmd.env_remove("DATABASE_URL")
        .env_remove("KEYWARD_PREFIX")
        .env_remove("KEYWARD_PEPPER");
    cmd
}

/// The scopes of the application in these tests.
fn catalog() -> ScopeCatalog {
    ScopeCatalog::builder()
        .scope("books:read", "See the book catalog")
        .scope("books:write", "Add, change and delete books")
        .implies("books:write", "books:read")
        .build()
        .unwrap()
}

impl Db {
    fn new() -> Self {
        let db = Self { dir: fresh_dir() };
        db.cmd().arg("migrate").assert().success();
        db
    }

    fn url(&self) -> String {
        format!("sqlite://{}?mode=rwc", self.dir.join("keys.db").display())
    }

    fn cmd(&self) -> Command {
        let mut cmd = keyward();
        cmd.env("DATABASE_URL", self.url())
            .env("KEYWARD_PREFIX", "books");
        cmd
    }

    /// The binary as an operator runs it on a database the application uses: only
    /// `DATABASE_URL` set.
    fn app_cmd(&self) -> Command {
        let mut cmd = keyward();
        cmd.env("DATABASE_URL", self.url());
        cmd
    }

    fn app_run(&self, args: &[&str], pepper: Option<&str>) -> (i32, String, String) {
        let mut cmd = self.app_cmd();
        if let Some(pepper) = pepper {
            cmd.env("KEYWARD_PEPPER", pepper);
        }
        let output = cmd.args(args).output().unwrap();
        common::outcome(output)
    }

    /// What an application with these prefixes and pepper records when it starts.
    fn record_app(&self, prefixes: &[&str], pepper: Option<&str>) {
        let mut format = TokenFormat::new(prefixes[0]).unwrap();
        for accepted in &prefixes[1..] {
            format = format.accept(*accepted).unwrap();
        }
        let hasher = pepper.map_or_else(TokenHasher::sha256, TokenHasher::hmac);
        let settings = AppSettings::new(&format, &catalog(), &hasher, chrono::Utc::now());
        common::record_settings(&self.url(), &settings);
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let output = self.cmd().args(args).output().unwrap();
        common::outcome(output)
    }

    fn create(&self, extra: &[&str]) -> String {
        let mut args = vec!["create", "--name", "Backup Script", "--scope", "books:read"];
        args.extend_from_slice(extra);
        let (code, stdout, stderr) = self.run(&args);
        assert_eq!(code, 0, "{stderr}");
        stdout.trim_end().to_owned()
    }

    fn verify(&self, token: &str) -> (i32, String) {
        let output = self
            .cmd()
            .arg("verify")
            .write_stdin(format!("{token}\n"))
            .output()
            .unwrap();
        (
            output.status.code().unwrap(),
            String::from_utf8(output.stdout).unwrap(),
        )
    }

    fn id_of(&self, token: &str) -> String {
        let output = self
            .cmd()
            .args(["verify", "--json"])
            .write_stdin(token.to_owned())
            .output()
            .unwrap();
        let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        value["key"]["id"].as_str().unwrap().to_owned()
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn is_token(s: &str) -> bool {
    let Some((prefix, body)) = s.split_once('_') else {
        return false;
    };
    prefix == "books" && body.len() == 46 && body.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[test]
fn migrate_is_idempotent() {
    let db = Db::new();
    db.cmd().arg("migrate").assert().success();
}

#[test]
fn create_prints_only_the_token_on_stdout() {
    let db = Db::new();
    let (code, stdout, stderr) = db.run(&[
        "create",
        "--name",
        "ci",
        "--scope",
        "books:read",
        "--scope",
        "books:write",
        "--owner",
        "alice",
        "--expires-in-days",
        "7",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.lines().count(), 1);
    assert!(is_token(stdout.trim_end()), "{stdout:?}");
    assert!(stderr.contains("not shown again"));
    assert!(
        !stderr.contains(stdout.trim_end()),
        "the token appears only on stdout"
    );
}

#[test]
fn create_rejects_bad_input_with_exit_code_2() {
    let db = Db::new();
    for (args, needle) in [
        (
            vec![
                "create",
                "--name",
                "x",
                "--scope",
                "books:read",
                "--service",
                "--expires-in-days",
                "31",
            ],
            "expires_in_days",
        ),
        (
            vec!["create", "--name", "", "--scope", "books:read", "--service"],
            "name",
        ),
        (
            vec!["create", "--name", "x", "--scope", "Books", "--service"],
            "Books",
        ),
        (
            vec!["create", "--name", "x", "--scope", "books:read"],
            "--owner",
        ),
        (
            vec![
                "create",
                "--name",
                "x",
                "--service",
                "--owner",
                "a",
                "--scope",
                "books:read",
            ],
            "--owner",
        ),
        (
            vec![
                "create",
                "--name",
                "x",
                "--scope",
                "books:read",
                "--service",
                "--allow-ip",
                "10.0.0.300",
            ],
            "allowed_ips",
        ),
    ] {
        let (code, stdout, stderr) = db.run(&args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stdout.is_empty());
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

#[test]
fn list_and_show() {
    let db = Db::new();
    let token = db.create(&["--owner", "alice"]);
    db.create(&["--service", "--never"]);
    let id = db.id_of(&token);

    let (code, stdout, _) = db.run(&["list"]);
    assert_eq!(code, 0);
    assert_eq!(stdout.lines().count(), 3, "header and two keys: {stdout}");
    assert!(stdout.contains(&id));
    assert!(!stdout.contains(&token));

    let (_, stdout, _) = db.run(&["list", "--owner", "alice", "--json"]);
    let value: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let keys = value["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["id"], id.as_str());
    assert_eq!(keys[0]["status"], "active");
    assert_eq!(keys[0]["scopes"], serde_json::json!(["books:read"]));

    let (code, stdout, _) = db.run(&["show", &id]);
    assert_eq!(code, 0);
    assert!(stdout.contains("Backup Script"));
    assert!(
        stdout.contains(&token[token.len() - 4..]),
        "the hint is shown"
    );
    assert!(!stdout.contains(&token));

    let (code, _, stderr) = db.run(&["show", "0190b2a4-0000-7000-8000-000000000000"]);
    assert_eq!(code, 1, "{stderr}");
    let (code, _, _) = db.run(&["show", "not-an-id"]);
    assert_eq!(code, 2);
}

#[test]
fn verify_reads_stdin() {
    let db = Db::new();
    let token = db.create(&["--owner", "alice"]);
    let (code, stdout) = db.verify(&token);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("usable"));
    assert!(stdout.contains("Backup Script"));

    let (code, stdout) = db.verify("books_garbage");
    assert_eq!(code, 1);
    assert!(stdout.contains("not usable"));

    let unknown = Db::new().create(&["--service"]);
    let (code, stdout) = db.verify(&unknown);
    assert_eq!(code, 1);
    assert!(stdout.contains("unknown"));
}

#[test]
fn revoke_then_verify_fails() {
    let db = Db::new();
    let token = db.create(&["--owner", "alice"]);
    let id = db.id_of(&token);
    let (code, stdout, _) = db.run(&["revoke", &id]);
    assert_eq!(code, 0);
    assert!(stdout.contains("revoked"));
    let (code, stdout) = db.verify(&token);
    assert_eq!(code, 1);
    assert!(stdout.contains("revoked"), "{stdout}");
    let (code, _, _) = db.run(&["revoke", "0190b2a4-0000-7000-8000-000000000000"]);
    assert_eq!(code, 1);
}

#[test]
fn delete_removes_the_key() {
    let db = Db::new();
    let token = db.create(&["--owner", "alice"]);
    let id = db.id_of(&token);
    let (code, _, _) = db.run(&["delete", &id]);
    assert_eq!(code, 0);
    assert_eq!(db.run(&["show", &id]).0, 1);
    assert_eq!(db.run(&["delete", &id]).0, 1);
    assert_eq!(db.verify(&token).0, 1);
}

#[test]
fn regenerate_with_and_without_grace() {
    let db = Db::new();
    let old = db.create(&["--owner", "alice"]);
    let id = db.id_of(&old);

    let (code, stdout, _) = db.run(&["regenerate", &id, "--grace-seconds", "600"]);
    assert_eq!(code, 0);
    let rolled = stdout.trim_end().to_owned();
    assert!(is_token(&rolled));
    assert_eq!(
        db.verify(&old).0,
        0,
        "the old token works during the grace period"
    );
    assert_eq!(db.verify(&rolled).0, 0);

    let (code, stdout, _) = db.run(&["regenerate", &id]);
    assert_eq!(code, 0);
    let newest = stdout.trim_end().to_owned();
    assert_eq!(
        db.verify(&rolled).0,
        1,
        "without grace the old token stops at once"
    );
    assert_eq!(db.verify(&old).0, 1);
    assert_eq!(db.verify(&newest).0, 0);
    assert_eq!(db.id_of(&newest), id, "same key, new secret");

    assert_eq!(
        db.run(&["regenerate", &id, "--grace-seconds", "86401"]).0,
        2
    );
}

#[test]
fn refresh_extends_expiry() {
    let db = Db::new();
    let token = db.create(&["--owner", "alice", "--expires-in-days", "7"]);
    let id = db.id_of(&token);
    let (code, stdout, _) = db.run(&["refresh", &id, "--json"]);
    assert_eq!(code, 0);
    let value: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let expires: chrono::DateTime<chrono::Utc> =
        value["expires_at"].as_str().unwrap().parse().unwrap();
    let days = (expires - chrono::Utc::now()).num_hours();
    assert!((7 * 24 - 1..=7 * 24).contains(&days), "{days} hours");

    let forever = db.create(&["--service", "--never"]);
    let (code, _, stderr) = db.run(&["refresh", &db.id_of(&forever)]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("never expires"));
}

#[test]
fn usage_errors_exit_2() {
    let db = Db::new();
    assert_eq!(db.run(&["frobnicate"]).0, 2);
    assert_eq!(db.run(&["--prefix", "Bad", "list"]).0, 2);
}

#[test]
fn unreachable_database_exits_3() {
    let output = Command::cargo_bin("keyward")
        .unwrap()
        .args([
            "--database-url",
            "postgres://nobody@127.0.0.1:1/none",
            "list",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
}

#[test]
fn create_uses_the_prefix_the_application_recorded() {
    let db = Db::new();
    db.record_app(&["books", "jelu"], None);
    let (code, stdout, stderr) = db.app_run(
        &[
            "create",
            "--name",
            "x",
            "--scope",
            "books:read",
            "--service",
        ],
        None,
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(is_token(stdout.trim_end()), "{stdout}");
    assert!(!stderr.contains("warning"), "{stderr}");

    let (code, stdout, stderr) = db.app_run(
        &[
            "--prefix",
            "jelu",
            "create",
            "--name",
            "x",
            "--scope",
            "books:read",
            "--service",
        ],
        None,
    );
    assert_eq!(code, 0, "an accepted prefix may be chosen: {stderr}");
    assert!(stdout.starts_with("jelu_"), "{stdout}");

    let output = db
        .app_cmd()
        .env("KEYWARD_PREFIX", "keyward")
        .args([
            "create",
            "--name",
            "x",
            "--scope",
            "books:read",
            "--service",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(output.stdout.is_empty());
    assert!(
        stderr.contains("`keyward`") && stderr.contains("books, jelu"),
        "{stderr}"
    );
}

#[test]
fn create_refuses_scopes_the_application_does_not_have() {
    let db = Db::new();
    db.record_app(&["books"], None);
    let (code, stdout, stderr) = db.app_run(
        &[
            "create",
            "--name",
            "x",
            "--scope",
            "books:delete",
            "--service",
        ],
        None,
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stdout.is_empty());
    assert!(stderr.contains("`books:delete`"), "{stderr}");
    assert!(stderr.contains("books:read"), "{stderr}");
    assert!(stderr.contains("See the book catalog"), "{stderr}");
    assert!(stderr.contains("Add, change and delete books"), "{stderr}");

    for scope in ["books:*", "*", "books:write"] {
        let (code, _, stderr) = db.app_run(
            &["create", "--name", "x", "--scope", scope, "--service"],
            None,
        );
        assert_eq!(code, 0, "{scope}: {stderr}");
    }
}

#[test]
fn create_before_any_application_started_needs_a_prefix() {
    let db = Db::new();
    let (code, stdout, stderr) = db.app_run(
        &[
            "create",
            "--name",
            "x",
            "--scope",
            "books:read",
            "--service",
        ],
        None,
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("no application has started on this database"),
        "{stderr}"
    );
    assert!(stderr.contains("--prefix"), "{stderr}");
    // With a prefix it works, and says that the scopes were not checked.
    let (code, _, stderr) = db.run(&["create", "--name", "x", "--scope", "any:thing", "--service"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("not checked"), "{stderr}");
}

#[test]
fn help_documents_the_pepper_and_never_shows_it() {
    let output = keyward()
        .env("KEYWARD_PEPPER", "a-secret-pepper-value")
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let help = String::from_utf8(output.stdout).unwrap();
    assert!(help.contains("KEYWARD_PEPPER"), "{help}");
    assert!(!help.contains("a-secret-pepper-value"), "{help}");
    for word in [
        "DATABASE_URL",
        "KEYWARD_PREFIX",
        "Exit codes",
        "disable",
        "enable",
    ] {
        assert!(help.contains(word), "{word}: {help}");
    }
}

#[test]
fn a_pepper_that_is_not_the_applications_is_refused_with_exit_2() {
    let db = Db::new();
    db.record_app(&["books"], Some("the-app-pepper"));
    let create = [
        "create",
        "--name",
        "x",
        "--scope",
        "books:read",
        "--service",
    ];

    let (code, stdout, stderr) = db.app_run(&create, None);
    assert_eq!(code, 2, "{stderr}");
    assert!(stdout.is_empty());
    assert!(stderr.contains("KEYWARD_PEPPER is not set"), "{stderr}");

    let (code, _, stderr) = db.app_run(&create, Some("another-pepper"));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("not the application's pepper"), "{stderr}");
    assert!(!stderr.contains("the-app-pepper") && !stderr.contains("another-pepper"));

    let (code, stdout, stderr) = db.app_run(&create, Some("the-app-pepper"));
    assert_eq!(code, 0, "{stderr}");
    let token = stdout.trim_end().to_owned();

    let verify = |pepper: Option<&str>| {
        let mut cmd = db.app_cmd();
        if let Some(pepper) = pepper {
            cmd.env("KEYWARD_PEPPER", pepper);
        }
        let output = cmd
            .arg("verify")
            .write_stdin(token.clone())
            .output()
            .unwrap();
        common::outcome(output)
    };
    let (code, stdout, _) = verify(Some("the-app-pepper"));
    assert_eq!(code, 0, "{stdout}");
    let (code, _, stderr) = verify(None);
    assert_eq!(code, 2, "not 'unknown token': {stderr}");
    assert!(stderr.contains("KEYWARD_PEPPER is not set"), "{stderr}");
    let (code, _, stderr) = verify(Some("another-pepper"));
    assert_eq!(code, 2);
    assert!(stderr.contains("not the application's pepper"), "{stderr}");

    let plain = Db::new();
    plain.record_app(&["books"], None);
    let (code, _, stderr) = plain.app_run(&create, Some("a-pepper"));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("uses no pepper"), "{stderr}");
}

#[test]
fn verify_names_a_prefix_the_application_does_not_accept() {
    let db = Db::new();
    let other = db.create(&["--service"]);
    db.record_app(&["jelu"], None);
    let (code, stdout) = db.verify(&other);
    assert_eq!(code, 1);
    assert!(
        stdout.contains("does not accept the prefix `books`"),
        "{stdout}"
    );
}

#[test]
fn commands_other_than_migrate_never_create_a_database() {
    let dir = fresh_dir();
    let missing = dir.join("missing.db");
    let url = format!("sqlite://{}?mode=rwc", missing.display());
    let id = "0190b2a4-0000-7000-8000-000000000000";
    for args in [
        vec!["list"],
        vec!["show", id],
        vec!["verify"],
        vec!["revoke", id],
        vec!["disable", id],
        vec![
            "--prefix",
            "books",
            "create",
            "--name",
            "x",
            "--scope",
            "a:b",
            "--service",
        ],
    ] {
        let output = keyward()
            .env("DATABASE_URL", &url)
            .args(&args)
            .write_stdin("books_x")
            .output()
            .unwrap();
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(output.status.code(), Some(3), "{args:?}: {stderr}");
        assert!(stderr.contains(&missing.display().to_string()), "{stderr}");
        assert!(stderr.contains("DATABASE_URL"), "{stderr}");
        assert!(stderr.contains("keyward migrate"), "{stderr}");
        assert!(!missing.exists(), "{args:?} created the file");
    }

    // The default URL names keyward.db in the current directory: not created either.
    let output = keyward().current_dir(&dir).arg("list").output().unwrap();
    assert_eq!(output.status.code(), Some(3));
    assert!(
        String::from_utf8(output.stderr)
            .unwrap()
            .contains("keyward.db")
    );
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "nothing left behind"
    );

    keyward()
        .current_dir(&dir)
        .arg("migrate")
        .assert()
        .success();
    assert!(dir.join("keyward.db").exists(), "migrate creates it");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_database_without_keywards_tables_says_to_migrate() {
    let dir = fresh_dir();
    let file = dir.join("app.db");
    std::fs::File::create(&file).unwrap(); // an empty SQLite database
    let output = keyward()
        .env("DATABASE_URL", format!("sqlite://{}", file.display()))
        .arg("list")
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("keyward migrate"), "{stderr}");
    assert!(!stderr.contains("no such table"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn list_columns_line_up_for_personal_and_service_keys() {
    let db = Db::new();
    db.create(&["--owner", "alice"]);
    db.run(&[
        "create",
        "--name",
        "Nightly import of the whole catalogue from the old server",
        "--scope",
        "books:read",
        "--service",
        "--never",
    ]);
    db.create(&["--owner", "a-rather-long-user-id-0123"]);
    let (code, stdout, _) = db.run(&["list"]);
    assert_eq!(code, 0);
    let lines: Vec<Vec<char>> = stdout.lines().map(|l| l.chars().collect()).collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    let header = &lines[0];
    for title in ["NAME", "KIND", "OWNER", "STATUS", "EXPIRES", "SCOPES"] {
        let at = stdout.lines().next().unwrap().find(title).unwrap();
        for line in &lines[1..] {
            assert_eq!(line[at - 1], ' ', "{title}:\n{stdout}");
            assert_ne!(line[at], ' ', "{title}:\n{stdout}");
        }
    }
    let uses_end = header.iter().collect::<String>().find("USES").unwrap() + 4;
    for line in &lines[1..] {
        assert!(
            line[uses_end - 1].is_ascii_digit(),
            "uses align right:\n{stdout}"
        );
    }
}

#[test]
fn disable_and_enable() {
    let db = Db::new();
    let token = db.create(&["--owner", "alice"]);
    let id = db.id_of(&token);

    let (code, stdout, stderr) = db.run(&["disable", &id]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("disabled"), "{stdout}");
    let (code, stdout) = db.verify(&token);
    assert_eq!(code, 1);
    assert!(stdout.contains("disabled"), "{stdout}");

    let (code, stdout, _) = db.run(&["enable", &id, "--json"]);
    assert_eq!(code, 0);
    let value: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(value["status"], "active");
    assert_eq!(db.verify(&token).0, 0);

    let unknown = "0190b2a4-0000-7000-8000-000000000000";
    assert_eq!(db.run(&["disable", unknown]).0, 1);
    assert_eq!(db.run(&["enable", unknown]).0, 1);
    db.run(&["revoke", &id]);
    let (code, _, stderr) = db.run(&["enable", &id]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("revoked"), "{stderr}");
}
