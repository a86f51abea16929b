//! Verification cost through the tower service: a cache hit, a garbage token, a cache miss on
//! SQLite. Run with `cargo bench -p keyward --bench verify`.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::FutureExt;
use http::Request;
use keyward::{CacheConfig, Keyward, MemoryStore, NewKey};
use tower::{Service, ServiceExt, service_fn};

async fn ok(_: Request<Body>) -> Result<Response, Infallible> {
    Ok(Response::new(Body::empty()))
}

fn request(token: &str) -> Request<Body> {
    Request::get("/books")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap()
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _enter = runtime.enter();

    let keyward = Keyward::builder(MemoryStore::new())
        .prefix("books")
        .usage_flush_interval(Duration::from_secs(1))
        .build()
        .unwrap();
    let issued = runtime
        .block_on(keyward.create(NewKey::service("bench").scopes(["keys:read"])))
        .unwrap();
    let token = issued.token.expose_secret().to_owned();
    let mut service = keyward.layer().layer_service(service_fn(ok));
    let garbage = format!("{}x", &token[..token.len() - 1]);

    let mut group = c.benchmark_group("verify");
    group.bench_function("baseline: request through a bare service", |b| {
        let mut bare = service_fn(ok);
        b.iter(|| {
            let response = bare.call(request(&token)).now_or_never().unwrap().unwrap();
            assert_eq!(response.status(), 200);
        });
    });
    group.bench_function("cache hit through the service", |b| {
        b.iter(|| {
            let response = service
                .call(request(&token))
                .now_or_never()
                .unwrap()
                .unwrap();
            assert_eq!(response.status(), 200);
        });
    });
    group.bench_function("garbage token rejected through the service", |b| {
        b.iter(|| {
            let response = service
                .call(request(&garbage))
                .now_or_never()
                .unwrap()
                .unwrap();
            assert_eq!(response.status(), 401);
        });
    });
    group.bench_function("verify() cache hit, no HTTP", |b| {
        b.iter(|| {
            keyward
                .verify(&token, None)
                .now_or_never()
                .unwrap()
                .unwrap()
        });
    });

    group.bench_function("verify() garbage token, no HTTP", |b| {
        b.iter(|| {
            keyward
                .verify(&garbage, None)
                .now_or_never()
                .unwrap()
                .unwrap_err()
        });
    });

    let dir = std::env::temp_dir().join(format!("keyward-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.join("keys.db").display());
    let sqlite = runtime.block_on(async {
        let store = keyward_sea_orm::SeaOrmStore::connect_and_migrate(url.as_str())
            .await
            .unwrap();
        Keyward::builder(store)
            .prefix("books")
            .cache(CacheConfig::disabled())
            .build()
            .unwrap()
    });
    let sqlite_token = runtime
        .block_on(sqlite.create(NewKey::service("bench").scopes(["keys:read"])))
        .unwrap()
        .token
        .expose_secret()
        .to_owned();
    let sqlite_service = sqlite.layer().layer_service(service_fn(ok));
    group.bench_function("cache miss on SQLite through the service", |b| {
        b.to_async(&runtime).iter(|| {
            let service = sqlite_service.clone();
            let request = request(&sqlite_token);
            async move {
                let response = service.oneshot(request).await.unwrap();
                assert_eq!(response.status(), 200);
            }
        });
    });
    group.finish();
    runtime.block_on(keyward.shutdown());
    runtime.block_on(sqlite.shutdown());
    let _ = std::fs::remove_dir_all(dir);
}

trait LayerExt {
    fn layer_service<S>(&self, inner: S) -> keyward::KeywardService<S>;
}

impl LayerExt for keyward::KeywardLayer {
    fn layer_service<S>(&self, inner: S) -> keyward::KeywardService<S> {
        tower_layer::Layer::layer(self, inner)
    }
}

criterion_group!(benches_group, benches);
criterion_main!(benches_group);
