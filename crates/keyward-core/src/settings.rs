//! What an application records about itself in its key store, for tools that share the store.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::catalog::ScopeCatalog;
use crate::digest::TokenHasher;
use crate::scope::ScopeError;
use crate::token::TokenFormat;

/// The settings an application runs with, recorded in its key store when it starts
/// ([`KeyStore::record_settings`](crate::KeyStore::record_settings)) so that tools working on
/// the same store, such as the `keyward` command line, issue keys the application accepts:
/// with its prefix, its scopes and its pepper.
///
/// Nothing secret is recorded: the pepper appears only as its
/// [fingerprint](TokenHasher::pepper_fingerprint). Stored as JSON; fields added in later
/// versions have defaults, so older records still read.
///
/// # Example
///
/// ```
/// use chrono::Utc;
/// use keyward_core::{AppSettings, ScopeCatalog, TokenFormat, TokenHasher};
///
/// let catalog = ScopeCatalog::builder().scope("books:read", "Read books").build()?;
/// let format = TokenFormat::new("books")?.accept("jelu")?;
/// let settings = AppSettings::new(&format, &catalog, &TokenHasher::sha256(), Utc::now());
///
/// assert_eq!(settings.prefix, "books");
/// assert!(settings.accepts_prefix("jelu"));
/// assert!(settings.catalog()?.parse_scope("books:read").is_ok());
/// assert_eq!(settings.pepper_fingerprint, None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AppSettings {
    /// The prefix of new tokens.
    pub prefix: String,
    /// Every prefix the application accepts, the issuing one first.
    pub accepted_prefixes: Vec<String>,
    /// The scope catalog: every scope with its description, sorted by name.
    pub scopes: Vec<RecordedScope>,
    /// The catalog's implications, as `[holder, implied]` pairs.
    #[serde(default)]
    pub implications: Vec<(String, String)>,
    /// The [fingerprint](TokenHasher::pepper_fingerprint) of the application's pepper;
    /// `None` when it uses none.
    #[serde(default)]
    pub pepper_fingerprint: Option<String>,
    /// When the application recorded these settings.
    pub recorded_at: DateTime<Utc>,
}

/// One scope of a recorded catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedScope {
    /// The scope, e.g. `books:read`.
    pub name: String,
    /// What it allows.
    pub description: String,
}

impl AppSettings {
    /// The settings of an application that issues tokens in `format`, declares `catalog` and
    /// digests tokens with `hasher`, as of `now`.
    #[must_use]
    pub fn new(
        format: &TokenFormat,
        catalog: &ScopeCatalog,
        hasher: &TokenHasher,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            prefix: format.issuing_prefix().to_string(),
            accepted_prefixes: format
                .accepted_prefixes()
                .iter()
                .map(ToString::to_string)
                .collect(),
            scopes: catalog
                .entries()
                .map(|entry| RecordedScope {
                    name: entry.scope.to_string(),
                    description: entry.description,
                })
                .collect(),
            implications: catalog
                .implications()
                .iter()
                .map(|(holder, implied)| (holder.to_string(), implied.to_string()))
                .collect(),
            pepper_fingerprint: hasher.pepper_fingerprint(),
            recorded_at: now,
        }
    }

    /// Whether the application accepts tokens with `prefix`.
    #[must_use]
    pub fn accepts_prefix(&self, prefix: &str) -> bool {
        self.prefix == prefix || self.accepted_prefixes.iter().any(|p| p == prefix)
    }

    /// The recorded catalog, rebuilt: checks scopes as the application does.
    ///
    /// # Errors
    ///
    /// The first [`ScopeError`] of a record that holds an invalid scope.
    pub fn catalog(&self) -> Result<ScopeCatalog, ScopeError> {
        let builder = self
            .scopes
            .iter()
            .fold(ScopeCatalog::builder(), |builder, scope| {
                builder.scope(&scope.name, scope.description.as_str())
            });
        // The builder already declares the management scopes' implications.
        let built_in = ScopeCatalog::builder().build()?;
        let built_in: Vec<(String, String)> = built_in
            .implications()
            .iter()
            .map(|(holder, implied)| (holder.to_string(), implied.to_string()))
            .collect();
        self.implications
            .iter()
            .filter(|pair| !built_in.contains(pair))
            .fold(builder, |builder, (holder, implied)| {
                builder.implies(holder, implied)
            })
            .build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> ScopeCatalog {
        ScopeCatalog::builder()
            .scope("books:read", "Read books")
            .scope("books:write", "Change books")
            .implies("books:write", "books:read")
            .build()
            .unwrap()
    }

    #[test]
    fn round_trips_through_json() {
        let format = TokenFormat::new("books").unwrap();
        let settings = AppSettings::new(
            &format,
            &catalog(),
            &TokenHasher::hmac(b"pepper"),
            Utc::now(),
        );
        let json = serde_json::to_string(&settings).unwrap();
        assert!(!json.contains("\"pepper\""));
        let back: AppSettings = serde_json::from_str(&json).unwrap();
        assert_eq!(back, settings);
        assert_eq!(back.catalog().unwrap(), catalog());
        assert_eq!(back.pepper_fingerprint.as_deref(), Some("0c0bfbd8ecc166a5"));
    }

    #[test]
    fn older_records_without_optional_fields_read() {
        let json = r#"{"prefix":"books","accepted_prefixes":["books"],
            "scopes":[{"name":"books:read","description":"Read books"}],
            "recorded_at":"2026-11-23T10:00:00Z","added_later":1}"#;
        let settings: AppSettings = serde_json::from_str(json).unwrap();
        assert!(settings.implications.is_empty());
        assert_eq!(settings.pepper_fingerprint, None);
        assert!(settings.accepts_prefix("books"));
        assert!(!settings.accepts_prefix("keyward"));
    }

    #[test]
    fn memory_store_keeps_the_last_settings() {
        use crate::{KeyStore, MemoryStore};
        use futures_util::FutureExt;

        let store = MemoryStore::new();
        let hasher = TokenHasher::sha256();
        assert_eq!(store.settings().now_or_never().unwrap().unwrap(), None);
        for prefix in ["jelu", "books"] {
            let format = TokenFormat::new(prefix).unwrap();
            let settings = AppSettings::new(&format, &catalog(), &hasher, Utc::now());
            store
                .record_settings(&settings)
                .now_or_never()
                .unwrap()
                .unwrap();
        }
        let recorded = store.settings().now_or_never().unwrap().unwrap().unwrap();
        assert_eq!(recorded.prefix, "books");
        let through_arc = std::sync::Arc::new(store);
        assert_eq!(
            through_arc.settings().now_or_never().unwrap().unwrap(),
            Some(recorded)
        );
    }
}
