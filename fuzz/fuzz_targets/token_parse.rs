//! Token parsing on arbitrary input: never a panic, and the parser agrees with an independent
//! reading of the format (`{prefix}_{40 base62}{6 base62 check digits of CRC32}`).

#![no_main]

use std::sync::OnceLock;

use keyward_core::{Token, TokenError, TokenFormat, TokenHasher};
use libfuzzer_sys::fuzz_target;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

struct Fixture {
    format: TokenFormat,
    hashers: [TokenHasher; 2],
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| Fixture {
        format: TokenFormat::new("books")
            .and_then(|f| f.accept("jelu"))
            .expect("valid prefixes"),
        hashers: [TokenHasher::sha256(), TokenHasher::hmac(b"fuzz pepper")],
    })
}

fuzz_target!(|data: &[u8]| {
    let fixture = fixture();
    if let Ok(text) = std::str::from_utf8(data) {
        check_parse(fixture, text);
    }
    // The same bytes, read as a recipe, give a token built by the specification: it parses.
    let built = build_token(data);
    check_parse(fixture, &built);
    let parsed = Token::parse(&built).expect("a token built by the specification parses");
    assert_eq!(parsed.expose_secret(), built);

    // Generating reads the OS random source, which is slow: do it for a few inputs only.
    if data.first() == Some(&0xff) {
        let prefix = &built[..built.find('_').expect("built tokens have an underscore")];
        let format = TokenFormat::new(prefix).expect("built prefixes are valid");
        let token = format.generate();
        let reparsed = format
            .parse(token.expose_secret())
            .expect("a generated token parses");
        assert_eq!(reparsed.expose_secret(), token.expose_secret());
        assert_eq!(
            spec_check(token.expose_secret().as_bytes()),
            Ok(prefix.len())
        );
    }
});

/// Parses `text` with both entry points and compares the verdicts with [`spec_check`].
fn check_parse(fixture: &Fixture, text: &str) {
    let expected = spec_check(text.as_bytes());
    let any = Token::parse(text);
    match (&any, expected) {
        (Ok(token), Ok(prefix_len)) => {
            assert_eq!(token.expose_secret(), text);
            assert_eq!(token.prefix(), &text[..prefix_len]);
            let hint = token.hint();
            assert!(hint.as_str().starts_with(token.prefix()));
            assert!(hint.as_str().ends_with(&text[text.len() - 4..]));
            assert_eq!(format!("{token}"), "[redacted]");
            assert_eq!(format!("{token:?}"), "Token([redacted])");
            let [plain, peppered] = &fixture.hashers;
            let digest = plain.digest(token);
            assert_eq!(digest, plain.digest(token));
            assert_ne!(digest, peppered.digest(token));
        }
        (Err(err), Err(expected)) => assert_eq!(*err, expected, "{text:?}"),
        (got, expected) => panic!("Token::parse({text:?}) = {got:?}, expected {expected:?}"),
    }
    let accepted = fixture.format.parse(text);
    match (accepted, any) {
        (Ok(token), Ok(_)) => {
            assert!(matches!(token.prefix(), "books" | "jelu"));
            assert_eq!(token.expose_secret(), text);
        }
        (Err(TokenError::UnknownPrefix), Ok(token)) => {
            assert!(!matches!(token.prefix(), "books" | "jelu"));
        }
        (Err(err), Err(any_err)) => assert_eq!(err, any_err, "{text:?}"),
        (got, any) => panic!("TokenFormat::parse({text:?}) = {got:?}, Token::parse {any:?}"),
    }
}

/// The format as the module documentation states it, written independently of the parser.
/// Returns the prefix length.
fn spec_check(bytes: &[u8]) -> Result<usize, TokenError> {
    let Some(underscore) = bytes.iter().position(|&b| b == b'_') else {
        return Err(TokenError::Malformed);
    };
    let (prefix, rest) = (&bytes[..underscore], &bytes[underscore + 1..]);
    let prefix_ok = (2..=16).contains(&prefix.len())
        && prefix[0].is_ascii_lowercase()
        && prefix
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !prefix_ok || rest.len() != 46 || !rest.iter().all(u8::is_ascii_alphanumeric) {
        return Err(TokenError::Malformed);
    }
    let check = rest[40..].iter().fold(0u64, |value, &digit| {
        let position = ALPHABET.iter().position(|&a| a == digit).expect("base62");
        value * 62 + position as u64
    });
    if check == u64::from(crc32fast::hash(&bytes[..bytes.len() - 6])) {
        Ok(underscore)
    } else {
        Err(TokenError::Checksum)
    }
}

/// A well-formed token whose prefix and secret are drawn from `data`.
fn build_token(data: &[u8]) -> String {
    let byte = |i: usize| data.get(i).copied().unwrap_or(0);
    let prefix_len = 2 + usize::from(byte(1)) % 15;
    let mut token = String::with_capacity(prefix_len + 47);
    token.push(char::from(b'a' + byte(2) % 26));
    for i in 1..prefix_len {
        let b = byte(2 + i) % 36;
        token.push(char::from(if b < 26 { b'a' + b } else { b'0' + b - 26 }));
    }
    token.push('_');
    for i in 0..40 {
        token.push(char::from(ALPHABET[usize::from(byte(18 + i)) % 62]));
    }
    let mut check = crc32fast::hash(token.as_bytes());
    let mut digits = [b'0'; 6];
    for slot in digits.iter_mut().rev() {
        *slot = ALPHABET[(check % 62) as usize];
        check /= 62;
    }
    token.push_str(std::str::from_utf8(&digits).expect("ASCII"));
    token
}
