//! Medians, ratios, targets and the printed report.

use std::fmt::Write as _;
use std::time::Duration;

use keyward::DEFAULT_USAGE_FLUSH_INTERVAL;

use crate::BoxError;
use crate::writes::Sent;
use crate::wrk::Sample;

/// The machine the run is on.
#[derive(Debug, Clone)]
pub(crate) struct Machine {
    cpus: usize,
    model: String,
    memory: String,
    load: String,
}

impl Machine {
    pub(crate) fn read() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let model = cpuinfo
            .lines()
            .find_map(|line| line.strip_prefix("model name"))
            .map(|rest| rest.trim_start_matches([' ', '\t', ':']).trim().to_owned())
            .unwrap_or_else(|| "unknown CPU".to_owned());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory = meminfo
            .lines()
            .find_map(|line| line.strip_prefix("MemTotal:"))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
            .map_or_else(
                || "unknown memory".to_owned(),
                |kib| format!("{:.1} GiB", kib / 1024.0 / 1024.0),
            );
        let load = std::fs::read_to_string("/proc/loadavg")
            .map(|text| {
                text.split_whitespace()
                    .take(3)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_else(|_| "unknown".to_owned());
        Self {
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            model,
            memory,
            load,
        }
    }

    pub(crate) fn describe(&self) -> String {
        format!(
            "{} CPUs ({}), {}, load average {}",
            self.cpus, self.model, self.memory, self.load
        )
    }
}

/// One scenario's medians.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    label: &'static str,
    requests_per_sec: f64,
    p50: Duration,
    p99: Duration,
    cpu_per_request: Option<Duration>,
    responses: String,
    as_expected: bool,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        f64::midpoint(values[n / 2 - 1], values[n / 2])
    }
}

impl Row {
    pub(crate) fn new(label: &'static str, samples: &[Sample], expect: u16) -> Self {
        let requests: u64 = samples.iter().map(|s| s.requests).sum();
        let non_2xx: u64 = samples.iter().map(|s| s.non_2xx).sum();
        let socket_errors: u64 = samples.iter().map(|s| s.socket_errors).sum();
        let as_expected = socket_errors == 0
            && if expect < 300 {
                non_2xx == 0
            } else {
                non_2xx == requests
            };
        let responses = if as_expected {
            format!("all {expect}")
        } else {
            format!("{non_2xx} of {requests} non-2xx, {socket_errors} socket errors")
        };
        Self {
            label,
            requests_per_sec: median(samples.iter().map(|s| s.requests_per_sec).collect()),
            p50: Duration::from_secs_f64(median(
                samples.iter().map(|s| s.p50.as_secs_f64()).collect(),
            )),
            p99: Duration::from_secs_f64(median(
                samples.iter().map(|s| s.p99.as_secs_f64()).collect(),
            )),
            cpu_per_request: {
                let cpu: Vec<f64> = samples
                    .iter()
                    .filter_map(|s| s.server_cpu_per_request.map(|d| d.as_secs_f64()))
                    .collect();
                (!cpu.is_empty()).then(|| Duration::from_secs_f64(median(cpu)))
            },
            responses,
            as_expected,
        }
    }
}

/// Rows with their ratios to their baselines.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    rows: Vec<(Row, f64)>,
}

impl Table {
    pub(crate) fn new(rows: Vec<Row>, baselines: &[usize]) -> Self {
        let ratios: Vec<f64> = baselines
            .iter()
            .enumerate()
            .map(|(i, &base)| rows[i].requests_per_sec / rows[base].requests_per_sec)
            .collect();
        Self {
            rows: rows.into_iter().zip(ratios).collect(),
        }
    }

    fn ratio(&self, label: &str) -> Option<f64> {
        self.rows
            .iter()
            .find(|(row, _)| row.label == label)
            .map(|(_, ratio)| *ratio)
    }
}

/// One approach's store writes for a fixed number of requests.
#[derive(Debug, Clone)]
pub(crate) struct WriteRow {
    label: &'static str,
    rows: Option<u64>,
    calls: Option<u64>,
    sent: Sent,
    keys: usize,
}

impl WriteRow {
    /// Reads `rows=<n> [calls=<n>] [updates=<n>]` as the servers print it.
    pub(crate) fn parse(
        label: &'static str,
        line: &str,
        sent: Sent,
        keys: usize,
    ) -> Result<Self, BoxError> {
        let mut rows = None;
        let mut calls = None;
        for field in line.split_whitespace() {
            match field.split_once('=') {
                Some(("rows", value)) => rows = value.parse().ok(),
                Some(("calls", value)) => calls = value.parse().ok(),
                Some(_) => {}
                None => return Err(format!("unexpected write count {field}").into()),
            }
        }
        Ok(Self {
            label,
            rows,
            calls,
            sent,
            keys,
        })
    }

    /// Flush intervals the run spanned, counting the final flush at shutdown as one.
    fn intervals(&self) -> u64 {
        (self.sent.elapsed.as_secs_f64() / DEFAULT_USAGE_FLUSH_INTERVAL.as_secs_f64()).floor()
            as u64
            + 1
    }
}

fn ms(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1e3)
}

fn verdict(holds: bool) -> &'static str {
    if holds { "holds" } else { "MISSED" }
}

/// The whole report, in Markdown.
pub(crate) fn render(
    setup: &str,
    before: &Machine,
    after: &Machine,
    table: &Table,
    writes: &[WriteRow],
    requests: usize,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### Throughput and latency (medians)\n");
    let _ = writeln!(out, "Machine: {}.", before.describe());
    let _ = writeln!(out, "Load average after the run: {}.", after.load);
    let _ = writeln!(out, "Setup: {setup}.\n");
    let _ = writeln!(
        out,
        "| Scenario | req/s | p50 | p99 | × bare | server CPU/req | Responses |\n\
         |---|---:|---:|---:|---:|---:|---|"
    );
    for (row, ratio) in &table.rows {
        let _ = writeln!(
            out,
            "| {} | {:.0} | {} | {} | {:.2}× | {} | {}{} |",
            row.label,
            row.requests_per_sec,
            ms(row.p50),
            ms(row.p99),
            ratio,
            row.cpu_per_request.map_or_else(
                || "-".to_owned(),
                |cpu| format!("{:.1} µs", cpu.as_secs_f64() * 1e6)
            ),
            row.responses,
            if row.as_expected { "" } else { " (unexpected)" },
        );
    }
    let _ = writeln!(
        out,
        "\nGarbage-token rows are compared with bare axum receiving the same garbage header. \
         Server CPU/req is the server process's CPU time (all threads) during the run divided \
         by the requests answered; it does not depend on whether wrk or the server saturated \
         first."
    );

    let _ = writeln!(out, "\n### Store writes for {requests} requests\n");
    let _ = writeln!(
        out,
        "{} keys, requests spread evenly over them, 32 at a time; writes counted by a trigger \
         on the keys table (rows updated) and, for keyward, by a counting `KeyStore` wrapper \
         (`record_usage` calls).\n",
        writes.first().map_or(0, |w| w.keys)
    );
    let _ = writeln!(
        out,
        "| Approach | answered 200 | time | rows written | record_usage calls |\n|---|---:|---:|---:|---:|"
    );
    for write in writes {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            write.label,
            write.sent.ok,
            ms(write.sent.elapsed),
            write.rows.map_or_else(|| "-".to_owned(), |n| n.to_string()),
            write
                .calls
                .map_or_else(|| "-".to_owned(), |n| n.to_string()),
        );
    }

    let _ = writeln!(out, "\n### Targets (ratios from this run)\n");
    let ratio = |label: &str| table.ratio(label).unwrap_or(f64::NAN);
    let memory = ratio("keyward, MemoryStore, cache on");
    let sqlite = ratio("keyward, SQLite, cache on");
    let modo = ratio("modo-rs apikey, SQLite");
    let nocache = ratio("keyward, SQLite, cache off");
    let garbage = ratio("garbage token → keyward, SQLite, cache on");
    let _ = writeln!(
        out,
        "- keyward cache on, MemoryStore ≥ 0.90× bare: {memory:.2}× — {}",
        verdict(memory >= 0.90)
    );
    let _ = writeln!(
        out,
        "- keyward cache on, SQLite ≥ 0.90× bare: {sqlite:.2}× — {}",
        verdict(sqlite >= 0.90)
    );
    let _ = writeln!(
        out,
        "- keyward ≥ modo-rs, both on SQLite, keyward cache on: {sqlite:.2}× vs {modo:.2}× — {}",
        verdict(sqlite >= modo)
    );
    let _ = writeln!(
        out,
        "- keyward ≥ modo-rs, both on SQLite, keyward cache off: {nocache:.2}× vs {modo:.2}× — {}",
        verdict(nocache >= modo)
    );
    let _ = writeln!(
        out,
        "- garbage flood ≥ 0.90× bare: {garbage:.2}× — {}",
        verdict(garbage >= 0.90)
    );
    if let Some(keyward) = writes.iter().find(|w| w.calls.is_some()) {
        let bound = keyward.keys as u64 * keyward.intervals();
        let rows = keyward.rows.unwrap_or(u64::MAX);
        let _ = writeln!(
            out,
            "- usage writes ≤ 1 per key per flush interval: {rows} rows for {} keys over {} \
             flush interval(s) of {} s (bound {bound}) — {}",
            keyward.keys,
            keyward.intervals(),
            DEFAULT_USAGE_FLUSH_INTERVAL.as_secs(),
            verdict(rows <= bound)
        );
    }
    out
}
