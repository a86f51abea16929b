//! The token format: `{prefix}_{secret}{check}`.
//!
//! * `prefix` is chosen by the application and matches `[a-z][a-z0-9]{1,15}`;
//! * `secret` is 40 base62 characters drawn from the operating system's CSPRNG (about 238 bits);
//! * `check` is the CRC32 (IEEE, as zlib computes it) of the ASCII bytes `{prefix}_{secret}`,
//!   written in base62, most significant digit first, left-padded with `0` to 6 characters.
//!
//! The base62 alphabet is `0-9A-Za-z`, in that order, so every token matches
//! `^[a-z][a-z0-9]{1,15}_[0-9A-Za-z]{46}$`. That regular shape lets secret scanners find
//! leaked keys, and the check digits let a verifier reject typos and garbage without touching
//! a cache or a store.

use std::fmt;
use std::str::FromStr;

use rand::Rng;
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Number of base62 characters of randomness in a token.
pub const SECRET_LEN: usize = 40;
/// Number of base62 check digits at the end of a token.
pub const CHECK_LEN: usize = 6;
/// Shortest allowed prefix.
pub const PREFIX_MIN_LEN: usize = 2;
/// Longest allowed prefix.
pub const PREFIX_MAX_LEN: usize = 16;
/// The regular expression every token matches, for secret scanners and documentation.
pub const TOKEN_REGEX: &str = "^[a-z][a-z0-9]{1,15}_[0-9A-Za-z]{46}$";

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const BODY_LEN: usize = SECRET_LEN + CHECK_LEN;

/// Why a string is not an acceptable token.
///
/// The messages never repeat the input, and they deliberately do not say which part of a
/// malformed token was wrong beyond this coarse classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The string does not have the shape `{prefix}_{46 base62 characters}`.
    #[error("the token is malformed")]
    Malformed,
    /// The shape is right but the check digits do not match.
    #[error("the token's check digits do not match")]
    Checksum,
    /// The token is well formed but carries a prefix this verifier does not accept.
    #[error("the token's prefix is not accepted here")]
    UnknownPrefix,
}

/// Why a string cannot be used as a token prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid token prefix {prefix:?}: it must match [a-z][a-z0-9]{{1,15}}")]
pub struct PrefixError {
    prefix: String,
}

impl From<std::convert::Infallible> for PrefixError {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

/// A validated token prefix, such as `books`.
///
/// # Example
///
/// ```
/// use keyward_core::Prefix;
///
/// let prefix: Prefix = "books".parse()?;
/// assert_eq!(prefix.as_str(), "books");
/// assert!("Books".parse::<Prefix>().is_err());
/// # Ok::<(), keyward_core::PrefixError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Prefix(String);

impl Prefix {
    /// Validates `prefix`.
    ///
    /// # Errors
    ///
    /// Returns [`PrefixError`] unless the prefix matches `[a-z][a-z0-9]{1,15}`.
    pub fn new(prefix: impl Into<String>) -> Result<Self, PrefixError> {
        let prefix = prefix.into();
        if is_valid_prefix(prefix.as_bytes()) {
            Ok(Self(prefix))
        } else {
            Err(PrefixError { prefix })
        }
    }

    /// The prefix as a string slice.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Prefix {
    type Err = PrefixError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for Prefix {
    type Error = PrefixError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl TryFrom<&str> for Prefix {
    type Error = PrefixError;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<Prefix> for String {
    fn from(value: Prefix) -> Self {
        value.0
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_valid_prefix(bytes: &[u8]) -> bool {
    (PREFIX_MIN_LEN..=PREFIX_MAX_LEN).contains(&bytes.len())
        && bytes[0].is_ascii_lowercase()
        && bytes[1..]
            .iter()
            .fold(0, |flags, &b| flags | CLASS[usize::from(b)])
            & NOT_PREFIX
            == 0
}

/// A byte's base62 digit value, with the flags below for bytes outside `[0-9A-Za-z]` and
/// outside `[a-z0-9]`: one table lookup per byte checks and decodes a token.
const CLASS: [u8; 256] = {
    let mut table = [NOT_BASE62 | NOT_PREFIX; 256];
    let mut i = 0;
    while i < ALPHABET.len() {
        let byte = ALPHABET[i];
        let prefix_flag = if byte.is_ascii_uppercase() {
            NOT_PREFIX
        } else {
            0
        };
        // `i < 62`: the cast keeps the value.
        table[byte as usize] = i as u8 | prefix_flag;
        i += 1;
    }
    table
};
/// In [`CLASS`]: not a base62 digit.
const NOT_BASE62: u8 = 0x80;
/// In [`CLASS`]: not a lowercase letter or a digit, the characters of a prefix.
const NOT_PREFIX: u8 = 0x40;
/// In [`CLASS`]: the digit's value.
const DIGIT_VALUE: u8 = 0x3f;

/// A complete API token, such as `books_…`.
///
/// The value is zeroized when dropped, and `Debug`/`Display` print `[redacted]`: call
/// [`Token::expose_secret`] to get the string, which should happen only to show it once to
/// its owner or to send it.
///
/// # Example
///
/// ```
/// use keyward_core::{Token, TokenFormat};
///
/// let format = TokenFormat::new("books")?;
/// let token = format.generate();
/// assert_eq!(format!("{token}"), "[redacted]");
///
/// let parsed = format.parse(token.expose_secret())?;
/// assert_eq!(parsed.prefix(), "books");
/// assert!(parsed.hint().as_str().starts_with("books_…"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    value: Zeroizing<String>,
    prefix_len: usize,
}

impl Token {
    /// Generates a new token with `prefix` from the operating system's CSPRNG.
    #[must_use]
    pub fn generate(prefix: &Prefix) -> Self {
        let mut value = Zeroizing::new(String::with_capacity(
            prefix.0.len() + 1 + SECRET_LEN + CHECK_LEN,
        ));
        value.push_str(&prefix.0);
        value.push('_');
        let mut rng = OsRng;
        for _ in 0..SECRET_LEN {
            value.push(char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]));
        }
        let check = encode_check(crc32fast::hash(value.as_bytes()));
        value.push_str(std::str::from_utf8(&check).expect("base62 digits are ASCII"));
        Self {
            value,
            prefix_len: prefix.0.len(),
        }
    }

    /// Parses a token with any valid prefix, verifying its shape and check digits.
    ///
    /// Verifiers that should accept only their own prefixes use [`TokenFormat::parse`].
    ///
    /// # Errors
    ///
    /// [`TokenError::Malformed`] or [`TokenError::Checksum`].
    pub fn parse(s: &str) -> Result<Self, TokenError> {
        let prefix_len = check_token(s.as_bytes())?;
        Ok(TokenRef {
            value: s,
            prefix_len,
        }
        .to_token())
    }

    /// The prefix part, without the underscore.
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.value[..self.prefix_len]
    }

    /// The whole token. Handle with care: this is the credential.
    #[must_use]
    pub fn expose_secret(&self) -> &str {
        &self.value
    }

    /// The displayable hint, `{prefix}_…{last 4 characters}`.
    #[must_use]
    pub fn hint(&self) -> KeyHint {
        let tail = &self.value[self.value.len() - 4..];
        KeyHint(format!("{}_…{tail}", self.prefix()))
    }
}

/// A token checked where it lies (a request header, say), without a copy: what a verifier
/// digests. [`TokenFormat::check`] makes one; a [`Token`] lends one.
///
/// # Example
///
/// ```
/// use keyward_core::{TokenFormat, TokenHasher};
///
/// let format = TokenFormat::new("books")?;
/// let token = format.generate();
/// let header = format!("Bearer {}", token.expose_secret());
/// let checked = format.check(&header["Bearer ".len()..])?;
/// assert_eq!(checked.prefix(), "books");
/// let hasher = TokenHasher::sha256();
/// assert_eq!(hasher.digest(checked), hasher.digest(&token));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenRef<'a> {
    value: &'a str,
    prefix_len: usize,
}

impl<'a> TokenRef<'a> {
    /// The prefix part, without the underscore.
    #[must_use]
    pub fn prefix(&self) -> &'a str {
        &self.value[..self.prefix_len]
    }

    /// The whole token. Handle with care: this is the credential.
    #[must_use]
    pub fn expose_secret(&self) -> &'a str {
        self.value
    }

    /// An owned copy, wiped when dropped.
    #[must_use]
    pub fn to_token(&self) -> Token {
        Token {
            value: Zeroizing::new(self.value.to_owned()),
            prefix_len: self.prefix_len,
        }
    }
}

impl<'a> From<&'a Token> for TokenRef<'a> {
    fn from(token: &'a Token) -> Self {
        Self {
            value: &token.value,
            prefix_len: token.prefix_len,
        }
    }
}

impl fmt::Debug for TokenRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenRef([redacted])")
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token([redacted])")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The part of a token that may be shown after creation: `{prefix}_…{last 4 characters}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyHint(String);

impl KeyHint {
    /// Wraps a hint read back from storage.
    #[must_use]
    pub fn from_stored(hint: impl Into<String>) -> Self {
        Self(hint.into())
    }

    /// The hint as a string slice.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyHint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The token format of one application: the prefix it issues and the prefixes it accepts.
///
/// Accepting several prefixes lets an application rename its prefix without invalidating the
/// keys already issued.
///
/// # Example
///
/// ```
/// use keyward_core::{TokenError, TokenFormat};
///
/// let old = TokenFormat::new("jelu")?;
/// let format = TokenFormat::new("books")?.accept("jelu")?;
///
/// let legacy = old.generate();
/// assert!(format.parse(legacy.expose_secret()).is_ok());
/// assert_eq!(format.issuing_prefix().as_str(), "books");
/// assert_eq!(format.parse("books_not-a-token").unwrap_err(), TokenError::Malformed);
/// # Ok::<(), keyward_core::PrefixError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFormat {
    prefixes: Vec<Prefix>,
}

impl TokenFormat {
    /// A format issuing and accepting `prefix`.
    ///
    /// # Errors
    ///
    /// [`PrefixError`] if `prefix` is not a valid prefix.
    pub fn new<P>(prefix: P) -> Result<Self, PrefixError>
    where
        P: TryInto<Prefix>,
        PrefixError: From<P::Error>,
    {
        Ok(Self {
            prefixes: vec![prefix.try_into()?],
        })
    }

    /// Also accepts tokens with `prefix` (new tokens keep the issuing prefix).
    ///
    /// # Errors
    ///
    /// [`PrefixError`] if `prefix` is not a valid prefix.
    pub fn accept<P>(mut self, prefix: P) -> Result<Self, PrefixError>
    where
        P: TryInto<Prefix>,
        PrefixError: From<P::Error>,
    {
        let prefix = prefix.try_into()?;
        if !self.prefixes.contains(&prefix) {
            self.prefixes.push(prefix);
        }
        Ok(self)
    }

    /// The prefix of newly generated tokens.
    #[must_use]
    pub fn issuing_prefix(&self) -> &Prefix {
        &self.prefixes[0]
    }

    /// Every accepted prefix, the issuing one first.
    #[must_use]
    pub fn accepted_prefixes(&self) -> &[Prefix] {
        &self.prefixes
    }

    /// Generates a new token with the issuing prefix.
    #[must_use]
    pub fn generate(&self) -> Token {
        Token::generate(self.issuing_prefix())
    }

    /// Parses `s`, checking shape, check digits and prefix, without allocating for garbage.
    ///
    /// # Errors
    ///
    /// [`TokenError`] describing the class of failure.
    pub fn parse(&self, s: &str) -> Result<Token, TokenError> {
        self.check(s).map(|token| token.to_token())
    }

    /// Checks shape, check digits and prefix of `s` where it lies, copying nothing.
    ///
    /// # Errors
    ///
    /// [`TokenError`] describing the class of failure.
    pub fn check<'a>(&self, s: &'a str) -> Result<TokenRef<'a>, TokenError> {
        let prefix_len = check_token(s.as_bytes())?;
        let prefix = &s[..prefix_len];
        if !self.prefixes.iter().any(|p| p.0 == prefix) {
            return Err(TokenError::UnknownPrefix);
        }
        Ok(TokenRef {
            value: s,
            prefix_len,
        })
    }
}

/// Checks shape and check digits; returns the prefix length.
fn check_token(bytes: &[u8]) -> Result<usize, TokenError> {
    let min = PREFIX_MIN_LEN + 1 + BODY_LEN;
    let max = PREFIX_MAX_LEN + 1 + BODY_LEN;
    if bytes.len() < min || bytes.len() > max {
        return Err(TokenError::Malformed);
    }
    let prefix_len = bytes.len() - BODY_LEN - 1;
    if bytes[prefix_len] != b'_' || !is_valid_prefix(&bytes[..prefix_len]) {
        return Err(TokenError::Malformed);
    }
    let body = &bytes[prefix_len + 1..];
    if body
        .iter()
        .fold(0, |flags, &b| flags | CLASS[usize::from(b)])
        & NOT_BASE62
        != 0
    {
        return Err(TokenError::Malformed);
    }
    let (covered, check) = bytes.split_at(bytes.len() - CHECK_LEN);
    if decode_check(check) == Some(crc32fast::hash(covered)) {
        Ok(prefix_len)
    } else {
        Err(TokenError::Checksum)
    }
}

/// Writes `value` as 6 base62 digits, most significant first.
fn encode_check(mut value: u32) -> [u8; CHECK_LEN] {
    let mut out = [b'0'; CHECK_LEN];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(value % 62) as usize];
        value /= 62;
    }
    out
}

/// The value of base62 `digits` already checked to be base62.
fn decode_check(digits: &[u8]) -> Option<u32> {
    let value = digits.iter().fold(0_u64, |value, &d| {
        value * 62 + u64::from(CLASS[usize::from(d)] & DIGIT_VALUE)
    });
    u32::try_from(value).ok()
}

#[cfg(test)]
#[path = "token_tests.rs"]
mod tests;
