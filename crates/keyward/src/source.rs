//! Where a request carries its API key.

use std::borrow::Cow;

use axum::extract::OriginalUri;
use http::header::{AUTHORIZATION, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Extensions, HeaderMap, Request, Uri};
use zeroize::{Zeroize, Zeroizing};

use crate::hide::TakenQuery;

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
    /// parameter is removed from the URI and from axum's
    /// [`OriginalUri`](axum::extract::OriginalUri) the inner service sees. To keep it out of a
    /// trace layer that wraps the whole app too, add
    /// [`Keyward::hide_credentials_layer`](crate::Keyward::hide_credentials_layer) outermost.
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

/// What an unreadable credential (not text, or nothing after the scheme) is presented as.
///
/// No token format accepts the empty string, so the credential is refused as malformed
/// (401 `invalid_token`), the same in required and optional mode, instead of being taken for
/// "no credential". Two unreadable credentials agree with each other and disagree with a real
/// token (400 `invalid_request`).
const UNREADABLE: &str = "";

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

    /// The configured header sources, `Authorization` excepted.
    pub(crate) fn header_names(&self) -> &[HeaderName] {
        &self.headers
    }

    /// The configured query parameter, if any.
    pub(crate) fn query_name(&self) -> Option<&str> {
        self.query.as_deref()
    }

    /// The token the request carries, if any, and where it was found.
    ///
    /// A credential that is present but unreadable is found as [`UNREADABLE`], never skipped.
    /// The query source is read from the URI and from what a
    /// [`HideCredentialsLayer`](crate::HideCredentialsLayer) further out took from it.
    pub(crate) fn find<'r, B>(
        &self,
        req: &'r Request<B>,
    ) -> Result<Option<(Cow<'r, str>, Found)>, Conflict> {
        self.find_in(req.headers(), req.uri(), req.extensions())
    }

    fn find_in<'r>(
        &self,
        headers: &'r HeaderMap,
        uri: &'r Uri,
        extensions: &'r Extensions,
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
                if let Some(credential) = self.authorization(header) {
                    offer(Cow::Borrowed(credential))?;
                    found.authorization = true;
                }
            }
        }
        for (i, name) in self.headers.iter().enumerate() {
            for header in headers.get_all(name) {
                let text = header.to_str().map_or(UNREADABLE, str::trim);
                offer(Cow::Borrowed(text))?;
                found.headers |= 1 << i;
            }
        }
        if let Some(name) = &self.query {
            if let Some(query) = uri.query() {
                for pair in query.split('&') {
                    let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
                    if is_param(key, name) {
                        offer(query_value(raw))?;
                        found.query = true;
                    }
                }
            }
            if let Some(taken) = extensions.get::<TakenQuery>() {
                for raw in taken.values() {
                    offer(query_value(raw))?;
                    found.query = true;
                }
            }
        }
        Ok(value.map(|v| (v, found)))
    }

    /// The credential an `Authorization` header holds, or `None` when the header belongs to a
    /// scheme keyward does not handle (`Basic`, `Digest`, ...) or is empty.
    fn authorization<'h>(&self, header: &'h HeaderValue) -> Option<&'h str> {
        let bytes = header.as_bytes().trim_ascii_start();
        if bytes.is_empty() {
            return None;
        }
        let end = bytes
            .iter()
            .position(|&b| b == b' ' || b == b'\t')
            .unwrap_or(bytes.len());
        let (scheme, rest) = bytes.split_at(end);
        if !scheme.iter().all(|&b| is_tchar(b)) {
            // Not a scheme at all (RFC 9110 section 11.1): nothing tells whose it is, and a
            // credential must not pass as absent.
            return Some(UNREADABLE);
        }
        let ours = (self.bearer && scheme.eq_ignore_ascii_case(b"bearer"))
            || (self.token && scheme.eq_ignore_ascii_case(b"token"));
        if !ours {
            return None;
        }
        Some(std::str::from_utf8(rest.trim_ascii()).unwrap_or(UNREADABLE))
    }

    /// Removes the credential from the request the inner service will see: the headers it
    /// was found in, the query parameter from the URI and from axum's `OriginalUri` (which the
    /// router sets before route layers run), and what a `HideCredentialsLayer` kept aside.
    pub(crate) fn hide<B>(&self, found: Found, req: &mut Request<B>) {
        let headers = req.headers_mut();
        if found.authorization {
            headers.remove(AUTHORIZATION);
        }
        for (i, name) in self.headers.iter().enumerate() {
            if found.headers & (1 << i) != 0 {
                headers.remove(name);
            }
        }
        if found.query {
            if let Some(name) = &self.query {
                hide_query(req, name);
            }
        }
    }
}

/// Takes the parameter `name` out of the request's URI and axum's `OriginalUri`. Returns its
/// raw values, together with those a [`HideCredentials`](crate::HideCredentials) further out
/// took (now removed from the extensions): the hiding layer keeps them for keyward's layer,
/// keyward's layer drops them, which wipes them.
pub(crate) fn hide_query<B>(req: &mut Request<B>, name: &str) -> Option<TakenQuery> {
    let mut taken = req.extensions_mut().remove::<TakenQuery>();
    if let Some((uri, values)) = without_query_param(req.uri(), name) {
        *req.uri_mut() = uri;
        taken.get_or_insert_default().extend(values);
    }
    if let Some(OriginalUri(original)) = req.extensions_mut().get_mut::<OriginalUri>() {
        if let Some((uri, values)) = without_query_param(original, name) {
            *original = uri;
            drop(Zeroizing::new(values));
        }
    }
    taken
}

/// Whether the query key `key` (as it appears in the URI) names the parameter `name`.
fn is_param(key: &str, name: &str) -> bool {
    key == name || (key.contains(['%', '+']) && percent_decode(key).as_deref() == Some(name))
}

fn query_value(raw: &str) -> Cow<'_, str> {
    percent_decode(raw).unwrap_or(Cow::Borrowed(UNREADABLE))
}

/// `application/x-www-form-urlencoded` decoding; `None` when the bytes are not UTF-8.
fn percent_decode(raw: &str) -> Option<Cow<'_, str>> {
    if !raw.bytes().any(|b| b == b'%' || b == b'+') {
        return Some(Cow::Borrowed(raw));
    }
    let bytes = raw.as_bytes();
    // Never longer than the input, so never reallocated: no stray copy of a token is left.
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
    match String::from_utf8(out) {
        Ok(text) => Some(Cow::Owned(text)),
        Err(err) => {
            err.into_bytes().zeroize();
            None
        }
    }
}

/// RFC 9110 `tchar`: what a scheme name is made of.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `uri` without the parameter `name`, and the parameter's raw values; `None` when the URI
/// has no such parameter.
fn without_query_param(uri: &Uri, name: &str) -> Option<(Uri, Vec<String>)> {
    let query = uri.query()?;
    let mut kept: Vec<&str> = Vec::new();
    let mut taken = Vec::new();
    for pair in query.split('&') {
        let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
        if is_param(key, name) {
            taken.push(raw.to_owned());
        } else {
            kept.push(pair);
        }
    }
    if taken.is_empty() {
        return None;
    }
    let mut path_and_query = uri.path().to_owned();
    if !kept.is_empty() {
        path_and_query.push('?');
        path_and_query.push_str(&kept.join("&"));
    }
    // The path and some pairs of a valid URI make a valid URI; were it ever not so, `/` still
    // hides the credential.
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(
        path_and_query
            .parse()
            .unwrap_or_else(|_| PathAndQuery::from_static("/")),
    );
    let uri = Uri::from_parts(parts).unwrap_or_else(|_| Uri::from_static("/"));
    Some((uri, taken))
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

    fn request(uri: &str, headers: &[(&str, &[u8])]) -> Request<()> {
        let mut request = Request::get(uri);
        for (name, value) in headers {
            request = request.header(*name, HeaderValue::from_bytes(value).unwrap());
        }
        request.body(()).unwrap()
    }

    fn found(req: &Request<()>) -> Option<String> {
        all()
            .find(req)
            .unwrap()
            .map(|(value, _)| value.into_owned())
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
        let (uri, taken) = without_query_param(&uri, "api_key").unwrap();
        assert_eq!(uri, "/books?x=1&y=2");
        assert_eq!(taken, ["abc"]);
        let uri: Uri = "/books?api_key=abc&api%5Fkey=def".parse().unwrap();
        let (uri, taken) = without_query_param(&uri, "api_key").unwrap();
        assert_eq!(uri, "/books");
        assert_eq!(taken, ["abc", "def"]);
        let uri: Uri = "http://example.com/books?api_key=abc#top".parse().unwrap();
        assert_eq!(
            without_query_param(&uri, "api_key").unwrap().0,
            "http://example.com/books"
        );
        assert!(without_query_param(&"/books?x=1".parse().unwrap(), "api_key").is_none());
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("books_abc").unwrap(), "books_abc");
        assert_eq!(percent_decode("books%5Fabc").unwrap(), "books_abc");
        assert_eq!(percent_decode("a%2").unwrap(), "a%2");
        assert_eq!(percent_decode("a+b").unwrap(), "a b");
        assert!(percent_decode("%FF%FE").is_none());
    }

    #[test]
    fn same_token_twice_is_fine_different_is_a_conflict() {
        let sources = all();
        let headers: &[(&str, &[u8])] = &[("authorization", b"Bearer abc"), ("x-api-key", b"abc")];
        let req = request("/?api_key=abc", headers);
        let (value, _) = sources.find(&req).unwrap().unwrap();
        assert_eq!(value, "abc");
        assert!(sources.find(&request("/?api_key=abd", headers)).is_err());
        assert!(
            sources
                .find(&request("/?api_key=abc&api_key=abd", &[]))
                .is_err()
        );
    }

    #[test]
    fn other_authorization_schemes_are_not_ours() {
        for value in [
            &b"Basic dXNlcjpwdw=="[..],
            b"Digest username=\"x\"",
            b"",
            b"   ",
        ] {
            assert_eq!(found(&request("/", &[("authorization", value)])), None);
        }
    }

    #[test]
    fn unreadable_credentials_are_found_not_skipped() {
        for (name, value) in [
            ("authorization", &b"Bearer \xff\xfe"[..]),
            ("authorization", b"Token \xe9t\xe9"),
            ("authorization", b"Bearer"),
            ("authorization", b"bearer    "),
            ("authorization", b"\xff\xfe"),
            ("authorization", b"Bearer\xffabc"),
            ("x-api-key", b"\xff\xfe"),
            ("x-api-key", b""),
            ("x-api-key", b"  "),
        ] {
            let req = request("/", &[(name, value)]);
            assert_eq!(
                found(&req).as_deref(),
                Some(UNREADABLE),
                "{name}: {value:?}"
            );
        }
        for uri in [
            "/?api_key=",
            "/?api_key",
            "/?api_key=%FF",
            "/?api%5Fkey=%C3%28",
        ] {
            assert_eq!(
                found(&request(uri, &[])).as_deref(),
                Some(UNREADABLE),
                "{uri}"
            );
        }
    }

    #[test]
    fn an_unreadable_credential_disagrees_with_a_token() {
        let req = request(
            "/",
            &[("authorization", b"Bearer abc"), ("x-api-key", b"\xff")],
        );
        assert!(all().find(&req).is_err());
    }

    #[test]
    fn taken_query_values_are_the_query_source() {
        let sources = all();
        let mut req = request("/books?page=2&api_key=abc", &[]);
        let taken = hide_query(&mut req, "api_key").unwrap();
        assert_eq!(req.uri(), "/books?page=2");
        req.extensions_mut().insert(taken);
        let (value, found) = sources.find(&req).unwrap().unwrap();
        assert_eq!(value, "abc");
        sources.hide(found, &mut req);
        assert!(req.extensions().get::<TakenQuery>().is_none());

        let mut req = request("/books?api_key=abc", &[("x-api-key", b"abd")]);
        let taken = hide_query(&mut req, "api_key").unwrap();
        req.extensions_mut().insert(taken);
        assert!(
            sources.find(&req).is_err(),
            "a conflict with the taken value"
        );
    }

    #[test]
    fn hiding_rewrites_original_uri() {
        let sources = all();
        let mut req = request(
            "/v1/books?api_key=abc&q=x",
            &[("authorization", b"Bearer abc")],
        );
        let original = OriginalUri(req.uri().clone());
        req.extensions_mut().insert(original);
        let (_, found) = sources.find(&req).unwrap().unwrap();
        sources.hide(found, &mut req);
        assert_eq!(req.uri(), "/v1/books?q=x");
        assert_eq!(
            req.extensions().get::<OriginalUri>().unwrap().0,
            "/v1/books?q=x"
        );
        assert!(req.headers().get(AUTHORIZATION).is_none());
    }
}
