//! Shared helpers for keyward's cross-crate integration tests.
