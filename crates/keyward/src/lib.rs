//! API keys for axum and tower applications.
