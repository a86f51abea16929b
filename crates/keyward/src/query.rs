//! The query-parameter credential (`?api_key=`): finding it, decoding it, and taking it out of
//! the URI and of axum's `OriginalUri`.

use std::borrow::Cow;
use std::fmt;

use axum::extract::OriginalUri;
use http::uri::PathAndQuery;
use http::{Request, Uri};
use zeroize::{Zeroize, Zeroizing};

/// The raw (still percent-encoded) values of the query parameter source, taken out of the URI
/// by [`HideCredentials`] and read by keyward's layer as the query source. Wiped on drop.
#[derive(Clone, Default)]
pub(crate) struct TakenQuery(Zeroizing<Vec<String>>);

impl TakenQuery {
    pub(crate) fn values(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl Extend<String> for TakenQuery {
    fn extend<I: IntoIterator<Item = String>>(&mut self, values: I) {
        self.0.extend(values);
    }
}

impl fmt::Debug for TakenQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TakenQuery([redacted])")
    }
}

/// The raw values of the query parameter `name` in `uri`.
pub(crate) fn query_values<'u>(uri: &'u Uri, name: &'u str) -> impl Iterator<Item = &'u str> {
    uri.query().into_iter().flat_map(move |query| {
        query.split('&').filter_map(move |pair| {
            let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
            is_param(key, name).then_some(raw)
        })
    })
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

/// `application/x-www-form-urlencoded` decoding; `None` when the bytes are not UTF-8.
pub(crate) fn percent_decode(raw: &str) -> Option<Cow<'_, str>> {
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

/// `uri` without the parameter `name`, and the parameter's raw values; `None` when the URI
/// has no such parameter.
pub(crate) fn without_query_param(uri: &Uri, name: &str) -> Option<(Uri, Vec<String>)> {
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
