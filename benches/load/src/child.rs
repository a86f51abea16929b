//! Server child processes and their line protocol.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use crate::BoxError;

/// How long a server may take to start (migrations, key creation).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// `getconf CLK_TCK`, the unit of `/proc/<pid>/stat` times.
fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|output| String::from_utf8(output.stdout).ok()?.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// What a server counted (`stats` on its standard input): store lookups, failed
/// verifications charged to a failure budget (401) and requests refused because a budget was
/// spent (429). Zeros for servers that do not count them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ServerStats {
    pub(crate) lookups: u64,
    pub(crate) charged: u64,
    pub(crate) refused: u64,
}

impl ServerStats {
    /// Reads `lookups=<n> charged=<n> refused=<n>`, ignoring other fields.
    pub(crate) fn parse(text: &str) -> Result<Self, BoxError> {
        let mut stats = Self::default();
        for field in text.split_whitespace() {
            let (name, value) = field
                .split_once('=')
                .ok_or_else(|| format!("unexpected server count {field}"))?;
            match name {
                "lookups" => stats.lookups = value.parse()?,
                "charged" => stats.charged = value.parse()?,
                "refused" => stats.refused = value.parse()?,
                _ => {}
            }
        }
        Ok(stats)
    }

    /// What happened between `earlier` and `self`.
    pub(crate) fn since(self, earlier: Self) -> Self {
        Self {
            lookups: self.lookups.saturating_sub(earlier.lookups),
            charged: self.charged.saturating_sub(earlier.charged),
            refused: self.refused.saturating_sub(earlier.refused),
        }
    }

    /// Sums counts of several runs.
    pub(crate) fn add(self, other: Self) -> Self {
        Self {
            lookups: self.lookups + other.lookups,
            charged: self.charged + other.charged,
            refused: self.refused + other.refused,
        }
    }
}

/// A running server process.
#[derive(Debug)]
pub(crate) struct Server {
    pub(crate) name: String,
    pub(crate) addr: String,
    pub(crate) tokens: Vec<String>,
    child: Child,
    stdout: Lines<BufReader<ChildStdout>>,
}

/// How to start one server.
#[derive(Debug, Clone)]
pub(crate) struct Launch {
    /// Shown in errors.
    pub(crate) name: String,
    /// The program.
    pub(crate) program: PathBuf,
    /// Its arguments.
    pub(crate) args: Vec<String>,
    /// The CPU to pin it to, if any.
    pub(crate) cpu: Option<usize>,
}

impl Launch {
    /// `program args…`.
    pub(crate) fn new(name: impl Into<String>, program: &Path, args: &[&str]) -> Self {
        Self {
            name: name.into(),
            program: program.to_owned(),
            args: args.iter().map(|arg| (*arg).to_owned()).collect(),
            cpu: None,
        }
    }

    /// Adds arguments.
    pub(crate) fn args<I, A>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = A>,
        A: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Pins the process to `cpu` with `taskset`.
    pub(crate) fn pinned(mut self, cpu: Option<usize>) -> Self {
        self.cpu = cpu;
        self
    }

    /// Starts the server and waits until it says `ready`.
    pub(crate) async fn start(self) -> Result<Server, BoxError> {
        let mut command = match self.cpu {
            Some(cpu) => {
                let mut command = Command::new("taskset");
                command.arg("-c").arg(cpu.to_string()).arg(&self.program);
                command
            }
            None => Command::new(&self.program),
        };
        command
            .args(&self.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .map_err(|err| format!("cannot start {}: {err}", self.program.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let mut addr = None;
        let mut tokens = Vec::new();
        let handshake = async {
            while let Some(line) = lines.next_line().await? {
                if let Some(value) = line.strip_prefix("addr ") {
                    addr = Some(value.to_owned());
                } else if let Some(value) = line.strip_prefix("token ") {
                    tokens.push(value.to_owned());
                } else if line == "ready" {
                    return Ok::<bool, BoxError>(true);
                }
            }
            Ok(false)
        };
        let ready = tokio::time::timeout(START_TIMEOUT, handshake)
            .await
            .map_err(|_| format!("{} did not start within {START_TIMEOUT:?}", self.name))??;
        if !ready {
            return Err(format!("{} exited before it was ready", self.name).into());
        }
        Ok(Server {
            name: self.name,
            addr: addr.ok_or("the server printed no address")?,
            tokens,
            child,
            stdout: lines,
        })
    }
}

impl Server {
    /// `http://addr/`.
    pub(crate) fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// CPU time the server process has used so far (all threads, user and system).
    pub(crate) fn cpu_time(&self) -> Option<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()?)).ok()?;
        // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        Some(Duration::from_secs_f64(
            ticks as f64 / clock_ticks_per_second(),
        ))
    }

    /// Asks the server for its counts.
    pub(crate) async fn stats(&mut self) -> Result<ServerStats, BoxError> {
        let stdin = self.child.stdin.as_mut().ok_or("the server is stopping")?;
        stdin.write_all(b"stats\n").await?;
        stdin.flush().await?;
        let answer = async {
            while let Some(line) = self.stdout.next_line().await? {
                if let Some(counts) = line.strip_prefix("stats ") {
                    return ServerStats::parse(counts);
                }
            }
            Err::<ServerStats, BoxError>(format!("{} exited", self.name).into())
        };
        tokio::time::timeout(Duration::from_secs(10), answer)
            .await
            .map_err(|_| format!("{} did not answer stats", self.name))?
    }

    /// The first token the server issued.
    pub(crate) fn token(&self) -> Result<&str, BoxError> {
        self.tokens
            .first()
            .map(String::as_str)
            .ok_or_else(|| format!("{} issued no token", self.name).into())
    }

    /// Closes the server's standard input (its stop signal), waits for it to finish and
    /// returns what it printed after `ready`.
    pub(crate) async fn stop(mut self) -> Result<Vec<String>, BoxError> {
        drop(self.child.stdin.take());
        let mut printed = Vec::new();
        while let Some(line) = self.stdout.next_line().await? {
            printed.push(line);
        }
        let status = self.child.wait().await?;
        if !status.success() {
            return Err(format!("{} exited with {status}", self.name).into());
        }
        Ok(printed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_server_counts() {
        let before = ServerStats::parse("lookups=3 charged=2 refused=10").unwrap();
        let after = ServerStats::parse("lookups=40 charged=32 refused=99 other=1").unwrap();
        let run = after.since(before);
        assert_eq!(
            run,
            ServerStats {
                lookups: 37,
                charged: 30,
                refused: 89
            }
        );
        assert_eq!(run.add(before).refused, 99);
        assert!(ServerStats::parse("lookups").is_err());
    }
}
