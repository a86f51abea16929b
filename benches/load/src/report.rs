//! Medians, ratios, targets and the printed report.

use std::fmt::Write as _;
use std::time::Duration;

use keyward::DEFAULT_USAGE_FLUSH_INTERVAL;

use crate::BoxError;
use crate::child::ServerStats;
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
    /// Requests answered, over all samples.
    requests: u64,
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
        let repeated: u64 = samples.iter().map(|s| s.repeated).sum();
        let counted = samples
            .iter()
            .filter_map(|s| s.server_stats)
            .reduce(ServerStats::add);
        let as_expected = socket_errors == 0
            && repeated == 0
            && if expect < 300 {
                non_2xx == 0
            } else {
                non_2xx == requests
            };
        let mut responses = match counted {
            Some(counted) if as_expected && counted.charged + counted.refused > 0 => format!(
                "all non-2xx: {} × 401, {} × 429",
                counted.charged, counted.refused
            ),
            _ if as_expected => format!("all {expect}"),
            _ => format!("{non_2xx} of {requests} non-2xx, {socket_errors} socket errors"),
        };
        if repeated > 0 {
            let _ = write!(responses, ", {repeated} tokens sent twice");
        }
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
            requests,
        }
    }
}

/// Rows with their ratios to their baselines (none for a row without one).
#[derive(Debug, Clone)]
pub(crate) struct Table {
    rows: Vec<(Row, Option<f64>)>,
}

impl Table {
    pub(crate) fn new(rows: Vec<Row>, baselines: &[Option<usize>]) -> Self {
        let ratios: Vec<Option<f64>> = baselines
            .iter()
            .enumerate()
            .map(|(i, base)| {
                base.map(|base| rows[i].requests_per_sec / rows[base].requests_per_sec)
            })
            .collect();
        Self {
            rows: rows.into_iter().zip(ratios).collect(),
        }
    }

    /// Replaces each row's ratio with the median of `pairs`, the ratios of its runs to its
    /// baseline's run right before (rows without pairs keep theirs).
    pub(crate) fn use_pairs<'a>(&mut self, pairs: impl IntoIterator<Item = &'a [f64]>) {
        for ((_, ratio), pairs) in self.rows.iter_mut().zip(pairs) {
            if !pairs.is_empty() {
                *ratio = Some(median(pairs.to_vec()));
            }
        }
    }

    fn ratio(&self, label: &str) -> Option<f64> {
        self.rows
            .iter()
            .find(|(row, _)| row.label == label)
            .and_then(|(_, ratio)| *ratio)
    }

    fn row(&self, label: &str) -> Option<&Row> {
        self.rows
            .iter()
            .find(|(row, _)| row.label == label)
            .map(|(row, _)| row)
    }
}

/// What a counting server printed when it stopped: its counts and the most store lookups in
/// one failure-budget window.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LookupSummary {
    stats: ServerStats,
    max_per_window: u64,
    window_secs: u64,
}

impl LookupSummary {
    /// Reads `lookups=<n> charged=<n> refused=<n> max_per_window=<n> window_s=<n>`.
    pub(crate) fn parse(line: &str) -> Result<Self, BoxError> {
        let mut max_per_window = None;
        let mut window_secs = None;
        for field in line.split_whitespace() {
            match field.split_once('=') {
                Some(("max_per_window", value)) => max_per_window = Some(value.parse()?),
                Some(("window_s", value)) => window_secs = Some(value.parse()?),
                _ => {}
            }
        }
        Ok(Self {
            stats: ServerStats::parse(line)?,
            max_per_window: max_per_window.ok_or("no max_per_window in the lookup counts")?,
            window_secs: window_secs.ok_or("no window_s in the lookup counts")?,
        })
    }
}

/// The forged-token flood and the well-behaved client's scenario, beyond their table rows.
#[derive(Debug, Clone)]
pub(crate) struct FloodReport {
    pub(crate) forged_label: &'static str,
    pub(crate) forged_bare_label: &'static str,
    /// The keyward server's counts in each measured forged run.
    pub(crate) forged_runs: Vec<ServerStats>,
    /// The forged flood's keyward server over its whole life (warm-up included).
    pub(crate) forged_server: LookupSummary,
    pub(crate) alone_label: &'static str,
    pub(crate) under_flood_label: &'static str,
    pub(crate) flood_label: &'static str,
    /// The flood beside the well-behaved client, summed over the measured rounds.
    pub(crate) flood_stats: ServerStats,
    /// Its server's counts in each measured round.
    pub(crate) flood_runs: Vec<ServerStats>,
    /// The well-behaved client's server over its whole life.
    pub(crate) paced_server: LookupSummary,
    pub(crate) paced_rate: u64,
    pub(crate) paced_connections: usize,
    /// The clients' identities (`X-Forwarded-For`).
    pub(crate) well_behaved_client: &'static str,
    pub(crate) flooding_client: &'static str,
    /// wrk connections of the flood.
    pub(crate) flood_connections: usize,
    /// Failures per window of the default budget.
    pub(crate) budget: u32,
    /// Length of each flood run beside the well-behaved client.
    pub(crate) flood_duration: Duration,
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

fn cpu(row: Option<&Row>) -> String {
    row.and_then(|row| row.cpu_per_request).map_or_else(
        || "-".to_owned(),
        |cpu| format!("{:.1} µs", cpu.as_secs_f64() * 1e6),
    )
}

/// `≥ bar (goal …)` verdicts: holds and reaches the goal, holds, or missed.
fn graded(ratio: f64, bar: f64, goal: f64) -> &'static str {
    if ratio >= goal {
        "holds, goal reached"
    } else if ratio >= bar {
        "holds, goal not reached"
    } else {
        "MISSED"
    }
}

/// The forged-flood and well-behaved-client sections.
fn render_floods(out: &mut String, table: &Table, flood: &FloodReport) {
    let ratio = |label: &str| table.ratio(label).unwrap_or(f64::NAN);
    let rate = |label: &str| {
        table
            .row(label)
            .map_or(f64::NAN, |row| row.requests_per_sec)
    };
    let forged = table.row(flood.forged_label);
    let server = flood.forged_server;
    let _ = writeln!(out, "\n### Forged-token flood from one client\n");
    let _ = writeln!(
        out,
        "Every request carries a different well-formed token with valid check digits that no \
         key has (`benches/load/forged.lua` over a file of generated tokens; each server gets \
         each token at most once). keyward: SQLite, cache on, the default failure budget \
         ({} failures per {} s per client), 127.0.0.1 trusted as a proxy; the flood sends no \
         `X-Forwarded-For`, so its client is 127.0.0.1. Compared with bare axum driven by the \
         same script.\n",
        flood.budget, server.window_secs
    );
    let _ = writeln!(
        out,
        "- × bare with the same script: {:.2}×; the script itself: bare axum answered {:.0} \
         req/s with it against {:.0} req/s with a fixed header ({:.2}×).",
        ratio(flood.forged_label),
        rate(flood.forged_bare_label),
        rate("bare axum (no auth)"),
        rate(flood.forged_bare_label) / rate("bare axum (no auth)"),
    );
    let _ = writeln!(
        out,
        "- Forged tokens answered by keyward in the measured runs: {}; {}.",
        forged.map_or(0, |row| row.requests),
        forged.map_or_else(String::new, |row| row.responses.clone()),
    );
    let lookups = |runs: &[ServerStats]| {
        runs.iter()
            .map(|run| run.lookups.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(
        out,
        "- Store lookups (`find_by_digest`) by that server: {} over its whole life (a 1 s \
         warm-up and {} measured runs); per measured run: {}; the most in one budget window: \
         {} (budget {}).",
        server.stats.lookups,
        flood.forged_runs.len(),
        lookups(&flood.forged_runs),
        server.max_per_window,
        flood.budget,
    );

    let alone = table.row(flood.alone_label);
    let under = table.row(flood.under_flood_label);
    let beside = table.row(flood.flood_label);
    let _ = writeln!(
        out,
        "\n### A well-behaved client's cache hits while another client floods forged tokens\n"
    );
    let _ = writeln!(
        out,
        "The well-behaved client (`loadbench pace`, pinned with wrk) sends cache hits with a \
         valid key at a fixed {} req/s over {} keep-alive connections, as `X-Forwarded-For: \
         {}`, alone and again while wrk floods forged tokens with {} connections as \
         `X-Forwarded-For: {}` ({} s flood runs covering the client's window); same keyward \
         server (SQLite, cache on, default failure budget, 127.0.0.1 trusted as a proxy). \
         Latency is from sending a request to the end of its response.\n",
        flood.paced_rate,
        flood.paced_connections,
        flood.well_behaved_client,
        flood.flood_connections,
        flood.flooding_client,
        flood.flood_duration.as_secs(),
    );
    let _ = writeln!(
        out,
        "| | alone | under the flood | ratio |\n|---|---:|---:|---:|"
    );
    let field =
        |row: Option<&Row>, f: &dyn Fn(&Row) -> String| row.map_or_else(|| "-".to_owned(), f);
    let _ = writeln!(
        out,
        "| achieved rate (req/s answered 200) | {} | {} | {:.2}× |",
        field(alone, &|r| format!("{:.0}", r.requests_per_sec)),
        field(under, &|r| format!("{:.0}", r.requests_per_sec)),
        ratio(flood.under_flood_label),
    );
    let _ = writeln!(
        out,
        "| p50 | {} | {} | |",
        field(alone, &|r| ms(r.p50)),
        field(under, &|r| ms(r.p50)),
    );
    let _ = writeln!(
        out,
        "| p99 | {} | {} | |",
        field(alone, &|r| ms(r.p99)),
        field(under, &|r| ms(r.p99)),
    );
    let _ = writeln!(
        out,
        "| responses | {} | {} | |",
        field(alone, &|r| r.responses.clone()),
        field(under, &|r| r.responses.clone()),
    );
    let _ = writeln!(
        out,
        "| server CPU/req (all requests answered) | {} | {} | |",
        cpu(alone),
        cpu(under),
    );
    let _ = writeln!(
        out,
        "\nThe flood beside it: {} req/s (median), p99 {}, {}; its client spent its budget: \
         {} × 401, {} × 429 in the measured runs (store lookups in each: {}). Store lookups \
         by that server over its whole life: {} (the well-behaved key's cache refreshes \
         included); the most in one budget window: {}.",
        field(beside, &|r| format!("{:.0}", r.requests_per_sec)),
        field(beside, &|r| ms(r.p99)),
        field(beside, &|r| r.responses.clone()),
        flood.flood_stats.charged,
        flood.flood_stats.refused,
        lookups(&flood.flood_runs),
        flood.paced_server.stats.lookups,
        flood.paced_server.max_per_window,
    );
}

/// The whole report, in Markdown.
pub(crate) fn render(
    setup: &str,
    before: &Machine,
    after: &Machine,
    table: &Table,
    flood: &FloodReport,
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
            "| {} | {:.0} | {} | {} | {} | {} | {}{} |",
            row.label,
            row.requests_per_sec,
            ms(row.p50),
            ms(row.p99),
            ratio.map_or_else(|| "-".to_owned(), |ratio| format!("{ratio:.2}×")),
            cpu(Some(row)),
            row.responses,
            if row.as_expected { "" } else { " (unexpected)" },
        );
    }
    let _ = writeln!(
        out,
        "\nGarbage-token rows are compared with bare axum receiving the same garbage header, \
         forged-token rows with bare axum driven by the same script, and the well-behaved \
         client under a flood with the same client alone (its × is its achieved rate under the \
         flood over its rate alone). Server CPU/req is the server process's CPU time (all \
         threads) during the run divided by the requests answered (for the well-behaved client \
         under a flood: its requests and the flood's); it does not depend on whether wrk or the \
         server saturated first."
    );
    render_floods(&mut out, table, flood);

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
    let sqlite = ratio("keyward, SQLite, cache on");
    let modo = ratio("modo-rs apikey, SQLite");
    let nocache = ratio("keyward, SQLite, cache off");
    let garbage = ratio("garbage token → keyward, SQLite, cache on");
    let bare_cpu = cpu(table.row("bare axum (no auth)"));
    for label in [
        "keyward, MemoryStore, cache on",
        "keyward, SQLite, cache on",
        "keyward, PostgreSQL, cache on",
    ] {
        let Some(row) = table.row(label) else {
            continue;
        };
        let cache_hit = ratio(label);
        let _ = writeln!(
            out,
            "- {label} ≥ 0.90× bare (goal 0.95×): {cache_hit:.2}×, server CPU {}/req against \
             {bare_cpu} bare — {}",
            cpu(Some(row)),
            graded(cache_hit, 0.90, 0.95)
        );
    }
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
    let forged = ratio(flood.forged_label);
    let _ = writeln!(
        out,
        "- forged-token flood from one client ≥ 0.90× bare with the same script (goal 0.95×): \
         {forged:.2}×, server CPU {}/req against {} — {}",
        cpu(table.row(flood.forged_label)),
        cpu(table.row(flood.forged_bare_label)),
        graded(forged, 0.90, 0.95)
    );
    let lookups = flood.forged_server.max_per_window;
    let _ = writeln!(
        out,
        "- store lookups during the forged flood ≤ the failure budget ({} per {} s per client): \
         at most {lookups} in one window, {} in all — {}",
        flood.budget,
        flood.forged_server.window_secs,
        flood.forged_server.stats.lookups,
        verdict(lookups <= u64::from(flood.budget))
    );
    let paced = ratio(flood.under_flood_label);
    let _ = writeln!(
        out,
        "- well-behaved client under another client's forged flood ≥ 0.85× its rate alone \
         (goal 0.90×): {paced:.2}× — {}",
        graded(paced, 0.85, 0.90)
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
