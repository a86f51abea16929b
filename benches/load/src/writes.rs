//! A fixed number of requests, for counting store writes: exact counts matter here, not
//! speed, so a small in-process client sends them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::BoxError;

/// What a fixed-count run saw.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sent {
    pub(crate) ok: u64,
    pub(crate) elapsed: Duration,
}

/// Sends `total` GET requests to `url` from `concurrency` tasks, rotating over `tokens`.
pub(crate) async fn send(
    url: &str,
    tokens: &[String],
    total: usize,
    concurrency: usize,
) -> Result<Sent, BoxError> {
    if tokens.is_empty() {
        return Err("no tokens to send".into());
    }
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let next = Arc::new(AtomicUsize::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let headers: Arc<Vec<String>> = Arc::new(
        tokens
            .iter()
            .map(|token| format!("Bearer {token}"))
            .collect(),
    );
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let client = client.clone();
        let next = Arc::clone(&next);
        let ok = Arc::clone(&ok);
        let headers = Arc::clone(&headers);
        let url = url.to_owned();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return Ok::<(), BoxError>(());
                }
                let request = http::Request::get(&url)
                    .header(http::header::AUTHORIZATION, &headers[i % headers.len()])
                    .body(Empty::new())?;
                let response = client.request(request).await?;
                let status = response.status();
                response.into_body().collect().await?;
                if status.is_success() {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(Sent {
        ok: ok.load(Ordering::Relaxed),
        elapsed: start.elapsed(),
    })
}
