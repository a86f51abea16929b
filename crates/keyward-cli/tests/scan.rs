//! `keyward scan` and `keyward rules` against a fresh SQLite file and a tree of files.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

mod common;

use assert_cmd::Command;
use keyward_core::{AppSettings, ScopeCatalog, TokenFormat, TokenHasher};
use regex::Regex;

/// A database the application `books` has started on, and a tree to scan, in a directory
/// of their own removed on drop.
struct Fixture {
    dir: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "keyward-scan-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("tree")).unwrap();
        let fixture = Self { dir };
        assert_eq!(fixture.run(&["migrate"]).0, 0);
        let catalog = ScopeCatalog::builder()
            .scope("books:read", "See the book catalog")
            .build()
            .unwrap();
        let format = TokenFormat::new("books").unwrap();
        let settings = AppSettings::new(
            &format,
            &catalog,
            &TokenHasher::sha256(),
            chrono::Utc::now(),
        );
        common::record_settings(&fixture.url(), &settings);
        fixture
    }

    fn url(&self) -> String {
        format!("sqlite://{}?mode=rwc", self.dir.join("keys.db").display())
    }

    fn tree(&self) -> PathBuf {
        self.dir.join("tree")
    }

    fn write(&self, path: &str, text: &str) {
        let path = self.tree().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn run_with_stdin(&self, args: &[&str], stdin: &str) -> (i32, String, String) {
        let output = Command::cargo_bin("keyward")
            .unwrap()
            .env_remove("KEYWARD_PREFIX")
            .env_remove("KEYWARD_PEPPER")
            .env("DATABASE_URL", self.url())
            .args(args)
            .write_stdin(stdin.to_owned())
            .output()
            .unwrap();
        common::outcome(output)
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        self.run_with_stdin(args, "")
    }

    /// A new key's token and id.
    fn key(&self) -> (String, String) {
        let (code, token, stderr) = self.run(&[
            "create",
            "--name",
            "Deploy",
            "--scope",
            "books:read",
            "--service",
        ]);
        assert_eq!(code, 0, "{stderr}");
        let token = token.trim().to_owned();
        let (_, json, _) = self.run_with_stdin(&["verify", "--json"], &token);
        let json: serde_json::Value = serde_json::from_str(&json).unwrap();
        (token, json["key"]["id"].as_str().unwrap().to_owned())
    }

    fn usable(&self, token: &str) -> bool {
        self.run_with_stdin(&["verify"], token).0 == 0
    }

    fn scan(&self, extra: &[&str]) -> (i32, String, String) {
        let tree = self.tree();
        let mut args = vec!["scan", tree.to_str().unwrap()];
        args.extend_from_slice(extra);
        self.run(&args)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn at(tree: &Path, file: &str, line: usize) -> String {
    format!("{}:{line}", tree.join(file).display())
}

/// `token` with its last check digit changed.
fn lookalike(token: &str) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    let last = chars.last_mut().unwrap();
    *last = if *last == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

#[test]
fn scan_finds_a_live_token_and_revoke_revokes_it() {
    let fixture = Fixture::new();
    let (token, id) = fixture.key();
    let (other, other_id) = fixture.key();
    fixture.write(
        "deploy/config.yml",
        &format!("name: deploy\n\napi_key: \"{token}\"\n"),
    );
    fixture.write("notes.md", &format!("lookalike {}\n", lookalike(&other)));
    fixture.write(".git/objects/x", &format!("{other}\n"));
    fixture.write("target/debug/out.txt", &format!("{other}\n"));
    fixture.write("node_modules/m/index.js", &format!("'{other}'\n"));
    let mut binary = b"\0\x01".to_vec();
    binary.extend_from_slice(other.as_bytes());
    std::fs::write(fixture.tree().join("blob.bin"), binary).unwrap();

    let (code, stdout, stderr) = fixture.scan(&[]);
    assert_eq!(code, 1, "a live key found: {stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    let line = lines[0];
    assert!(
        line.starts_with(&at(&fixture.tree(), "deploy/config.yml", 3)),
        "{line}"
    );
    assert!(line.contains(&id) && line.ends_with("live"), "{line}");
    assert!(line.contains(&format!("books_…{}", &token[token.len() - 4..])));
    assert!(!stdout.contains(&token) && !stderr.contains(&token));
    assert!(!line.contains(&other_id));
    assert!(stderr.contains("--revoke"), "{stderr}");
    assert!(fixture.usable(&token));

    let (code, stdout, stderr) = fixture.scan(&["--revoke"]);
    assert_eq!(code, 0, "every live key was revoked: {stdout}{stderr}");
    assert!(stdout.contains("revoked now"), "{stdout}");
    assert!(stderr.contains(&format!("revoked key {id}")), "{stderr}");
    assert!(!fixture.usable(&token));
    assert!(fixture.usable(&other), "only the found key is revoked");

    // The revocation is a `leaked` event by the command line, naming where the token was.
    let (code, stdout, stderr) = fixture.run(&["events", "--key", &id, "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let newest: serde_json::Value =
        serde_json::from_str(stdout.lines().next().expect("an event")).unwrap();
    assert_eq!(newest["type"], "leaked");
    assert_eq!(newest["actor"], "cli");
    assert_eq!(newest["detail"]["action"], "revoked");
    assert_eq!(newest["detail"]["source"], "scan");
    assert_eq!(
        newest["detail"]["url"],
        at(&fixture.tree(), "deploy/config.yml", 3)
    );
    let (code, table, _) = fixture.run(&["events", "--type", "leaked"]);
    assert_eq!(code, 0);
    assert!(
        table.starts_with("TIME") && table.contains("leaked") && table.contains(&id),
        "{table}"
    );
    assert!(!table.contains(&token));
    let (code, _, stderr) = fixture.run(&["events", "--type", "stolen"]);
    assert_eq!(code, 2, "an unknown type is a usage error");
    assert!(stderr.contains("expected one of created"), "{stderr}");

    let (code, stdout, _) = fixture.scan(&["--json"]);
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let found = json["found"].as_array().unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["status"], "revoked");
    assert_eq!(found[0]["key_id"], id.as_str());
    assert_eq!(found[0]["line"], 3);
    assert_eq!(found[0]["revoked_now"], false);
}

#[test]
fn unknown_tokens_and_lookalikes_are_not_live() {
    let fixture = Fixture::new();
    let stranger = TokenFormat::new("books").unwrap().generate();
    let elsewhere = TokenFormat::new("other").unwrap().generate();
    let (token, _) = fixture.key();
    fixture.write(
        "a.env",
        &format!(
            "A={}\nB={}\nC={}\nD=x{token}\n",
            stranger.expose_secret(),
            elsewhere.expose_secret(),
            lookalike(&token)
        ),
    );
    let (code, stdout, stderr) = fixture.scan(&[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.starts_with(&at(&fixture.tree(), "a.env", 1)));
    assert!(stdout.trim_end().ends_with("unknown"), "{stdout}");

    // A single file is scanned too.
    let file = fixture.tree().join("a.env");
    let (code, stdout, _) = fixture.run(&["scan", file.to_str().unwrap()]);
    assert_eq!((code, stdout.lines().count()), (0, 1));
}

#[test]
fn scan_usage_and_database_errors() {
    let fixture = Fixture::new();
    assert_eq!(fixture.run(&["scan"]).0, 2, "a path is required");
    let missing = fixture.dir.join("missing");
    let (code, _, stderr) = fixture.run(&["scan", missing.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    let (code, _, stderr) = fixture.run(&["--prefix", "jelu", "scan", "."]);
    assert_eq!(code, 2, "not a prefix of the application: {stderr}");

    let output = Command::cargo_bin("keyward")
        .unwrap()
        .args([
            "--database-url",
            "postgres://nobody@127.0.0.1:1/none",
            "scan",
            ".",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3));

    // The pepper check `verify` does applies.
    let output = Command::cargo_bin("keyward")
        .unwrap()
        .env("DATABASE_URL", fixture.url())
        .env("KEYWARD_PEPPER", "not the application's")
        .args(["scan", "."])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn rules_match_real_tokens_exactly() {
    let fixture = Fixture::new();
    let (token, _) = fixture.key();

    let (code, toml, stderr) = fixture.run(&["rules", "--gitleaks"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(toml.contains("[[rules]]") && toml.contains(r#"keywords = ["books_"]"#));
    let regex = toml
        .lines()
        .find_map(|line| line.strip_prefix("regex = '''"))
        .and_then(|rest| rest.strip_suffix("'''"))
        .expect("a regex line");
    let gitleaks = Regex::new(regex).unwrap();

    let (code, json, _) = fixture.run(&["rules", "--github", "--json"]);
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let github = Regex::new(&format!(
        "(?:{})({})(?:{})",
        json["before_secret"].as_str().unwrap(),
        json["secret_format"].as_str().unwrap(),
        json["after_secret"].as_str().unwrap()
    ))
    .unwrap();

    let format = TokenFormat::new("books").unwrap();
    let mut tokens = vec![token];
    tokens.extend((0..100).map(|_| format.generate().expose_secret().to_owned()));
    for token in &tokens {
        let text = format!("export API_KEY={token}\n");
        assert_eq!(gitleaks.find(&text).unwrap().as_str(), token);
        assert_eq!(&github.captures(&text).unwrap()[1], token);
        for wrong in [
            token[..token.len() - 1].to_owned(),
            format!("{token}0"),
            format!("a{token}"),
            token.replacen("books_", "jelu_", 1),
        ] {
            let text = format!("export API_KEY={wrong}\n");
            assert!(gitleaks.find(&text).is_none(), "{wrong}");
            assert!(github.captures(&text).is_none(), "{wrong}");
        }
    }

    // With --prefix no database is needed.
    let output = Command::cargo_bin("keyward")
        .unwrap()
        .args([
            "--database-url",
            "postgres://nobody@127.0.0.1:1/none",
            "--prefix",
            "jelu",
            "rules",
            "--github",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert!(
        String::from_utf8(output.stdout)
            .unwrap()
            .contains("(?:jelu)_[0-9A-Za-z]{46}")
    );
    assert_eq!(fixture.run(&["rules"]).0, 2, "--gitleaks or --github");
    assert_eq!(fixture.run(&["rules", "--gitleaks", "--github"]).0, 2);
}
