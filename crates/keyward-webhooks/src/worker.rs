//! One endpoint's delivery: lease the endpoint's reader of the change log, then POST each
//! key event in order, retrying each until it is accepted or too old, and save the position
//! after each.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use keyward_core::{ChangeCursor, ChangeRecord, Clock, ConsumerLease, KeyStore, StoreError};
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use tokio::sync::watch;

use crate::metrics::WorkerMetrics;
use crate::payload::WebhookPayload;
use crate::secret::{WEBHOOK_ID, WEBHOOK_SIGNATURE, WEBHOOK_TIMESTAMP, WebhookSecret};

/// How many changes one read of the log asks for.
const BATCH: usize = 100;

/// The knobs of every worker (see the builder methods of [`Webhooks`](crate::Webhooks)).
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) retry_window: Duration,
    pub(crate) backoff_min: Duration,
    pub(crate) backoff_max: Duration,
    pub(crate) poll_interval: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) lease_duration: Duration,
    /// Judges events' ages (the retry window, the lag).
    pub(crate) clock: Arc<dyn Clock>,
}

/// Why a worker stops delivering for now.
#[derive(Debug)]
enum Halt {
    /// The handle asked it to stop.
    Stop,
    /// Another instance holds the endpoint's lease.
    LeaseLost,
    /// The store failed.
    Store(StoreError),
    /// The store keeps no change log: nothing can ever be delivered.
    NoChangeLog,
}

impl From<StoreError> for Halt {
    fn from(err: StoreError) -> Self {
        Self::Store(err)
    }
}

/// Why an attempt failed.
#[derive(Debug, thiserror::Error)]
enum AttemptError {
    #[error("the endpoint answered {0}")]
    Status(reqwest::StatusCode),
    #[error("the request failed: {0}")]
    Request(#[source] reqwest::Error),
}

/// The delivery task of one endpoint.
#[derive(Debug)]
pub(crate) struct Worker<S> {
    pub(crate) store: S,
    pub(crate) client: reqwest::Client,
    pub(crate) url: reqwest::Url,
    pub(crate) secret: WebhookSecret,
    /// `webhook:<id>`: the reader's name, also shown in logs instead of the URL (which may
    /// carry a credential).
    pub(crate) lease: ConsumerLease,
    pub(crate) settings: Settings,
    pub(crate) stop: watch::Receiver<bool>,
    pub(crate) metrics: WorkerMetrics,
    /// When the lease was last taken or renewed.
    pub(crate) renewed: Instant,
    /// How many workers know where they start (see [`WebhooksHandle::ready`](crate::WebhooksHandle::ready)).
    pub(crate) ready: Arc<watch::Sender<usize>>,
    /// Whether this worker counted itself in `ready`.
    pub(crate) counted: bool,
}

impl<S: KeyStore> Worker<S> {
    /// Delivers until stopped: takes the lease whenever it is free, and waits while another
    /// instance holds it.
    pub(crate) async fn run(mut self) {
        let endpoint = self.lease.name.clone();
        let mut store_backoff = self.settings.backoff_min;
        loop {
            let halt = match self.store.lease_consumer(&self.lease, Utc::now()).await {
                Ok(Some(position)) => {
                    self.renewed = Instant::now();
                    tracing::debug!(%endpoint, ?position, "webhook delivery took the lease");
                    self.deliver_while_held(position).await
                }
                Ok(None) => Halt::LeaseLost,
                Err(err) => Halt::Store(err),
            };
            // Whatever the first attempt decided, the worker has started.
            self.mark_ready();
            let wait = match halt {
                Halt::Stop => break,
                Halt::NoChangeLog => {
                    tracing::error!(
                        %endpoint,
                        "the key store keeps no change log: webhooks cannot be delivered"
                    );
                    return;
                }
                Halt::LeaseLost => {
                    store_backoff = self.settings.backoff_min;
                    self.settings.poll_interval
                }
                Halt::Store(err) => {
                    tracing::warn!(
                        %endpoint,
                        error = &err as &dyn std::error::Error,
                        retry_in = ?store_backoff,
                        "webhook delivery could not use the key store; will retry"
                    );
                    let wait = store_backoff;
                    store_backoff = (store_backoff * 2).min(self.settings.backoff_max);
                    wait
                }
            };
            if self.sleep(wait).await.is_err() {
                break;
            }
        }
        self.release().await;
    }

    fn mark_ready(&mut self) {
        if !self.counted {
            self.counted = true;
            self.ready.send_modify(|ready| *ready += 1);
        }
    }

    /// Hands the lease over at once on shutdown: a lease that ends now is free for the next
    /// instance, which would otherwise wait for it to run out.
    async fn release(&self) {
        let lease = ConsumerLease {
            duration: Duration::ZERO,
            ..self.lease.clone()
        };
        if let Err(err) = self.store.lease_consumer(&lease, Utc::now()).await {
            tracing::debug!(endpoint = %self.lease.name, error = %err, "could not release the webhook lease");
        }
    }

    async fn deliver_while_held(&mut self, position: Option<u64>) -> Halt {
        match self.deliver_from(position).await {
            Ok(never) => match never {},
            Err(halt) => halt,
        }
    }

    async fn deliver_from(
        &mut self,
        position: Option<u64>,
    ) -> Result<std::convert::Infallible, Halt> {
        let mut saved;
        let mut cursor = match position {
            Some(position) => {
                saved = position;
                ChangeCursor::at(position)
            }
            None => {
                // A new endpoint: from now on, not the whole history.
                let head = self
                    .store
                    .changes_since(None, 1)
                    .await?
                    .ok_or(Halt::NoChangeLog)?
                    .cursor;
                saved = head.seq();
                self.save(saved).await?;
                head
            }
        };
        self.mark_ready();
        loop {
            self.renew_if_due().await?;
            let batch = self
                .store
                .changes_since(Some(cursor.clone()), BATCH)
                .await?
                .ok_or(Halt::NoChangeLog)?;
            if batch.truncated {
                tracing::error!(
                    endpoint = %self.lease.name,
                    after = saved,
                    "the change log was pruned past this webhook endpoint's position: some events were never sent"
                );
            }
            // Never save past a number not read yet: it may still appear.
            let safe = batch.cursor.lowest_needed().saturating_sub(1);
            for change in &batch.changes {
                if let Some(payload) = WebhookPayload::from_change(change) {
                    self.deliver(change, &payload).await?;
                }
                let position = change.seq.min(safe);
                if position > saved {
                    self.save(position).await?;
                    saved = position;
                }
            }
            let position = batch.cursor.seq().min(safe);
            if position > saved {
                self.save(position).await?;
                saved = position;
            }
            cursor = batch.cursor;
            if !batch.more {
                self.metrics.lag.set(0.0);
                self.sleep(self.settings.poll_interval).await?;
            }
        }
    }

    async fn save(&self, position: u64) -> Result<(), Halt> {
        if self.store.save_consumer(&self.lease, position).await? {
            Ok(())
        } else {
            Err(Halt::LeaseLost)
        }
    }

    /// Renews the lease when a third of it has passed since it was last renewed.
    async fn renew_if_due(&mut self) -> Result<(), Halt> {
        if self.renewed.elapsed() < self.renew_every() {
            return Ok(());
        }
        match self.store.lease_consumer(&self.lease, Utc::now()).await? {
            Some(_) => {
                self.renewed = Instant::now();
                Ok(())
            }
            None => {
                tracing::info!(endpoint = %self.lease.name, "another instance took over this webhook endpoint");
                Err(Halt::LeaseLost)
            }
        }
    }

    fn renew_every(&self) -> Duration {
        (self.settings.lease_duration / 3).max(Duration::from_millis(10))
    }

    /// Waits `duration`, renewing the lease as it goes; `Err` when stopped or the lease is
    /// lost.
    async fn pause(&mut self, duration: Duration) -> Result<(), Halt> {
        let end = Instant::now() + duration;
        loop {
            self.renew_if_due().await?;
            let now = Instant::now();
            if now >= end {
                return Ok(());
            }
            let renew_at = self.renewed + self.renew_every();
            self.sleep(end.min(renew_at).saturating_duration_since(now))
                .await?;
        }
    }

    /// Sleeps `duration` unless stopped first.
    async fn sleep(&mut self, duration: Duration) -> Result<(), Halt> {
        let mut stop = self.stop.clone();
        tokio::select! {
            () = tokio::time::sleep(duration) => Ok(()),
            _ = stop.wait_for(|stopped| *stopped) => Err(Halt::Stop),
        }
    }

    /// Sends `change` until the endpoint accepts it, or gives it up once it is older than the
    /// retry window.
    async fn deliver(
        &mut self,
        change: &ChangeRecord,
        payload: &WebhookPayload,
    ) -> Result<(), Halt> {
        let id = payload.message_id();
        let body = match serde_json::to_vec(payload) {
            Ok(body) => body,
            Err(err) => {
                tracing::error!(endpoint = %self.lease.name, webhook_id = %id, error = %err, "webhook event could not be encoded; given up");
                self.metrics.given_up.increment(1);
                return Ok(());
            }
        };
        let mut backoff = self.settings.backoff_min;
        loop {
            self.renew_if_due().await?;
            let age = self.age(change);
            self.metrics.lag.set(age.as_secs_f64());
            let mut stop = self.stop.clone();
            let outcome = tokio::select! {
                outcome = self.attempt(&id, &body) => outcome,
                _ = stop.wait_for(|stopped| *stopped) => return Err(Halt::Stop),
            };
            let err = match outcome {
                Ok(()) => {
                    self.metrics.delivered.increment(1);
                    tracing::debug!(endpoint = %self.lease.name, webhook_id = %id, kind = %payload.kind, "webhook delivered");
                    return Ok(());
                }
                Err(err) => err,
            };
            self.metrics.failed.increment(1);
            let age = self.age(change);
            if age >= self.settings.retry_window {
                self.metrics.given_up.increment(1);
                tracing::error!(
                    endpoint = %self.lease.name,
                    webhook_id = %id,
                    kind = %payload.kind,
                    age = ?age,
                    error = &err as &dyn std::error::Error,
                    "webhook event given up: not delivered within the retry window"
                );
                return Ok(());
            }
            tracing::warn!(
                endpoint = %self.lease.name,
                webhook_id = %id,
                kind = %payload.kind,
                retry_in = ?backoff,
                error = &err as &dyn std::error::Error,
                "webhook delivery failed; will retry"
            );
            self.pause(backoff).await?;
            backoff = (backoff * 2).min(self.settings.backoff_max);
        }
    }

    /// How old `change` is by the configured clock.
    fn age(&self, change: &ChangeRecord) -> Duration {
        self.settings
            .clock
            .now()
            .signed_duration_since(change.at)
            .to_std()
            .unwrap_or_default()
    }

    /// One POST, signed at the moment it is sent.
    async fn attempt(&self, id: &str, body: &[u8]) -> Result<(), AttemptError> {
        let timestamp = Utc::now().timestamp();
        let signature = self.secret.sign(id, timestamp, body);
        let started = Instant::now();
        let result = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(WEBHOOK_ID, id)
            .header(WEBHOOK_TIMESTAMP, timestamp.to_string())
            .header(WEBHOOK_SIGNATURE, signature)
            .body(body.to_vec())
            .send()
            .await;
        self.metrics
            .duration
            .record(started.elapsed().as_secs_f64());
        match result {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => Err(AttemptError::Status(response.status())),
            Err(err) => Err(AttemptError::Request(err.without_url())),
        }
    }
}
