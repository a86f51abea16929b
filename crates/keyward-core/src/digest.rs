//! What is stored instead of the token: its SHA-256 digest, or an HMAC-SHA256 under a pepper.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::token::TokenRef;

/// The 32-byte digest of a token, the only form in which a key's secret is stored.
///
/// Lookups go by digest under a unique index. Equality is constant-time.
// Hash agrees with the constant-time `PartialEq`: both look at all 32 bytes.
#[allow(clippy::derived_hash_with_manual_eq)]
#[derive(Clone, Copy, Eq, Hash)]
pub struct TokenDigest([u8; 32]);

impl TokenDigest {
    /// Wraps 32 digest bytes read back from storage.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Wraps a stored digest of unknown length.
    ///
    /// # Errors
    ///
    /// [`DigestLengthError`] unless `bytes` is exactly 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, DigestLengthError> {
        <[u8; 32]>::try_from(bytes)
            .map(Self)
            .map_err(|_| DigestLengthError(bytes.len()))
    }

    /// The digest bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hexadecimal form.
    #[must_use]
    pub fn to_hex(&self) -> String {
        use fmt::Write;
        self.0.iter().fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    }
}

impl PartialEq for TokenDigest {
    /// Constant time: every byte is compared whatever the first difference. The bytes are
    /// folded as four words and only the result goes through `subtle`, which costs one
    /// optimisation barrier instead of one per byte.
    fn eq(&self, other: &Self) -> bool {
        let word = |bytes: &[u8; 32], i: usize| {
            let mut chunk = [0u8; 8];
            chunk.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
            u64::from_ne_bytes(chunk)
        };
        let difference = (0..4).fold(0u64, |acc, i| acc | (word(&self.0, i) ^ word(&other.0, i)));
        difference.ct_eq(&0).into()
    }
}

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A digest does not reveal the token, but a short form is all a log needs.
        write!(f, "TokenDigest({}…)", &self.to_hex()[..12])
    }
}

/// A stored digest did not have 32 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a token digest has 32 bytes, not {0}")]
pub struct DigestLengthError(usize);

/// Turns tokens into [`TokenDigest`]s: plain SHA-256, or HMAC-SHA256 keyed with a pepper.
///
/// With a pepper, a stolen copy of the key table cannot be used to test guessed tokens
/// offline without also stealing the pepper from the application's configuration. Changing the
/// pepper invalidates every stored key.
///
/// # Example
///
/// ```
/// use keyward_core::{TokenFormat, TokenHasher};
///
/// let token = TokenFormat::new("books")?.generate();
/// let plain = TokenHasher::sha256();
/// let peppered = TokenHasher::hmac(b"from the app's secret configuration");
/// assert_ne!(plain.digest(&token), peppered.digest(&token));
/// assert_eq!(plain.digest(&token), plain.digest(&token));
/// # Ok::<(), keyward_core::PrefixError>(())
/// ```
#[derive(Clone)]
pub struct TokenHasher {
    // The keyed state is computed once so that each digest costs two compressions, not four.
    mac: Option<Hmac<Sha256>>,
}

impl TokenHasher {
    /// Plain SHA-256 of the token's bytes.
    #[must_use]
    pub fn sha256() -> Self {
        Self { mac: None }
    }

    /// HMAC-SHA256 of the token's bytes, keyed with `pepper`.
    #[must_use]
    pub fn hmac(pepper: impl AsRef<[u8]>) -> Self {
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(pepper.as_ref())
            .expect("HMAC accepts keys of any length");
        Self { mac: Some(mac) }
    }

    /// Whether a pepper is configured.
    #[must_use]
    pub fn is_peppered(&self) -> bool {
        self.mac.is_some()
    }

    /// A short public name for the pepper, so that two processes can tell whether they use
    /// the same one without either revealing it; `None` without a pepper.
    ///
    /// It is the first 8 bytes, in lowercase hexadecimal, of HMAC-SHA256 keyed with the pepper
    /// over the fixed message `keyward pepper fingerprint v1`. HMAC's output says nothing about
    /// its key, and the fixed message is never a token, so the fingerprint can be stored and
    /// shown: the `keyward` CLI compares its own with the one the application recorded. As
    /// with any value derived from a secret, a guessable pepper could be tested against it
    /// offline; a pepper of 32 random bytes cannot.
    ///
    /// # Example
    ///
    /// ```
    /// use keyward_core::TokenHasher;
    ///
    /// let app = TokenHasher::hmac(b"pepper");
    /// assert_eq!(app.pepper_fingerprint().as_deref(), Some("0c0bfbd8ecc166a5"));
    /// assert_ne!(app.pepper_fingerprint(), TokenHasher::hmac(b"other").pepper_fingerprint());
    /// assert_eq!(TokenHasher::sha256().pepper_fingerprint(), None);
    /// ```
    #[must_use]
    pub fn pepper_fingerprint(&self) -> Option<String> {
        let mut mac = self.mac.clone()?;
        mac.update(b"keyward pepper fingerprint v1");
        let tag = mac.finalize().into_bytes();
        let mut hex = String::with_capacity(16);
        for byte in &tag[..8] {
            use fmt::Write;
            let _ = write!(hex, "{byte:02x}");
        }
        Some(hex)
    }

    /// The digest of `token` (a [`&Token`](crate::Token) or a [`TokenRef`]).
    #[must_use]
    pub fn digest<'a>(&self, token: impl Into<TokenRef<'a>>) -> TokenDigest {
        self.digest_str(token.into().expose_secret())
    }

    fn digest_str(&self, token: &str) -> TokenDigest {
        match &self.mac {
            None => TokenDigest(Sha256::digest(token.as_bytes()).into()),
            Some(mac) => {
                let mut mac = mac.clone();
                mac.update(token.as_bytes());
                TokenDigest(mac.finalize().into_bytes().into())
            }
        }
    }
}

impl Default for TokenHasher {
    fn default() -> Self {
        Self::sha256()
    }
}

impl fmt::Debug for TokenHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.mac {
            None => f.write_str("TokenHasher::Sha256"),
            Some(_) => f.write_str("TokenHasher::Hmac([redacted pepper])"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::Token;

    const TOKEN: &str = "books_0123456789ABCDEFGHIJabcdefghij01234567890CyVv0";

    // Expected values computed independently with Python's hashlib and hmac modules.
    #[test]
    fn digests_differing_in_any_one_bit_are_unequal() {
        let base = TokenDigest::from_bytes([0x5a; 32]);
        assert_eq!(base, TokenDigest::from_bytes([0x5a; 32]));
        for byte in 0..32 {
            for bit in 0..8 {
                let mut bytes = [0x5a; 32];
                bytes[byte] ^= 1 << bit;
                assert_ne!(
                    base,
                    TokenDigest::from_bytes(bytes),
                    "byte {byte}, bit {bit}"
                );
            }
        }
    }

    #[test]
    fn sha256_known_answer() {
        let token = Token::parse(TOKEN).unwrap();
        assert_eq!(
            TokenHasher::sha256().digest(&token).to_hex(),
            "5f1f2cd0499a628d057dcfc568ef804ee608c164ecd6d13e56a445c2a6db6487"
        );
    }

    #[test]
    fn hmac_known_answer() {
        let token = Token::parse(TOKEN).unwrap();
        assert_eq!(
            TokenHasher::hmac(b"pepper").digest(&token).to_hex(),
            "d7a929e78f209f67bf8202609776a09d0c898a064e7b8764cc17968dd3a2d4d6"
        );
    }

    #[test]
    fn rfc4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let hasher = TokenHasher::hmac(b"Jefe");
        assert_eq!(
            hasher.digest_str("what do ya want for nothing?").to_hex(),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn hasher_debug_hides_pepper() {
        let shown = format!("{:?}", TokenHasher::hmac(b"very-secret-pepper"));
        assert!(!shown.contains("very"));
        assert!(!shown.contains("pepper\""));
    }

    // Expected value computed independently with Python's hmac module.
    #[test]
    fn fingerprint_known_answer() {
        let hasher = TokenHasher::hmac(b"pepper");
        assert_eq!(
            hasher.pepper_fingerprint().as_deref(),
            Some("0c0bfbd8ecc166a5")
        );
    }

    #[test]
    fn from_slice_checks_length() {
        assert!(TokenDigest::from_slice(&[0; 31]).is_err());
        assert_eq!(
            TokenDigest::from_slice(&[7; 32]).unwrap(),
            TokenDigest::from_bytes([7; 32])
        );
    }
}
