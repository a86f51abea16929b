//! The HTTP server: axum's router on hyper, with a deadline for request headers.
//!
//! `axum::serve` sets no timer, so hyper never times out a client that sends its request line
//! or headers slowly (or not at all), and each such client holds a connection and a task for
//! as long as it likes. This accept loop is `axum::serve` with that deadline: the same
//! `ConnectInfo<SocketAddr>` for the handlers and the same graceful shutdown.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower_service::Service;

/// Serves `router` on `listener` until `shutdown` completes, then waits for the requests in
/// flight. Connections whose request headers take longer than `header_read_timeout` to arrive
/// are closed.
pub(super) async fn serve(
    listener: TcpListener,
    router: Router,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    // HTTP/1 only, as `axum::serve` with axum's default features, and served without
    // protocol detection: detecting HTTP/2 waits for the first bytes with no deadline, which
    // would let a silent client stay connected forever.
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let mut make_service = router.into_make_service_with_connect_info::<SocketAddr>();
    let graceful = GracefulShutdown::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    accept_failed(&err).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = match make_service.call(remote).await {
            Ok(service) => service,
            Err(never) => match never {},
        };
        let connection = builder
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A header timeout, a reset or a malformed request: the client's problem.
            if let Err(err) = connection.await {
                tracing::debug!(%remote, error = %err, "connection closed with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Waits after a failed `accept`: not at all when only that connection failed, a second when
/// the process is out of file descriptors or the like, so the loop does not spin.
async fn accept_failed(err: &io::Error) {
    if matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %err, "accept failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
