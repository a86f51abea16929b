//! Key management for keyward: a mountable axum router with JSON routes, an OpenAPI 3.1
//! document and a management page.
