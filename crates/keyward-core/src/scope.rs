//! Scopes: `resource:action` strings, wildcards, sets and matching.
//!
//! A scope is `resource:action` with each part matching `[a-z][a-z0-9_.-]*`. A key holding
//! `resource:*` may do every action on that resource, and a key holding `*` may do everything.
//! Which scopes exist, what they mean and which imply which is declared by the application in a
//! [`ScopeCatalog`](crate::ScopeCatalog).

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The scope to list one's own keys.
pub const KEYS_READ: &str = "keys:read";
/// The scope to create, change, revoke and delete one's own keys.
pub const KEYS_WRITE: &str = "keys:write";
/// The scope to manage every owner's keys, mint keys for others and create service keys.
pub const KEYS_ADMIN: &str = "keys:admin";

/// Why a scope was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScopeError {
    /// The string is not a well-formed scope.
    #[error("invalid scope {scope:?}: {reason}")]
    Invalid {
        /// The offending input.
        scope: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The scope is well formed but not declared in the catalog.
    #[error("unknown scope {scope:?}: it is not in the scope catalog")]
    Unknown {
        /// The offending scope.
        scope: String,
    },
}

impl ScopeError {
    /// The scope string this error is about.
    #[must_use]
    pub fn scope(&self) -> &str {
        match self {
            Self::Invalid { scope, .. } | Self::Unknown { scope } => scope,
        }
    }
}

/// One scope: `resource:action`, `resource:*` or `*`.
///
/// # Example
///
/// ```
/// use keyward_core::Scope;
///
/// let scope: Scope = "books:write".parse()?;
/// assert_eq!(scope.resource(), Some("books"));
/// assert_eq!(scope.action(), Some("write"));
/// assert!("books:*".parse::<Scope>()?.is_wildcard());
///
/// let err = "Books:Read".parse::<Scope>().unwrap_err();
/// assert!(err.to_string().contains("Books:Read"));
/// # Ok::<(), keyward_core::ScopeError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Scope {
    value: String,
    // Byte index of ':' or 0 for `*`.
    colon: usize,
}

impl Scope {
    /// The scope that allows everything.
    #[must_use]
    pub fn all() -> Self {
        Self {
            value: "*".to_owned(),
            colon: 0,
        }
    }

    /// Parses and validates a scope.
    ///
    /// # Errors
    ///
    /// [`ScopeError::Invalid`] naming the input.
    pub fn parse(s: &str) -> Result<Self, ScopeError> {
        check_scope(s).map_err(|reason| ScopeError::Invalid {
            scope: s.to_owned(),
            reason,
        })?;
        Ok(Self {
            value: s.to_owned(),
            colon: s.find(':').unwrap_or(0),
        })
    }

    /// The scope string.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.value
    }

    /// The resource part; `None` for `*`.
    #[must_use]
    pub fn resource(&self) -> Option<&str> {
        (self.colon > 0).then(|| &self.value[..self.colon])
    }

    /// The action part (`*` for a resource wildcard); `None` for `*`.
    #[must_use]
    pub fn action(&self) -> Option<&str> {
        (self.colon > 0).then(|| &self.value[self.colon + 1..])
    }

    /// Whether this is `*` or `resource:*`.
    #[must_use]
    pub fn is_wildcard(&self) -> bool {
        self.value.ends_with('*')
    }

    /// Whether holding `self` allows `requested`.
    ///
    /// `*` allows everything; `books:*` allows `books:*` and every `books:…`; a concrete scope
    /// allows only itself.
    #[must_use]
    pub fn allows(&self, requested: &Scope) -> bool {
        if self.colon == 0 {
            return true;
        }
        if self.value == requested.value {
            return true;
        }
        self.action() == Some("*") && requested.resource() == self.resource()
    }
}

/// Validates a scope at compile time or run time; `Err` carries the reason.
const fn check_scope(s: &str) -> Result<(), &'static str> {
    let bytes = s.as_bytes();
    if bytes.is_empty() {
        return Err("a scope cannot be empty");
    }
    if bytes.len() == 1 && bytes[0] == b'*' {
        return Ok(());
    }
    let mut colon = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b':' {
            if colon != 0 {
                return Err("a scope has exactly one ':'");
            }
            colon = i;
        }
        i += 1;
    }
    if colon == 0 {
        return Err("a scope has the form resource:action");
    }
    if !is_part(bytes, 0, colon) {
        return Err("the resource must match [a-z][a-z0-9_.-]*");
    }
    if colon + 2 == bytes.len() && bytes[colon + 1] == b'*' {
        return Ok(());
    }
    if !is_part(bytes, colon + 1, bytes.len()) {
        return Err("the action must match [a-z][a-z0-9_.-]* or be *");
    }
    Ok(())
}

const fn is_part(bytes: &[u8], start: usize, end: usize) -> bool {
    if start >= end || !bytes[start].is_ascii_lowercase() {
        return false;
    }
    let mut i = start + 1;
    while i < end {
        let b = bytes[i];
        if !(b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.' || b == b'-') {
            return false;
        }
        i += 1;
    }
    true
}

/// Whether `s` is a well-formed scope; usable in constants (the [`scopes!`](crate::scopes)
/// macro checks its literals with it at compile time).
#[must_use]
pub const fn is_valid_scope(s: &str) -> bool {
    check_scope(s).is_ok()
}

impl FromStr for Scope {
    type Err = ScopeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Scope {
    type Error = ScopeError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl TryFrom<&str> for Scope {
    type Error = ScopeError;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<Scope> for String {
    fn from(value: Scope) -> Self {
        value.value
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.value, f)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value)
    }
}

/// A set of scopes with wildcard-aware matching.
///
/// # Example
///
/// ```
/// use keyward_core::ScopeSet;
///
/// let held = ScopeSet::parse(["books:*", "reviews:read"])?;
/// assert!(held.allows_str("books:write"));
/// assert!(held.allows_str("reviews:read"));
/// assert!(!held.allows_str("reviews:write"));
/// # Ok::<(), keyward_core::ScopeError>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ScopeSet(BTreeSet<Scope>);

impl ScopeSet {
    /// The empty set.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses every string; fails on the first malformed one, naming it.
    ///
    /// # Errors
    ///
    /// [`ScopeError::Invalid`].
    pub fn parse<I, S>(scopes: I) -> Result<Self, ScopeError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        scopes
            .into_iter()
            .map(|s| Scope::parse(s.as_ref()))
            .collect()
    }

    /// Adds a scope.
    pub fn insert(&mut self, scope: Scope) -> bool {
        self.0.insert(scope)
    }

    /// Whether the set holds exactly `scope` (no wildcard matching).
    #[must_use]
    pub fn contains(&self, scope: &Scope) -> bool {
        self.0.contains(scope)
    }

    /// Whether any scope in the set allows `requested`.
    #[must_use]
    pub fn allows(&self, requested: &Scope) -> bool {
        self.0.contains(requested) || self.0.iter().any(|held| held.allows(requested))
    }

    /// [`allows`](Self::allows) for a string; a malformed string is never allowed.
    #[must_use]
    pub fn allows_str(&self, requested: &str) -> bool {
        if self.0.iter().any(|held| held.value == requested) {
            return true;
        }
        Scope::parse(requested).is_ok_and(|s| self.allows(&s))
    }

    /// Whether every scope of `other` is allowed by this set.
    #[must_use]
    pub fn covers(&self, other: &ScopeSet) -> bool {
        other.0.iter().all(|s| self.allows(s))
    }

    /// The scopes allowed by both sets, written as narrowly as either writes them.
    ///
    /// `{books:*} ∩ {books:read}` is `{books:read}`; `{*} ∩ {books:*}` is `{books:*}`.
    #[must_use]
    pub fn intersection(&self, other: &ScopeSet) -> ScopeSet {
        let from_self = self.0.iter().filter(|s| other.allows(s));
        let from_other = other.0.iter().filter(|s| self.allows(s));
        from_self.chain(from_other).cloned().collect()
    }

    /// Iterates in sorted order.
    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.0.iter()
    }

    /// Number of scopes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The scopes as strings, sorted.
    #[must_use]
    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(|s| s.value.clone()).collect()
    }
}

impl fmt::Debug for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.iter()).finish()
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<T: IntoIterator<Item = Scope>>(iter: T) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl Extend<Scope> for ScopeSet {
    fn extend<T: IntoIterator<Item = Scope>>(&mut self, iter: T) {
        self.0.extend(iter);
    }
}

impl IntoIterator for ScopeSet {
    type Item = Scope;
    type IntoIter = std::collections::btree_set::IntoIter<Scope>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a ScopeSet {
    type Item = &'a Scope;
    type IntoIter = std::collections::btree_set::Iter<'a, Scope>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// A scope known at compile time, as a type: `RequireScope<BooksWrite>` in a handler.
///
/// Declare them with [`scopes!`](crate::scopes), which also checks the string at compile time.
pub trait TypedScope: Send + Sync + 'static {
    /// The scope string, e.g. `"books:write"`.
    const NAME: &'static str;
    /// What the scope allows, from its doc comment, for the catalog
    /// ([`ScopeCatalogBuilder::typed`](crate::catalog::ScopeCatalogBuilder::typed)).
    const DESCRIPTION: &'static str;
}

/// Declares marker types for scopes, each with its doc comment as its description.
///
/// Each literal is checked at compile time, so a malformed scope does not compile, and
/// handlers name scopes by type, so a typo in a name does not compile either. Build the
/// catalog from the same types
/// ([`ScopeCatalogBuilder::typed`](crate::catalog::ScopeCatalogBuilder::typed)), so that each
/// scope is written once.
///
/// # Example
///
/// ```
/// use keyward_core::{TypedScope, scopes};
///
/// scopes! {
///     /// Read the book collection.
///     pub BooksRead = "books:read";
///     /// Change the book collection.
///     pub BooksWrite = "books:write";
/// }
///
/// assert_eq!(BooksWrite::NAME, "books:write");
/// assert_eq!(BooksWrite::DESCRIPTION.trim(), "Change the book collection.");
/// ```
///
/// ```compile_fail
/// keyward_core::scopes! {
///     /// Not a scope: upper case.
///     pub Bad = "Books:Read";
/// }
/// ```
#[macro_export]
macro_rules! scopes {
    ($($(#[doc = $doc:expr])+ $vis:vis $name:ident = $scope:literal;)+) => {
        $(
            $(#[doc = $doc])+
            #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
            $vis struct $name;

            impl $crate::TypedScope for $name {
                const NAME: &'static str = $scope;
                const DESCRIPTION: &'static str = concat!($($doc, " "),+);
            }

            const _: () = assert!(
                $crate::is_valid_scope($scope),
                concat!("invalid scope: ", $scope)
            );
        )+
    };
}

scopes! {
    /// List and see one's own keys.
    pub KeysRead = "keys:read";
    /// Create, change, revoke and delete one's own keys.
    pub KeysWrite = "keys:write";
    /// Manage every owner's keys and service keys.
    pub KeysAdmin = "keys:admin";
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn scope(s: &str) -> Scope {
        Scope::parse(s).unwrap()
    }

    #[test]
    fn parses_the_forms() {
        for ok in [
            "*",
            "books:*",
            "books:read",
            "a:b",
            "import-v2.x:run_now",
            "x1:y2",
        ] {
            assert!(Scope::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ":",
            "books",
            "books:",
            ":read",
            "Books:read",
            "books:Read",
            "books:read:x",
            "1books:read",
            "books:1read",
            "books:re ad",
            "**",
            "books:**",
            "*:read",
            " books:read",
            "books:*x",
        ] {
            let err = Scope::parse(bad).unwrap_err();
            assert_eq!(err.scope(), bad);
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn intersection_keeps_the_narrow_side() {
        let key = ScopeSet::parse(["books:*", "reviews:read", "lists:write"]).unwrap();
        let owner = ScopeSet::parse(["books:read", "reviews:*"]).unwrap();
        assert_eq!(
            key.intersection(&owner),
            ScopeSet::parse(["books:read", "reviews:read"]).unwrap()
        );
        let all = ScopeSet::parse(["*"]).unwrap();
        assert_eq!(all.intersection(&key), key);
    }

    fn part() -> impl Strategy<Value = String> {
        "[a-z][a-z0-9_.-]{0,8}"
    }

    fn concrete() -> impl Strategy<Value = Scope> {
        (part(), part()).prop_map(|(r, a)| scope(&format!("{r}:{a}")))
    }

    fn any_scope() -> impl Strategy<Value = Scope> {
        prop_oneof![
            6 => concrete(),
            2 => part().prop_map(|r| scope(&format!("{r}:*"))),
            1 => Just(Scope::all()),
        ]
    }

    proptest! {
        #[test]
        fn every_well_formed_string_round_trips(s in any_scope()) {
            prop_assert_eq!(Scope::parse(s.as_str()).unwrap(), s);
        }

        #[test]
        fn star_allows_everything(s in any_scope()) {
            prop_assert!(Scope::all().allows(&s));
        }

        #[test]
        fn resource_wildcard_allows_exactly_its_resource(s in concrete(), r in part()) {
            let wildcard = scope(&format!("{r}:*"));
            prop_assert_eq!(wildcard.allows(&s), s.resource() == Some(r.as_str()));
        }

        #[test]
        fn concrete_allows_only_itself(a in concrete(), b in any_scope()) {
            prop_assert_eq!(a.allows(&b), a == b);
        }

        #[test]
        fn allows_is_transitive(a in any_scope(), b in any_scope(), c in any_scope()) {
            if a.allows(&b) && b.allows(&c) {
                prop_assert!(a.allows(&c));
            }
        }

        #[test]
        fn intersection_is_allowed_by_both(
            a in prop::collection::vec(any_scope(), 0..6),
            b in prop::collection::vec(any_scope(), 0..6),
            probe in concrete(),
        ) {
            let a: ScopeSet = a.into_iter().collect();
            let b: ScopeSet = b.into_iter().collect();
            let both = a.intersection(&b);
            prop_assert!(a.covers(&both));
            prop_assert!(b.covers(&both));
            prop_assert_eq!(both.allows(&probe), a.allows(&probe) && b.allows(&probe));
        }

        #[test]
        fn malformed_strings_are_errors_naming_them(s in "[A-Z0-9 :*]{0,12}") {
            prop_assume!(s != "*");
            let err = Scope::parse(&s).unwrap_err();
            prop_assert_eq!(err.scope(), s.as_str());
        }
    }
}
