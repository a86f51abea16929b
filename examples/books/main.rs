//! The reference app: a small book tracker with API keys (`cargo run --example books`).
//!
//! Configuration comes from the environment: `BOOKS_ADDR` (default `127.0.0.1:3000`),
//! `DATABASE_URL` (default `sqlite://books.db?mode=rwc`), `BOOKS_ADMIN_PASSWORD`,
//! `BOOKS_READER_PASSWORD`, `BOOKS_PEPPER`, `BOOKS_TRUSTED_PROXIES`,
//! `BOOKS_HEADER_READ_TIMEOUT_SECS` (default 10), `BOOKS_REDIS_URL` and
//! `BOOKS_REDIS_NAMESPACE` (several instances: shared rate limits, change feed and failure
//! budget; see `books::Config::redis_url`).

use std::process::ExitCode;

use keyward_examples::books;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,sea_orm_migration=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = match books::Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    match books::serve(config, books::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
