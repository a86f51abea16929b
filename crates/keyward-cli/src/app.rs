//! What the command line knows of the application: the settings it recorded when it started
//! (prefixes, scope catalog, pepper fingerprint), checked against the operator's input.

use std::fmt::Write as _;

use keyward_core::{AppSettings, Prefix, ScopeCatalog, TokenFormat, TokenHasher};

use crate::Failure;

/// The environment variable holding the pepper; never read from the command line, so it
/// does not show in the process list or the shell history.
pub(crate) const PEPPER_VARIABLE: &str = "KEYWARD_PEPPER";

/// The application's recorded settings, if any application has started on this database.
#[derive(Debug)]
pub(crate) struct App {
    settings: Option<AppSettings>,
}

impl App {
    pub(crate) fn new(settings: Option<AppSettings>) -> Self {
        Self { settings }
    }

    /// The format of new tokens: the `explicit` prefix (`--prefix`, `KEYWARD_PREFIX`) if it
    /// is one the application accepts, otherwise the application's own.
    pub(crate) fn token_format(&self, explicit: Option<&Prefix>) -> Result<TokenFormat, Failure> {
        let issuing = match (explicit, &self.settings) {
            (Some(prefix), Some(settings)) if !settings.accepts_prefix(prefix.as_str()) => {
                return Err(Failure::Usage(format!(
                    "the prefix `{prefix}` (from --prefix or KEYWARD_PREFIX) is not one the \
                     application accepts ({}): leave it out to use the application's prefix \
                     `{}`",
                    settings.accepted_prefixes.join(", "),
                    settings.prefix
                )));
            }
            (Some(prefix), _) => prefix.as_str(),
            (None, Some(settings)) => settings.prefix.as_str(),
            (None, None) => {
                return Err(Failure::Usage(
                    "no application has started on this database yet, so its token prefix \
                     and scopes are unknown: pass --prefix (or set KEYWARD_PREFIX) with the \
                     application's prefix, or start the application once and try again"
                        .into(),
                ));
            }
        };
        TokenFormat::new(issuing).map_err(|err| Failure::Usage(err.to_string()))
    }

    /// The prefixes to look for: the `explicit` one (`--prefix`, `KEYWARD_PREFIX`) if it is
    /// one the application accepts, otherwise every prefix the application accepts.
    pub(crate) fn prefixes(&self, explicit: Option<&Prefix>) -> Result<Vec<Prefix>, Failure> {
        if explicit.is_some() {
            let format = self.token_format(explicit)?;
            return Ok(vec![format.issuing_prefix().clone()]);
        }
        match &self.settings {
            Some(settings) => settings
                .accepted_prefixes
                .iter()
                .map(|prefix| {
                    Prefix::new(prefix.as_str()).map_err(|err| {
                        Failure::Database(format!(
                            "the application's recorded prefixes are not valid: {err}"
                        ))
                    })
                })
                .collect(),
            None => Err(Failure::Usage(
                "no application has started on this database yet, so its token prefixes are \
                 unknown: pass --prefix (or set KEYWARD_PREFIX) with the application's prefix, \
                 or start the application once and try again"
                    .into(),
            )),
        }
    }

    /// The application's scope catalog; `None` before any application has recorded one.
    pub(crate) fn catalog(&self) -> Result<Option<ScopeCatalog>, Failure> {
        self.settings
            .as_ref()
            .map(|settings| {
                settings.catalog().map_err(|err| {
                    Failure::Database(format!(
                        "the application's recorded scope catalog is not valid: {err}"
                    ))
                })
            })
            .transpose()
    }

    /// Whether the application accepts tokens with `prefix`; `true` when unknown.
    pub(crate) fn accepts_prefix(&self, prefix: &str) -> bool {
        self.settings
            .as_ref()
            .is_none_or(|settings| settings.accepts_prefix(prefix))
    }

    /// The prefixes the application accepts, for messages.
    pub(crate) fn accepted_prefixes(&self) -> String {
        self.settings
            .as_ref()
            .map(|settings| settings.accepted_prefixes.join(", "))
            .unwrap_or_default()
    }

    /// Whether any application has recorded its settings.
    pub(crate) fn is_known(&self) -> bool {
        self.settings.is_some()
    }

    /// Fails unless `hasher` digests tokens as the application does: with the same pepper,
    /// or with none when it has none. Compared by fingerprint; nothing to compare before any
    /// application has recorded its settings.
    pub(crate) fn check_pepper(&self, hasher: &TokenHasher) -> Result<(), Failure> {
        let Some(settings) = &self.settings else {
            return Ok(());
        };
        let ours = hasher.pepper_fingerprint();
        let message = match (settings.pepper_fingerprint.as_deref(), ours.as_deref()) {
            (None, None) => return Ok(()),
            (Some(app), Some(ours)) if app == ours => return Ok(()),
            (Some(_), None) => format!(
                "the application uses a pepper, but {PEPPER_VARIABLE} is not set: set it to \
                 the application's pepper; tokens made or checked without it never match"
            ),
            (None, Some(_)) => format!(
                "{PEPPER_VARIABLE} is set, but the application uses no pepper: unset it; \
                 tokens made or checked with it never match"
            ),
            (Some(app), Some(ours)) => format!(
                "{PEPPER_VARIABLE} is not the application's pepper (its fingerprint is {ours}, \
                 the application's is {app}): set it to the pepper the application is \
                 configured with"
            ),
        };
        Err(Failure::Usage(message))
    }
}

/// The refusal of `scope`, listing the catalog's scopes with their descriptions.
pub(crate) fn unknown_scope(scope: &str, catalog: &ScopeCatalog) -> Failure {
    let entries: Vec<(String, String)> = catalog
        .entries()
        .map(|entry| (entry.scope.to_string(), entry.description))
        .collect();
    let width = entries
        .iter()
        .map(|(name, _)| name.len())
        .max()
        .unwrap_or(0);
    let mut message = format!("`{scope}` is not one of the application's scopes, which are:");
    for (name, description) in &entries {
        let _ = write!(message, "\n  {name:<width$}  {description}");
    }
    message.push_str("\n`resource:*` grants every scope of a resource, `*` every scope");
    Failure::Usage(message)
}

/// The pepper from [`PEPPER_VARIABLE`]; an empty value counts as none, as an application
/// refuses an empty pepper.
pub(crate) fn pepper_from_env() -> Result<Option<String>, Failure> {
    match std::env::var(PEPPER_VARIABLE) {
        Ok(pepper) if pepper.is_empty() => Ok(None),
        Ok(pepper) => Ok(Some(pepper)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(Failure::Usage(format!(
            "{PEPPER_VARIABLE} is not valid UTF-8"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn app(pepper: Option<&str>) -> App {
        let catalog = ScopeCatalog::builder()
            .scope("books:read", "See the book catalog")
            .build()
            .unwrap();
        let format = TokenFormat::new("books").unwrap().accept("jelu").unwrap();
        let hasher = pepper.map_or_else(TokenHasher::sha256, TokenHasher::hmac);
        App::new(Some(AppSettings::new(
            &format,
            &catalog,
            &hasher,
            Utc::now(),
        )))
    }

    fn message(failure: Failure) -> String {
        match failure {
            Failure::Usage(message) => message,
            other => panic!("not a usage error: {other:?}"),
        }
    }

    #[test]
    fn the_recorded_prefix_is_the_default_and_others_must_be_accepted() {
        let app = app(None);
        let issuing = |explicit: Option<&str>| {
            let prefix = explicit.map(|p| Prefix::new(p).unwrap());
            app.token_format(prefix.as_ref())
                .map(|format| format.issuing_prefix().to_string())
        };
        assert_eq!(issuing(None).unwrap(), "books");
        assert_eq!(issuing(Some("jelu")).unwrap(), "jelu");
        let refused = message(issuing(Some("keyward")).unwrap_err());
        assert!(refused.contains("`keyward`") && refused.contains("books, jelu"));

        let unknown = App::new(None);
        assert!(message(unknown.token_format(None).unwrap_err()).contains("--prefix"));
        let explicit = Prefix::new("keyward").unwrap();
        assert!(unknown.token_format(Some(&explicit)).is_ok());
    }

    #[test]
    fn peppers_are_compared_by_fingerprint() {
        let plain = TokenHasher::sha256();
        let right = TokenHasher::hmac("right");
        let wrong = TokenHasher::hmac("wrong");
        assert!(app(None).check_pepper(&plain).is_ok());
        assert!(app(Some("right")).check_pepper(&right).is_ok());
        assert!(message(app(Some("right")).check_pepper(&plain).unwrap_err()).contains("not set"));
        assert!(message(app(None).check_pepper(&right).unwrap_err()).contains("no pepper"));
        let mismatch = message(app(Some("right")).check_pepper(&wrong).unwrap_err());
        assert!(mismatch.contains("not the application's pepper"));
        assert!(!mismatch.contains("right") && !mismatch.contains("wrong"));
        assert!(App::new(None).check_pepper(&wrong).is_ok());
    }

    #[test]
    fn unknown_scopes_list_the_catalog() {
        let catalog = app(None).catalog().unwrap().unwrap();
        let listed = message(unknown_scope("books:delete", &catalog));
        assert!(listed.contains("`books:delete`"));
        assert!(listed.contains("books:read  See the book catalog"));
        assert!(listed.contains("keys:admin"));
    }
}
