//! Leak response: GitHub's secret-scanning partner endpoint, `POST /leaks/github`.
//!
//! GitHub finds a token of the application in a public place and POSTs the report here,
//! signed with one of its [secret-scanning keys](crate::GitHubScanningKeys). Each reported
//! token that is a key of this application and not yet revoked is revoked (or disabled), and
//! GitHub learns which reports were real.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use http::{HeaderMap, StatusCode};
use keyward::{EventContext, Json, Keyward, Leak, ManageError, Problem};
use keyward_core::{KeyChanges, KeyId, KeyRecord};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::AdminError;
use crate::model::ProblemBody;
use crate::scanning::GitHubScanningKeys;

/// The largest report `POST /leaks/github` reads; a larger one answers 413.
pub const LEAK_REPORT_LIMIT: usize = 1024 * 1024;

/// Recorded as who disabled a key reported leaked, and as the actor of the audit event.
const GITHUB_ACTOR: &str = "github-secret-scanning";

const KEY_ID_HEADER: &str = "github-public-key-identifier";
const SIGNATURE_HEADER: &str = "github-public-key-signature";

/// What happens to a live key reported leaked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LeakAction {
    /// Revoke it: it never works again and stays listed (the default).
    #[default]
    Revoke,
    /// Disable it: it stops working until someone enables it again, so its owner can look
    /// at the report first. Its owner cannot enable it from the page; an administrator can.
    Disable,
}

/// Everything `POST /leaks/github` needs, set on the [`AdminRouter`](crate::AdminRouter).
#[derive(Debug, Clone)]
pub(crate) struct GitHubLeaks {
    pub(crate) keys: GitHubScanningKeys,
    pub(crate) action: LeakAction,
}

/// One reported token, as GitHub sends it.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct LeakReport {
    /// The token found.
    token: String,
    /// The token type, as registered with GitHub.
    #[serde(rename = "type")]
    token_type: String,
    /// Where it was found.
    #[serde(default)]
    url: Option<String>,
    /// What kind of place (`content`, `commit`, `gist`, …).
    #[serde(default)]
    source: Option<String>,
}

/// Whether a reported token was a live key of this application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum LeakLabel {
    /// It was, and it is now revoked or disabled.
    TruePositive,
    /// It is not a token of this application, no key has it, or the key was revoked already.
    FalsePositive,
}

/// The answer for one reported token, in the request's order.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LeakVerdict {
    /// The reported token, as reported.
    token_raw: String,
    /// The reported type, as reported.
    token_type: String,
    /// The verdict.
    label: LeakLabel,
}

/// Takes GitHub's secret-scanning report of leaked tokens and revokes (or disables) the live
/// keys among them.
#[utoipa::path(
    post,
    path = "/leaks/github",
    tag = "leaks",
    params(
        ("Github-Public-Key-Identifier" = String, Header, description = "The identifier of the GitHub secret-scanning key that signed the body"),
        ("Github-Public-Key-Signature" = String, Header, description = "Base64 of the DER ECDSA P-256 / SHA-256 signature of the raw body"),
    ),
    request_body(content = Vec<LeakReport>, description = "The reported tokens"),
    responses(
        (status = 200, description = "A verdict per reported token, in the request's order", body = Vec<LeakVerdict>),
        (status = 401, description = "A signature header is missing, names an unknown key or does not verify; nothing changed", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "The application takes no GitHub secret-scanning reports", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than 1 MiB", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "The body is not a JSON array of `{token, type, url, source}`; `field` names the element", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "The key store is unavailable; GitHub sends the report again", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(())
)]
pub(crate) async fn report_github(
    leaks: Option<Arc<GitHubLeaks>>,
    State(keys): State<Keyward>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Vec<LeakVerdict>>, AdminError> {
    let Some(leaks) = leaks else {
        return Err(AdminError::NotFound {
            detail: "this application takes no GitHub secret-scanning reports".into(),
        });
    };
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let (Some(key_id), Some(signature)) = (header(KEY_ID_HEADER), header(SIGNATURE_HEADER)) else {
        return Err(unauthorized(
            "the Github-Public-Key-Identifier and Github-Public-Key-Signature headers are required",
        ));
    };
    let body = body.map_err(|rejection| {
        let status = rejection.status();
        let error = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "payload_too_large"
        } else {
            "invalid_request"
        };
        AdminError::from(Problem::new(status, error).detail(rejection.body_text()))
    })?;
    if !leaks.keys.verify(key_id, signature, &body) {
        return Err(unauthorized(
            "the signature is not one of the configured GitHub secret-scanning keys' over this body",
        ));
    }
    let reports = parse_reports(&body)?;

    // Every lookup first, then every change, so that a store failing half-way has changed
    // as little as possible before GitHub sends the report again.
    let mut found: HashMap<&str, Option<KeyRecord>> = HashMap::new();
    for report in &reports {
        if found.contains_key(report.token.as_str()) {
            continue;
        }
        let record = keys
            .find_token(&report.token)
            .await?
            .filter(|record| record.revoked_at.is_none());
        found.insert(report.token.as_str(), record);
    }
    let mut labels: HashMap<KeyId, LeakLabel> = HashMap::new();
    for report in &reports {
        let Some(Some(record)) = found.get(report.token.as_str()) else {
            continue;
        };
        if labels.contains_key(&record.id) {
            continue;
        }
        let label = match respond_to_leak(
            &keys,
            leaks.action,
            record,
            report.url.as_deref(),
            report.source.as_deref(),
        )
        .await
        {
            Ok(()) | Err(ManageError::Conflict(_)) => LeakLabel::TruePositive,
            Err(ManageError::NotFound(_)) => LeakLabel::FalsePositive,
            Err(other) => return Err(other.into()),
        };
        labels.insert(record.id, label);
    }
    let verdicts = reports
        .iter()
        .map(|report| {
            let label = found
                .get(report.token.as_str())
                .and_then(|record| record.as_ref())
                .and_then(|record| labels.get(&record.id).copied())
                .unwrap_or(LeakLabel::FalsePositive);
            LeakVerdict {
                token_raw: report.token.clone(),
                token_type: report.token_type.clone(),
                label,
            }
        })
        .collect();
    Ok(Json(verdicts))
}

/// Revokes or disables the key `record`, reported leaked at `url`. The one place a leak
/// changes a key.
async fn respond_to_leak(
    keys: &Keyward,
    action: LeakAction,
    record: &KeyRecord,
    url: Option<&str>,
    source: Option<&str>,
) -> Result<(), ManageError> {
    let leak = Leak::new("github", url.map(str::to_owned));
    let by = keys.acting(EventContext::system().leaked(leak));
    let name = match action {
        LeakAction::Revoke => {
            by.revoke(record.id).await?;
            "revoke"
        }
        LeakAction::Disable => {
            let changes = KeyChanges {
                active: Some(false),
                disabled_by: Some(GITHUB_ACTOR.to_owned()),
                ..KeyChanges::default()
            };
            by.update(record.id, changes).await?;
            "disable"
        }
    };
    tracing::warn!(
        target: "keyward::audit",
        actor = GITHUB_ACTOR,
        key_id = %record.id,
        action = name,
        reason = "leaked",
        url = url.unwrap_or_default(),
        source = source.unwrap_or_default(),
        "api key {name}: reported leaked",
    );
    Ok(())
}

fn unauthorized(detail: &str) -> AdminError {
    Problem::new(StatusCode::UNAUTHORIZED, "invalid_signature")
        .detail(detail)
        .into()
}

/// The reports in `body`; the errors name the element and never repeat a value, which may
/// be a token.
fn parse_reports(body: &[u8]) -> Result<Vec<LeakReport>, AdminError> {
    let shape = "must be a JSON array of {\"token\", \"type\", \"url\", \"source\"}";
    let elements: Vec<serde_json::Value> = serde_json::from_slice(body)
        .map_err(|_| AdminError::from(Problem::invalid("body", shape)))?;
    elements
        .into_iter()
        .enumerate()
        .map(|(index, element)| {
            let field = format!("[{index}]");
            let text = |name: &str, required: bool| -> Result<Option<String>, AdminError> {
                match element.get(name) {
                    Some(serde_json::Value::String(value)) => Ok(Some(value.clone())),
                    None | Some(serde_json::Value::Null) if !required => Ok(None),
                    _ => Err(Problem::invalid(
                        &format!("{field}.{name}"),
                        if required {
                            "is required and must be a string"
                        } else {
                            "must be a string"
                        },
                    )
                    .into()),
                }
            };
            if !element.is_object() {
                return Err(Problem::invalid(&field, "must be an object").into());
            }
            Ok(LeakReport {
                token: text("token", true)?.unwrap_or_default(),
                token_type: text("type", true)?.unwrap_or_default(),
                url: text("url", false)?,
                source: text("source", false)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(result: Result<Vec<LeakReport>, AdminError>) -> String {
        let problem = result.unwrap_err().to_problem();
        assert_eq!(problem.status(), 422);
        problem.to_json()["field"].as_str().unwrap().to_owned()
    }

    #[test]
    fn reports_are_named_by_element() {
        assert_eq!(field(parse_reports(b"{")), "body");
        assert_eq!(field(parse_reports(b"{}")), "body");
        assert_eq!(field(parse_reports(br#"["books_x"]"#)), "[0]");
        assert_eq!(
            field(parse_reports(br#"[{"token":"a","type":"t"},{"type":"t"}]"#)),
            "[1].token"
        );
        assert_eq!(
            field(parse_reports(br#"[{"token":"a","type":1}]"#)),
            "[0].type"
        );
        assert_eq!(
            field(parse_reports(br#"[{"token":"a","type":"t","url":5}]"#)),
            "[0].url"
        );
        let ok = parse_reports(br#"[{"token":"a","type":"t","url":null,"extra":1}]"#).unwrap();
        assert_eq!((ok[0].token.as_str(), ok[0].url.as_deref()), ("a", None));
        assert!(parse_reports(b"[]").unwrap().is_empty());
    }
}
