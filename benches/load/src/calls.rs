//! `loadbench calls <kind>`: the server's router called in-process, without sockets, so that
//! `valgrind --tool=callgrind` can count the instructions one request costs behind each kind of
//! authentication. Instruction counts repeat exactly for the same binary and input, unlike
//! timings on a shared machine; the difference between two kinds is the middleware's own work.
//!
//! Each request is what hyper hands the router for `wrk`'s request: `GET /` with `Host` and the
//! token in `Authorization: Bearer`, and the peer address as axum's `ConnectInfo`. The token is
//! the server's valid key (cache hits) or, with `--forged`, a different well-formed token no
//! key has on every request, from a client whose failure budget is spent.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};

use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use http::{HeaderValue, Request, StatusCode};
use tower::Service;

use crate::BoxError;
use crate::forged::Forger;
use crate::serve::{self, Finish};

/// Forged tokens sent before the measured ones with `--forged`: more than the default failure
/// budget, so that the measured ones are the flood of a client whose budget is spent.
const FORGED_WARM_UP: usize = 100;

/// Runs `loadbench calls <kind> [--requests N] [--forged] [serve options]`.
pub(crate) fn main(args: &[String]) -> Result<(), BoxError> {
    let mut requests = 100_000_usize;
    let mut forged = false;
    let mut rest = Vec::with_capacity(args.len());
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--requests" => requests = args.next().ok_or("--requests needs a value")?.parse()?,
            "--forged" => forged = true,
            _ => rest.push(arg.clone()),
        }
    }
    let options = serve::parse(&rest)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (app, tokens, finish) = runtime.block_on(serve::app(&options))?;
    // The valid key, again and again (cache hits), or a different forged token every time.
    let tokens = if forged {
        let mut forger = Forger::new("bench")?;
        (0..FORGED_WARM_UP + requests)
            .map(|_| forger.token())
            .collect::<Result<Vec<_>, _>>()?
    } else {
        vec![tokens.first().cloned().unwrap_or_default(); 1 + requests]
    };
    let (warm_up, measured) = tokens.split_at(if forged { FORGED_WARM_UP } else { 1 });
    // As `axum::serve` does (`into_make_service`): the routes made once, with the state.
    let mut service = app.with_state::<()>(()).into_service::<Body>();
    // Fills the cache, or spends the failure budget, so that `drive` measures what follows.
    runtime.block_on(async {
        for token in warm_up {
            let warm = service.call(request(token, 1)).await;
            warm.map(drop).map_err(|never| match never {})?;
        }
        Ok::<_, BoxError>(())
    })?;
    let statuses = runtime.block_on(async { drive(&mut service, measured) });
    println!("requests {requests} statuses {statuses:?}");
    if let Finish::Keyward { keyward, .. } = finish {
        runtime.block_on(keyward.shutdown());
    }
    Ok(())
}

/// `GET /` as hyper hands it over, from the `port`-th client: header values are slices of
/// one shared read buffer, so cloning one counts a reference instead of copying.
fn request(token: &str, port: u16) -> Request<Body> {
    const HOST: &str = "127.0.0.1:8080";
    let mut buffer = BytesMut::with_capacity(256);
    buffer.extend_from_slice(HOST.as_bytes());
    buffer.extend_from_slice(b"Bearer ");
    buffer.extend_from_slice(token.as_bytes());
    let host = buffer.split_to(HOST.len()).freeze();
    let authorization = buffer.freeze();
    let mut request = Request::get("/")
        .header(http::header::HOST, value(host))
        .header(http::header::AUTHORIZATION, value(authorization))
        .body(Body::empty())
        .expect("a valid request");
    let peer = SocketAddr::from((Ipv4Addr::LOCALHOST, 40_000 + port));
    request.extensions_mut().insert(ConnectInfo(peer));
    request
}

fn value(bytes: Bytes) -> HeaderValue {
    HeaderValue::from_maybe_shared(bytes).expect("a valid header value")
}

/// Calls `service` once with each token; returns how many answers had each status.
/// Callgrind's `--toggle-collect` names this function to count only these calls.
#[inline(never)]
fn drive<S>(service: &mut S, tokens: &[String]) -> Vec<(StatusCode, usize)>
where
    S: Service<Request<Body>, Response = axum::response::Response, Error = Infallible>,
{
    let mut statuses: Vec<(StatusCode, usize)> = Vec::new();
    for token in tokens {
        let response = service
            .call(request(token, 0))
            .now_or_never()
            .expect("an in-process answer without waiting")
            .unwrap_or_else(|never| match never {});
        let status = response.status();
        drop(response);
        match statuses.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += 1,
            None => statuses.push((status, 1)),
        }
    }
    statuses
}
