//! How long keys live: expiry presets and bounds, custom expiries, grace periods.

use chrono::{DateTime, TimeDelta, Utc};

use crate::validation::ValidationError;

/// The expiry presets, in days.
pub const EXPIRY_PRESET_DAYS: [u32; 5] = [7, 30, 60, 90, 180];
/// The default expiry, in days.
pub const DEFAULT_EXPIRY_DAYS: u32 = 30;
/// Longest grace period of a rolling regenerate, in seconds (one day).
pub const MAX_GRACE_SECONDS: u32 = 86_400;
/// Longest lifetime of a key, in days (about ten years).
///
/// A custom expiry ([`Expiry::At`]) lies at most this far from its creation, and a refresh
/// extends a key by at most this much, whatever lifetime its record holds. Bounding it keeps
/// every expiry far from the ends of what `DateTime<Utc>` and the stores can represent.
pub const MAX_LIFETIME_DAYS: u32 = 3650;
/// [`MAX_LIFETIME_DAYS`] as a `TimeDelta`.
#[allow(clippy::cast_lossless)] // `i64::from` is not available in a constant.
pub const MAX_LIFETIME: TimeDelta = TimeDelta::days(MAX_LIFETIME_DAYS as i64);
/// When a new key expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// After one of the presets (7, 30, 60, 90 or 180 days).
    InDays(u32),
    /// Never.
    Never,
    /// At a chosen instant, which must lie in the future and at most [`MAX_LIFETIME_DAYS`]
    /// days (3650) from the creation: the expiry `now + MAX_LIFETIME` itself is accepted, a
    /// microsecond later is not. The key's lifetime, used by refresh, is the time between.
    At(DateTime<Utc>),
}

impl Default for Expiry {
    fn default() -> Self {
        Self::InDays(DEFAULT_EXPIRY_DAYS)
    }
}

impl Expiry {
    /// When a key created at `now` with this expiry expires; `None` for never (and for a
    /// preset past the representable range, which validation refuses).
    #[must_use]
    pub fn expires_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match *self {
            Self::InDays(days) => now.checked_add_signed(TimeDelta::try_days(i64::from(days))?),
            Self::Never => None,
            Self::At(at) => Some(at),
        }
    }
}

/// A grace period for a rolling regenerate: at most one day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct GracePeriod(u32);

impl GracePeriod {
    /// Validates a grace period in seconds.
    ///
    /// # Errors
    ///
    /// A [`ValidationError`] on `grace_seconds` above 86400.
    pub fn from_secs(seconds: u32) -> Result<Self, ValidationError> {
        if seconds > MAX_GRACE_SECONDS {
            return Err(ValidationError::field(
                "grace_seconds",
                format!("must be at most {MAX_GRACE_SECONDS} seconds (one day)"),
            ));
        }
        Ok(Self(seconds))
    }

    /// The length in seconds.
    #[must_use]
    pub const fn as_secs(self) -> u32 {
        self.0
    }

    /// Whether the old secret stops at once.
    #[must_use]
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// The length as a `TimeDelta`.
    #[must_use]
    pub fn as_time_delta(self) -> TimeDelta {
        TimeDelta::seconds(i64::from(self.0))
    }
}
