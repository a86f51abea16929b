//! `GET /keys/{id}/usage`: a key's daily use counts, for the page's sparkline.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use keyward::{Json, Keyward, Problem};

use crate::access::{Operation, authorize};
use crate::actor::CurrentActor;
use crate::error::AdminError;
use crate::model::{ProblemBody, UsageHistory};
use crate::routes::load;

/// The days `GET /keys/{id}/usage` answers for when `days` is absent, and the most it
/// answers for.
pub(crate) const USAGE_DAYS: u32 = 90;

/// A key's uses per day (UTC) over the last `days` days ending today, oldest first, zeros
/// included; uses not yet written to the store count too.
#[utoipa::path(
    get,
    path = "/keys/{id}/usage",
    tag = "keys",
    params(
        ("id" = String, Path, format = Uuid, description = "The key's id"),
        ("days" = Option<u32>, Query, minimum = 1, maximum = 90, description = "How many days, ending today; 1 to 90, default 90."),
    ),
    responses(
        (status = 200, description = "One count per day, oldest first", body = UsageHistory),
        (status = 401, description = "No key and no session", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "The caller lacks `keys:read`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such key, or another owner's key", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "`days` is not a number from 1 to 90, or another query parameter was given; `field` names it", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "The key store is unavailable", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn key_usage(
    State(keys): State<Keyward>,
    CurrentActor(actor): CurrentActor,
    Path(id): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<UsageHistory>, AdminError> {
    let days = days(query)?;
    let record = load(&keys, &id).await?;
    authorize(&actor, Operation::Read(&record))?;
    let days = keys.usage_days(record.id, days).await?;
    Ok(Json(UsageHistory { days }))
}

/// The `days` of the query: 1 to [`USAGE_DAYS`], that many when absent.
fn days(query: Result<Query<Vec<(String, String)>>, QueryRejection>) -> Result<u32, AdminError> {
    let pairs = crate::query::pairs(query)?;
    let mut days = USAGE_DAYS;
    for (name, value) in pairs {
        if name != "days" {
            return Err(AdminError::from(Problem::invalid(
                &name,
                "unknown query parameter; expected days",
            )));
        }
        days = value
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=USAGE_DAYS).contains(n))
            .ok_or_else(|| {
                AdminError::field("days", format!("must be a number from 1 to {USAGE_DAYS}"))
            })?;
    }
    Ok(days)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &str) -> Result<u32, AdminError> {
        let uri: http::Uri = format!("/keys/x/usage?{query}").parse().unwrap();
        days(Query::try_from_uri(&uri))
    }

    #[test]
    fn days_are_one_to_ninety_and_ninety_by_default() {
        assert_eq!(parse("").unwrap(), 90);
        assert_eq!(parse("days=1").unwrap(), 1);
        assert_eq!(parse("days=30").unwrap(), 30);
        assert_eq!(parse("days=90").unwrap(), 90);
        for bad in [
            "days=0", "days=91", "days=x", "days=", "days=-1", "days=1.5",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(parse("day=3").is_err(), "an unknown parameter");
    }
}
