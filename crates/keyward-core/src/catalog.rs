//! The application's scope catalog: every scope with a description, and implications.

use std::collections::BTreeMap;

use crate::scope::{KEYS_ADMIN, KEYS_READ, KEYS_WRITE, Scope, ScopeError, ScopeSet, TypedScope};

/// One declared scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogEntry {
    /// The scope.
    pub scope: Scope,
    /// What it allows, in words a person reading a settings page understands.
    pub description: String,
}

/// Every scope the application knows, with descriptions and declared implications.
///
/// Implications are declared explicitly (`books:write` ⇒ `books:read`), never guessed from
/// names. The management scopes `keys:read`, `keys:write` and `keys:admin` are always present,
/// with `keys:admin` ⇒ `keys:write` ⇒ `keys:read`.
///
/// # Example
///
/// ```
/// use keyward_core::{ScopeCatalog, ScopeSet};
///
/// let catalog = ScopeCatalog::builder()
///     .scope("books:read", "Read books")
///     .scope("books:write", "Add and change books")
///     .implies("books:write", "books:read")
///     .build()?;
///
/// let held = catalog.expand(&ScopeSet::parse(["books:write"])?);
/// assert!(held.allows_str("books:read"));
///
/// let err = catalog.parse_set(["books:delete"]).unwrap_err();
/// assert_eq!(err.scope(), "books:delete");
/// # Ok::<(), keyward_core::ScopeError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeCatalog {
    entries: BTreeMap<Scope, String>,
    implications: Vec<(Scope, Scope)>,
}

impl ScopeCatalog {
    /// Starts a catalog holding only the management scopes.
    pub fn builder() -> ScopeCatalogBuilder {
        ScopeCatalogBuilder::default()
            .scope(KEYS_READ, "List your own API keys")
            .scope(KEYS_WRITE, "Create, change and revoke your own API keys")
            .scope(KEYS_ADMIN, "Manage every user's API keys and service keys")
            .implies(KEYS_WRITE, KEYS_READ)
            .implies(KEYS_ADMIN, KEYS_WRITE)
    }

    /// Every declared scope with its description, sorted by name.
    pub fn entries(&self) -> impl Iterator<Item = CatalogEntry> + '_ {
        self.entries
            .iter()
            .map(|(scope, description)| CatalogEntry {
                scope: scope.clone(),
                description: description.clone(),
            })
    }

    /// The declared implications, as `(holder, implied)` pairs.
    #[must_use]
    pub fn implications(&self) -> &[(Scope, Scope)] {
        &self.implications
    }

    /// Every declared scope as a set.
    #[must_use]
    pub fn all_scopes(&self) -> ScopeSet {
        self.entries.keys().cloned().collect()
    }

    /// Whether `scope` is acceptable on a key: declared, a wildcard over a declared resource,
    /// or `*`.
    #[must_use]
    pub fn accepts(&self, scope: &Scope) -> bool {
        match (scope.resource(), scope.action()) {
            (None, _) => true,
            (Some(resource), Some("*")) => {
                self.entries.keys().any(|s| s.resource() == Some(resource))
            }
            _ => self.entries.contains_key(scope),
        }
    }

    /// Parses one scope and checks it against the catalog.
    ///
    /// # Errors
    ///
    /// [`ScopeError::Invalid`] or [`ScopeError::Unknown`], naming the scope.
    pub fn parse_scope(&self, scope: &str) -> Result<Scope, ScopeError> {
        let parsed = Scope::parse(scope)?;
        if self.accepts(&parsed) {
            Ok(parsed)
        } else {
            Err(ScopeError::Unknown {
                scope: scope.to_owned(),
            })
        }
    }

    /// Parses a list of scopes and checks each against the catalog.
    ///
    /// # Errors
    ///
    /// The first [`ScopeError`], naming the scope.
    pub fn parse_set<I, S>(&self, scopes: I) -> Result<ScopeSet, ScopeError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        scopes
            .into_iter()
            .map(|s| self.parse_scope(s.as_ref()))
            .collect()
    }

    /// Checks an already parsed set against the catalog.
    ///
    /// # Errors
    ///
    /// [`ScopeError::Unknown`] for the first scope that is not accepted.
    pub fn check_set(&self, scopes: &ScopeSet) -> Result<(), ScopeError> {
        match scopes.iter().find(|s| !self.accepts(s)) {
            Some(scope) => Err(ScopeError::Unknown {
                scope: scope.to_string(),
            }),
            None => Ok(()),
        }
    }

    /// `scopes` plus everything they imply, transitively.
    #[must_use]
    pub fn expand(&self, scopes: &ScopeSet) -> ScopeSet {
        let mut expanded = scopes.clone();
        loop {
            let added: Vec<Scope> = self
                .implications
                .iter()
                .filter(|(from, to)| expanded.allows(from) && !expanded.allows(to))
                .map(|(_, to)| to.clone())
                .collect();
            if added.is_empty() {
                return expanded;
            }
            expanded.extend(added);
        }
    }

    /// The scopes a key may use: its own scopes, expanded, bounded by what the owner holds now
    /// (also expanded) for a personal key. `owner_grants` is `None` for service keys.
    #[must_use]
    pub fn effective(&self, key_scopes: &ScopeSet, owner_grants: Option<&ScopeSet>) -> ScopeSet {
        let key = self.expand(key_scopes);
        match owner_grants {
            Some(grants) => key.intersection(&self.expand(grants)),
            None => key,
        }
    }
}

/// Builds a [`ScopeCatalog`]; errors are collected and reported by [`build`](Self::build).
#[derive(Debug, Default, Clone)]
#[must_use]
pub struct ScopeCatalogBuilder {
    entries: BTreeMap<Scope, String>,
    implications: Vec<(Scope, Scope)>,
    error: Option<ScopeError>,
}

impl ScopeCatalogBuilder {
    /// Declares a concrete scope (`resource:action`) with its description.
    pub fn scope(mut self, scope: &str, description: impl Into<String>) -> Self {
        match Scope::parse(scope) {
            Ok(parsed) if parsed.is_wildcard() => {
                self.fail(ScopeError::Invalid {
                    scope: scope.to_owned(),
                    reason: "a catalog declares concrete scopes, not wildcards",
                });
            }
            Ok(parsed) => {
                self.entries.insert(parsed, description.into());
            }
            Err(err) => self.fail(err),
        }
        self
    }

    /// Declares the typed scope `T` (from [`scopes!`](crate::scopes)) with its doc comment as
    /// the description: the scope is written once, in its declaration.
    ///
    /// # Example
    ///
    /// ```
    /// use keyward_core::{ScopeCatalog, scopes};
    ///
    /// scopes! {
    ///     /// Read the book collection.
    ///     pub BooksRead = "books:read";
    /// }
    ///
    /// let catalog = ScopeCatalog::builder().typed::<BooksRead>().build()?;
    /// let entry = catalog.entries().find(|e| e.scope.as_str() == "books:read").expect("declared");
    /// assert_eq!(entry.description, "Read the book collection.");
    /// # Ok::<(), keyward_core::ScopeError>(())
    /// ```
    pub fn typed<T: TypedScope>(self) -> Self {
        let description = T::DESCRIPTION
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        self.scope(T::NAME, description)
    }

    /// Declares that holding `holder` also grants `implied`; both must be declared.
    pub fn implies(mut self, holder: &str, implied: &str) -> Self {
        match (Scope::parse(holder), Scope::parse(implied)) {
            (Ok(from), Ok(to)) => self.implications.push((from, to)),
            (Err(err), _) | (_, Err(err)) => self.fail(err),
        }
        self
    }

    fn fail(&mut self, err: ScopeError) {
        self.error.get_or_insert(err);
    }

    /// Finishes the catalog.
    ///
    /// # Errors
    ///
    /// The first malformed scope, or an implication naming an undeclared scope.
    pub fn build(self) -> Result<ScopeCatalog, ScopeError> {
        if let Some(err) = self.error {
            return Err(err);
        }
        for (from, to) in &self.implications {
            for scope in [from, to] {
                if !self.entries.contains_key(scope) {
                    return Err(ScopeError::Unknown {
                        scope: scope.to_string(),
                    });
                }
            }
        }
        Ok(ScopeCatalog {
            entries: self.entries,
            implications: self.implications,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn books() -> ScopeCatalog {
        ScopeCatalog::builder()
            .scope("books:read", "Read books")
            .scope("books:write", "Write books")
            .scope("import:write", "Import")
            .scope("reviews:read", "Read reviews")
            .implies("books:write", "books:read")
            .implies("import:write", "books:write")
            .build()
            .unwrap()
    }

    #[test]
    fn implications_are_transitive() {
        let catalog = books();
        let expanded = catalog.expand(&ScopeSet::parse(["import:write"]).unwrap());
        assert_eq!(
            expanded,
            ScopeSet::parse(["import:write", "books:write", "books:read"]).unwrap()
        );
        // A wildcard holder gets what the wildcard's members imply.
        let expanded = catalog.expand(&ScopeSet::parse(["import:*"]).unwrap());
        assert!(expanded.allows_str("books:read"));
    }

    #[test]
    fn management_scopes_are_built_in() {
        let catalog = books();
        let admin = catalog.expand(&ScopeSet::parse(["keys:admin"]).unwrap());
        assert!(admin.allows_str("keys:read"));
        assert!(catalog.parse_scope("keys:write").is_ok());
    }

    #[test]
    fn unknown_and_malformed_scopes_name_themselves() {
        let catalog = books();
        assert_eq!(
            catalog.parse_scope("books:delete").unwrap_err(),
            ScopeError::Unknown {
                scope: "books:delete".into()
            }
        );
        assert_eq!(
            catalog.parse_scope("nothing:*").unwrap_err().scope(),
            "nothing:*"
        );
        assert_eq!(catalog.parse_scope("BOOKS").unwrap_err().scope(), "BOOKS");
        assert!(catalog.parse_scope("books:*").is_ok());
        assert!(catalog.parse_scope("*").is_ok());
    }

    #[test]
    fn builder_rejects_bad_declarations() {
        let err = ScopeCatalog::builder()
            .scope("books:read", "x")
            .implies("books:write", "books:read")
            .build()
            .unwrap_err();
        assert_eq!(err.scope(), "books:write");
        assert!(
            ScopeCatalog::builder()
                .scope("books:*", "x")
                .build()
                .is_err()
        );
        assert!(ScopeCatalog::builder().scope("Books", "x").build().is_err());
    }

    #[test]
    fn effective_scopes_are_bounded_by_the_owner() {
        let catalog = books();
        let key = ScopeSet::parse(["books:write", "reviews:read"]).unwrap();
        let owner = ScopeSet::parse(["books:read", "reviews:read"]).unwrap();
        let effective = catalog.effective(&key, Some(&owner));
        assert!(effective.allows_str("books:read"));
        assert!(!effective.allows_str("books:write"));
        assert!(effective.allows_str("reviews:read"));
        assert!(catalog.effective(&key, None).allows_str("books:write"));
    }

    fn catalog_scope() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "books:read",
            "books:write",
            "import:write",
            "reviews:read",
        ])
    }

    proptest! {
        #[test]
        fn expansion_is_monotone_and_idempotent(
            held in prop::collection::vec(catalog_scope(), 0..4),
            extra in catalog_scope(),
        ) {
            let catalog = books();
            let set = ScopeSet::parse(&held).unwrap();
            let expanded = catalog.expand(&set);
            prop_assert!(expanded.covers(&set));
            prop_assert_eq!(catalog.expand(&expanded), expanded.clone());
            let mut bigger = set.clone();
            bigger.insert(Scope::parse(extra).unwrap());
            prop_assert!(catalog.expand(&bigger).covers(&expanded));
        }

        #[test]
        fn every_implication_holds_after_expansion(held in prop::collection::vec(catalog_scope(), 0..4)) {
            let catalog = books();
            let expanded = catalog.expand(&ScopeSet::parse(&held).unwrap());
            for (from, to) in catalog.implications() {
                if expanded.allows(from) {
                    prop_assert!(expanded.allows(to));
                }
            }
        }

        #[test]
        fn effective_never_exceeds_the_owner(
            key in prop::collection::vec(catalog_scope(), 0..4),
            owner in prop::collection::vec(catalog_scope(), 0..4),
        ) {
            let catalog = books();
            let owner = ScopeSet::parse(&owner).unwrap();
            let effective = catalog.effective(&ScopeSet::parse(&key).unwrap(), Some(&owner));
            prop_assert!(catalog.expand(&owner).covers(&effective));
        }
    }
}
