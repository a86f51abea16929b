//! Who is calling the management routes: keyward's caller, a key or a signed-in session.

use axum::extract::{FromRef, FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use keyward::{AuthError, ClientIp, Keyward, Principal};

use crate::access::Actor;
use crate::error::AdminError;

/// Extractor: the caller of a management route, with the presenting key's record when a key
/// acts, or the refusal (401 without a key or session, 403 for a cross-site session write).
#[derive(Debug, Clone)]
pub(crate) struct CurrentActor(pub(crate) Actor);

impl<S> FromRequestParts<S> for CurrentActor
where
    Keyward: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let principal = <Principal as FromRequestParts<S>>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let client_ip = <ClientIp as OptionalFromRequestParts<S>>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?
            .map(|ClientIp(ip)| ip);
        let key = match principal.key_id() {
            Some(id) => Some(
                Keyward::from_ref(state)
                    .get(id)
                    .await
                    .map_err(|err| AdminError::from(err).into_response())?,
            ),
            None => None,
        };
        Ok(Self(Actor {
            principal,
            key,
            client_ip,
        }))
    }
}

/// Extractor: the keyward key that authenticates the request (not a session), or 401.
#[derive(Debug, Clone)]
pub(crate) struct PresentingKey(pub(crate) Principal);

impl<S> FromRequestParts<S> for PresentingKey
where
    Keyward: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let principal =
            <Principal as OptionalFromRequestParts<S>>::from_request_parts(parts, state)
                .await
                .map_err(IntoResponse::into_response)?;
        match principal {
            Some(principal) if principal.as_key().is_some() => Ok(Self(principal)),
            // No key: 401 with the application's realm, challenge and hook.
            _ => Err(Keyward::from_ref(state).error_response(&AuthError::MissingCredential)),
        }
    }
}
