//! Where a request carries its API key.

use std::borrow::Cow;

use http::header::{AUTHORIZATION, HeaderName};
use http::{HeaderMap, Uri};

/// One place keyward looks for a token.
///
/// Several sources can be configured; a request carrying the same token in two places is
/// fine, two different tokens are refused with 400 `invalid_request`.
///
/// # Example
///
/// ```
/// use keyward::CredentialSource;
///
/// let sources = [
///     CredentialSource::bearer(),                 // Authorization: Bearer <token>
///     CredentialSource::token(),                  // Authorization: Token <token>
///     CredentialSource::header("x-api-key"),      // X-Api-Key: <token>
///     CredentialSource::query("api_key"),         // ?api_key=<token>
///     CredentialSource::header("x-emby-token"),   // a legacy client's header
/// ];
/// # let _ = sources;
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CredentialSource(pub(crate) SourceKind);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum SourceKind {
    Bearer,
    Token,
    Header(String),
    Query(String),
}

impl CredentialSource {
    /// `Authorization: Bearer <token>` (RFC 6750).
    #[must_use]
    pub fn bearer() -> Self {
        Self(SourceKind::Bearer)
    }

    /// `Authorization: Token <token>`, the scheme several products use.
    #[must_use]
    pub fn token() -> Self {
        Self(SourceKind::Token)
    }

    /// A request header holding the bare token, e.g. `x-api-key`. The name is checked by
    /// [`KeywardBuilder::build`](crate::KeywardBuilder::build).
    #[must_use]
    pub fn header(name: impl Into<String>) -> Self {
        Self(SourceKind::Header(name.into()))
    }

    /// A query parameter, e.g. `api_key`. Tokens in URLs end up in logs and browser
    /// histories, so this source is off unless configured; with credential hiding on, the
    /// parameter is removed from the URI the inner service sees.
    #[must_use]
    pub fn query(name: impl Into<String>) -> Self {
        Self(SourceKind::Query(name.into()))
    }

    /// The default sources: Bearer, Token and `X-Api-Key`.
    #[must_use]
    pub fn defaults() -> Vec<Self> {
        vec![Self::bearer(), Self::token(), Self::header("x-api-key")]
    }
}

/// The configured sources, checked and ready.
#[derive(Debug, Clone)]
pub(crate) struct Sources {
    bearer: bool,
    token: bool,
    headers: Vec<HeaderName>,
    query: Option<String>,
}

/// Where the credential was found, so it can be hidden from the inner service.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Found {
    authorization: bool,
    /// Bit `i` = `headers[i]`.
    headers: u64,
    query: bool,
}

/// Two different tokens in one request.
#[derive(Debug)]
pub(crate) struct Conflict;

impl Sources {
    pub(crate) fn compile(sources: &[CredentialSource]) -> Result<Self, String> {
        let mut compiled = Self {
            bearer: false,
            token: false,
            headers: Vec::new(),
            query: None,
        };
        for source in sources {
            match &source.0 {
                SourceKind::Bearer => compiled.bearer = true,
                SourceKind::Token => compiled.token = true,
                SourceKind::Header(name) => {
                    let header = HeaderName::from_bytes(name.as_bytes())
                        .map_err(|_| format!("{name:?} is not a valid header name"))?;
                    if header == AUTHORIZATION {
                        return Err(
                            "use CredentialSource::bearer() or token() for the Authorization header"
                                .to_owned(),
                        );
                    }
                    if !compiled.headers.contains(&header) {
                        compiled.headers.push(header);
                    }
                }
                SourceKind::Query(name) => {
                    if name.is_empty()
                        || !name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                    {
                        return Err(format!(
                            "{name:?} is not a valid query parameter name (letters, digits, - _ .)"
                        ));
                    }
                    if compiled.query.replace(name.clone()).is_some() {
                        return Err("only one query parameter source can be configured".to_owned());
                    }
                }
            }
        }
        if compiled.headers.len() > 64 {
            return Err("at most 64 header sources can be configured".to_owned());
        }
        if !compiled.bearer
            && !compiled.token
            && compiled.headers.is_empty()
            && compiled.query.is_none()
        {
            return Err("at least one credential source is needed".to_owned());
        }
        Ok(compiled)
    }

    /// The token the request carries, if any, and where it was found.
    pub(crate) fn find<'r>(
        &self,
        headers: &'r HeaderMap,
        uri: &'r Uri,
    ) -> Result<Option<(Cow<'r, str>, Found)>, Conflict> {
        let mut value: Option<Cow<'r, str>> = None;
        let mut found = Found::default();
        let mut offer = |candidate: Cow<'r, str>| -> Result<(), Conflict> {
            match &value {
                Some(existing) if *existing != candidate => Err(Conflict),
                Some(_) => Ok(()),
                None => {
                    value = Some(candidate);
                    Ok(())
                }
            }
        };
        if self.bearer || self.token {
            for header in headers.get_all(AUTHORIZATION) {
                let Some((scheme, credential)) = header
                    .to_str()
                    .ok()
                    .and_then(|h| h.trim_start().split_once(' '))
                else {
                    continue;
                };
                let ours = (self.bearer && scheme.eq_ignore_ascii_case("bearer"))
                    || (self.token && scheme.eq_ignore_ascii_case("token"));
                if ours {
                    offer(Cow::Borrowed(credential.trim()))?;
                    found.authorization = true;
                }
            }
        }
        for (i, name) in self.headers.iter().enumerate() {
            for header in headers.get_all(name) {
                // A header that is not text still carries a credential: present it as given so
                // it is rejected as malformed instead of silently ignored.
                let text = header
                    .to_str()
                    .map_or(Cow::Borrowed("\u{fffd}"), |t| Cow::Borrowed(t.trim()));
                offer(text)?;
                found.headers |= 1 << i;
            }
        }
        if let (Some(name), Some(query)) = (&self.query, uri.query()) {
            for pair in query.split('&') {
                let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
                if key == name {
                    offer(percent_decode(raw))?;
                    found.query = true;
                }
            }
        }
        Ok(value.map(|v| (v, found)))
    }

    /// Removes the credential headers from the request the inner service will see.
    pub(crate) fn hide_headers(&self, found: Found, headers: &mut HeaderMap) {
        if found.authorization {
            headers.remove(AUTHORIZATION);
        }
        for (i, name) in self.headers.iter().enumerate() {
            if found.headers & (1 << i) != 0 {
                headers.remove(name);
            }
        }
    }

    /// Removes the credential query parameter from the URI the inner service will see.
    pub(crate) fn hide_query(&self, found: Found, uri: &mut Uri) {
        if found.query {
            if let Some(name) = &self.query {
                *uri = without_query_param(uri, name);
            }
        }
    }
}

fn percent_decode(raw: &str) -> Cow<'_, str> {
    if !raw.bytes().any(|b| b == b'%' || b == b'+') {
        return Cow::Borrowed(raw);
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn without_query_param(uri: &Uri, name: &str) -> Uri {
    let Some(query) = uri.query() else {
        return uri.clone();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| pair.split_once('=').map_or(*pair, |(k, _)| k) != name)
        .collect();
    let mut path_and_query = uri.path().to_owned();
    if !kept.is_empty() {
        path_and_query.push('?');
        path_and_query.push_str(&kept.join("&"));
    }
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = path_and_query.parse().ok();
    Uri::from_parts(parts).unwrap_or_else(|_| uri.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Sources {
        Sources::compile(&[
            CredentialSource::bearer(),
            CredentialSource::token(),
            CredentialSource::header("x-api-key"),
            CredentialSource::query("api_key"),
        ])
        .unwrap()
    }

    #[test]
    fn rejects_bad_configuration() {
        assert!(Sources::compile(&[]).is_err());
        assert!(Sources::compile(&[CredentialSource::header("bad header")]).is_err());
        assert!(Sources::compile(&[CredentialSource::header("authorization")]).is_err());
        assert!(Sources::compile(&[CredentialSource::query("a&b")]).is_err());
    }

    #[test]
    fn query_removal_keeps_other_parameters() {
        let uri: Uri = "/books?x=1&api_key=abc&y=2".parse().unwrap();
        assert_eq!(without_query_param(&uri, "api_key"), "/books?x=1&y=2");
        let uri: Uri = "/books?api_key=abc".parse().unwrap();
        assert_eq!(without_query_param(&uri, "api_key"), "/books");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("books_abc"), "books_abc");
        assert_eq!(percent_decode("books%5Fabc"), "books_abc");
        assert_eq!(percent_decode("a%2"), "a%2");
    }

    #[test]
    fn same_token_twice_is_fine_different_is_a_conflict() {
        let sources = all();
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, "Bearer abc".parse().unwrap());
        headers.insert("x-api-key", "abc".parse().unwrap());
        let uri: Uri = "/?api_key=abc".parse().unwrap();
        let (value, _) = sources.find(&headers, &uri).unwrap().unwrap();
        assert_eq!(value, "abc");
        let uri: Uri = "/?api_key=abd".parse().unwrap();
        assert!(sources.find(&headers, &uri).is_err());
    }

    #[test]
    fn other_authorization_schemes_are_not_ours() {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, "Basic dXNlcjpwdw==".parse().unwrap());
        assert!(
            all()
                .find(&headers, &Uri::from_static("/"))
                .unwrap()
                .is_none()
        );
    }
}
