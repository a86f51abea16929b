//! Server child processes and their line protocol.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
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
