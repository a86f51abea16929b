//! The management page: plain HTML, CSS and JavaScript embedded in the crate.

use axum::extract::NestedPath;
use axum::extract::rejection::NestedPathRejection;
use axum::response::{IntoResponse, Response};
use http::HeaderValue;
use http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use utoipa::OpenApi;

const PAGE: &str = include_str!("../assets/index.html");
const SCRIPT: &str = include_str!("../assets/app.js");
const STYLE: &str = include_str!("../assets/app.css");

/// The page's policy: its own script and style files only, requests only to its own origin,
/// never framed.
pub(crate) const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'; object-src 'none'";

#[derive(OpenApi)]
#[openapi(paths(page, script, stylesheet))]
pub(crate) struct UiDoc;

/// The management page.
#[utoipa::path(
    get,
    path = "/ui",
    tag = "meta",
    responses((status = 200, description = "The management page", content_type = "text/html")),
    security(())
)]
pub(crate) async fn page(mount: Result<NestedPath, NestedPathRejection>) -> Response {
    let base = mount
        .map(|m| m.as_str().trim_end_matches('/').to_owned())
        .unwrap_or_default();
    let html = PAGE.replace("{{BASE}}", &escape_attribute(&base));
    let mut response = html.into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE),
    );
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    hardened(response)
}

/// The page's script.
#[utoipa::path(
    get,
    path = "/ui/app.js",
    tag = "meta",
    responses((status = 200, description = "The management page's script", content_type = "text/javascript")),
    security(())
)]
pub(crate) async fn script() -> Response {
    hardened(([(CONTENT_TYPE, "text/javascript; charset=utf-8")], SCRIPT).into_response())
}

/// The page's style sheet.
#[utoipa::path(
    get,
    path = "/ui/app.css",
    tag = "meta",
    responses((status = 200, description = "The management page's style sheet", content_type = "text/css")),
    security(())
)]
pub(crate) async fn stylesheet() -> Response {
    hardened(([(CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response())
}

fn hardened(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn escape_attribute(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_load_nothing_from_elsewhere() {
        for asset in [PAGE, SCRIPT, STYLE] {
            assert!(!asset.contains("http://"), "absolute URL in an asset");
            assert!(!asset.contains("https://"), "absolute URL in an asset");
            assert!(!asset.contains("@import"), "imported style sheet");
        }
        // Inline script or style would be refused by the policy.
        assert!(!PAGE.contains("<style"));
        assert!(!PAGE.contains("style=\""));
        assert!(!PAGE.contains("<script>"));
        assert!(!PAGE.contains("onclick"));
    }

    #[test]
    fn the_mount_path_is_escaped() {
        assert_eq!(
            escape_attribute("/a\"b<c>&'"),
            "/a&quot;b&lt;c&gt;&amp;&#39;"
        );
    }
}
