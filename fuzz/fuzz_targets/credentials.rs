//! Credential extraction on arbitrary header values and URIs, through the layer in required
//! and optional mode: never a panic, never a 5xx, never the presented credential in the
//! response, and in required mode a 200 only with a verified key.
//!
//! The first input byte chooses where the rest goes (bits 0–2), the mode (bit 3) and whether
//! a valid key is also sent in `X-Api-Key` (bit 4).

#![no_main]

use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use http::{HeaderValue, Request, Uri};
use http_body_util::BodyExt;
use keyward::{CredentialSource, Keyward, MemoryStore, NewKey, Principal, ScopeCatalog};
use libfuzzer_sys::fuzz_target;
use tokio::runtime::Runtime;
use tower::ServiceExt;

struct Fixture {
    runtime: Runtime,
    required: Router,
    optional: Router,
    token: String,
    /// Every fixed text the responses are made of; a credential found in it is no evidence of
    /// a leak.
    vocabulary: Vec<u8>,
}

struct Reply {
    status: u16,
    /// Header names and values, then the body.
    bytes: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let keys = Keyward::builder(MemoryStore::new())
            .prefix("books")
            .catalog(
                ScopeCatalog::builder()
                    .scope("books:read", "Read the book collection")
                    .build()
                    .expect("valid catalog"),
            )
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
            .block_on(keys.create(NewKey::service("fuzz").scopes(["books:read"])))
            .expect("key created");
        let token = issued.token.expose_secret().to_owned();
        let app = Router::new().fallback(whoami);
        let mut fixture = Fixture {
            runtime,
            required: app.clone().layer(keys.layer()),
            optional: app.layer(keys.layer().optional()),
            token,
            vocabulary: Vec::new(),
        };
        let unknown = keys.token_format().generate();
        let unknown = format!("Bearer {}", unknown.expose_secret());
        let valid = format!("Bearer {}", fixture.token);
        let baselines = [
            ("/", None),
            ("/", Some("Bearer x")),
            ("/", Some(unknown.as_str())),
            ("/?api_key=x", Some(valid.as_str())),
            ("/", Some(valid.as_str())),
        ];
        let mut vocabulary = Vec::new();
        for (uri, authorization) in baselines {
            for optional in [false, true] {
                let mut request = Request::get(uri);
                if let Some(value) = authorization {
                    request = request.header("authorization", value);
                }
                let request = request.body(Body::empty()).expect("valid request");
                let reply = fixture.call(optional, request);
                vocabulary.extend_from_slice(&reply.bytes);
                vocabulary.push(b'\n');
            }
        }
        fixture.vocabulary = vocabulary;
        fixture
    })
}

async fn whoami(principal: Option<Principal>) -> &'static str {
    if principal.is_some() {
        "key"
    } else {
        "anonymous"
    }
}

impl Fixture {
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
            let body = response
                .into_body()
                .collect()
                .await
                .expect("a body that does not fail")
                .to_bytes();
            bytes.extend_from_slice(&body);
            Reply { status, bytes }
        })
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, payload)) = data.split_first() else {
        return;
    };
    let fixture = fixture();
    let optional = control & 0b1000 != 0;
    let with_key = control & 0b1_0000 != 0;

    let mut request = Request::builder();
    let mut credentials: Vec<&[u8]> = vec![payload];
    let uri = match control & 0b111 {
        0..=4 => {
            let (name, value) = match control & 0b111 {
                0 => ("authorization", [b"Bearer ".as_slice(), payload].concat()),
                1 => ("authorization", [b"Token ".as_slice(), payload].concat()),
                2 => ("authorization", payload.to_vec()),
                3 => ("x-api-key", payload.to_vec()),
                _ => ("x-legacy-token", payload.to_vec()),
            };
            let Ok(value) = HeaderValue::from_bytes(&value) else {
                return;
            };
            request = request.header(name, value);
            Uri::from_static("/books")
        }
        choice => {
            let bytes = match choice {
                5 => payload.to_vec(),
                6 => [b"/books?".as_slice(), payload].concat(),
                _ => [b"/books?api_key=".as_slice(), payload].concat(),
            };
            let Ok(uri) = Uri::try_from(bytes) else {
                return;
            };
            uri
        }
    };
    let query = uri.query().map(str::to_owned).unwrap_or_default();
    for pair in query.split('&') {
        if let Some(value) = pair.strip_prefix("api_key=") {
            credentials.push(value.as_bytes());
        }
    }
    if with_key {
        request = request.header("x-api-key", fixture.token.as_str());
        credentials.push(fixture.token.as_bytes());
    }
    let Ok(request) = request.uri(uri).body(Body::empty()) else {
        return;
    };

    let reply = fixture.call(optional, request);
    assert!(
        reply.status < 500,
        "status {}: {}",
        reply.status,
        String::from_utf8_lossy(&reply.bytes)
    );
    if !optional && reply.status == 200 {
        assert!(
            reply.bytes.ends_with(b"key"),
            "required mode let a request through without a key"
        );
    }
    for credential in credentials {
        let credential = credential.trim_ascii();
        if credential.len() < 8 || contains(&fixture.vocabulary, credential) {
            continue;
        }
        assert!(
            !contains(&reply.bytes, credential),
            "the response repeats the credential {:?}: {}",
            String::from_utf8_lossy(credential),
            String::from_utf8_lossy(&reply.bytes)
        );
    }
});

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.len() <= haystack.len() && haystack.windows(needle.len()).any(|w| w == needle)
}
