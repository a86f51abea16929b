//! A TCP proxy that simulates network and database faults: put it between a store and its
//! database, then stall or cut the traffic while a test watches what the application does.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use keyward_test_support::{FaultMode, FaultProxy};
//!
//! let proxy = FaultProxy::in_front_of("postgres://postgres@127.0.0.1:5432/postgres").await?;
//! let url = proxy.rewrite_url("postgres://postgres@127.0.0.1:5432/postgres");
//! assert_eq!(url, format!("postgres://postgres@{}/postgres", proxy.addr()));
//!
//! proxy.cut(); // like a database restart: every connection closes
//! assert_eq!(proxy.mode(), FaultMode::Cut);
//! proxy.restore();
//! assert_eq!(proxy.mode(), FaultMode::Pass);
//! # Ok(())
//! # }
//! ```

use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// What a [`FaultProxy`] does with the traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultMode {
    /// Bytes flow both ways, as without the proxy.
    Pass,
    /// A network black hole: open connections stop forwarding bytes in both directions; new
    /// connections are accepted but not connected upstream. Nothing is closed, so clients wait
    /// until their own timeouts. Back in [`Pass`](Self::Pass), everything resumes where it was.
    Stall,
    /// A database restart, held: every open connection is reset at once and new ones are reset
    /// as soon as they are accepted.
    Cut,
}

/// A TCP proxy on `127.0.0.1:0` that forwards to one upstream address and can
/// [`stall`](Self::stall) or [`cut`](Self::cut) the traffic on demand.
///
/// Dropping it stops its tasks and closes every connection it holds.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    upstream: Vec<SocketAddr>,
    mode: watch::Sender<FaultMode>,
    counters: Arc<Counters>,
    accept: JoinHandle<()>,
}

#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicUsize,
    open: AtomicUsize,
}

impl FaultProxy {
    /// A proxy to `upstream` (tried in order when there are several), in
    /// [`Pass`](FaultMode::Pass) mode.
    ///
    /// # Errors
    ///
    /// When no local port can be bound.
    pub async fn start(upstream: impl Into<Vec<SocketAddr>>) -> io::Result<Self> {
        let upstream = upstream.into();
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (mode, watching) = watch::channel(FaultMode::Pass);
        let counters = Arc::new(Counters::default());
        let accept = tokio::spawn(accept_loop(
            listener,
            upstream.clone(),
            watching,
            Arc::clone(&counters),
        ));
        Ok(Self {
            addr,
            upstream,
            mode,
            counters,
            accept,
        })
    }

    /// A proxy to the server of a database URL (`postgres://…`, `mysql://…`); a URL without a
    /// port means the scheme's default one.
    ///
    /// # Errors
    ///
    /// When the URL has no host, the host does not resolve, or no local port can be bound.
    pub async fn in_front_of(url: &str) -> io::Result<Self> {
        let invalid = || io::Error::new(io::ErrorKind::InvalidInput, "a URL with a host");
        let span = host_port_span(url).ok_or_else(invalid)?;
        let host_port = &url[span];
        if host_port.is_empty() {
            return Err(invalid());
        }
        let has_port = host_port
            .rsplit_once(':')
            .is_some_and(|(_, port)| !port.contains(']'));
        let upstream: Vec<SocketAddr> = if has_port {
            tokio::net::lookup_host(host_port).await?.collect()
        } else {
            let port = default_port(url).ok_or_else(invalid)?;
            let host = host_port.trim_start_matches('[').trim_end_matches(']');
            tokio::net::lookup_host((host, port)).await?.collect()
        };
        Self::start(upstream).await
    }

    /// The address clients connect to.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The addresses the proxy forwards to.
    #[must_use]
    pub fn upstream(&self) -> &[SocketAddr] {
        &self.upstream
    }

    /// `url` with its `host:port` replaced by the proxy's; scheme, credentials, path and
    /// query are kept.
    ///
    /// # Panics
    ///
    /// When `url` has no `scheme://`: a mistake in the test.
    #[must_use]
    pub fn rewrite_url(&self, url: &str) -> String {
        let span = host_port_span(url).expect("a URL of the form scheme://host…");
        format!("{}{}{}", &url[..span.start], self.addr, &url[span.end..])
    }

    /// Forwards normally again.
    pub fn pass(&self) {
        self.mode.send_replace(FaultMode::Pass);
    }

    /// Black-holes the traffic; see [`FaultMode::Stall`].
    pub fn stall(&self) {
        self.mode.send_replace(FaultMode::Stall);
    }

    /// Resets every connection and every new one; see [`FaultMode::Cut`].
    pub fn cut(&self) {
        self.mode.send_replace(FaultMode::Cut);
    }

    /// Ends a fault: the same as [`pass`](Self::pass), named for reading tests.
    pub fn restore(&self) {
        self.pass();
    }

    /// The current mode.
    #[must_use]
    pub fn mode(&self) -> FaultMode {
        *self.mode.borrow()
    }

    /// How many client connections the proxy has accepted so far, in any mode.
    #[must_use]
    pub fn accepted(&self) -> usize {
        self.counters.accepted.load(Ordering::Relaxed)
    }

    /// How many client connections the proxy currently holds open.
    #[must_use]
    pub fn open(&self) -> usize {
        self.counters.open.load(Ordering::Relaxed)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // The connection tasks live in the accept task's `JoinSet`, which aborts them when the
        // accept task is dropped.
        self.accept.abort();
    }
}

/// The byte range of `host[:port]` in `url`: after `scheme://` and any `user:password@`,
/// before the path, query or fragment.
fn host_port_span(url: &str) -> Option<Range<usize>> {
    let start = url.find("://")? + 3;
    let rest = &url[start..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let host_start = rest[..end].rfind('@').map_or(0, |at| at + 1);
    Some(start + host_start..start + end)
}

fn default_port(url: &str) -> Option<u16> {
    match url.split_once("://")?.0 {
        "postgres" | "postgresql" => Some(5432),
        "mysql" | "mariadb" => Some(3306),
        _ => None,
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: Vec<SocketAddr>,
    mode: watch::Receiver<FaultMode>,
    counters: Arc<Counters>,
) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        counters.accepted.fetch_add(1, Ordering::Relaxed);
        while connections.try_join_next().is_some() {}
        connections.spawn(serve(
            client,
            upstream.clone(),
            mode.clone(),
            Arc::clone(&counters),
        ));
    }
}

/// Counts a connection as open for as long as it lives.
struct OpenGuard(Arc<Counters>);

impl OpenGuard {
    fn new(counters: Arc<Counters>) -> Self {
        counters.open.fetch_add(1, Ordering::Relaxed);
        Self(counters)
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn serve(
    mut client: TcpStream,
    upstream: Vec<SocketAddr>,
    mut mode: watch::Receiver<FaultMode>,
    counters: Arc<Counters>,
) {
    let _open = OpenGuard::new(counters);
    if !flowing(&mut mode).await {
        reset(&client);
        return;
    }
    let connected = tokio::select! {
        connected = TcpStream::connect(&upstream[..]) => connected,
        _ = mode.wait_for(|mode| *mode == FaultMode::Cut) => {
            reset(&client);
            return;
        }
    };
    let Ok(mut server) = connected else {
        reset(&client);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let cut = {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        let mut watching = mode.clone();
        tokio::select! {
            _ = async {
                tokio::join!(
                    pipe(client_read, server_write, mode.clone()),
                    pipe(server_read, client_write, mode.clone()),
                )
            } => false,
            _ = watching.wait_for(|mode| *mode == FaultMode::Cut) => true,
        }
    };
    if cut {
        reset(&client);
        reset(&server);
    }
}

/// Waits while the proxy stalls; `false` when it cuts or is gone.
async fn flowing(mode: &mut watch::Receiver<FaultMode>) -> bool {
    matches!(
        mode.wait_for(|mode| *mode != FaultMode::Stall)
            .await
            .map(|mode| *mode),
        Ok(FaultMode::Pass)
    )
}

/// Copies `from` to `to` while the proxy passes, pausing while it stalls; half-closes `to`
/// when `from` ends.
async fn pipe(mut from: ReadHalf<'_>, mut to: WriteHalf<'_>, mut mode: watch::Receiver<FaultMode>) {
    let mut buf = vec![0_u8; 16 * 1024];
    loop {
        if !flowing(&mut mode).await {
            return;
        }
        let read = tokio::select! {
            read = from.read(&mut buf) => read,
            // Stop reading at once, so that nothing read during a stall gets through.
            _ = mode.wait_for(|mode| *mode != FaultMode::Pass) => continue,
        };
        let n = match read {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return;
            }
            Ok(n) => n,
        };
        if !flowing(&mut mode).await || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Closes with a reset rather than a graceful FIN, as a dead peer or a refused port would.
fn reset(stream: &TcpStream) {
    let _ = stream.set_zero_linger();
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::time::{Instant, timeout};

    use super::*;

    /// Long enough for anything that should happen on a loaded machine.
    const DEADLINE: Duration = Duration::from_secs(5);
    /// How long "nothing arrives" is watched for.
    const QUIET: Duration = Duration::from_millis(300);

    /// An upstream that echoes every connection, counting them.
    async fn echo_server() -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let accepted = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    let (mut read, mut write) = stream.split();
                    let _ = tokio::io::copy(&mut read, &mut write).await;
                });
            }
        });
        (addr, accepted)
    }

    async fn proxy() -> (FaultProxy, Arc<AtomicUsize>) {
        let (upstream, accepted) = echo_server().await;
        let proxy = FaultProxy::start(vec![upstream]).await.expect("proxy");
        (proxy, accepted)
    }

    async fn round_trip(stream: &mut TcpStream, message: &[u8]) {
        stream.write_all(message).await.expect("write");
        let mut echoed = vec![0; message.len()];
        timeout(DEADLINE, stream.read_exact(&mut echoed))
            .await
            .expect("the echo arrives in time")
            .expect("read");
        assert_eq!(echoed, message);
    }

    /// Whether the stream is closed (EOF or reset) within the deadline.
    async fn closes(stream: &mut TcpStream) -> bool {
        let mut buf = [0; 64];
        match timeout(DEADLINE, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => true,
            Ok(Ok(_)) | Err(_) => false,
        }
    }

    async fn eventually(what: &str, condition: impl Fn() -> bool) {
        let deadline = Instant::now() + DEADLINE;
        while !condition() {
            assert!(Instant::now() < deadline, "{what} within {DEADLINE:?}");
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn passes_bytes_both_ways() {
        let (proxy, upstream_accepted) = proxy().await;
        let mut stream = TcpStream::connect(proxy.addr()).await.expect("connect");
        round_trip(&mut stream, b"hello").await;
        round_trip(&mut stream, &[7; 100_000]).await;
        assert_eq!(proxy.accepted(), 1);
        assert_eq!(proxy.open(), 1);
        assert_eq!(upstream_accepted.load(Ordering::Relaxed), 1);
        assert_eq!(proxy.mode(), FaultMode::Pass);

        // A client that ends its side still gets the rest, then the end.
        stream.write_all(b"last").await.expect("write");
        stream.shutdown().await.expect("half-close");
        let mut rest = Vec::new();
        timeout(DEADLINE, stream.read_to_end(&mut rest))
            .await
            .expect("the end arrives")
            .expect("read");
        assert_eq!(rest, b"last");
        eventually("the connection is released", || proxy.open() == 0).await;
    }

    #[tokio::test]
    async fn stall_holds_open_and_new_connections_until_restore() {
        let (proxy, upstream_accepted) = proxy().await;
        let mut open = TcpStream::connect(proxy.addr()).await.expect("connect");
        round_trip(&mut open, b"before").await;

        proxy.stall();
        assert_eq!(proxy.mode(), FaultMode::Stall);
        open.write_all(b"during")
            .await
            .expect("the write is buffered");
        let mut buf = [0; 6];
        assert!(
            timeout(QUIET, open.read_exact(&mut buf)).await.is_err(),
            "nothing comes back during a stall"
        );

        // A new connection is accepted, but nothing reaches the upstream.
        let mut late = timeout(DEADLINE, TcpStream::connect(proxy.addr()))
            .await
            .expect("accepted during a stall")
            .expect("connect");
        late.write_all(b"late")
            .await
            .expect("the write is buffered");
        let mut late_buf = [0; 4];
        assert!(
            timeout(QUIET, late.read_exact(&mut late_buf))
                .await
                .is_err()
        );
        eventually("the proxy accepts it", || proxy.accepted() == 2).await;
        assert_eq!(upstream_accepted.load(Ordering::Relaxed), 1);

        proxy.restore();
        timeout(DEADLINE, open.read_exact(&mut buf))
            .await
            .expect("the held bytes arrive after restore")
            .expect("read");
        assert_eq!(&buf, b"during");
        timeout(DEADLINE, late.read_exact(&mut late_buf))
            .await
            .expect("the late connection goes through after restore")
            .expect("read");
        assert_eq!(&late_buf, b"late");
        assert_eq!(upstream_accepted.load(Ordering::Relaxed), 2);
        round_trip(&mut open, b"after").await;
    }

    #[tokio::test]
    async fn cut_closes_everything_until_restore() {
        let (proxy, upstream_accepted) = proxy().await;
        let mut first = TcpStream::connect(proxy.addr()).await.expect("connect");
        let mut second = TcpStream::connect(proxy.addr()).await.expect("connect");
        round_trip(&mut first, b"one").await;
        round_trip(&mut second, b"two").await;

        proxy.cut();
        assert!(closes(&mut first).await, "open connections are closed");
        assert!(closes(&mut second).await, "open connections are closed");
        eventually("no connection is left open", || proxy.open() == 0).await;

        // New connections are closed at once, without reaching the upstream.
        for _ in 0..3 {
            let mut refused = TcpStream::connect(proxy.addr()).await.expect("connect");
            let _ = refused.write_all(b"anyone?").await;
            assert!(closes(&mut refused).await, "new connections are closed");
        }
        assert_eq!(upstream_accepted.load(Ordering::Relaxed), 2);

        proxy.restore();
        let mut after = TcpStream::connect(proxy.addr()).await.expect("connect");
        round_trip(&mut after, b"back").await;
        assert_eq!(upstream_accepted.load(Ordering::Relaxed), 3);
        assert_eq!(proxy.accepted(), 6);
    }

    #[tokio::test]
    async fn stall_then_cut_closes_held_connections() {
        let (proxy, _) = proxy().await;
        let mut held = TcpStream::connect(proxy.addr()).await.expect("connect");
        round_trip(&mut held, b"x").await;
        proxy.stall();
        let mut waiting = TcpStream::connect(proxy.addr()).await.expect("connect");
        eventually("the proxy accepts it", || proxy.accepted() == 2).await;
        proxy.cut();
        assert!(closes(&mut held).await);
        assert!(closes(&mut waiting).await);
    }

    #[tokio::test]
    async fn drop_stops_listening_and_closes_connections() {
        let (proxy, _) = proxy().await;
        let addr = proxy.addr();
        let mut open = TcpStream::connect(addr).await.expect("connect");
        round_trip(&mut open, b"x").await;
        drop(proxy);
        assert!(closes(&mut open).await, "connections close with the proxy");
        let deadline = Instant::now() + DEADLINE;
        while TcpStream::connect(addr).await.is_ok() {
            assert!(Instant::now() < deadline, "the port is released");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn resolves_database_urls_and_rewrites_them() {
        let (upstream, _) = echo_server().await;
        let url = format!("postgres://user:p%40ss@{upstream}/db?sslmode=disable");
        let proxy = FaultProxy::in_front_of(&url).await.expect("proxy");
        assert_eq!(proxy.upstream(), [upstream]);
        assert_eq!(
            proxy.rewrite_url(&url),
            format!("postgres://user:p%40ss@{}/db?sslmode=disable", proxy.addr())
        );
        let mut stream = TcpStream::connect(proxy.addr()).await.expect("connect");
        round_trip(&mut stream, b"ping").await;

        let bare = FaultProxy::in_front_of("mysql://root@127.0.0.1/test")
            .await
            .expect("proxy");
        assert_eq!(bare.upstream(), [SocketAddr::from(([127, 0, 0, 1], 3306))]);
        assert_eq!(
            bare.rewrite_url("mysql://root@127.0.0.1/test"),
            format!("mysql://root@{}/test", bare.addr())
        );
        assert_eq!(
            bare.rewrite_url("mysql://127.0.0.1:3306"),
            format!("mysql://{}", bare.addr())
        );
        assert!(FaultProxy::in_front_of("no-scheme").await.is_err());
        assert!(FaultProxy::in_front_of("redis:///0").await.is_err());
    }
}
