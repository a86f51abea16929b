//! The query strings of the listing routes: read as name-value pairs, so that an unknown
//! parameter is named in the answer instead of ignored.

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use axum::http::StatusCode;
use keyward::Problem;

use crate::error::AdminError;
use crate::routes::PAGE_LIMIT;

/// A route's query string, as axum extracts it.
pub(crate) type RawQuery = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// The name-value pairs, or 400 `invalid_request` for a query string that is not one.
pub(crate) fn pairs(query: RawQuery) -> Result<Vec<(String, String)>, AdminError> {
    let Query(pairs) = query.map_err(|rejection| {
        AdminError::from(
            Problem::new(StatusCode::BAD_REQUEST, "invalid_request").detail(rejection.body_text()),
        )
    })?;
    Ok(pairs)
}

/// A `limit` parameter: 1 to [`PAGE_LIMIT`], 422 naming `limit` otherwise.
pub(crate) fn page_limit(value: &str) -> Result<usize, AdminError> {
    value
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=PAGE_LIMIT).contains(n))
        .ok_or_else(|| {
            AdminError::field("limit", format!("must be a number from 1 to {PAGE_LIMIT}"))
        })
}
