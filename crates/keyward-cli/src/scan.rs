//! `keyward scan`: finds the application's tokens in files, says whose keys they are and
//! whether they are live, and with `--revoke` revokes the live ones.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use keyward_core::{
    EventContext, KeyId, KeyRecord, KeyStore, Leak, Prefix, StoreError, Token, TokenDigest,
    TokenHasher,
};
use keyward_sea_orm::SeaOrmStore;
use regex::bytes::Regex;
use serde_json::json;

use crate::{Failure, output, rules};

/// Directories a walk never enters: version control, build output, dependencies.
const SKIPPED_DIRS: [&str; 3] = [".git", "target", "node_modules"];

/// Files larger than this are skipped (with a note): lock files and dumps, not configuration.
const MAX_FILE_SIZE: u64 = 16 * 1024 * 1024;

/// A file is taken for binary when its first bytes hold a NUL.
const BINARY_SNIFF: usize = 8 * 1024;

/// A token found in a file; its check digits verify.
struct Found {
    file: PathBuf,
    line: usize,
    token: Token,
}

/// What the store says of a found token.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Live,
    Revoked,
    Unknown,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Revoked => "revoked",
            Self::Unknown => "unknown",
        }
    }
}

/// Scans `paths` for tokens with `prefixes`, looks each up, prints what it found and, with
/// `revoke`, revokes the live keys. Exit 0 when no live key is left, 1 otherwise.
pub(crate) async fn run(
    store: &SeaOrmStore,
    hasher: &TokenHasher,
    prefixes: &[Prefix],
    paths: &[PathBuf],
    revoke: bool,
    json: bool,
) -> Result<ExitCode, Failure> {
    let found = find(paths, prefixes)?;
    let now = Utc::now();
    let mut records: HashMap<TokenDigest, Option<KeyRecord>> = HashMap::new();
    let mut revoked_now: HashSet<KeyId> = HashSet::new();
    let mut rows = Vec::with_capacity(found.len());
    let mut left_live = 0;
    for item in &found {
        let digest = hasher.digest(&item.token);
        let record = match records.get(&digest) {
            Some(record) => record.clone(),
            None => {
                let record = store.find_by_digest(&digest, now).await?;
                records.insert(digest, record.clone());
                record
            }
        };
        let state = match &record {
            None => State::Unknown,
            Some(record) if revoked_now.contains(&record.id) => State::Live,
            Some(record) if record.is_revoked() => State::Revoked,
            Some(_) => State::Live,
        };
        let mut revoked = false;
        if let (State::Live, Some(record)) = (state, &record) {
            if revoke {
                if revoked_now.insert(record.id) {
                    respond_to_leak(store, record, &item.file, item.line, now).await?;
                }
                revoked = true;
            } else {
                left_live += 1;
            }
        }
        rows.push((item, record, state, revoked));
    }
    if json {
        let rows: Vec<serde_json::Value> = rows
            .iter()
            .map(|(item, record, state, revoked)| {
                json!({
                    "file": item.file.display().to_string(),
                    "line": item.line,
                    "key_id": record.as_ref().map(|r| r.id.to_string()),
                    "hint": hint(&item.token, record.as_ref()),
                    "status": state.as_str(),
                    "revoked_now": revoked,
                })
            })
            .collect();
        output::print_json(&json!({ "found": rows }));
    } else {
        for (item, record, state, revoked) in &rows {
            let id = record
                .as_ref()
                .map_or_else(|| "-".to_owned(), |r| r.id.to_string());
            let action = if *revoked { "  revoked now" } else { "" };
            println!(
                "{}:{}  {id}  {}  {}{action}",
                item.file.display(),
                item.line,
                hint(&item.token, record.as_ref()),
                state.as_str()
            );
        }
        summary(&rows.iter().map(|row| row.2).collect::<Vec<_>>(), revoke);
    }
    Ok(if left_live == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Revokes the key `record`, whose token was found at `file:line`. The one place a scan
/// changes a key.
async fn respond_to_leak(
    store: &SeaOrmStore,
    record: &KeyRecord,
    file: &Path,
    line: usize,
    now: DateTime<Utc>,
) -> Result<KeyRecord, StoreError> {
    let found_at = format!("{}:{line}", file.display());
    let by = EventContext::cli().leaked(Leak::new("scan", Some(found_at)));
    let revoked = store.revoke(record.id, now, &by).await?;
    eprintln!(
        "revoked key {} ({}): its token was found at {}:{line}",
        record.id,
        record.name,
        file.display()
    );
    Ok(revoked)
}

fn hint(token: &Token, record: Option<&KeyRecord>) -> String {
    record.map_or_else(
        || token.hint().as_str().to_owned(),
        |r| r.hint.as_str().to_owned(),
    )
}

fn summary(states: &[State], revoked: bool) {
    let count = |wanted: State| states.iter().filter(|s| **s == wanted).count();
    let live = count(State::Live);
    eprintln!(
        "{} token(s) found: {live} live, {} revoked, {} unknown",
        states.len(),
        count(State::Revoked),
        count(State::Unknown)
    );
    if live > 0 && !revoked {
        eprintln!("run again with --revoke to revoke the live keys");
    }
}

/// Every token with `prefixes` and valid check digits in `paths`, file by file in name order.
fn find(paths: &[PathBuf], prefixes: &[Prefix]) -> Result<Vec<Found>, Failure> {
    let pattern = format!(r"(?-u:\b){}(?-u:\b)", rules::token_pattern(prefixes));
    let regex = Regex::new(&pattern)
        .map_err(|err| Failure::Usage(format!("cannot build the token pattern: {err}")))?;
    let mut files = Vec::new();
    for path in paths {
        let metadata = fs::metadata(path)
            .map_err(|err| Failure::Usage(format!("{}: {err}", path.display())))?;
        if metadata.is_dir() {
            walk(path, &mut files);
        } else {
            files.push(path.clone());
        }
    }
    let mut found = Vec::new();
    for file in files {
        match scan_file(&file, &regex) {
            Ok(tokens) => found.extend(tokens.into_iter().map(|(line, token)| Found {
                file: file.clone(),
                line,
                token,
            })),
            Err(err) => eprintln!("warning: skipped {}: {err}", file.display()),
        }
    }
    Ok(found)
}

/// Adds the files under `dir` to `files`, in name order, not following symbolic links and
/// not entering [`SKIPPED_DIRS`].
fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) => {
            eprintln!("warning: skipped {}: {err}", dir.display());
            return;
        }
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(fs::DirEntry::file_name);
    for entry in entries {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let path = entry.path();
        if kind.is_dir() {
            if !SKIPPED_DIRS.iter().any(|skip| entry.file_name() == *skip) {
                walk(&path, files);
            }
        } else if kind.is_file() {
            files.push(path);
        }
    }
}

/// The verified tokens of one file with their line numbers (from 1); none for a binary file.
fn scan_file(file: &Path, regex: &Regex) -> io::Result<Vec<(usize, Token)>> {
    let size = fs::metadata(file)?.len();
    if size > MAX_FILE_SIZE {
        return Err(io::Error::other(format!(
            "larger than {} MiB",
            MAX_FILE_SIZE / 1024 / 1024
        )));
    }
    let bytes = fs::read(file)?;
    if bytes[..bytes.len().min(BINARY_SNIFF)].contains(&0) {
        return Ok(Vec::new());
    }
    let mut tokens = Vec::new();
    for (index, line) in bytes.split(|&b| b == b'\n').enumerate() {
        for found in regex.find_iter(line) {
            // The pattern matches ASCII only; a lookalike whose check digits fail is dropped.
            let Ok(text) = std::str::from_utf8(found.as_bytes()) else {
                continue;
            };
            if let Ok(token) = Token::parse(text) {
                tokens.push((index + 1, token));
            }
        }
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use keyward_core::TokenFormat;

    use super::*;

    fn regex() -> Regex {
        let prefixes = [Prefix::new("books").unwrap()];
        Regex::new(&format!(
            r"(?-u:\b){}(?-u:\b)",
            rules::token_pattern(&prefixes)
        ))
        .unwrap()
    }

    #[test]
    fn finds_verified_tokens_with_their_lines() {
        let dir = std::env::temp_dir().join(format!("keyward-scan-unit-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let format = TokenFormat::new("books").unwrap();
        let (a, b) = (format.generate(), format.generate());
        let mut fake = b.expose_secret().to_owned();
        let last = fake.pop().unwrap();
        fake.push(if last == 'x' { 'y' } else { 'x' });
        let text = format!(
            "one\nkey={} and {}\n\nfake={fake}\nbook_{}\n",
            a.expose_secret(),
            b.expose_secret(),
            &a.expose_secret()[6..]
        );
        let file = dir.join("config.env");
        fs::write(&file, text).unwrap();
        let found = scan_file(&file, &regex()).unwrap();
        let lines: Vec<(usize, &str)> = found
            .iter()
            .map(|(line, token)| (*line, token.expose_secret()))
            .collect();
        assert_eq!(lines, [(2, a.expose_secret()), (2, b.expose_secret())]);

        let binary = dir.join("blob.bin");
        fs::write(
            &binary,
            [b"\0".as_slice(), a.expose_secret().as_bytes()].concat(),
        )
        .unwrap();
        assert!(scan_file(&binary, &regex()).unwrap().is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }
}
