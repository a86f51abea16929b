//! Unit and property tests of the token format.

use super::*;
use proptest::prelude::*;

fn is_token_shape(s: &str) -> bool {
    let Some((prefix, body)) = s.split_once('_') else {
        return false;
    };
    is_valid_prefix(prefix.as_bytes())
        && body.len() == 46
        && body.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[test]
fn check_digits_match_zlib_crc32() {
    // zlib.crc32(b"books_0123456789ABCDEFGHIJabcdefghij0123456789") == 0x0B6DB22A
    // (191738410), computed independently with Python's zlib; in base62 that is
    // 0*62^5 + 12*62^4 + 60*62^3 + 31*62^2 + 57*62 + 0 → "0CyVv0".
    let covered = "books_0123456789ABCDEFGHIJabcdefghij0123456789";
    assert_eq!(crc32fast::hash(covered.as_bytes()), 0x0B6D_B22A);
    assert_eq!(&encode_check(0x0B6D_B22A), b"0CyVv0");
    let token = format!("{covered}0CyVv0");
    assert!(Token::parse(&token).is_ok());
    // The well-known check value of CRC-32/ISO-HDLC.
    assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926);
}

#[test]
fn check_encoding_pads_and_round_trips() {
    assert_eq!(&encode_check(0), b"000000");
    assert_eq!(&encode_check(61), b"00000z");
    assert_eq!(&encode_check(u32::MAX), b"4gfFC3");
    for v in [0, 1, 61, 62, 3843, 1 << 31, u32::MAX] {
        assert_eq!(decode_check(&encode_check(v)), Some(v));
    }
    assert_eq!(decode_check(b"zzzzzz"), None, "above u32::MAX");
}

#[test]
fn rejects_wrong_prefix_and_shapes() {
    let format = TokenFormat::new("books").unwrap();
    let other = TokenFormat::new("music").unwrap().generate();
    assert_eq!(
        format.parse(other.expose_secret()).unwrap_err(),
        TokenError::UnknownPrefix
    );
    for bad in [
        "",
        "books",
        "books_",
        "Books_0123456789ABCDEFGHIJabcdefghij01234567890CyVv0",
        "b_0123456789ABCDEFGHIJabcdefghij01234567890CyVv0",
        "books-0123456789ABCDEFGHIJabcdefghij01234567890CyVv0",
        "books_0123456789ABCDEFGHIJabcdefghij0123456789-ySMWZ",
        "books_0123456789ABCDEFGHIJabcdefghij01234567890CyVv0 ",
        "bööks_0123456789ABCDEFGHIJabcdefghij0123456780CyVv0",
    ] {
        assert_eq!(
            format.parse(bad).unwrap_err(),
            TokenError::Malformed,
            "{bad}"
        );
    }
    assert_eq!(
        format
            .parse("books_0123456789ABCDEFGHIJabcdefghij01234567890CyVv1")
            .unwrap_err(),
        TokenError::Checksum
    );
}

#[test]
fn the_byte_table_agrees_with_the_alphabet() {
    for byte in 0..=u8::MAX {
        let class = CLASS[usize::from(byte)];
        assert_eq!(
            class & NOT_BASE62 == 0,
            byte.is_ascii_alphanumeric(),
            "{byte}"
        );
        assert_eq!(
            class & NOT_PREFIX == 0,
            byte.is_ascii_lowercase() || byte.is_ascii_digit(),
            "{byte}"
        );
        if byte.is_ascii_alphanumeric() {
            let value = ALPHABET.iter().position(|&a| a == byte).unwrap();
            assert_eq!(usize::from(class & DIGIT_VALUE), value, "{byte}");
        }
    }
}

#[test]
fn check_borrows_what_parse_copies() {
    let format = TokenFormat::new("books").unwrap();
    let token = format.generate();
    let header = format!("Bearer {}", token.expose_secret());
    let checked = format.check(&header[7..]).unwrap();
    assert_eq!(checked.expose_secret(), token.expose_secret());
    assert_eq!(checked.prefix(), "books");
    assert_eq!(checked.to_token(), token);
    assert_eq!(TokenRef::from(&token), checked);
    assert_eq!(format!("{checked:?}"), "TokenRef([redacted])");
    assert_eq!(format.check("books_x"), Err(TokenError::Malformed));
}

#[test]
fn hint_shows_prefix_and_last_four() {
    let token = Token::parse("books_0123456789ABCDEFGHIJabcdefghij01234567890CyVv0").unwrap();
    assert_eq!(token.hint().as_str(), "books_…yVv0");
}

#[test]
fn debug_and_display_redact() {
    let token = TokenFormat::new("books").unwrap().generate();
    let secret = &token.expose_secret()[6..];
    for shown in [
        format!("{token:?}"),
        format!("{token}"),
        format!("{token:#?}"),
    ] {
        assert!(!shown.contains("books"), "{shown}");
        for window in secret.as_bytes().windows(4) {
            assert!(!shown.contains(std::str::from_utf8(window).unwrap()));
        }
    }
}

fn prefix_strategy() -> impl Strategy<Value = Prefix> {
    "[a-z][a-z0-9]{1,15}".prop_map(|p| Prefix::new(p).unwrap())
}

proptest! {
    #[test]
    fn generated_tokens_parse_and_match_the_regex(prefix in prefix_strategy()) {
        let token = Token::generate(&prefix);
        prop_assert!(is_token_shape(token.expose_secret()));
        let format = TokenFormat::new(prefix.clone()).unwrap();
        let parsed = format.parse(token.expose_secret()).unwrap();
        prop_assert_eq!(parsed.prefix(), prefix.as_str());
        prop_assert_eq!(parsed.expose_secret(), token.expose_secret());
    }

    #[test]
    fn every_substitution_is_rejected(
        prefix in prefix_strategy(),
        position in any::<prop::sample::Index>(),
        replacement in prop::sample::select(
            b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-".to_vec()
        ),
    ) {
        let token = Token::generate(&prefix);
        let mut bytes = token.expose_secret().as_bytes().to_vec();
        let i = position.index(bytes.len());
        prop_assume!(bytes[i] != replacement);
        bytes[i] = replacement;
        let mutated = String::from_utf8(bytes).unwrap();
        prop_assert!(Token::parse(&mutated).is_err());
    }

    #[test]
    fn every_substitution_of_one_token_is_rejected(prefix in prefix_strategy()) {
        let token = Token::generate(&prefix);
        let original = token.expose_secret().as_bytes().to_vec();
        for i in 0..original.len() {
            for &c in ALPHABET.iter().chain(b"_") {
                if c == original[i] {
                    continue;
                }
                let mut bytes = original.clone();
                bytes[i] = c;
                let mutated = String::from_utf8(bytes).unwrap();
                prop_assert!(Token::parse(&mutated).is_err(), "{} at {}", c as char, i);
            }
        }
    }

    #[test]
    fn every_adjacent_swap_is_rejected(prefix in prefix_strategy()) {
        let token = Token::generate(&prefix);
        let original = token.expose_secret().as_bytes().to_vec();
        for i in 0..original.len() - 1 {
            if original[i] == original[i + 1] {
                continue;
            }
            let mut bytes = original.clone();
            bytes.swap(i, i + 1);
            let mutated = String::from_utf8(bytes).unwrap();
            prop_assert!(Token::parse(&mutated).is_err(), "swap at {}", i);
        }
    }

    #[test]
    fn arbitrary_strings_never_panic(s in ".{0,80}") {
        let _ = Token::parse(&s);
    }

    #[test]
    fn the_table_driven_check_agrees_with_a_plain_one(
        s in prop_oneof![
            "[a-z][a-z0-9]{1,15}_[0-9A-Za-z]{46}",
            "[a-zA-Z0-9_\u{80}-\u{ff}]{45,70}",
        ],
        fix in any::<bool>(),
    ) {
        // Half the shapes get their true check digits, so the success path is exercised.
        let s = match (fix, s.len().checked_sub(CHECK_LEN)) {
            (true, Some(cut)) if s.is_char_boundary(cut) => {
                let covered = &s[..cut];
                let check = encode_check(crc32fast::hash(covered.as_bytes()));
                format!("{covered}{}", std::str::from_utf8(&check).unwrap())
            }
            _ => s,
        };
        let plain = is_token_shape(&s) && {
            let (covered, check) = s.split_at(s.len() - CHECK_LEN);
            let value = check.bytes().fold(0_u64, |value, d| {
                let digit = ALPHABET.iter().position(|&a| a == d).unwrap() as u64;
                value * 62 + digit
            });
            value == u64::from(crc32fast::hash(covered.as_bytes()))
        };
        prop_assert_eq!(Token::parse(&s).is_ok(), plain);
    }
}
