//! The book tracker's API: every route guarded by its scope.
//!
//! Handlers return [`AppError`] for database failures, which answers 503 with `Retry-After`.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use keyward::{Json, Principal, Problem, require_scopes};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, Set,
    TransactionTrait,
};
use serde::Deserialize;
use serde_json::json;

use super::auth::{USERS_ADMIN, role_grants};
use super::db::{book, list, reading_event, review, user};
use super::{AppError, AppState};

/// Every `/api/v1` route except key management.
pub fn router() -> Router<AppState> {
    let guard = |scope: &'static str| require_scopes([scope]);
    Router::new()
        .route("/books", get(list_books).route_layer(guard("books:read")))
        .route(
            "/books",
            axum::routing::post(create_book).route_layer(guard("books:write")),
        )
        .route(
            "/books/{id}",
            get(get_book).route_layer(guard("books:read")),
        )
        .route(
            "/books/{id}",
            axum::routing::patch(update_book)
                .delete(delete_book)
                .route_layer(guard("books:write")),
        )
        .route(
            "/reading-events",
            get(list_reading_events).route_layer(guard("reading:read")),
        )
        .route(
            "/reading-events",
            axum::routing::post(create_reading_event).route_layer(guard("reading:write")),
        )
        .route(
            "/reviews",
            get(list_reviews).route_layer(guard("reviews:read")),
        )
        .route("/lists", get(list_lists).route_layer(guard("lists:read")))
        .route(
            "/import",
            axum::routing::post(import_books).route_layer(guard("import:write")),
        )
        .route(
            "/metadata",
            get(metadata).route_layer(guard("metadata:read")),
        )
        .route(
            "/users/{id}",
            axum::routing::patch(change_role).route_layer(guard(USERS_ADMIN)),
        )
}

/// A 422 naming `field`, in the shape of every validation error.
fn invalid(field: &str, message: &str) -> Response {
    Problem::invalid(field, message).into_response()
}

fn not_found(what: &str) -> Response {
    Problem::new(StatusCode::NOT_FOUND, "not_found")
        .detail(format!("no {what} with that id"))
        .into_response()
}

/// Query of `GET /books`.
#[derive(Debug, Deserialize)]
struct BookQuery {
    q: Option<String>,
}

async fn list_books(
    State(state): State<AppState>,
    Query(query): Query<BookQuery>,
) -> Result<Json<serde_json::Value>, AppError> {
    let mut select = book::Entity::find().order_by_asc(book::Column::Id);
    if let Some(q) = query.q.filter(|q| !q.is_empty()) {
        select = select.filter(
            book::Column::Title
                .contains(q.as_str())
                .or(book::Column::Author.contains(q.as_str())),
        );
    }
    let books = select.all(&state.db).await?;
    Ok(Json(json!({ "books": books })))
}

/// A book as clients send it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BookInput {
    title: String,
    author: String,
    #[serde(default)]
    isbn: Option<String>,
}

/// A validated book.
struct ValidBook {
    title: String,
    author: String,
    isbn: Option<String>,
}

fn validate_book(input: &BookInput) -> Result<ValidBook, (&'static str, &'static str)> {
    let title = input.title.trim().to_owned();
    if title.is_empty() || title.chars().count() > 300 {
        return Err(("title", "must be 1 to 300 characters"));
    }
    let author = input.author.trim().to_owned();
    if author.is_empty() || author.chars().count() > 200 {
        return Err(("author", "must be 1 to 200 characters"));
    }
    let isbn = match input
        .isbn
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(raw) => {
            Some(normalize_isbn(raw).ok_or(("isbn", "is not a valid ISBN-10 or ISBN-13"))?)
        }
        None => None,
    };
    Ok(ValidBook {
        title,
        author,
        isbn,
    })
}

async fn create_book(
    State(state): State<AppState>,
    caller: Principal,
    Json(input): Json<BookInput>,
) -> Result<Response, AppError> {
    let book = match validate_book(&input) {
        Ok(book) => book,
        Err((field, message)) => return Ok(invalid(field, message)),
    };
    let saved = book::ActiveModel {
        title: Set(book.title),
        author: Set(book.author),
        isbn: Set(book.isbn),
        added_by: Set(caller.user_id().map(str::to_owned)),
        created_at: Set(chrono::Utc::now()),
        ..Default::default()
    }
    .insert(&state.db)
    .await?;
    Ok((StatusCode::CREATED, Json(saved)).into_response())
}

async fn get_book(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    Ok(match book::Entity::find_by_id(id).one(&state.db).await? {
        Some(book) => Json(book).into_response(),
        None => not_found("book"),
    })
}

/// A partial book update.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BookPatch {
    title: Option<String>,
    author: Option<String>,
    isbn: Option<String>,
}

async fn update_book(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Json(patch): Json<BookPatch>,
) -> Result<Response, AppError> {
    let Some(existing) = book::Entity::find_by_id(id).one(&state.db).await? else {
        return Ok(not_found("book"));
    };
    let merged = BookInput {
        title: patch.title.unwrap_or_else(|| existing.title.clone()),
        author: patch.author.unwrap_or_else(|| existing.author.clone()),
        isbn: patch.isbn.or_else(|| existing.isbn.clone()),
    };
    let book = match validate_book(&merged) {
        Ok(book) => book,
        Err((field, message)) => return Ok(invalid(field, message)),
    };
    let mut active = existing.into_active_model();
    active.title = Set(book.title);
    active.author = Set(book.author);
    active.isbn = Set(book.isbn);
    match active.update(&state.db).await {
        Ok(updated) => Ok(Json(updated).into_response()),
        // Deleted since it was read.
        Err(sea_orm::DbErr::RecordNotUpdated) => Ok(not_found("book")),
        Err(err) => Err(err.into()),
    }
}

async fn delete_book(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    let result = book::Entity::delete_by_id(id).exec(&state.db).await?;
    Ok(if result.rows_affected == 0 {
        not_found("book")
    } else {
        StatusCode::NO_CONTENT.into_response()
    })
}

async fn list_reading_events(
    State(state): State<AppState>,
    caller: Principal,
) -> Result<Json<serde_json::Value>, AppError> {
    let mut select = reading_event::Entity::find().order_by_desc(reading_event::Column::Id);
    // A person sees their own reading; a service key sees everyone's.
    if let Some(user) = caller.user_id() {
        select = select.filter(reading_event::Column::UserId.eq(user));
    }
    Ok(Json(
        json!({ "reading_events": select.all(&state.db).await? }),
    ))
}

/// A new reading event.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadingEventInput {
    book_id: i64,
    kind: String,
}

async fn create_reading_event(
    State(state): State<AppState>,
    caller: Principal,
    Json(input): Json<ReadingEventInput>,
) -> Result<Response, AppError> {
    let Some(user) = caller.user_id() else {
        return Ok(Problem::new(StatusCode::FORBIDDEN, "person_required")
            .detail("reading events belong to a person; use a personal key")
            .into_response());
    };
    if !["want", "started", "finished", "dropped"].contains(&input.kind.as_str()) {
        return Ok(invalid(
            "kind",
            "must be want, started, finished or dropped",
        ));
    }
    if book::Entity::find_by_id(input.book_id)
        .one(&state.db)
        .await?
        .is_none()
    {
        return Ok(invalid("book_id", "no book has this id"));
    }
    let saved = reading_event::ActiveModel {
        book_id: Set(input.book_id),
        user_id: Set(user.to_owned()),
        kind: Set(input.kind),
        created_at: Set(chrono::Utc::now()),
        ..Default::default()
    }
    .insert(&state.db)
    .await?;
    Ok((StatusCode::CREATED, Json(saved)).into_response())
}

async fn list_reviews(State(state): State<AppState>) -> Result<Json<serde_json::Value>, AppError> {
    let reviews = review::Entity::find()
        .order_by_desc(review::Column::Id)
        .all(&state.db)
        .await?;
    Ok(Json(json!({ "reviews": reviews })))
}

async fn list_lists(
    State(state): State<AppState>,
    caller: Principal,
) -> Result<Json<serde_json::Value>, AppError> {
    let mut select = list::Entity::find().order_by_asc(list::Column::Id);
    if let Some(user) = caller.user_id() {
        select = select.filter(list::Column::UserId.eq(user));
    }
    Ok(Json(json!({ "lists": select.all(&state.db).await? })))
}

/// A batch of books to import.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportInput {
    books: Vec<BookInput>,
}

async fn import_books(
    State(state): State<AppState>,
    caller: Principal,
    Json(input): Json<ImportInput>,
) -> Result<Response, AppError> {
    if input.books.is_empty() || input.books.len() > 1000 {
        return Ok(invalid("books", "must hold 1 to 1000 books"));
    }
    let mut valid = Vec::with_capacity(input.books.len());
    for (i, book) in input.books.iter().enumerate() {
        match validate_book(book) {
            Ok(book) => valid.push(book),
            Err(e) => {
                return Ok(invalid("books", &format!("book {i}: {}: {}", e.0, e.1)));
            }
        }
    }
    let count = valid.len();
    let txn = state.db.begin().await?;
    for book in valid {
        book::ActiveModel {
            title: Set(book.title),
            author: Set(book.author),
            isbn: Set(book.isbn),
            added_by: Set(caller.user_id().map(str::to_owned)),
            created_at: Set(chrono::Utc::now()),
            ..Default::default()
        }
        .insert(&txn)
        .await?;
    }
    txn.commit().await?;
    Ok((StatusCode::CREATED, Json(json!({ "imported": count }))).into_response())
}

/// Query of `GET /metadata`.
#[derive(Debug, Deserialize)]
struct MetadataQuery {
    isbn: Option<String>,
}

async fn metadata(
    State(state): State<AppState>,
    Query(query): Query<MetadataQuery>,
) -> Result<Response, AppError> {
    let Some(raw) = query.isbn else {
        return Ok(invalid("isbn", "is required"));
    };
    let Some(isbn) = normalize_isbn(&raw) else {
        return Ok(invalid("isbn", "is not a valid ISBN-10 or ISBN-13"));
    };
    let known = book::Entity::find()
        .filter(book::Column::Isbn.eq(isbn.as_str()))
        .one(&state.db)
        .await?;
    Ok(Json(json!({ "isbn": isbn, "book": known })).into_response())
}

/// The ISBN-13 form of a valid ISBN-10 or ISBN-13 (hyphens and spaces ignored).
fn normalize_isbn(raw: &str) -> Option<String> {
    let chars: Vec<char> = raw.chars().filter(|c| !matches!(c, '-' | ' ')).collect();
    let digit = |c: char| c.to_digit(10);
    match chars.len() {
        13 => {
            let digits: Vec<u32> = chars.iter().map(|&c| digit(c)).collect::<Option<_>>()?;
            let sum: u32 = digits
                .iter()
                .enumerate()
                .map(|(i, d)| if i % 2 == 0 { *d } else { d * 3 })
                .sum();
            (sum % 10 == 0).then(|| chars.iter().collect())
        }
        10 => {
            let mut sum = 0;
            for (i, &c) in chars.iter().enumerate() {
                let value = match (i, c) {
                    (9, 'X' | 'x') => 10,
                    _ => digit(c)?,
                };
                sum += value * (10 - u32::try_from(i).ok()?);
            }
            if sum % 11 != 0 {
                return None;
            }
            let body: String = std::iter::once("978".to_owned())
                .chain(chars[..9].iter().map(char::to_string))
                .collect();
            let digits: Vec<u32> = body.chars().map(digit).collect::<Option<_>>()?;
            let sum: u32 = digits
                .iter()
                .enumerate()
                .map(|(i, d)| if i % 2 == 0 { *d } else { d * 3 })
                .sum();
            Some(format!("{body}{}", (10 - sum % 10) % 10))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::normalize_isbn;

    #[test]
    fn isbns() {
        assert_eq!(
            normalize_isbn("978-0-306-40615-7").as_deref(),
            Some("9780306406157")
        );
        assert_eq!(
            normalize_isbn("0-306-40615-2").as_deref(),
            Some("9780306406157")
        );
        assert_eq!(
            normalize_isbn("080442957X").as_deref(),
            Some("9780804429573")
        );
        assert_eq!(normalize_isbn("978-0-306-40615-8"), None);
        assert_eq!(normalize_isbn("abc"), None);
    }
}

/// A user's new role.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleInput {
    role: String,
}

/// `PATCH /api/v1/users/{id}`: changes a user's role. keyward hears of it at once, so the
/// user's keys and sessions hold the new role's scopes from their next request on.
async fn change_role(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(input): Json<RoleInput>,
) -> Result<Response, AppError> {
    if !["admin", "user"].contains(&input.role.as_str()) {
        return Ok(invalid("role", "must be admin or user"));
    }
    let Some(found) = user::Entity::find_by_id(id.clone()).one(&state.db).await? else {
        return Ok(Problem::new(StatusCode::NOT_FOUND, "not_found")
            .detail("no such user")
            .into_response());
    };
    let mut model = found.into_active_model();
    model.role = Set(input.role.clone());
    let updated = model.update(&state.db).await?;
    state.keyward.invalidate_owner(&updated.id).await?;
    let scopes = role_grants(state.keyward.catalog(), &updated.role).to_strings();
    Ok(Json(json!({ "id": updated.id, "username": updated.username, "role": updated.role, "scopes": scopes }))
        .into_response())
}
