//! The circuit breaker in front of the store's lookups.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::metrics::{CircuitMetrics, CircuitState};

/// When keyward stops asking a failing store.
///
/// Every lookup on the request path has a deadline
/// ([`store_timeout`](crate::KeywardBuilder::store_timeout)). After `failure_threshold`
/// consecutive failed or timed-out lookups the circuit opens: cache misses are answered 503
/// with `Retry-After` at once, without a store call, for `open_for`. Then the next miss is let
/// through as a probe (one at a time; the others still get 503 at once); its success closes
/// the circuit, its failure opens it again. Cached keys keep working all along.
///
/// The default opens after 5 consecutive failures for 500 ms, so service returns within about
/// a second of the store coming back.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use keyward::{CircuitBreaker, Keyward, MemoryStore};
///
/// let keyward = Keyward::builder(MemoryStore::new())
///     .prefix("books")
///     .circuit_breaker(
///         CircuitBreaker::default()
///             .failure_threshold(3)
///             .open_for(Duration::from_millis(250)),
///     )
///     .build()?;
/// # let _ = keyward;
/// # Ok::<(), keyward::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct CircuitBreaker {
    failure_threshold: u32,
    open_for: Duration,
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            open_for: Duration::from_millis(500),
        }
    }
}

impl CircuitBreaker {
    /// A breaker that never opens: every miss waits for the store (up to the deadline).
    pub fn disabled() -> Self {
        Self {
            failure_threshold: 0,
            ..Self::default()
        }
    }

    /// Consecutive failures that open the circuit (at least 1; 0 disables the breaker).
    pub fn failure_threshold(mut self, failures: u32) -> Self {
        self.failure_threshold = failures;
        self
    }

    /// How long misses are refused at once before a probe is let through.
    pub fn open_for(mut self, duration: Duration) -> Self {
        self.open_for = duration;
        self
    }
}

/// Whether a lookup may go to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Permit {
    /// The circuit is closed.
    Closed,
    /// The circuit is open and this lookup is its probe.
    Probe,
}

/// The circuit is open: when the next probe may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Open {
    pub(crate) retry_after: Duration,
}

#[derive(Debug)]
pub(crate) struct Circuit {
    config: CircuitBreaker,
    state: Mutex<State>,
    metrics: CircuitMetrics,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant, probing: bool },
}

impl Circuit {
    pub(crate) fn new(config: CircuitBreaker) -> Self {
        Self {
            config,
            state: Mutex::new(State::Closed { failures: 0 }),
            metrics: CircuitMetrics::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks to call the store.
    pub(crate) fn permit(&self) -> Result<Permit, Open> {
        let mut state = self.lock();
        match &mut *state {
            State::Closed { .. } => Ok(Permit::Closed),
            State::Open { until, probing } => {
                let now = Instant::now();
                if *probing || now < *until {
                    self.metrics.refusals.increment(1);
                    let retry_after = until.saturating_duration_since(now);
                    return Err(Open { retry_after });
                }
                *probing = true;
                self.metrics.entered(CircuitState::HalfOpen);
                Ok(Permit::Probe)
            }
        }
    }

    /// Reports how a permitted call went.
    pub(crate) fn record(&self, permit: Permit, ok: bool) {
        let mut state = self.lock();
        match (*state, ok) {
            (_, true) => {
                if matches!(*state, State::Open { .. }) {
                    tracing::info!("keyward: the key store answers again; circuit closed");
                    self.metrics.entered(CircuitState::Closed);
                }
                *state = State::Closed { failures: 0 };
            }
            (State::Closed { failures }, false) => {
                let failures = failures.saturating_add(1);
                *state = if self.config.failure_threshold > 0
                    && failures >= self.config.failure_threshold
                {
                    tracing::warn!(
                        failures,
                        "keyward: the key store keeps failing; circuit open, cache misses answer 503"
                    );
                    self.opened()
                } else {
                    State::Closed { failures }
                };
            }
            (State::Open { .. }, false) if permit == Permit::Probe => *state = self.opened(),
            // A call let through before the circuit opened: the circuit already knows.
            (State::Open { .. }, false) => {}
        }
    }

    fn opened(&self) -> State {
        self.metrics.entered(CircuitState::Open);
        State::Open {
            until: Instant::now() + self.config.open_for,
            probing: false,
        }
    }

    /// A probe was abandoned (its request went away) before it could report.
    pub(crate) fn abandon(&self, permit: Permit) {
        if permit == Permit::Probe {
            if let State::Open { probing, .. } = &mut *self.lock() {
                *probing = false;
                self.metrics.entered(CircuitState::Open);
            }
        }
    }

    /// Whether the circuit is open now.
    pub(crate) fn is_open(&self) -> bool {
        matches!(*self.lock(), State::Open { .. })
    }
}

/// Reports a permitted call's outcome, or abandons the permit if the call is dropped.
#[derive(Debug)]
pub(crate) struct PermitGuard<'a> {
    circuit: &'a Circuit,
    permit: Option<Permit>,
}

impl<'a> PermitGuard<'a> {
    pub(crate) fn new(circuit: &'a Circuit, permit: Permit) -> Self {
        Self {
            circuit,
            permit: Some(permit),
        }
    }

    pub(crate) fn record(mut self, ok: bool) {
        if let Some(permit) = self.permit.take() {
            self.circuit.record(permit, ok);
        }
    }
}

impl Drop for PermitGuard<'_> {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            self.circuit.abandon(permit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_and_probes_one_at_a_time() {
        let circuit = Circuit::new(
            CircuitBreaker::default()
                .failure_threshold(2)
                .open_for(Duration::ZERO),
        );
        circuit.record(circuit.permit().unwrap(), false);
        circuit.record(circuit.permit().unwrap(), true);
        circuit.record(circuit.permit().unwrap(), false);
        assert!(!circuit.is_open(), "a success in between resets the count");
        circuit.record(circuit.permit().unwrap(), false);
        assert!(circuit.is_open());
        let probe = circuit.permit().unwrap();
        assert_eq!(probe, Permit::Probe);
        assert!(circuit.permit().is_err(), "one probe at a time");
        circuit.record(probe, false);
        let probe = circuit.permit().unwrap();
        circuit.record(probe, true);
        assert!(!circuit.is_open());
        assert_eq!(circuit.permit().unwrap(), Permit::Closed);
    }

    #[test]
    fn refuses_while_open() {
        let circuit = Circuit::new(
            CircuitBreaker::default()
                .failure_threshold(1)
                .open_for(Duration::from_secs(60)),
        );
        circuit.record(circuit.permit().unwrap(), false);
        let open = circuit.permit().unwrap_err();
        assert!(open.retry_after > Duration::from_secs(59));
    }

    #[test]
    fn an_abandoned_probe_lets_the_next_one_go() {
        let circuit = Circuit::new(
            CircuitBreaker::default()
                .failure_threshold(1)
                .open_for(Duration::ZERO),
        );
        circuit.record(circuit.permit().unwrap(), false);
        drop(PermitGuard::new(&circuit, circuit.permit().unwrap()));
        assert_eq!(circuit.permit().unwrap(), Permit::Probe);
    }

    #[test]
    fn disabled_never_opens() {
        let circuit = Circuit::new(CircuitBreaker::disabled());
        for _ in 0..100 {
            circuit.record(circuit.permit().unwrap(), false);
        }
        assert!(!circuit.is_open());
    }
}
