//! Every command of the `keyward` binary against a fresh SQLite file.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use assert_cmd::Command;

/// A fresh database in its own directory, removed on drop.
struct Db {
    dir: PathBuf,
}

impl Db {
    fn new() -> Self {
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
        let db = Self { dir };
        db.cmd().arg("migrate").assert().success();
        db
    }

    fn cmd(&self) -> Command {
        let mut cmd = Command::cargo_bin("keyward").unwrap();
        cmd.env(
            "DATABASE_URL",
            format!("sqlite://{}?mode=rwc", self.dir.join("keys.db").display()),
        )
        .env("KEYWARD_PREFIX", "books")
        .env_remove("KEYWARD_PEPPER");
        cmd
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let output = self.cmd().args(args).output().unwrap();
        (
            output.status.code().unwrap(),
            String::from_utf8(output.stdout).unwrap(),
            String::from_utf8(output.stderr).unwrap(),
        )
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
