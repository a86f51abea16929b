//! `keyward events`: the key events, newest first, as a table or JSON lines.

use chrono::{DateTime, SecondsFormat, Utc};
use clap::Args;
use keyward_core::{ChangeKind, ChangeRecord, EventQuery, KeyId, KeyStore, MAX_PAGE_SIZE};
use keyward_sea_orm::SeaOrmStore;

use crate::Failure;
use crate::output;

/// The filters of `keyward events`.
#[derive(Debug, Args)]
pub(crate) struct EventsArgs {
    /// Only this key's events.
    #[arg(long)]
    key: Option<KeyId>,
    /// Only events of this owner's keys.
    #[arg(long)]
    owner: Option<String>,
    /// Only events of this type (created, updated, enabled, disabled, revoked, deleted,
    /// regenerated, refreshed, expiring_soon, expired, leaked, rate_limited).
    #[arg(long = "type", value_parser = parse_kind)]
    kind: Option<ChangeKind>,
    /// Only events at or after this time (RFC 3339, e.g. 2026-11-01T00:00:00Z).
    #[arg(long)]
    since: Option<DateTime<Utc>>,
    /// At most this many events.
    #[arg(long, default_value_t = 100)]
    limit: usize,
}

fn parse_kind(value: &str) -> Result<ChangeKind, String> {
    value
        .parse::<ChangeKind>()
        .ok()
        .filter(|kind| *kind != ChangeKind::Owner)
        .ok_or_else(|| {
            let names: Vec<&str> = ChangeKind::ALL
                .iter()
                .filter(|kind| **kind != ChangeKind::Owner)
                .map(|kind| kind.as_str())
                .collect();
            format!("expected one of {}", names.join(", "))
        })
}

/// Prints the events `args` select, newest first.
pub(crate) async fn print(
    store: &SeaOrmStore,
    args: EventsArgs,
    json: bool,
) -> Result<(), Failure> {
    let mut query = EventQuery::new();
    query.key_id = args.key;
    query.owner = args.owner;
    query.kind = args.kind;
    query.since = args.since;
    let mut left = args.limit;
    let mut events: Vec<ChangeRecord> = Vec::new();
    while left > 0 {
        let page = store
            .events(&query.clone().limit(left.min(MAX_PAGE_SIZE)))
            .await?;
        left = left.saturating_sub(page.events.len());
        events.extend(page.events);
        match page.next_cursor {
            Some(cursor) => query = query.before(cursor),
            None => break,
        }
    }
    if json {
        for event in &events {
            let value = serde_json::to_value(event.view()).unwrap_or_default();
            println!("{value}");
        }
    } else if events.is_empty() {
        eprintln!("no events");
    } else {
        print!("{}", table(&events));
    }
    Ok(())
}

/// One aligned line per event: time, type, key, actor, address, what changed.
fn table(events: &[ChangeRecord]) -> String {
    let rows: Vec<[String; 6]> = events
        .iter()
        .map(|event| {
            [
                event.at.to_rfc3339_opts(SecondsFormat::Secs, true),
                event.kind.to_string(),
                event
                    .key_id
                    .map_or_else(|| "-".to_owned(), |id| id.to_string()),
                event
                    .actor
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), ToString::to_string),
                event
                    .client_ip
                    .map_or_else(|| "-".to_owned(), |ip| ip.to_string()),
                summary(event),
            ]
        })
        .collect();
    let header = ["TIME", "TYPE", "KEY", "ACTOR", "ADDRESS", "DETAIL"].map(str::to_owned);
    output::align(std::iter::once(header).chain(rows), &[])
}

/// The detail in a few words: the changed fields, or the leak's URL, or the expiry.
fn summary(event: &ChangeRecord) -> String {
    let detail = &event.detail;
    if let Some(fields) = detail["fields"].as_array() {
        let names: Vec<&str> = fields.iter().filter_map(|f| f.as_str()).collect();
        return format!("changed {}", names.join(", "));
    }
    if let Some(url) = detail["url"].as_str() {
        return format!("found at {url}");
    }
    if let Some(at) = detail["expires_at"].as_str() {
        return format!("expires {at}");
    }
    if let Some(name) = detail["name"].as_str() {
        return format!("\"{name}\"");
    }
    String::new()
}
