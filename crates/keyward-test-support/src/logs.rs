//! Log capture: a `tracing` subscriber that writes plain lines into memory, for tests that
//! read what was logged.

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use tracing::{Level, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::FmtSpan;

/// Formatted log lines, kept in memory; clones share them.
///
/// # Example
///
/// ```
/// use keyward_test_support::Logs;
///
/// let logs = Logs::default();
/// tracing::subscriber::with_default(logs.subscriber(tracing::Level::INFO), || {
///     tracing::info!(action = "create", "a key was created");
/// });
/// assert!(logs.text().contains("action=\"create\""));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    /// A subscriber that writes every event at `level` or above, and each span's opening,
    /// entering, leaving and closing, without colours, into these logs.
    #[must_use]
    pub fn subscriber(&self, level: Level) -> impl Subscriber + Send + Sync + 'static {
        tracing_subscriber::fmt()
            .with_max_level(level)
            .with_span_events(FmtSpan::FULL)
            .with_ansi(false)
            .with_writer(self.clone())
            .finish()
    }

    /// Everything written so far.
    #[must_use]
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

impl Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Logs {
    type Writer = Self;

    fn make_writer(&'a self) -> Self {
        self.clone()
    }
}
