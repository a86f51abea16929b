//! The PostgreSQL change feed: `NOTIFY` on every change, `LISTEN` on a dedicated connection.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream;
use keyward_core::{ChangeStream, KeyChange, KeyId};
use sea_orm::sqlx::ConnectOptions as _;
use sea_orm::sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio::sync::{broadcast, mpsc};

use crate::{CHANGE_CHANNEL, OWNER_PREFIX};

const FIRST_RETRY: Duration = Duration::from_millis(100);
/// Retries stay frequent, so a database that returns is listened to again within about a
/// second (the change log covers what was sent in between).
const LAST_RETRY: Duration = Duration::from_secs(1);
/// How long opening the listening connection may take: a database that does not answer is
/// tried again soon rather than waited for.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Shared by the clones of one store: how to open listening connections, and the in-process
/// channel that reports this instance's own changes at once.
pub(crate) struct PgFeed {
    options: PgConnectOptions,
    application_name: String,
    local: broadcast::Sender<KeyChange>,
}

impl fmt::Debug for PgFeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgFeed")
            .field("application_name", &self.application_name)
            .finish_non_exhaustive()
    }
}

impl PgFeed {
    /// A feed that listens with the pool's connection settings under its own
    /// `application_name`, so operators (and tests) can find its connection in
    /// `pg_stat_activity`.
    pub(crate) fn new(pool_options: &PgConnectOptions) -> Arc<Self> {
        let application_name = format!("keyward-feed-{}", uuid::Uuid::now_v7().simple());
        let options = pool_options
            .clone()
            .application_name(&application_name)
            // Statement logging on a connection that only waits would log nothing useful.
            .disable_statement_logging();
        let (local, _) = broadcast::channel(1024);
        Arc::new(Self {
            options,
            application_name,
            local,
        })
    }

    pub(crate) fn application_name(&self) -> &str {
        &self.application_name
    }

    /// Reports a change made through this store instance to its own subscribers, without
    /// waiting for the database to echo it.
    pub(crate) fn announce(&self, id: KeyId) {
        // No subscribers is fine: nobody caches.
        let _ = self.local.send(KeyChange::Changed(id));
    }

    /// Reports that what `owner` holds changed to this instance's own subscribers.
    pub(crate) fn announce_owner(&self, owner: &str) {
        let _ = self.local.send(KeyChange::Owner(owner.to_owned()));
    }

    /// A new stream: this instance's changes, plus every notification from the database.
    ///
    /// Each stream owns one listening connection, opened by a background task that ends when
    /// the stream is dropped. The stream yields [`KeyChange::Resync`] whenever that connection
    /// is (re)established, because notifications sent while it was not listening are lost.
    pub(crate) fn subscribe(&self) -> Option<ChangeStream> {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("keyward change feed needs a Tokio runtime; caches fall back to TTLs");
            return None;
        };
        let (sender, receiver) = mpsc::channel(256);
        runtime.spawn(listen(self.options.clone(), sender));
        let remote = stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|change| (change, receiver))
        });
        let local = stream::unfold(self.local.subscribe(), |mut receiver| async move {
            match receiver.recv().await {
                Ok(change) => Some((change, receiver)),
                Err(broadcast::error::RecvError::Lagged(_)) => Some((KeyChange::Resync, receiver)),
                Err(broadcast::error::RecvError::Closed) => None,
            }
        });
        // The remote half never ends on its own; the local half ends with the store.
        Some(stream::select(remote, local).boxed())
    }
}

/// Opens a listening connection of its own (never one of the store's pooled connections,
/// which would be lost to queries for as long as the feed runs).
async fn connect(options: &PgConnectOptions) -> Result<PgListener, sea_orm::sqlx::Error> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .acquire_timeout(CONNECT_TIMEOUT)
        .connect_lazy_with(options.clone());
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.listen(CHANGE_CHANNEL).await?;
    Ok(listener)
}

/// Feeds `sender` until its stream is dropped, reconnecting with backoff after failures.
async fn listen(options: PgConnectOptions, sender: mpsc::Sender<KeyChange>) {
    let mut retry = FIRST_RETRY;
    loop {
        let connected = tokio::select! {
            () = sender.closed() => return,
            connected = tokio::time::timeout(CONNECT_TIMEOUT, connect(&options)) => {
                connected.unwrap_or(Err(sea_orm::sqlx::Error::PoolTimedOut))
            }
        };
        match connected {
            Ok(mut listener) => {
                retry = FIRST_RETRY;
                if sender.send(KeyChange::Resync).await.is_err() {
                    return;
                }
                if let Err(err) = receive(&mut listener, &sender).await {
                    tracing::warn!(error = %err, "keyward change feed lost its connection");
                } else {
                    return;
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, retry_in = ?retry, "keyward change feed cannot listen");
            }
        }
        tokio::select! {
            () = sender.closed() => return,
            () = tokio::time::sleep(retry) => {}
        }
        retry = (retry * 2).min(LAST_RETRY);
    }
}

/// Forwards notifications until the stream is dropped (`Ok`) or the connection fails (`Err`).
async fn receive(
    listener: &mut PgListener,
    sender: &mpsc::Sender<KeyChange>,
) -> Result<(), sea_orm::sqlx::Error> {
    loop {
        let received = tokio::select! {
            () = sender.closed() => return Ok(()),
            received = listener.try_recv() => received?,
        };
        let change = match received {
            Some(notification) => match parse(notification.payload()) {
                Some(change) => change,
                None => {
                    tracing::warn!(
                        payload = notification.payload(),
                        "ignoring a malformed keyward change notification"
                    );
                    continue;
                }
            },
            // The connection dropped and the listener has already re-subscribed on a new one:
            // whatever was sent in between is lost.
            None => KeyChange::Resync,
        };
        if sender.send(change).await.is_err() {
            return Ok(());
        }
    }
}

/// A notification's payload: a key id, or `owner:` and a user id.
fn parse(payload: &str) -> Option<KeyChange> {
    match payload.strip_prefix(OWNER_PREFIX) {
        Some(owner) => Some(KeyChange::Owner(owner.to_owned())),
        None => payload.parse::<KeyId>().ok().map(KeyChange::Changed),
    }
}
