//! Runnable applications built with keyward.
//!
//! [`books`] is the reference application: a small book tracker with session login for
//! people and API keys for scripts, run with `cargo run --example books`.

pub mod books;
