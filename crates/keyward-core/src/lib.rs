//! The core of keyward: API keys for axum and tower applications, without any I/O.
//!
//! This crate holds the pieces every other keyward crate agrees on:
//!
//! * the [token format](TokenFormat) — `{prefix}_{40 base62 secret}{6 base62 CRC32}` — with
//!   [`TokenFormat`], [`Token`] (redacted, zeroized) and [`TokenHasher`] (SHA-256 or a peppered
//!   HMAC-SHA256);
//! * [scopes](Scope): [`Scope`], [`ScopeSet`] with `resource:*` and `*`, the application's
//!   [`ScopeCatalog`] with implications, and typed scopes declared with [`scopes!`];
//! * the [`KeyRecord`], the inputs that create ([`NewKey`]) and change ([`KeyChanges`]) one,
//!   and the rules for refresh and regenerate;
//! * the [`policy`] that decides whether a found key may be used, with an injectable
//!   [`Clock`];
//! * the [`Principal`] handlers receive;
//! * the [`KeyStore`] trait with its change log ([`ChangeRecord`], read with
//!   [`KeyStore::changes_since`]), the in-memory [`MemoryStore`], and (feature `test-util`)
//!   the [`conformance`] suite every store runs;
//! * the [`AppSettings`] an application records in its store, so that the command line
//!   issues keys it accepts.
//!
//! Most applications depend on the `keyward` crate, which re-exports these types and adds the
//! middleware.
//!
//! # Quick start
//!
//! ```
//! use chrono::Utc;
//! use keyward_core::{
//!     EventContext,
//!     KeyStore, MemoryStore, NewKey, Principal, ScopeCatalog, TokenFormat, TokenHasher, policy,
//! };
//!
//! # futures_util::FutureExt::now_or_never(async {
//! // The application's scopes.
//! let catalog = ScopeCatalog::builder()
//!     .scope("books:read", "Read the book collection")
//!     .scope("books:write", "Add and change books")
//!     .implies("books:write", "books:read")
//!     .build()?;
//! let format = TokenFormat::new("books")?;
//! let hasher = TokenHasher::sha256();
//! let store = MemoryStore::new();
//!
//! // A person creates a key; the token is shown once, only its digest is stored.
//! let issued = NewKey::personal("Backup Script", "alice")
//!     .scopes(["books:write"])
//!     .issue(&catalog, &format, &hasher, Utc::now())?;
//! let shown_once = issued.token.expose_secret().to_owned();
//! store.insert(issued.record, &EventContext::system()).await?;
//!
//! // Later a script presents it.
//! let token = format.parse(&shown_once)?; // shape and check digits, no store access
//! let digest = hasher.digest(&token);
//! let record = store.find_by_digest(&digest, Utc::now()).await?.expect("known key");
//! policy::evaluate(&record, &digest, Utc::now(), None)?;
//!
//! let principal = Principal::from_record(&record, catalog.effective(&record.scopes, None));
//! assert!(principal.has_scope("books:read")); // implied by books:write
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).expect("MemoryStore never waits")?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod catalog;
mod change_log;
mod clock;
#[cfg(feature = "test-util")]
pub mod conformance;
mod digest;
mod event;
mod input;
mod key;
mod lifetime;
mod memory;
pub mod policy;
mod principal;
mod scope;
mod settings;
mod store;
mod store_arc;
mod token;
mod validation;

pub use catalog::{CatalogEntry, ScopeCatalog, ScopeCatalogBuilder};
pub use change_log::{
    CHANGE_GAP_WINDOW, ChangeBatch, ChangeCursor, ChangeKind, ChangeRecord, MAX_CHANGE_BATCH,
    UnknownChangeKind, effective_change_limit,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use digest::{DigestLengthError, TokenDigest, TokenHasher};
pub use event::{
    Actor, EXPIRED_NOTICE_LOOKBACK, EventContext, EventPage, EventQuery, EventView, Leak,
    UnknownActor, event_detail, notice_detail, notice_due,
};
pub use input::{IssuedKey, KeyChanges, METADATA_MAX_BYTES, NAME_MAX_CHARS, NewKey, OWNER_MAX_LEN};
pub use key::{
    KeyId, KeyKind, KeyRecord, KeyUpdate, KeyView, PreviousSecret, RuleError, SecretRotation,
    UnknownKind,
};
pub use lifetime::{
    DEFAULT_EXPIRY_DAYS, EXPIRY_PRESET_DAYS, Expiry, GracePeriod, MAX_GRACE_SECONDS, MAX_LIFETIME,
    MAX_LIFETIME_DAYS,
};
pub use memory::MemoryStore;
pub use principal::Principal;
#[doc(hidden)]
pub use scope::is_valid_scope;
pub use scope::{
    KEYS_ADMIN, KEYS_READ, KEYS_WRITE, KeysAdmin, KeysRead, KeysWrite, Scope, ScopeError, ScopeSet,
    TypedScope,
};
pub use settings::{AppSettings, RecordedScope};
pub use store::{
    ChangeStream, ConsumerLease, DEFAULT_PAGE_SIZE, DailyUsage, InvalidCursor, KeyChange, KeyStore,
    ListCursor, ListQuery, MAX_PAGE_SIZE, Page, StoreError, StoreErrorKind, UsageUpdate,
};
pub use token::{
    CHECK_LEN, KeyHint, PREFIX_MAX_LEN, PREFIX_MIN_LEN, Prefix, PrefixError, SECRET_LEN,
    TOKEN_REGEX, Token, TokenError, TokenFormat, TokenRef,
};
pub use validation::{FieldError, ValidationError};
