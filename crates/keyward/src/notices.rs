//! Expiry notices: a periodic sweep records `expiring_soon` once a key is inside the notice
//! window and `expired` once its expiry passed, once per key and expiry, with any number of
//! instances sweeping (the store claims each notice with its event).

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use chrono::TimeDelta;
use keyward_core::{ChangeKind, ChangeRecord, EventContext};
use tokio::task::JoinHandle;

use crate::config::KeywardBuilder;
use crate::handle::{Inner, Keyward};
use crate::manage::ManageError;

/// How long before a key's expiry `expiring_soon` is recorded unless configured otherwise.
pub const DEFAULT_EXPIRY_NOTICE_WINDOW: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// How often each instance sweeps.
pub const EXPIRY_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// The first sweep, a little after the start so that a starting application is not slowed.
const FIRST_SWEEP: Duration = Duration::from_secs(10);

/// The sweep's settings and task.
#[derive(Debug, Default)]
pub(crate) struct ExpirySweep {
    window: Option<Duration>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl ExpirySweep {
    pub(crate) fn new(window: Option<Duration>) -> Self {
        Self {
            window,
            task: Mutex::default(),
        }
    }

    /// Starts the periodic sweep, when notices are on.
    pub(crate) fn start(inner: &Arc<Inner>, runtime: &tokio::runtime::Handle) {
        if inner.expiry_sweep.window.is_none() {
            return;
        }
        let task = runtime.spawn(sweep_loop(Arc::downgrade(inner)));
        *inner
            .expiry_sweep
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(task);
    }
}

impl Drop for ExpirySweep {
    fn drop(&mut self) {
        if let Some(task) = self
            .task
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }
}

async fn sweep_loop(inner: Weak<Inner>) {
    tokio::time::sleep(FIRST_SWEEP).await;
    let mut interval = tokio::time::interval(EXPIRY_SWEEP_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        if let Err(err) = sweep(&inner).await {
            tracing::warn!(error = %err, "keyward could not record expiry notices; will retry");
        }
    }
}

async fn sweep(inner: &Inner) -> Result<Vec<ChangeRecord>, keyward_core::StoreError> {
    let Some(window) = inner.expiry_sweep.window else {
        return Ok(Vec::new());
    };
    let window = TimeDelta::from_std(window).unwrap_or(TimeDelta::MAX);
    let notices = inner
        .store
        .expiry_notices(inner.clock.now(), window, &EventContext::system())
        .await?;
    for notice in &notices {
        if let Some(id) = notice.key_id {
            tracing::info!(key_id = %id, kind = %notice.kind, "api key expiry notice");
        }
    }
    Ok(notices)
}

impl Inner {
    /// Records a `rate_limited` event for each key refused for its rate limit since the last
    /// flush (the first refusal per key and minute); a failed write puts the refusal back.
    pub(crate) async fn record_rate_limited(&self) {
        for (id, limit) in self.usage.take_rate_limited() {
            let detail = serde_json::json!({ "limit_per_minute": limit });
            let recorded = self
                .store
                .record_event(
                    id,
                    ChangeKind::RateLimited,
                    &detail,
                    &EventContext::system(),
                )
                .await;
            if let Err(err) = recorded {
                tracing::warn!(key_id = %id, error = %err, "keyward could not record a rate_limited event");
                self.usage.counter(id).keep_rate_limited(limit);
            }
        }
    }
}

impl KeywardBuilder {
    /// How long before a key's expiry the event `expiring_soon` is recorded (default 7
    /// days); `None` turns expiry notices off. Every instance sweeps once a minute; each
    /// notice is recorded once, whichever instance sweeps first (`expired` follows when the
    /// expiry passes). The events reach `GET /events`, `keyward events` and webhooks.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use keyward::{Keyward, MemoryStore};
    ///
    /// # fn main() -> Result<(), keyward::ConfigError> {
    /// let keyward = Keyward::builder(MemoryStore::new())
    ///     .prefix("books")
    ///     .expiry_notices(Some(Duration::from_secs(3 * 24 * 60 * 60)))
    ///     .build()?;
    /// # let _ = keyward;
    /// # Ok(())
    /// # }
    /// ```
    pub fn expiry_notices(mut self, window: Option<Duration>) -> Self {
        self.expiry_notice_window = window;
        self
    }
}

impl Keyward {
    /// Records the expiry notices due now (what the periodic sweep does once a minute) and
    /// returns those this call recorded; none when notices are off.
    ///
    /// # Errors
    ///
    /// [`ManageError::Unavailable`] when the store fails.
    pub async fn sweep_expiry_notices(&self) -> Result<Vec<ChangeRecord>, ManageError> {
        sweep(&self.inner)
            .await
            .map_err(|e| ManageError::from_store(e, None))
    }
}
