//! Where a request carries its API key.

use http::Request;
use http::header::{AUTHORIZATION, HeaderName, HeaderValue};
use zeroize::Zeroizing;

use crate::query::{TakenQuery, hide_query, percent_decode, query_values};

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

/// A credential taken out of a request: the header value it came in (shared, not copied)
/// or the decoded query parameter (wiped on drop).
pub(crate) enum Credential {
    /// `value[start..end]` is the token, not empty; [`UNREADABLE`] unless UTF-8.
    Header {
        value: HeaderValue,
        start: usize,
        end: usize,
    },
    Query(Zeroizing<String>),
    /// Present but not text, or nothing after the scheme.
    Unreadable,
}

impl Credential {
    /// `value[start..end]`, read as text when the token is used ([`as_str`](Self::as_str)).
    fn header(value: HeaderValue, start: usize, end: usize) -> Self {
        if start < end {
            Self::Header { value, start, end }
        } else {
            Self::Unreadable
        }
    }

    /// A header that holds the bare token, blanks around it allowed.
    fn bare(value: HeaderValue) -> Self {
        let bytes = value.as_bytes();
        let start = bytes.len() - bytes.trim_ascii_start().len();
        let end = bytes.trim_ascii_end().len().max(start);
        Self::header(value, start, end)
    }

    fn query(raw: &str) -> Self {
        match percent_decode(raw) {
            Some(text) if !text.is_empty() => Self::Query(Zeroizing::new(text.into_owned())),
            _ => Self::Unreadable,
        }
    }

    /// The token as presented; [`UNREADABLE`] for an unreadable credential.
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Self::Header { value, start, end } => {
                let bytes = value.as_bytes();
                std::str::from_utf8(&bytes[*start..*end]).unwrap_or(UNREADABLE)
            }
            Self::Query(text) => text,
            Self::Unreadable => UNREADABLE,
        }
    }
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

    /// Takes the token out of the request: with `hide`, the headers it was found in, the
    /// query parameter from the URI and from axum's `OriginalUri` (which the router sets
    /// before route layers run), and what a `HideCredentialsLayer` kept aside; without, a
    /// copy.
    ///
    /// A credential that is present but unreadable is taken as [`UNREADABLE`], never skipped.
    pub(crate) fn take<B>(
        &self,
        req: &mut Request<B>,
        hide: bool,
    ) -> Result<Option<Credential>, Conflict> {
        let mut taken: Option<Credential> = None;
        let mut offer = |candidate: Credential| match &taken {
            Some(existing) if existing.as_str() != candidate.as_str() => Err(Conflict),
            Some(_) => Ok(()),
            None => {
                taken = Some(candidate);
                Ok(())
            }
        };
        let headers = req.headers_mut();
        if self.bearer || self.token {
            let mut ours = false;
            for value in headers.get_all(AUTHORIZATION) {
                if let Some(credential) = self.authorization(value) {
                    offer(credential)?;
                    ours = true;
                }
            }
            if ours && hide {
                headers.remove(AUTHORIZATION);
            }
        }
        for name in &self.headers {
            // `get_all` and `remove`, not `entry`, which reserves room for a new header.
            let mut found = false;
            for value in headers.get_all(name) {
                offer(Credential::bare(value.clone()))?;
                found = true;
            }
            if found && hide {
                headers.remove(name);
            }
        }
        if let Some(name) = &self.query {
            if hide {
                for raw in hide_query(req, name).iter().flat_map(TakenQuery::values) {
                    offer(Credential::query(raw))?;
                }
            } else {
                for raw in query_values(req.uri(), name) {
                    offer(Credential::query(raw))?;
                }
                for raw in req
                    .extensions()
                    .get::<TakenQuery>()
                    .iter()
                    .flat_map(|t| t.values())
                {
                    offer(Credential::query(raw))?;
                }
            }
        }
        Ok(taken)
    }

    /// The credential an `Authorization` header holds, or `None` when the header belongs to a
    /// scheme keyward does not handle (`Basic`, `Digest`, ...) or is empty.
    fn authorization(&self, header: &HeaderValue) -> Option<Credential> {
        let bytes = header.as_bytes();
        let start = bytes.len() - bytes.trim_ascii_start().len();
        let rest = &bytes[start..];
        let scheme_len = rest
            .iter()
            .position(|&b| b == b' ' || b == b'\t')
            .unwrap_or(rest.len());
        let scheme = &rest[..scheme_len];
        let ours = match scheme_len {
            6 => self.bearer && scheme.eq_ignore_ascii_case(b"bearer"),
            5 => self.token && scheme.eq_ignore_ascii_case(b"token"),
            0 => return None,
            _ => false,
        };
        if !ours {
            // Not a scheme at all (RFC 9110 section 11.1): nothing tells whose it is, and a
            // credential must not pass as absent.
            return (!scheme.iter().all(|&b| is_tchar(b))).then_some(Credential::Unreadable);
        }
        let after = &rest[scheme_len..];
        let token_start = start + scheme_len + (after.len() - after.trim_ascii_start().len());
        let token_end = start + scheme_len + after.trim_ascii_end().len();
        Some(Credential::header(
            header.clone(),
            token_start,
            token_end.max(token_start),
        ))
    }
}

/// RFC 9110 `tchar`: what a scheme name is made of.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use axum::extract::OriginalUri;
    use http::Uri;

    use super::*;
    use crate::query::without_query_param;

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

    /// What `sources` find in `req`, leaving it as it is.
    fn find(sources: &Sources, mut req: Request<()>) -> Result<Option<String>, Conflict> {
        let taken = sources.take(&mut req, false)?;
        Ok(taken.map(|credential| credential.as_str().to_owned()))
    }

    fn found(req: Request<()>) -> Option<String> {
        find(&all(), req).unwrap()
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
        assert_eq!(find(&sources, req).unwrap().unwrap(), "abc");
        assert!(find(&sources, request("/?api_key=abd", headers)).is_err());
        assert!(find(&sources, request("/?api_key=abc&api_key=abd", &[])).is_err());
    }

    #[test]
    fn other_authorization_schemes_are_not_ours() {
        for value in [
            &b"Basic dXNlcjpwdw=="[..],
            b"Digest username=\"x\"",
            b"",
            b"   ",
        ] {
            assert_eq!(found(request("/", &[("authorization", value)])), None);
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
            assert_eq!(found(req).as_deref(), Some(UNREADABLE), "{name}: {value:?}");
        }
        for uri in [
            "/?api_key=",
            "/?api_key",
            "/?api_key=%FF",
            "/?api%5Fkey=%C3%28",
        ] {
            assert_eq!(
                found(request(uri, &[])).as_deref(),
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
        assert!(find(&all(), req).is_err());
    }

    #[test]
    fn taken_query_values_are_the_query_source() {
        let sources = all();
        let mut req = request("/books?page=2&api_key=abc", &[]);
        let taken = hide_query(&mut req, "api_key").unwrap();
        assert_eq!(req.uri(), "/books?page=2");
        req.extensions_mut().insert(taken);
        let credential = sources.take(&mut req, true).unwrap().unwrap();
        assert_eq!(credential.as_str(), "abc");
        assert!(req.extensions().get::<TakenQuery>().is_none());

        let mut req = request("/books?api_key=abc", &[("x-api-key", b"abd")]);
        let taken = hide_query(&mut req, "api_key").unwrap();
        req.extensions_mut().insert(taken);
        assert!(
            find(&sources, req).is_err(),
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
        sources.take(&mut req, true).unwrap().unwrap();
        assert_eq!(req.uri(), "/v1/books?q=x");
        assert_eq!(
            req.extensions().get::<OriginalUri>().unwrap().0,
            "/v1/books?q=x"
        );
        assert!(req.headers().get(AUTHORIZATION).is_none());
    }
}
