//! The forged-token flood: well-formed tokens with valid check digits that no key has, each
//! sent at most once to a server. The driver writes them to a file, one per line, and `wrk`
//! sends them with `forged.lua`, which reads its share of the file as it goes.

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use keyward::TokenFormat;

use crate::BoxError;
use crate::wrk::{Load, Sample};

/// The wrk script, kept beside the crate and written to the scratch directory at run time.
const SCRIPT: &str = include_str!("../forged.lua");

/// Makes distinct forged tokens quickly.
///
/// `TokenFormat::generate` draws every character from the operating system's random source,
/// about 17 µs a token here: minutes for the millions a run sends. A forger needs no secrecy,
/// only tokens keyward cannot tell from real ones, so this one computes them as anyone can:
/// the prefix, a 40-character base-62 secret (the token's index, then splitmix64 output),
/// and the six base-62 check digits of its CRC-32. Each is checked with keyward's own parser.
#[derive(Debug)]
pub(crate) struct Forger {
    format: TokenFormat,
    prefix: String,
    state: u64,
    index: u64,
    crc_table: [u32; 256],
}

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const SECRET_LEN: usize = 40;
/// Leading secret characters that hold the token's index: distinct by construction.
const INDEX_LEN: usize = 10;

impl Forger {
    pub(crate) fn new(prefix: &str) -> Result<Self, BoxError> {
        let mut crc_table = [0u32; 256];
        for (byte, slot) in (0u32..).zip(crc_table.iter_mut()) {
            let mut crc = byte;
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
            *slot = crc;
        }
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos() as u64)
            ^ u64::from(std::process::id()).rotate_left(32);
        Ok(Self {
            format: TokenFormat::new(prefix)?,
            prefix: prefix.to_owned(),
            state: seed,
            index: 0,
            crc_table,
        })
    }

    fn splitmix64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn crc32(&self, bytes: &[u8]) -> u32 {
        !bytes.iter().fold(!0u32, |crc, &byte| {
            self.crc_table[((crc ^ u32::from(byte)) & 0xFF) as usize] ^ (crc >> 8)
        })
    }

    /// Writes base-62 digits of `value` into `out`, most significant first.
    fn base62(mut value: u64, out: &mut [u8]) {
        for slot in out.iter_mut().rev() {
            *slot = ALPHABET[(value % 62) as usize];
            value /= 62;
        }
    }

    /// The next token as a string.
    pub(crate) fn token(&mut self) -> Result<String, BoxError> {
        let mut token = Vec::new();
        self.next(&mut token)?;
        Ok(String::from_utf8(token)?)
    }

    /// The next token, different from every earlier one.
    fn next(&mut self, token: &mut Vec<u8>) -> Result<(), BoxError> {
        token.clear();
        token.extend_from_slice(self.prefix.as_bytes());
        token.push(b'_');
        let secret_start = token.len();
        token.resize(secret_start + SECRET_LEN, b'0');
        let (index, random) = token[secret_start..].split_at_mut(INDEX_LEN);
        Self::base62(self.index, index);
        self.index += 1;
        for part in random.chunks_mut(10) {
            let value = self.splitmix64();
            Self::base62(value, part);
        }
        let check_start = token.len();
        token.resize(check_start + 6, b'0');
        let crc = self.crc32(&token[..check_start]);
        Self::base62(u64::from(crc), &mut token[check_start..]);
        let text = std::str::from_utf8(token)?;
        self.format
            .parse(text)
            .map_err(|err| format!("a forged token keyward does not accept ({err:?}): {text}"))?;
        Ok(())
    }
}

/// The token file and the script that reads it.
#[derive(Debug)]
pub(crate) struct TokenFile {
    path: PathBuf,
    script: PathBuf,
    writer: BufWriter<File>,
    forger: Forger,
    count: u64,
}

impl TokenFile {
    /// An empty token file in `dir` for tokens with `prefix`, and the script beside it.
    pub(crate) fn create(dir: &Path, prefix: &str) -> Result<Self, BoxError> {
        let script = dir.join("forged.lua");
        std::fs::write(&script, SCRIPT)?;
        let path = dir.join("forged-tokens.txt");
        Ok(Self {
            writer: BufWriter::with_capacity(1 << 20, File::create(&path)?),
            path,
            script,
            forger: Forger::new(prefix)?,
            count: 0,
        })
    }

    /// Makes the file hold at least `count` tokens, generating the missing ones.
    pub(crate) fn ensure(&mut self, count: u64) -> Result<(), BoxError> {
        if self.count >= count {
            return Ok(());
        }
        let started = Instant::now();
        let missing = count - self.count;
        let mut token = Vec::with_capacity(64);
        while self.count < count {
            self.forger.next(&mut token)?;
            token.push(b'\n');
            self.writer.write_all(&token)?;
            self.count += 1;
        }
        self.writer.flush()?;
        // Written back now rather than during the next measured run.
        self.writer.get_ref().sync_data()?;
        eprintln!(
            "forged tokens: {missing} more generated in {:.1} s ({} in the file)",
            started.elapsed().as_secs_f64(),
            self.count
        );
        Ok(())
    }
}

/// Where one server's tokens continue in the file, so that no server sees a token twice.
#[derive(Debug, Default)]
pub(crate) struct Stream {
    next: u64,
}

/// How a flood is sent.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Flood {
    /// Tokens set aside per second of a run (per wrk thread): more than wrk can send, so that
    /// none is sent twice.
    pub(crate) tokens_per_second: u64,
}

impl Flood {
    /// Tokens each wrk thread may use in a run of `duration`.
    fn per_thread(&self, duration: Duration) -> u64 {
        self.tokens_per_second * duration.as_secs().max(1)
    }

    /// Makes sure the file holds the tokens a run of `duration` on `stream` may use; call it
    /// before anything is measured, since generating them takes a while.
    pub(crate) fn prepare(
        &self,
        load: &Load,
        file: &mut TokenFile,
        stream: &Stream,
        duration: Duration,
    ) -> Result<(), BoxError> {
        let threads = load.threads.max(1) as u64;
        file.ensure(stream.next + self.per_thread(duration) * threads)
    }

    /// Floods `url` for `duration` with the next tokens of `stream`, optionally as the client
    /// `forwarded_for` behind a trusted proxy; [`prepare`](Self::prepare) first. The sample's
    /// `repeated` counts tokens sent again (0 unless the run outpaced `tokens_per_second`).
    pub(crate) async fn run(
        &self,
        load: &Load,
        file: &TokenFile,
        stream: &mut Stream,
        url: &str,
        forwarded_for: Option<&str>,
        duration: Duration,
    ) -> Result<Sample, BoxError> {
        let threads = load.threads.max(1) as u64;
        let per_thread = self.per_thread(duration);
        if file.count < stream.next + per_thread * threads {
            return Err("the forged token file was not prepared for this run".into());
        }
        let mut args = vec![
            file.path.display().to_string(),
            stream.next.to_string(),
            per_thread.to_string(),
        ];
        if let Some(forwarded_for) = forwarded_for {
            args.push(forwarded_for.to_owned());
        }
        let (mut sample, report) = load.run_script(url, &file.script, &args, duration).await?;
        let counts = report
            .lines()
            .find_map(|line| line.trim().strip_prefix("forged used "))
            .ok_or_else(|| format!("forged.lua printed no counts:\n{report}"))?;
        // `<used> repeated <n> span <n>`
        let words: Vec<&str> = counts.split_whitespace().collect();
        let (repeated, span) = match words.as_slice() {
            [_, "repeated", repeated, "span", span] => (repeated.parse()?, span.parse::<u64>()?),
            _ => return Err(format!("unexpected counts from forged.lua: {counts}").into()),
        };
        stream.next += span;
        sample.repeated = repeated;
        Ok(sample)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forges_distinct_tokens_keyward_accepts() {
        let mut forger = Forger::new("bench").unwrap();
        let format = TokenFormat::new("bench").unwrap();
        let mut seen = std::collections::HashSet::new();
        let mut token = Vec::new();
        for _ in 0..10_000 {
            forger.next(&mut token).unwrap();
            let text = String::from_utf8(token.clone()).unwrap();
            assert!(format.parse(&text).is_ok());
            assert_eq!(text.len(), format.generate().expose_secret().len());
            assert!(seen.insert(text));
        }
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        let forger = Forger::new("bench").unwrap();
        assert_eq!(forger.crc32(b"123456789"), 0xCBF4_3926);
    }
}
