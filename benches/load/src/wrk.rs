//! Driving a server with `wrk` and reading its report.

use std::path::Path;
use std::time::Duration;

use tokio::process::Command;

use crate::BoxError;
use crate::child::ServerStats;

/// How `wrk` is run; the same for every scenario (the duration is given per run).
#[derive(Debug, Clone)]
pub(crate) struct Load {
    pub(crate) threads: usize,
    pub(crate) connections: usize,
    pub(crate) cpu: Option<usize>,
}

/// One `wrk` run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Sample {
    pub(crate) requests_per_sec: f64,
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
    pub(crate) requests: u64,
    pub(crate) non_2xx: u64,
    pub(crate) socket_errors: u64,
    /// Server CPU time per request, where it could be read.
    pub(crate) server_cpu_per_request: Option<Duration>,
    /// Forged-token runs: tokens sent more than once (should be 0).
    pub(crate) repeated: u64,
    /// What the server counted during the run, for servers that count.
    pub(crate) server_stats: Option<ServerStats>,
}

impl Load {
    /// Runs `wrk` against `url` with `Authorization: Bearer token` for `duration`.
    pub(crate) async fn run_for(
        &self,
        url: &str,
        token: &str,
        duration: Duration,
    ) -> Result<Sample, BoxError> {
        let header = format!("Authorization: Bearer {token}");
        let (report, _) = self
            .wrk(url, duration, &["-H", header.as_str()], &[])
            .await?;
        parse(&report).ok_or_else(|| format!("cannot read wrk's report:\n{report}").into())
    }

    /// Runs `wrk -s script url script_args…` for `duration`; returns the sample and the whole
    /// report, with what the script printed.
    pub(crate) async fn run_script(
        &self,
        url: &str,
        script: &Path,
        script_args: &[String],
        duration: Duration,
    ) -> Result<(Sample, String), BoxError> {
        let script = script.display().to_string();
        let (report, errors) = self
            .wrk(url, duration, &["-s", script.as_str()], script_args)
            .await?;
        // wrk reports a failing script on standard error and goes on without it.
        if !errors.trim().is_empty() {
            return Err(format!("wrk's script failed: {errors}{report}").into());
        }
        let sample =
            parse(&report).ok_or_else(|| format!("cannot read wrk's report:\n{report}"))?;
        Ok((sample, report))
    }

    /// Runs wrk with `options` before the URL and `after` behind it; returns its report and
    /// what it wrote to standard error.
    async fn wrk(
        &self,
        url: &str,
        duration: Duration,
        options: &[&str],
        after: &[String],
    ) -> Result<(String, String), BoxError> {
        let mut command = match self.cpu {
            Some(cpu) => {
                let mut command = Command::new("taskset");
                command.arg("-c").arg(cpu.to_string()).arg("wrk");
                command
            }
            None => Command::new("wrk"),
        };
        let output = command
            .arg(format!("-t{}", self.threads))
            .arg(format!("-c{}", self.connections))
            // wrk takes whole seconds.
            .arg(format!("-d{}s", duration.as_secs().max(1)))
            .arg("--latency")
            .args(options)
            .arg(url)
            .args(after)
            .output()
            .await
            .map_err(|err| format!("cannot run wrk (install it: apt-get install wrk): {err}"))?;
        let report = String::from_utf8_lossy(&output.stdout).into_owned();
        let errors = String::from_utf8_lossy(&output.stderr).into_owned();
        if !output.status.success() {
            return Err(format!("wrk failed ({}): {report}{errors}", output.status).into());
        }
        Ok((report, errors))
    }
}

/// `215.00us`, `1.20ms`, `1.01s`.
fn parse_duration(text: &str) -> Option<Duration> {
    let (number, scale) = if let Some(n) = text.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        return None;
    };
    let seconds: f64 = number.parse().ok()?;
    Some(Duration::from_secs_f64(seconds * scale))
}

fn parse(report: &str) -> Option<Sample> {
    let mut rps = None;
    let mut p50 = None;
    let mut p99 = None;
    let mut requests = None;
    let mut non_2xx = 0;
    let mut socket_errors = 0;
    for line in report.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", value] => rps = value.parse().ok(),
            ["50%", value] => p50 = parse_duration(value),
            ["99%", value] => p99 = parse_duration(value),
            [count, "requests", "in", ..] => requests = count.parse().ok(),
            ["Non-2xx", "or", "3xx", "responses:", count] => non_2xx = count.parse().ok()?,
            ["Socket", "errors:", rest @ ..] => {
                // `connect 0, read 0, write 0, timeout 0`
                socket_errors = rest
                    .iter()
                    .filter_map(|word| word.trim_end_matches(',').parse::<u64>().ok())
                    .sum();
            }
            _ => {}
        }
    }
    Some(Sample {
        requests_per_sec: rps?,
        p50: p50?,
        p99: p99?,
        requests: requests?,
        non_2xx,
        socket_errors,
        server_cpu_per_request: None,
        repeated: 0,
        server_stats: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_wrk_report() {
        let report = "Running 5s test @ http://127.0.0.1:4000/
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   412.35us  101.22us   4.21ms   90.11%
    Req/Sec    76.98k     2.11k   80.01k    72.00%
  Latency Distribution
     50%  398.00us
     75%  441.00us
     90%  501.00us
     99%    1.02ms
  383041 requests in 5.00s, 52.97MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 12
Requests/sec:  76601.13
Transfer/sec:     10.59MB
";
        let sample = parse(report).unwrap();
        assert!((sample.requests_per_sec - 76_601.13).abs() < 1e-6);
        assert_eq!(sample.p50, Duration::from_micros(398));
        assert_eq!(sample.p99, Duration::from_micros(1020));
        assert_eq!(sample.requests, 383_041);
        assert_eq!(sample.non_2xx, 12);
        assert_eq!(sample.socket_errors, 3);
    }
}
