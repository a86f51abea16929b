//! A well-behaved client: requests at a fixed rate over a few keep-alive connections, well
//! below what the server can answer, so that its achieved rate shows whether another client's
//! flood takes capacity from it. (A closed-loop client on a saturated server would only show
//! that two clients share it.)
//!
//! `loadbench pace …` runs it in its own process (pinned like wrk); it connects first, waits
//! `--delay-ms`, sends for `--duration-ms` and prints one line:
//! `paced ok=<n> other=<n> errors=<n> window_ms=<n> p50_us=<n> p99_us=<n> max_lag_us=<n>`.
//! Each connection sends its next request when it is due, or at once when it is late (one
//! request in flight per connection, HTTP/1.1). Latency is from sending a request to the end
//! of its response; a response that ends after the window is not counted.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::BoxError;
use crate::wrk::Sample;

/// How long after its window the client waits for answers before giving up.
const GRACE: Duration = Duration::from_secs(2);

#[derive(Debug)]
struct PaceOptions {
    addr: String,
    token: String,
    forwarded_for: Option<String>,
    rate: f64,
    connections: usize,
    duration: Duration,
    delay: Duration,
}

fn parse(args: &[String]) -> Result<PaceOptions, BoxError> {
    let mut options = PaceOptions {
        addr: String::new(),
        token: String::new(),
        forwarded_for: None,
        rate: 10_000.0,
        connections: 16,
        duration: Duration::from_secs(5),
        delay: Duration::ZERO,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--addr" => options.addr = value()?.clone(),
            "--token" => options.token = value()?.clone(),
            "--forwarded-for" => options.forwarded_for = Some(value()?.clone()),
            "--rate" => options.rate = value()?.parse()?,
            "--connections" => options.connections = value()?.parse()?,
            "--duration-ms" => options.duration = Duration::from_millis(value()?.parse()?),
            "--delay-ms" => options.delay = Duration::from_millis(value()?.parse()?),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if options.addr.is_empty() || options.token.is_empty() {
        return Err("pace needs --addr and --token".into());
    }
    if options.rate <= 0.0 || options.connections == 0 {
        return Err("pace needs a positive --rate and --connections".into());
    }
    Ok(options)
}

/// Runs `loadbench pace …` with `args` after `pace`.
pub(crate) fn main(args: &[String]) -> Result<(), BoxError> {
    let options = parse(args)?;
    let line = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run(options))?;
    println!("paced {line}");
    Ok(())
}

/// What one connection saw.
#[derive(Debug, Default)]
struct Seen {
    ok: u64,
    other: u64,
    errors: u64,
    latencies_us: Vec<u32>,
    max_lag: Duration,
}

async fn run(options: PaceOptions) -> Result<String, BoxError> {
    let forwarded = options
        .forwarded_for
        .as_deref()
        .map_or_else(String::new, |ip| format!("X-Forwarded-For: {ip}\r\n"));
    let request: Arc<[u8]> = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n{forwarded}\r\n",
        options.addr, options.token
    )
    .into_bytes()
    .into();
    let mut streams = Vec::with_capacity(options.connections);
    for _ in 0..options.connections {
        let stream = TcpStream::connect(&options.addr).await?;
        stream.set_nodelay(true)?;
        streams.push(stream);
    }
    let start = Instant::now() + options.delay;
    let end = start + options.duration;
    // Connection i sends at start + (i + k * connections) / rate.
    let spacing = Duration::from_secs_f64(1.0 / options.rate);
    let interval = spacing * u32::try_from(options.connections)?;
    let mut tasks = Vec::with_capacity(options.connections);
    for (i, stream) in streams.into_iter().enumerate() {
        let first = start + spacing * u32::try_from(i)?;
        let request = Arc::clone(&request);
        let addr = options.addr.clone();
        tasks.push(tokio::spawn(connection(
            stream, addr, request, first, interval, end,
        )));
    }
    let mut all = Seen::default();
    for task in tasks {
        let seen = task.await?;
        all.ok += seen.ok;
        all.other += seen.other;
        all.errors += seen.errors;
        all.latencies_us.extend(seen.latencies_us);
        all.max_lag = all.max_lag.max(seen.max_lag);
    }
    all.latencies_us.sort_unstable();
    let percentile = |p: f64| -> u32 {
        let n = all.latencies_us.len();
        if n == 0 {
            return 0;
        }
        let rank = ((p * n as f64).ceil() as usize).clamp(1, n);
        all.latencies_us[rank - 1]
    };
    Ok(format!(
        "ok={} other={} errors={} window_ms={} p50_us={} p99_us={} max_lag_us={}",
        all.ok,
        all.other,
        all.errors,
        options.duration.as_millis(),
        percentile(0.50),
        percentile(0.99),
        all.max_lag.as_micros(),
    ))
}

async fn connection(
    mut stream: TcpStream,
    addr: String,
    request: Arc<[u8]>,
    first: Instant,
    interval: Duration,
    end: Instant,
) -> Seen {
    let mut seen = Seen::default();
    let mut buffer = Vec::with_capacity(4096);
    let mut due = first;
    while due < end {
        tokio::time::sleep_until(due.into()).await;
        let sent = Instant::now();
        seen.max_lag = seen.max_lag.max(sent.saturating_duration_since(due));
        due += interval;
        let exchange = exchange(&mut stream, &request, &mut buffer);
        match tokio::time::timeout_at((end + GRACE).into(), exchange).await {
            Ok(Ok(status)) => {
                let done = Instant::now();
                if done > end {
                    break;
                }
                let micros = done.duration_since(sent).as_micros();
                seen.latencies_us
                    .push(u32::try_from(micros).unwrap_or(u32::MAX));
                if status == 200 {
                    seen.ok += 1;
                } else {
                    seen.other += 1;
                }
            }
            Ok(Err(_)) => {
                seen.errors += 1;
                match TcpStream::connect(&addr).await {
                    Ok(fresh) => {
                        let _ = fresh.set_nodelay(true);
                        stream = fresh;
                    }
                    Err(_) => break,
                }
            }
            Err(_) => {
                seen.errors += 1;
                break;
            }
        }
    }
    seen
}

/// Sends one request and reads its response; returns the status.
async fn exchange(
    stream: &mut TcpStream,
    request: &[u8],
    buffer: &mut Vec<u8>,
) -> Result<u16, BoxError> {
    stream.write_all(request).await?;
    buffer.clear();
    loop {
        if let Some(head_end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buffer[..head_end])?;
            let status: u16 = head.get(9..12).ok_or("short status line")?.parse()?;
            let length: usize = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .ok_or("a response without Content-Length")?;
            let total = head_end + 4 + length;
            while buffer.len() < total {
                if stream.read_buf(buffer).await? == 0 {
                    return Err("the server closed the connection".into());
                }
            }
            return Ok(status);
        }
        if stream.read_buf(buffer).await? == 0 {
            return Err("the server closed the connection".into());
        }
    }
}

/// Starts and reads `loadbench pace` processes.
#[derive(Debug, Clone)]
pub(crate) struct Pacer {
    pub(crate) exe: PathBuf,
    pub(crate) cpu: Option<usize>,
    pub(crate) rate: u64,
    pub(crate) connections: usize,
}

/// A running paced client.
#[derive(Debug)]
pub(crate) struct Pacing {
    child: Child,
    window: Duration,
}

impl Pacer {
    /// Starts a paced client against `addr` with `token`, as the client `forwarded_for`; it
    /// sends during `window`, starting `delay` from now.
    pub(crate) fn start(
        &self,
        addr: &str,
        token: &str,
        forwarded_for: &str,
        window: Duration,
        delay: Duration,
    ) -> Result<Pacing, BoxError> {
        let mut command = match self.cpu {
            Some(cpu) => {
                let mut command = Command::new("taskset");
                command.arg("-c").arg(cpu.to_string()).arg(&self.exe);
                command
            }
            None => Command::new(&self.exe),
        };
        let child = command
            .arg("pace")
            .args([
                "--addr",
                addr,
                "--token",
                token,
                "--forwarded-for",
                forwarded_for,
            ])
            .args(["--rate", &self.rate.to_string()])
            .args(["--connections", &self.connections.to_string()])
            .args(["--duration-ms", &window.as_millis().to_string()])
            .args(["--delay-ms", &delay.as_millis().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|err| format!("cannot start {}: {err}", self.exe.display()))?;
        Ok(Pacing { child, window })
    }
}

impl Pacing {
    /// Waits for the client and reads its line into a [`Sample`]: the achieved rate of 200
    /// responses, latency percentiles, other statuses as non-2xx, failed exchanges as socket
    /// errors.
    pub(crate) async fn finish(self) -> Result<(Sample, Duration), BoxError> {
        let output = self.child.wait_with_output().await?;
        let text = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            return Err(format!("the paced client failed ({}): {text}", output.status).into());
        }
        let line = text
            .lines()
            .find_map(|line| line.strip_prefix("paced "))
            .ok_or_else(|| format!("the paced client printed no counts: {text}"))?;
        let mut fields = std::collections::HashMap::new();
        for field in line.split_whitespace() {
            let (name, value) = field
                .split_once('=')
                .ok_or_else(|| format!("unexpected paced count {field}"))?;
            fields.insert(name, value.parse::<u64>()?);
        }
        let get = |name: &str| {
            fields
                .get(name)
                .copied()
                .ok_or_else(|| format!("the paced client printed no {name}"))
        };
        let ok = get("ok")?;
        let other = get("other")?;
        let sample = Sample {
            requests_per_sec: ok as f64 / self.window.as_secs_f64(),
            p50: Duration::from_micros(get("p50_us")?),
            p99: Duration::from_micros(get("p99_us")?),
            requests: ok + other,
            non_2xx: other,
            socket_errors: get("errors")?,
            server_cpu_per_request: None,
            repeated: 0,
            server_stats: None,
        };
        Ok((sample, Duration::from_micros(get("max_lag_us")?)))
    }
}
