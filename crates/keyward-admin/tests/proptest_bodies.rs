//! Arbitrary JSON values and arbitrary bytes as the bodies of the create, update, regenerate
//! and refresh routes: never a 5xx, always one of the route's documented statuses, every
//! refusal problem+json; a key that gets created can be refreshed and regenerated. The same
//! routes are fuzzed in `fuzz/` (target `admin_bodies`).

mod common;

use axum::body::Body;
use common::{MOUNT, Minted, Reply, TestApp};
use http::{Method, Request};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Number, Value};
use tokio::runtime::Runtime;

const CASES: u32 = 256;

#[derive(Debug, Clone, Copy)]
enum Route {
    Create,
    Update,
    Regenerate,
    Refresh,
}

impl Route {
    fn method_and_path(self, target: &str) -> (Method, String) {
        match self {
            Self::Create => (Method::POST, "/keys".to_owned()),
            Self::Update => (Method::PATCH, format!("/keys/{target}")),
            Self::Regenerate => (Method::POST, format!("/keys/{target}/regenerate")),
            Self::Refresh => (Method::POST, format!("/keys/{target}/refresh")),
        }
    }

    /// The members the route's body accepts.
    fn members(self) -> &'static [&'static str] {
        match self {
            Self::Create => &[
                "name",
                "scopes",
                "expires_in_days",
                "expires_at",
                "allowed_ips",
                "kind",
                "owner",
                "rate_limit",
                "metadata",
            ],
            Self::Update => &[
                "name",
                "scopes",
                "active",
                "allowed_ips",
                "rate_limit",
                "metadata",
            ],
            Self::Regenerate => &["grace_seconds"],
            Self::Refresh => &[],
        }
    }

    /// The statuses the OpenAPI document lists for the route, 401 and 503 aside (the caller
    /// holds a valid key and the store is in memory).
    fn statuses(self) -> &'static [u16] {
        match self {
            Self::Create => &[201, 400, 403, 415, 422],
            Self::Update | Self::Regenerate => &[200, 400, 403, 404, 409, 415, 422],
            Self::Refresh => &[200, 404, 409],
        }
    }
}

fn route() -> impl Strategy<Value = Route> {
    prop_oneof![
        Just(Route::Create),
        Just(Route::Update),
        Just(Route::Regenerate),
        Just(Route::Refresh),
    ]
}

struct Fixture {
    runtime: Runtime,
    app: TestApp,
    admin: Minted,
    target: String,
}

impl Fixture {
    fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let app = TestApp::new();
        let (admin, target) = runtime.block_on(async {
            // It never expires: a key that does bounds the expiry of the keys it creates.
            let admin = app
                .mint(
                    keyward::NewKey::service("admin")
                        .scopes(["keys:admin", "books:write", "reviews:read"])
                        .expiry(keyward::Expiry::Never),
                )
                .await;
            let target = app.personal("alice", &["books:read"]).await;
            (admin, target)
        });
        Self {
            runtime,
            app,
            admin,
            target: target.id.to_string(),
        }
    }

    /// Sends `body` to `route` and checks the answer; a key it creates is then refreshed and
    /// regenerated, which must not fail either.
    fn check(&self, route: Route, body: Vec<u8>) {
        let (method, path) = route.method_and_path(&self.target);
        self.runtime.block_on(async {
            let reply = self.send(method, &path, body).await;
            let status = reply.status.as_u16();
            assert!(
                route.statuses().contains(&status),
                "{path}: status {status}: {}",
                reply.text
            );
            let reply = reply.expect(status);
            if reply.status == 201 {
                let id = reply.json["key"]["id"].as_str().expect("an id").to_owned();
                for action in ["refresh", "regenerate"] {
                    let path = format!("/keys/{id}/{action}");
                    let reply = self.send(Method::POST, &path, Vec::new()).await;
                    let status = reply.status.as_u16();
                    assert!(
                        matches!(status, 200 | 409),
                        "{path} of a created key: {status}: {}",
                        reply.text
                    );
                    reply.expect(status);
                }
            }
        });
    }

    async fn send(&self, method: Method, path: &str, body: Vec<u8>) -> Reply {
        let request = Request::builder()
            .method(method)
            .uri(format!("{MOUNT}{path}"))
            .header("authorization", format!("Bearer {}", self.admin.token))
            .header("content-type", "application/json")
            .body(Body::from(body))
            .expect("valid request");
        self.app.call(request).await
    }
}

/// Strings the routes give meaning to, and a few arbitrary ones.
fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "",
            "books:read",
            "books:write",
            "reviews:read",
            "keys:admin",
            "books:*",
            "*",
            "service",
            "personal",
            "alice",
            "10.0.0.0/8",
            "::1",
            "256.0.0.1/33",
        ])
        .prop_map(str::to_owned),
        timestamp(),
        ".{0,24}",
    ]
}

/// Expiry times: ordinary, at the edges of what is accepted, and beyond what RFC 3339 can say.
fn timestamp() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "2027-01-31T00:00:00Z",
        "2026-05-01T10:00:00+14:00",
        "2036-04-28T09:59:59Z",
        "2036-04-28T10:00:00Z",
        "2036-04-28T10:00:01Z",
        "9999-12-31T23:59:59Z",
        "0000-01-01T00:00:00Z",
        "+10000-01-01T00:00:00Z",
        "+262142-12-31T23:59:59Z",
        "-262143-01-01T00:00:00Z",
    ])
    .prop_map(str::to_owned)
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(vec![
            0_i64,
            1,
            7,
            30,
            180,
            3650,
            86_400,
            86_401,
            -1,
            i64::from(u32::MAX),
            i64::from(u32::MAX) + 1,
            i64::MIN,
            i64::MAX,
        ])
        .prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        string().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(member(), inner, 0..4)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    })
}

fn member() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "name",
            "scopes",
            "expires_in_days",
            "expires_at",
            "allowed_ips",
            "kind",
            "owner",
            "rate_limit",
            "metadata",
            "active",
            "grace_seconds",
        ])
        .prop_map(str::to_owned),
        1 => ".{0,8}",
    ]
}

/// Mostly a value the member accepts, sometimes any JSON value.
fn or_any<S>(valid: S) -> impl Strategy<Value = Value>
where
    S: Strategy<Value = Value> + 'static,
{
    prop_oneof![9 => valid, 1 => json()]
}

fn selected<T>(values: Vec<T>) -> impl Strategy<Value = Value>
where
    T: Clone + std::fmt::Debug + Into<Value> + 'static,
{
    prop::sample::select(values).prop_map(Into::into)
}

/// Objects close to what the routes accept, so that validation runs on every member and keys
/// get created.
fn plausible() -> impl Strategy<Value = Value> {
    let scope = selected(vec!["books:read", "books:write", "reviews:read"]);
    let network = selected(vec!["10.0.0.0/8", "192.168.1.7", "::1", "2001:db8::/32"]);
    (
        prop::option::weighted(
            0.9,
            or_any("[A-Za-z0-9][A-Za-z0-9 ]{0,29}".prop_map(Value::from)),
        ),
        prop::option::weighted(
            0.9,
            or_any(prop::collection::vec(scope, 1..3).prop_map(Value::from)),
        ),
        prop::option::weighted(
            0.3,
            or_any(selected(vec![
                Value::Null,
                7.into(),
                30.into(),
                180.into(),
                365.into(),
            ])),
        ),
        prop::option::weighted(0.2, or_any(timestamp().prop_map(Value::from))),
        prop::option::of(or_any(
            prop::collection::vec(network, 0..3).prop_map(Value::from),
        )),
        prop::option::weighted(
            0.9,
            or_any(selected(vec!["service", "service", "personal"])),
        ),
        prop::option::weighted(0.5, or_any(selected(vec!["alice", "bob", ""]))),
        prop::option::of(or_any(prop_oneof![
            Just(Value::Null),
            (1_u32..1000).prop_map(Value::from)
        ])),
        prop::option::of(or_any(
            prop::collection::btree_map(member(), json(), 0..3)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        )),
        prop::option::of(or_any(any::<bool>().prop_map(Value::from))),
        prop::option::of(or_any((0_u32..=86_400).prop_map(Value::from))),
    )
        .prop_map(
            |(name, scopes, days, at, ips, kind, owner, rate, metadata, active, grace)| {
                let members = [
                    ("name", name),
                    ("scopes", scopes),
                    ("expires_in_days", days),
                    ("expires_at", at),
                    ("allowed_ips", ips),
                    ("kind", kind),
                    ("owner", owner),
                    ("rate_limit", rate),
                    ("metadata", metadata),
                    ("active", active),
                    ("grace_seconds", grace),
                ];
                Value::Object(
                    members
                        .into_iter()
                        .filter_map(|(key, value)| Some((key.to_owned(), value?)))
                        .collect::<Map<_, _>>(),
                )
            },
        )
}

#[test]
fn arbitrary_json_bodies() {
    let fixture = Fixture::new();
    let body = prop_oneof![
        3 => plausible(),
        1 => json(),
    ];
    // Now and then a member the route does not know stays in.
    let strategy = (route(), body, prop::bool::weighted(0.1));
    let mut runner = TestRunner::new(Config::with_cases(CASES));
    runner
        .run(&strategy, |(route, mut value, keep_all)| {
            if let (Value::Object(members), false) = (&mut value, keep_all) {
                members.retain(|name, _| route.members().contains(&name.as_str()));
            }
            fixture.check(route, value.to_string().into_bytes());
            Ok(())
        })
        .unwrap();
}

#[test]
fn arbitrary_bytes_bodies() {
    let fixture = Fixture::new();
    let bytes = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..128),
        (".{0,64}", prop::collection::vec(any::<u8>(), 0..16)).prop_map(|(text, tail)| {
            let mut bytes = format!("{{\"name\":\"{text}").into_bytes();
            bytes.extend(tail);
            bytes
        }),
    ];
    let mut runner = TestRunner::new(Config::with_cases(CASES));
    runner
        .run(&(route(), bytes), |(route, body)| {
            fixture.check(route, body);
            Ok(())
        })
        .unwrap();
}

#[test]
fn a_plausible_body_creates_a_key() {
    let fixture = Fixture::new();
    let body = serde_json::json!({
        "name": "ci",
        "kind": "service",
        "scopes": ["books:read"],
        "expires_in_days": 90,
    });
    fixture.runtime.block_on(async {
        let reply = fixture
            .send(Method::POST, "/keys", body.to_string().into_bytes())
            .await
            .expect(201);
        assert!(
            reply.json["token"]
                .as_str()
                .is_some_and(|t| t.starts_with("books_"))
        );
    });
}
