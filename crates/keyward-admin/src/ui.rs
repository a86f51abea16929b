//! The management page: plain HTML, CSS and JavaScript modules embedded in the crate.

use axum::extract::NestedPath;
use axum::extract::rejection::NestedPathRejection;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use http::HeaderValue;
use http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use utoipa::OpenApi;

const PAGE: &str = include_str!("../assets/index.html");
const STYLE: &str = include_str!("../assets/app.css");

/// The page's policy: its own script and style files only, requests only to its own origin,
/// never framed.
pub(crate) const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'; object-src 'none'";

/// Declares a handler serving one of the page's JavaScript modules, with its OpenAPI
/// description; [`SCRIPTS`] lists them all.
macro_rules! script {
    ($handler:ident, $file:tt, $what:tt) => {
        #[doc = concat!("The page's script module `", $file, "`: ", $what, ".")]
        #[utoipa::path(
            get,
            path = concat!("/ui/", $file),
            tag = "meta",
            responses((status = 200, description = $what, content_type = "text/javascript")),
            security(())
        )]
        pub(crate) async fn $handler() -> Response {
            javascript(include_str!(concat!("../assets/", $file)))
        }
    };
}

script!(app_js, "app.js", "the page's entry point");
script!(api_js, "api.js", "requests, credentials and errors");
script!(model_js, "model.js", "the page's state and formatting");
script!(
    table_js,
    "table.js",
    "the key table, its filters and row menus"
);
script!(chart_js, "chart.js", "usage loading and charts");
script!(
    dialogs_js,
    "dialogs.js",
    "the create, edit, token and confirmation dialogs"
);
script!(detail_js, "detail.js", "the detail view of one key");

/// Every JavaScript module of the page: its file name and its source.
#[cfg(test)]
const SCRIPTS: [(&str, &str); 7] = [
    ("app.js", include_str!("../assets/app.js")),
    ("api.js", include_str!("../assets/api.js")),
    ("model.js", include_str!("../assets/model.js")),
    ("table.js", include_str!("../assets/table.js")),
    ("chart.js", include_str!("../assets/chart.js")),
    ("dialogs.js", include_str!("../assets/dialogs.js")),
    ("detail.js", include_str!("../assets/detail.js")),
];

#[derive(OpenApi)]
#[openapi(paths(
    page, stylesheet, app_js, api_js, model_js, table_js, chart_js, dialogs_js, detail_js
))]
pub(crate) struct UiDoc;

/// The routes of the page: the page, its style sheet and its script modules, all `GET`.
pub(crate) fn routes<S>() -> Vec<(&'static str, MethodRouter<S>)>
where
    S: Clone + Send + Sync + 'static,
{
    vec![
        ("/ui", get(page)),
        ("/ui/app.css", get(stylesheet)),
        ("/ui/app.js", get(app_js)),
        ("/ui/api.js", get(api_js)),
        ("/ui/model.js", get(model_js)),
        ("/ui/table.js", get(table_js)),
        ("/ui/chart.js", get(chart_js)),
        ("/ui/dialogs.js", get(dialogs_js)),
        ("/ui/detail.js", get(detail_js)),
    ]
}

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

fn javascript(source: &'static str) -> Response {
    hardened(([(CONTENT_TYPE, "text/javascript; charset=utf-8")], source).into_response())
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

    /// The one absolute URL the scripts may hold: the SVG namespace, a name, not a request.
    const SVG_NAMESPACE: &str = "http://www.w3.org/2000/svg";

    #[test]
    fn assets_load_nothing_from_elsewhere() {
        let assets = [PAGE, STYLE]
            .into_iter()
            .chain(SCRIPTS.iter().map(|(_, source)| *source));
        for asset in assets {
            let asset = asset.replace(SVG_NAMESPACE, "");
            assert!(!asset.contains("http://"), "absolute URL in an asset");
            assert!(!asset.contains("https://"), "absolute URL in an asset");
            assert!(!asset.contains("@import"), "imported style sheet");
            assert!(
                !asset.contains("url("),
                "a resource loaded from a style sheet"
            );
        }
        // Inline script or style would be refused by the policy.
        assert!(!PAGE.contains("<style"));
        assert!(!PAGE.contains("style=\""));
        assert!(!PAGE.contains("<script>"));
        assert!(!has_inline_handler(PAGE), "an inline event handler");
        for (file, source) in SCRIPTS {
            for refused in [
                ".style.",
                "setAttribute(\"style\"",
                "innerHTML",
                "eval(",
                "new Function",
            ] {
                assert!(!source.contains(refused), "{file} uses {refused}");
            }
        }
    }

    /// Whether `html` has an attribute like ` onclick=`.
    fn has_inline_handler(html: &str) -> bool {
        html.match_indices(" on").any(|(at, _)| {
            let rest = &html[at + 3..];
            let name_len = rest.chars().take_while(char::is_ascii_lowercase).count();
            name_len > 0 && rest[name_len..].starts_with('=')
        })
    }

    #[test]
    fn every_imported_module_is_served() {
        let served: Vec<&str> = routes::<()>().iter().map(|(path, _)| *path).collect();
        for (file, _) in SCRIPTS {
            assert!(served.contains(&format!("/ui/{file}").as_str()), "{file}");
        }
        for (file, source) in SCRIPTS {
            for import in source.split("from \"./").skip(1) {
                let target = import.split('"').next().unwrap_or_default();
                assert!(
                    SCRIPTS.iter().any(|(name, _)| *name == target),
                    "{file} imports {target}, which is not served"
                );
            }
        }
        assert!(PAGE.contains("<script type=\"module\" src=\"{{BASE}}/ui/app.js\">"));
    }

    #[test]
    fn the_mount_path_is_escaped() {
        assert_eq!(
            escape_attribute("/a\"b<c>&'"),
            "/a&quot;b&lt;c&gt;&amp;&#39;"
        );
    }
}
