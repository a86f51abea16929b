//! The reference app: a small book tracker with API keys (`cargo run --example books`).
//!
//! Configuration comes from the environment: `BOOKS_ADDR` (default `127.0.0.1:3000`),
//! `DATABASE_URL` (default `sqlite://books.db?mode=rwc`), `BOOKS_ADMIN_PASSWORD`,
//! `BOOKS_READER_PASSWORD`, `BOOKS_PEPPER`, `BOOKS_TRUSTED_PROXIES`,
//! `BOOKS_HEADER_READ_TIMEOUT_SECS` (default 10), `BOOKS_REDIS_URL` and
//! `BOOKS_REDIS_NAMESPACE` (several instances: shared rate limits, change feed and failure
//! budget; see `books::Config::redis_url`), `BOOKS_GITHUB_SCANNING_KEYS` (a file of GitHub's
//! secret-scanning public keys: keys GitHub finds in public places are revoked),
//! `BOOKS_WEBHOOK_URL` with `BOOKS_WEBHOOK_SECRET` (`whsec_<base64>`: every key event is
//! POSTed to the URL, signed as the Standard Webhooks spec says; both or neither) and
//! `BOOKS_EXPIRY_NOTICE_DAYS` (default 7: days before a key's expiry that `expiring_soon` is
//! recorded; 0 turns expiry notices off).

use std::process::ExitCode;

fn main() -> ExitCode {
    keyward_examples::books::program::main()
}
