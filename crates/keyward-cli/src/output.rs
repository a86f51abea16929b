//! What the commands print: text for people, `--json` for scripts.
//!
//! Tokens go to stdout alone (so `TOKEN=$(keyward create ...)` works); everything else a
//! person should read about a new token goes to stderr.

use std::error::Error;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use keyward_core::{IssuedKey, KeyRecord, KeyView};
use serde_json::json;

/// A record's state in one word.
pub(crate) fn status(key: &KeyRecord, now: DateTime<Utc>) -> &'static str {
    if key.is_revoked() {
        "revoked"
    } else if !key.active {
        "disabled"
    } else if key.is_expired(now) {
        "expired"
    } else {
        "active"
    }
}

pub(crate) fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON values serialize")
    );
}

pub(crate) fn done(json: bool, message: &str) {
    if json {
        print_json(&json!({ "ok": true, "message": message }));
    } else {
        println!("{message}");
    }
}

pub(crate) fn issued(json: bool, issued: &IssuedKey) {
    if json {
        print_json(&json!({
            "key": issued.record.view(),
            "token": issued.token.expose_secret(),
        }));
    } else {
        println!("{}", issued.token.expose_secret());
        eprintln!(
            "key {} ({}): copy the token above now, it is not shown again",
            issued.record.id, issued.record.name
        );
    }
}

pub(crate) fn key(json: bool, key: &KeyRecord, now: DateTime<Utc>) {
    if json {
        print_json(&json!(with_status(key, now)));
        return;
    }
    let view = key.view();
    let mut out = String::new();
    let mut line = |label: &str, value: String| {
        let _ = writeln!(out, "{label:<13} {value}");
    };
    line("id", view.id.to_string());
    line("name", view.name.clone());
    line("kind", view.kind.to_string());
    line("owner", view.owner.clone().unwrap_or_else(|| "-".into()));
    line("scopes", view.scopes.join(" "));
    line("key", view.hint.clone());
    line("status", status(key, now).into());
    line("created", view.created_at.to_rfc3339());
    line("expires", time_or(view.expires_at, "never"));
    line("last used", time_or(view.last_used_at, "never"));
    line(
        "last ip",
        view.last_used_ip
            .map_or_else(|| "-".into(), |ip| ip.to_string()),
    );
    line("uses", view.usage_count.to_string());
    line("allowed ips", list_or(&view.allowed_ips, "any"));
    line(
        "rate limit",
        view.rate_limit
            .map_or_else(|| "none".into(), |r| format!("{r}/min")),
    );
    if let Some(revoked) = view.revoked_at {
        line("revoked", revoked.to_rfc3339());
    }
    print!("{out}");
}

/// Longest name and owner shown in full in a listing; longer ones end in `…`.
const NAME_WIDTH: usize = 32;
const OWNER_WIDTH: usize = 24;

pub(crate) fn list(json: bool, keys: &[KeyRecord], now: DateTime<Utc>) {
    if json {
        let views: Vec<_> = keys.iter().map(|k| with_status(k, now)).collect();
        print_json(&json!({ "keys": views }));
        return;
    }
    print!("{}", table(keys, now));
}

/// The listing as text: one line per key under a header, each column as wide as its widest
/// cell, uses aligned right, scopes last.
fn table(keys: &[KeyRecord], now: DateTime<Utc>) -> String {
    let header = [
        "ID", "NAME", "KIND", "OWNER", "STATUS", "EXPIRES", "USES", "SCOPES",
    ];
    let rows: Vec<[String; 8]> = keys
        .iter()
        .map(|key| {
            [
                key.id.to_string(),
                truncate(&key.name, NAME_WIDTH),
                key.kind.to_string(),
                truncate(key.owner.as_deref().unwrap_or("-"), OWNER_WIDTH),
                status(key, now).to_owned(),
                time_or(key.expires_at, "never"),
                key.usage_count.to_string(),
                key.scopes.to_strings().join(" "),
            ]
        })
        .collect();
    let header = header.map(str::to_owned);
    // Uses are numbers: aligned right.
    align(std::iter::once(header).chain(rows), &[6])
}

/// Rows as text: each column as wide as its widest cell, two spaces apart, the columns in
/// `right` aligned right, the last column unpadded.
pub(crate) fn align<const N: usize>(
    rows: impl IntoIterator<Item = [String; N]>,
    right: &[usize],
) -> String {
    let rows: Vec<[String; N]> = rows.into_iter().collect();
    let mut widths = [0; N];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (column, (cell, &width)) in row.iter().zip(&widths).enumerate() {
            let pad = width - cell.chars().count();
            if column > 0 {
                line.push_str("  ");
            }
            if right.contains(&column) {
                line.extend(std::iter::repeat_n(' ', pad));
                line.push_str(cell);
            } else if column + 1 == N {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

pub(crate) fn verdict(json: bool, key: Option<&KeyView>, verdict: Result<(), String>) {
    if json {
        print_json(&json!({
            "usable": verdict.is_ok(),
            "reason": verdict.as_ref().err(),
            "key": key,
        }));
        return;
    }
    if let Some(key) = key {
        println!("key {} ({})", key.id, key.name);
    }
    match verdict {
        Ok(()) => println!("usable"),
        Err(reason) => println!("not usable: {reason}"),
    }
}

pub(crate) fn error_chain(err: &dyn Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        // Many errors repeat their source in their own message; say each thing once.
        let text = cause.to_string();
        if !message.contains(&text) {
            let _ = write!(message, ": {text}");
        }
        source = cause.source();
    }
    message
}

fn with_status(key: &KeyRecord, now: DateTime<Utc>) -> serde_json::Value {
    let mut value = json!(key.view());
    value["status"] = json!(status(key, now));
    value
}

fn time_or(time: Option<DateTime<Utc>>, absent: &str) -> String {
    time.map_or_else(
        || absent.to_owned(),
        |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

fn list_or(items: &[String], empty: &str) -> String {
    if items.is_empty() {
        empty.to_owned()
    } else {
        items.join(" ")
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use keyward_core::{NewKey, ScopeCatalog, TokenFormat, TokenHasher};

    use super::*;

    fn key(new: NewKey) -> KeyRecord {
        let catalog = ScopeCatalog::builder()
            .scope("books:read", "Read books")
            .build()
            .unwrap();
        let now = Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap();
        new.scopes(["books:read"])
            .issue(
                &catalog,
                &TokenFormat::new("books").unwrap(),
                &TokenHasher::sha256(),
                now,
            )
            .unwrap()
            .record
    }

    #[test]
    fn every_column_starts_at_the_same_place_on_every_line() {
        let keys = [
            key(NewKey::personal("Backup Script", "alice")),
            key(NewKey::service("ci").expiry(keyward_core::Expiry::Never)),
            key(NewKey::personal(
                "A name far longer than the column is wide, cut short",
                "someone-with-a-long-user-id-0123456789",
            )),
        ];
        let text = table(&keys, Utc::now());
        let lines: Vec<Vec<char>> = text.lines().map(|l| l.chars().collect()).collect();
        assert_eq!(lines.len(), 4, "{text}");
        let header = &lines[0];
        let starts: Vec<usize> = (0..header.len())
            .filter(|&i| header[i] != ' ' && (i == 0 || header[i - 1] == ' '))
            .collect();
        assert_eq!(starts.len(), 8, "{text}");
        for line in &lines[1..] {
            for &start in &starts[1..] {
                if start == starts[6] {
                    continue; // right-aligned
                }
                assert_ne!(line[start], ' ', "a cell starts at {start}:\n{text}");
                assert_eq!(line[start - 1], ' ', "a cell ends before {start}:\n{text}");
            }
        }
        assert!(text.contains("…"), "long values are cut: {text}");
    }
}
