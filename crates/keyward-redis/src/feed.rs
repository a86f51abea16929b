//! The change feed on Redis pub/sub.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use keyward::core::ChangeStream;
use keyward::{ChangeFeed, KeyChange, KeyId};
use redis::aio::ConnectionManager;
use tokio::sync::mpsc;

use crate::Redis;
use crate::health::Health;

/// How long a publish may take in the background.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(1);

/// The longest wait between two attempts to resubscribe.
const MAX_BACKOFF: Duration = Duration::from_millis(500);

/// A [`ChangeFeed`] on Redis pub/sub: each change made through keyward is published on the
/// channel `<namespace>:changes` (the key id, or `owner:<id>`), and every instance subscribed
/// drops the key (or the owner's keys) from its cache at once.
///
/// Publishing happens in the background and never fails the management call; while Redis is
/// down it is skipped (one warning per outage). The subscription reconnects by itself (at
/// least twice a second while Redis is away) and then yields [`KeyChange::Resync`], so the
/// cache drops what it may have missed.
///
/// # Example
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let redis = keyward_redis::Redis::connect("redis://127.0.0.1:6379", "books").await?;
/// let keys = keyward::Keyward::builder(keyward::MemoryStore::new())
///     .prefix("books")
///     .change_feed(redis.change_feed())
///     .build()?;
/// # let _ = keys;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisChangeFeed {
    shared: Arc<Shared>,
}

struct Shared {
    client: redis::Client,
    connection: ConnectionManager,
    channel: String,
    health: Health,
}

impl std::fmt::Debug for RedisChangeFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisChangeFeed")
            .field("channel", &self.shared.channel)
            .field("redis_down", &self.shared.health.is_down())
            .finish_non_exhaustive()
    }
}

impl RedisChangeFeed {
    pub(crate) fn new(redis: &Redis) -> Self {
        Self {
            shared: Arc::new(Shared {
                client: redis.client.clone(),
                connection: redis.connection.clone(),
                channel: redis.key("changes"),
                health: Health::new("change feed"),
            }),
        }
    }

    /// The channel the changes are published on.
    #[must_use]
    pub fn channel(&self) -> &str {
        &self.shared.channel
    }
}

impl ChangeFeed for RedisChangeFeed {
    fn publish(&self, change: &KeyChange) {
        let payload = match change {
            KeyChange::Changed(id) => id.to_string(),
            KeyChange::Owner(owner) => format!("owner:{owner}"),
            _ => return,
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                "keyward-redis: a change was made outside a Tokio runtime; not published"
            );
            return;
        };
        let shared = Arc::clone(&self.shared);
        runtime.spawn(async move {
            let mut connection = shared.connection.clone();
            let published = tokio::time::timeout(
                PUBLISH_TIMEOUT,
                redis::cmd("PUBLISH")
                    .arg(&shared.channel)
                    .arg(&payload)
                    .exec_async(&mut connection),
            )
            .await;
            match published {
                Ok(Ok(())) => shared.health.succeeded(),
                Ok(Err(err)) => shared.health.failed(&err),
                Err(_) => shared.health.failed(&"no answer within 1 s"),
            }
        });
    }

    fn subscribe(&self) -> ChangeStream {
        let (sender, receiver) = mpsc::channel(1024);
        tokio::spawn(subscription(Arc::clone(&self.shared), sender));
        Box::pin(futures_util::stream::unfold(
            receiver,
            |mut receiver| async move { receiver.recv().await.map(|change| (change, receiver)) },
        ))
    }
}

/// Keeps a subscription up for as long as the stream is read, and turns its messages into
/// changes: `Resync` first after every gap.
async fn subscription(shared: Arc<Shared>, sender: mpsc::Sender<KeyChange>) {
    let health = Health::new("change feed subscription");
    let mut backoff = Duration::from_millis(50);
    let mut gap = false;
    loop {
        let subscribed = async {
            let mut pubsub = shared.client.get_async_pubsub().await?;
            pubsub.subscribe(&shared.channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let pubsub = tokio::select! {
            subscribed = tokio::time::timeout(Duration::from_secs(2), subscribed) => subscribed,
            () = sender.closed() => return,
        };
        match pubsub {
            Ok(Ok(pubsub)) => {
                health.succeeded();
                backoff = Duration::from_millis(50);
                if gap && sender.send(KeyChange::Resync).await.is_err() {
                    return;
                }
                let mut messages = pubsub.into_on_message();
                loop {
                    let message = tokio::select! {
                        message = messages.next() => message,
                        () = sender.closed() => return,
                    };
                    let Some(message) = message else { break };
                    let Some(change) = parse(message.get_payload_bytes()) else {
                        tracing::debug!("keyward-redis: ignoring a message the feed did not write");
                        continue;
                    };
                    if sender.send(change).await.is_err() {
                        return;
                    }
                }
                health.failed(&"the subscription was closed");
            }
            Ok(Err(err)) => health.failed(&err),
            Err(_) => health.failed(&"no answer within 2 s"),
        }
        gap = true;
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = sender.closed() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn parse(payload: &[u8]) -> Option<KeyChange> {
    let payload = std::str::from_utf8(payload).ok()?;
    match payload.strip_prefix("owner:") {
        Some(owner) => Some(KeyChange::Owner(owner.to_owned())),
        None => payload.parse::<KeyId>().ok().map(KeyChange::Changed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_it_publishes() {
        let id = KeyId::new();
        assert_eq!(
            parse(id.to_string().as_bytes()),
            Some(KeyChange::Changed(id))
        );
        assert_eq!(
            parse(b"owner:alice"),
            Some(KeyChange::Owner("alice".into()))
        );
        assert_eq!(parse(b"nonsense"), None);
        assert_eq!(parse(&[0xff]), None);
    }
}
