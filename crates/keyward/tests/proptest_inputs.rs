//! Arbitrary header values and query strings through the layer, in required and optional mode:
//! the answer is always 200, 400 or 401, a 200 in required mode always carries a verified key,
//! a readable credential that is not the key's token is always 401, and no response repeats
//! what was presented. The same entry points are fuzzed in `fuzz/` (target `credentials`).

use axum::Router;
use axum::body::Body;
use http::{HeaderValue, Request, Uri};
use http_body_util::BodyExt;
use keyward::{CredentialSource, Keyward, MemoryStore, NewKey, Principal, ScopeCatalog};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use tokio::runtime::Runtime;
use tower::ServiceExt;

const CASES: u32 = 256;

/// Where a header value goes.
#[derive(Debug, Clone, Copy)]
enum Place {
    Bearer,
    TokenScheme,
    /// The whole `Authorization` value, scheme included.
    Authorization,
    XApiKey,
    /// A header source the application added.
    Custom,
}

impl Place {
    fn header(self, value: &[u8]) -> (&'static str, Vec<u8>) {
        match self {
            Self::Bearer => ("authorization", [b"Bearer ".as_slice(), value].concat()),
            Self::TokenScheme => ("authorization", [b"Token ".as_slice(), value].concat()),
            Self::Authorization => ("authorization", value.to_vec()),
            Self::XApiKey => ("x-api-key", value.to_vec()),
            Self::Custom => ("x-legacy-token", value.to_vec()),
        }
    }
}

struct Fixture {
    runtime: Runtime,
    required: Router,
    optional: Router,
    token: String,
    /// The fixed texts responses are made of: a credential found in them proves no leak.
    vocabulary: Vec<u8>,
}

#[derive(Debug)]
struct Reply {
    status: u16,
    /// Header names and values, then the body.
    bytes: Vec<u8>,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

async fn whoami(principal: Option<Principal>) -> &'static str {
    if principal.is_some() {
        "key"
    } else {
        "anonymous"
    }
}

impl Fixture {
    fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let catalog = ScopeCatalog::builder()
            .scope("books:read", "Read the book collection")
            .build()
            .expect("valid catalog");
        let keys = Keyward::builder(MemoryStore::new())
            .prefix("books")
            .catalog(catalog)
            .sources([
                CredentialSource::bearer(),
                CredentialSource::token(),
                CredentialSource::header("x-api-key"),
                CredentialSource::header("x-legacy-token"),
                CredentialSource::query("api_key"),
            ])
            .build()
            .expect("valid configuration");
        let issued = runtime
            .block_on(keys.create(NewKey::service("ci").scopes(["books:read"])))
            .expect("key created");
        let app = Router::new().fallback(whoami);
        let mut fixture = Self {
            runtime,
            required: app.clone().layer(keys.layer()),
            optional: app.layer(keys.layer().optional()),
            token: issued.token.expose_secret().to_owned(),
            vocabulary: Vec::new(),
        };
        let unknown = format!("Bearer {}", keys.token_format().generate().expose_secret());
        let valid = format!("Bearer {}", fixture.token);
        let mut vocabulary = Vec::new();
        for (uri, authorization) in [
            ("/", None),
            ("/", Some("Bearer x")),
            ("/", Some(unknown.as_str())),
            ("/?api_key=x", Some(valid.as_str())),
            ("/", Some(valid.as_str())),
        ] {
            for optional in [false, true] {
                let mut request = Request::get(uri);
                if let Some(value) = authorization {
                    request = request.header("authorization", value);
                }
                let reply = fixture.call(optional, request.body(Body::empty()).unwrap());
                vocabulary.extend_from_slice(&reply.bytes);
                vocabulary.push(b'\n');
            }
        }
        fixture.vocabulary = vocabulary;
        fixture
    }

    fn call(&self, optional: bool, request: Request<Body>) -> Reply {
        let router = if optional {
            &self.optional
        } else {
            &self.required
        };
        self.runtime.block_on(async {
            let response = router.clone().oneshot(request).await.expect("infallible");
            let status = response.status().as_u16();
            let mut bytes = Vec::new();
            for (name, value) in response.headers() {
                bytes.extend_from_slice(name.as_str().as_bytes());
                bytes.extend_from_slice(b": ");
                bytes.extend_from_slice(value.as_bytes());
                bytes.push(b'\n');
            }
            let body = response.into_body().collect().await.expect("body");
            bytes.extend_from_slice(&body.to_bytes());
            Reply { status, bytes }
        })
    }

    /// The properties every answer has.
    fn check(
        &self,
        optional: bool,
        reply: &Reply,
        credentials: &[&[u8]],
    ) -> Result<(), TestCaseError> {
        prop_assert!(
            matches!(reply.status, 200 | 400 | 401),
            "status {}: {}",
            reply.status,
            reply.text()
        );
        if reply.status == 200 {
            let principal = reply.bytes.ends_with(b"key");
            prop_assert!(
                optional || principal,
                "required mode let a request through without a key"
            );
        }
        for credential in credentials {
            let credential = credential.trim_ascii();
            if credential.len() < 8 || contains(&self.vocabulary, credential) {
                continue;
            }
            prop_assert!(
                !contains(&reply.bytes, credential),
                "the response repeats {:?}: {}",
                String::from_utf8_lossy(credential),
                reply.text()
            );
        }
        Ok(())
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.len() <= haystack.len() && haystack.windows(needle.len()).any(|w| w == needle)
}

fn place() -> impl Strategy<Value = Place> {
    prop_oneof![
        Just(Place::Bearer),
        Just(Place::TokenScheme),
        Just(Place::Authorization),
        Just(Place::XApiKey),
        Just(Place::Custom),
    ]
}

/// Header value bytes: mostly what HTTP allows (visible ASCII, tabs, obs-text), sometimes
/// anything, sometimes a well-formed token of another key or prefix.
fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        8 => 0x20u8..0x7f,
        2 => 0x80u8..=0xff,
        1 => Just(b'\t'),
        1 => any::<u8>(),
    ];
    prop_oneof![
        4 => prop::collection::vec(byte, 0..80),
        1 => "(books|jelu|music)_[0-9A-Za-z]{46}".prop_map(String::into_bytes),
        1 => "[ \t]{0,3}(Bearer|Token|Basic|bearer)?[ \t]{0,3}".prop_map(String::into_bytes),
    ]
}

#[test]
fn arbitrary_header_values_in_every_source() {
    let fixture = Fixture::new();
    let strategy = (place(), header_bytes(), any::<bool>(), any::<bool>());
    let mut runner = TestRunner::new(Config::with_cases(CASES));
    runner
        .run(&strategy, |(place, bytes, optional, with_key)| {
            let (name, value) = place.header(&bytes);
            let Ok(value) = HeaderValue::from_bytes(&value) else {
                return Ok(()); // http refuses it: it cannot reach a service
            };
            let mut request = Request::get("/books").header(name, value);
            if with_key {
                request = request.header("x-api-key", fixture.token.as_str());
            }
            let reply = fixture.call(optional, request.body(Body::empty()).unwrap());
            fixture.check(optional, &reply, &[&bytes, fixture.token.as_bytes()])?;

            // A readable (visible ASCII) credential in one of keyward's own sources that is not the key's
            // token is refused in both modes (with the key beside it, as a conflict).
            let readable = bytes
                .iter()
                .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
                && !bytes.trim_ascii().is_empty();
            let own_source = !matches!(place, Place::Authorization);
            if readable && own_source && bytes.trim_ascii() != fixture.token.as_bytes() {
                let expected = if with_key { 400 } else { 401 };
                prop_assert_eq!(reply.status, expected, "{}", reply.text());
            }
            Ok(())
        })
        .unwrap();
}

/// Query strings: free text from the characters a URI allows, or `api_key` pairs whose values
/// are free text or percent-encoded arbitrary bytes.
fn query() -> impl Strategy<Value = String> {
    let text = "[A-Za-z0-9_.~!$&'()*+,;=:@/?%-]{0,60}";
    let encoded = prop::collection::vec(any::<u8>(), 0..40).prop_map(|bytes| {
        bytes
            .iter()
            .map(|b| format!("%{b:02X}"))
            .collect::<String>()
    });
    let value = prop_oneof![text.prop_map(String::from), encoded];
    prop_oneof![
        text.prop_map(String::from),
        (text, value, text)
            .prop_map(|(before, value, after)| format!("{before}&api_key={value}&{after}")),
        prop::collection::vec(
            ("(api_key|x|api_key\\[\\]|API_KEY)", "[A-Za-z0-9%+_]{0,12}"),
            0..4
        )
        .prop_map(|pairs| pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")),
    ]
}

/// Whether a query pair's key, form-decoded, is `api_key`.
fn names_api_key(pair: &str) -> bool {
    let key = pair.split('=').next().unwrap_or_default().as_bytes();
    let mut decoded = Vec::with_capacity(key.len());
    let mut i = 0;
    while i < key.len() {
        let hex = |b: Option<&u8>| b.and_then(|&b| char::from(b).to_digit(16));
        match (key[i], hex(key.get(i + 1)), hex(key.get(i + 2))) {
            (b'%', Some(high), Some(low)) => {
                decoded.push(u8::try_from(high * 16 + low).expect("two hex digits"));
                i += 3;
            }
            (b'+', ..) => {
                decoded.push(b' ');
                i += 1;
            }
            (byte, ..) => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    decoded == b"api_key"
}

#[test]
fn arbitrary_query_strings() {
    let fixture = Fixture::new();
    let strategy = (query(), any::<bool>(), any::<bool>());
    let mut runner = TestRunner::new(Config::with_cases(CASES));
    runner
        .run(&strategy, |(query, optional, with_key)| {
            let Ok(uri) = Uri::try_from(format!("/books?{query}")) else {
                return Ok(());
            };
            let mut request = Request::get(uri);
            if with_key {
                request = request.header("x-api-key", fixture.token.as_str());
            }
            let reply = fixture.call(optional, request.body(Body::empty()).unwrap());
            let mut credentials: Vec<&[u8]> = vec![query.as_bytes(), fixture.token.as_bytes()];
            credentials.extend(
                query
                    .split('&')
                    .filter_map(|pair| pair.strip_prefix("api_key="))
                    .map(str::as_bytes),
            );
            fixture.check(optional, &reply, &credentials)?;
            if !query.split('&').any(names_api_key) {
                // No credential in the query: the key alone decides.
                let expected = match (with_key, optional) {
                    (true, _) | (false, true) => 200,
                    (false, false) => 401,
                };
                prop_assert_eq!(reply.status, expected, "{}", reply.text());
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn the_key_in_each_source_is_accepted_in_both_modes() {
    let fixture = Fixture::new();
    for place in [
        Place::Bearer,
        Place::TokenScheme,
        Place::XApiKey,
        Place::Custom,
    ] {
        for optional in [false, true] {
            let (name, value) = place.header(fixture.token.as_bytes());
            let request = Request::get("/books")
                .header(name, value)
                .body(Body::empty());
            let reply = fixture.call(optional, request.unwrap());
            assert_eq!(reply.status, 200, "{place:?}: {}", reply.text());
            assert!(reply.bytes.ends_with(b"key"), "{place:?}");
        }
    }
    let uri = format!("/books?api_key={}", fixture.token);
    let reply = fixture.call(false, Request::get(uri).body(Body::empty()).unwrap());
    assert_eq!(reply.status, 200, "{}", reply.text());
}
