//! `keyward rules`: detection rules for the application's tokens, for gitleaks and for
//! GitHub's custom secret-scanning patterns; and the pattern `keyward scan` searches with.

use keyward_core::{CHECK_LEN, Prefix, SECRET_LEN};
use serde_json::json;

use crate::output;

/// Characters that may stand right before or after a token without making it part of a
/// longer word: anything but the token alphabet and `_`.
const BOUNDARY: &str = "[^0-9A-Za-z_]";

/// The token itself, for any of `prefixes`: `(?:books|jelu)_[0-9A-Za-z]{46}`.
pub(crate) fn token_pattern(prefixes: &[Prefix]) -> String {
    let alternatives: Vec<String> = prefixes
        .iter()
        .map(|prefix| regex::escape(prefix.as_str()))
        .collect();
    format!(
        "(?:{})_[0-9A-Za-z]{{{}}}",
        alternatives.join("|"),
        SECRET_LEN + CHECK_LEN
    )
}

/// The gitleaks rule (Go RE2 syntax, `\b` is an ASCII word boundary there).
pub(crate) fn gitleaks(prefixes: &[Prefix]) -> (String, String, String, Vec<String>) {
    let first = prefixes.first().map_or("keyward", Prefix::as_str);
    let id = format!("keyward-{first}-api-key");
    let names: Vec<String> = prefixes.iter().map(|p| format!("{p}_…")).collect();
    let description = format!("keyward API key ({})", names.join(", "));
    let regex = format!(r"\b{}\b", token_pattern(prefixes));
    let keywords = prefixes.iter().map(|p| format!("{p}_")).collect();
    (id, description, regex, keywords)
}

/// GitHub's custom pattern: the secret format and the patterns before and after it.
pub(crate) fn github(prefixes: &[Prefix]) -> (String, String, String) {
    (
        token_pattern(prefixes),
        format!(r"\A|{BOUNDARY}"),
        format!(r"\z|{BOUNDARY}"),
    )
}

/// Prints the rules `kind` asks for.
pub(crate) fn print(prefixes: &[Prefix], gitleaks_rule: bool, json: bool) {
    if gitleaks_rule {
        let (id, description, regex, keywords) = gitleaks(prefixes);
        if json {
            output::print_json(&json!({
                "id": id,
                "description": description,
                "regex": regex,
                "keywords": keywords,
            }));
            return;
        }
        let keywords: Vec<String> = keywords.iter().map(|k| format!("\"{k}\"")).collect();
        println!(
            "# keyward API keys. gitleaks cannot check the check digits: `keyward scan` does.\n\
             [[rules]]\n\
             id = \"{id}\"\n\
             description = \"{description}\"\n\
             regex = '''{regex}'''\n\
             keywords = [{}]",
            keywords.join(", ")
        );
    } else {
        let (secret, before, after) = github(prefixes);
        if json {
            output::print_json(&json!({
                "secret_format": secret,
                "before_secret": before,
                "after_secret": after,
            }));
            return;
        }
        println!(
            "Secret format:  {secret}\n\
             Before secret:  {before}\n\
             After secret:   {after}"
        );
    }
}

#[cfg(test)]
mod tests {
    use keyward_core::TokenFormat;
    use regex::Regex;

    use super::*;

    fn prefixes() -> Vec<Prefix> {
        vec![Prefix::new("books").unwrap(), Prefix::new("jelu2").unwrap()]
    }

    /// The whole matches of `regex` in `text`.
    fn matches(regex: &Regex, text: &str) -> Vec<String> {
        regex
            .captures_iter(text)
            .map(|c| c.get(1).or_else(|| c.get(0)).unwrap().as_str().to_owned())
            .collect()
    }

    /// Both rules as Rust regexes: gitleaks' whole, GitHub's three parts as GitHub joins them.
    fn rules() -> Vec<(&'static str, Regex)> {
        let (_, _, gitleaks, _) = gitleaks(&prefixes());
        let (secret, before, after) = github(&prefixes());
        vec![
            ("gitleaks", Regex::new(&gitleaks).unwrap()),
            (
                "github",
                Regex::new(&format!("(?:{before})({secret})(?:{after})")).unwrap(),
            ),
        ]
    }

    #[test]
    fn the_rules_match_real_tokens_exactly() {
        for format in [
            TokenFormat::new("books").unwrap(),
            TokenFormat::new("jelu2").unwrap(),
        ] {
            for _ in 0..200 {
                let token = format.generate();
                let token = token.expose_secret();
                for (name, regex) in rules() {
                    for text in [
                        token.to_owned(),
                        format!("key = \"{token}\"\n"),
                        format!("https://x/?api_key={token}&a=1"),
                        format!("Authorization: Bearer {token}"),
                    ] {
                        assert_eq!(matches(&regex, &text), [token], "{name}: {text}");
                    }
                }
            }
        }
    }

    #[test]
    fn the_rules_match_nothing_longer_or_shorter() {
        let token = TokenFormat::new("books").unwrap().generate();
        let token = token.expose_secret();
        for (name, regex) in rules() {
            for text in [
                token[..token.len() - 1].to_owned(),
                format!("{token}A"),
                format!("{token}_"),
                format!("x{token}"),
                format!("_{token}"),
                token.replacen("books", "bookz", 1),
                token.replacen("books", "Books", 1),
                format!("books_{}", "a".repeat(45)),
                format!("books_{}", "a".repeat(47)),
                format!("books_{}-", "a".repeat(45)),
            ] {
                assert!(matches(&regex, &text).is_empty(), "{name}: {text}");
            }
        }
    }

    #[test]
    fn the_gitleaks_rule_names_every_prefix() {
        let (id, description, regex, keywords) = gitleaks(&prefixes());
        assert_eq!(id, "keyward-books-api-key");
        assert!(description.contains("books_…") && description.contains("jelu2_…"));
        assert_eq!(regex, r"\b(?:books|jelu2)_[0-9A-Za-z]{46}\b");
        assert_eq!(keywords, ["books_", "jelu2_"]);
    }
}
