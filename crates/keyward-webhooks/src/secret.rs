//! Endpoint secrets and Standard Webhooks signatures.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::general_purpose::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use sha2::Sha256;
use zeroize::Zeroizing;

/// The prefix of a secret's text form.
pub const SECRET_PREFIX: &str = "whsec_";

/// The fewest bytes a secret may hold once decoded (the Standard Webhooks spec asks for 24 to
/// 64 random bytes; below 16 an HMAC key is too easy to guess).
pub const MIN_SECRET_BYTES: usize = 16;

/// The most bytes a secret may hold once decoded.
pub const MAX_SECRET_BYTES: usize = 64;

/// How many random bytes [`WebhookSecret::generate`] takes.
const GENERATED_SECRET_BYTES: usize = 32;

/// The header naming the message: `msg_<event id>`, the same on every retry of one event.
pub const WEBHOOK_ID: &str = "webhook-id";
/// The header holding the attempt's time in whole seconds since the Unix epoch.
pub const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
/// The header holding the signature: `v1,<base64 HMAC-SHA256>`.
pub const WEBHOOK_SIGNATURE: &str = "webhook-signature";

/// Base64 with or without padding: secrets are pasted from many tools.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// An endpoint's signing secret, written `whsec_<base64>` as the Standard Webhooks spec
/// says. The receiver holds the same text and checks every request's signature with it.
///
/// Its `Debug` form never shows the secret, and its bytes are wiped when it is dropped.
///
/// # Example
///
/// ```
/// use keyward_webhooks::WebhookSecret;
///
/// let secret: WebhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".parse()?;
/// assert_eq!(format!("{secret:?}"), "WebhookSecret(..)");
/// assert!("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".parse::<WebhookSecret>().is_err());
/// # Ok::<(), keyward_webhooks::SecretError>(())
/// ```
#[derive(Clone)]
pub struct WebhookSecret(Zeroizing<Vec<u8>>);

/// Why a text is not a [`WebhookSecret`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// It does not start with `whsec_`.
    #[error("a webhook secret starts with `whsec_` followed by base64")]
    MissingPrefix,
    /// What follows `whsec_` is not base64.
    #[error("the part of the webhook secret after `whsec_` is not base64")]
    NotBase64,
    /// It decodes to fewer than [`MIN_SECRET_BYTES`] or more than [`MAX_SECRET_BYTES`] bytes.
    #[error("a webhook secret decodes to {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes, not {0}")]
    Length(usize),
}

impl WebhookSecret {
    /// A new random secret of 32 bytes; give its [text](Self::expose_secret) to the receiver.
    #[must_use]
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new(vec![0; GENERATED_SECRET_BYTES]);
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// The secret's text form, `whsec_<base64>`, to configure the receiver with.
    #[must_use]
    pub fn expose_secret(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&*self.0))
    }

    /// The `webhook-signature` value of the message `id` sent at `timestamp` (Unix seconds)
    /// with `body`: `v1,` and the base64 HMAC-SHA256 of `{id}.{timestamp}.{body}` keyed with
    /// the secret's decoded bytes.
    ///
    /// # Example
    ///
    /// ```
    /// use keyward_webhooks::WebhookSecret;
    ///
    /// let secret: WebhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".parse()?;
    /// let signature = secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#);
    /// // The example of the Standard Webhooks spec.
    /// assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    /// # Ok::<(), keyward_webhooks::SecretError>(())
    /// ```
    #[must_use]
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

impl FromStr for WebhookSecret {
    type Err = SecretError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let encoded = s
            .trim()
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SecretError::MissingPrefix)?;
        let bytes = Zeroizing::new(
            LENIENT
                .decode(encoded)
                .map_err(|_| SecretError::NotBase64)?,
        );
        if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&bytes.len()) {
            return Err(SecretError::Length(bytes.len()));
        }
        Ok(Self(bytes))
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_round_trip() {
        let secret = WebhookSecret::generate();
        let text = secret.expose_secret();
        assert!(text.starts_with(SECRET_PREFIX));
        let parsed: WebhookSecret = text.parse().expect("parses");
        assert_eq!(
            parsed.sign("msg_1", 5, b"{}"),
            secret.sign("msg_1", 5, b"{}")
        );
        assert_ne!(
            WebhookSecret::generate().sign("msg_1", 5, b"{}"),
            secret.sign("msg_1", 5, b"{}")
        );
    }

    #[test]
    fn padding_is_optional() {
        let padded: WebhookSecret = "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
            .parse()
            .unwrap();
        let bare: WebhookSecret = "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
            .parse()
            .unwrap();
        assert_eq!(padded.sign("a", 1, b""), bare.sign("a", 1, b""));
    }

    #[test]
    fn bad_secrets_say_why() {
        assert_eq!(
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
                .parse::<WebhookSecret>()
                .err(),
            Some(SecretError::MissingPrefix)
        );
        assert_eq!(
            "whsec_not base64!".parse::<WebhookSecret>().err(),
            Some(SecretError::NotBase64)
        );
        assert_eq!(
            "whsec_c2hvcnQ=".parse::<WebhookSecret>().err(),
            Some(SecretError::Length(5))
        );
        let err = "whsec_".parse::<WebhookSecret>().unwrap_err();
        assert!(err.to_string().contains("not 0"), "{err}");
    }

    #[test]
    fn debug_hides_the_secret() {
        let secret = WebhookSecret::generate();
        let text = secret.expose_secret();
        let shown = format!("{secret:?}");
        assert!(!shown.contains(&text[SECRET_PREFIX.len()..]));
    }
}
