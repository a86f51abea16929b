//! Load benchmark: the same trivial JSON handler behind no authentication, a static bearer
//! check, modo-rs's `auth::apikey` layer and keyward (memory, SQLite, PostgreSQL; cache on
//! and off), driven by `wrk` in one run, interleaved, with medians and ratios to bare axum.
//! Then a garbage-token flood and the store writes per fixed number of requests.
//!
//! Run it with `bash benches/load/run.sh` (builds in release mode, installs `wrk` if needed);
//! `bash benches/load/run.sh --help` lists the options.

mod child;
mod counting;
mod report;
mod serve;
mod writes;
mod wrk;

use std::path::{Path, PathBuf};
use std::time::Duration;

use sea_orm::ConnectionTrait;

use crate::child::{Launch, Server};
use crate::report::{Row, Table, WriteRow};
use crate::wrk::{Load, Sample};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const HELP: &str = "\
loadbench: keyward against no auth, a static bearer check and modo-rs, in one run

usage: loadbench [options]
       loadbench serve <kind> [--db URL] [--keys N] [--workers N] [--count-writes]

options:
  --duration SECONDS     length of each wrk run, whole seconds (default 5)
  --rounds N             interleaved rounds; the table shows medians (default 5)
  --connections N        wrk connections (default 32)
  --wrk-threads N        wrk threads (default 1)
  --server-workers N     Tokio worker threads of each server (default 1)
  --no-pin               do not pin servers to CPU 0 and wrk to CPU 1
  --requests N           requests of the store-writes scenario (default 10000)
  --postgres URL         PostgreSQL server for the PostgreSQL row; a fresh database is
                         created and dropped (default $KEYWARD_BENCH_POSTGRES_URL or
                         postgres://postgres@127.0.0.1:5432/postgres)
  --no-postgres          skip the PostgreSQL row
  --quick                --duration 1 --rounds 1 --requests 2000: checks the harness only
";

#[derive(Debug, Clone)]
struct Options {
    duration: Duration,
    rounds: usize,
    connections: usize,
    wrk_threads: usize,
    server_workers: usize,
    pin: bool,
    requests: usize,
    postgres: Option<String>,
}

fn parse_options(args: &[String]) -> Result<Options, BoxError> {
    let mut options = Options {
        duration: Duration::from_secs(5),
        rounds: 5,
        connections: 32,
        wrk_threads: 1,
        server_workers: 1,
        pin: true,
        requests: 10_000,
        postgres: Some(
            std::env::var("KEYWARD_BENCH_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned()),
        ),
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--duration" => options.duration = Duration::from_secs(value()?.parse()?),
            "--rounds" => options.rounds = value()?.parse()?,
            "--connections" => options.connections = value()?.parse()?,
            "--wrk-threads" => options.wrk_threads = value()?.parse()?,
            "--server-workers" => options.server_workers = value()?.parse()?,
            "--no-pin" => options.pin = false,
            "--requests" => options.requests = value()?.parse()?,
            "--postgres" => options.postgres = Some(value()?.clone()),
            "--no-postgres" => options.postgres = None,
            "--quick" => {
                options.duration = Duration::from_secs(1);
                options.rounds = 1;
                options.requests = 2_000;
            }
            "--help" | "-h" => {
                print!("{HELP}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown option {other}\n\n{HELP}").into()),
        }
    }
    if options.rounds == 0 {
        return Err("--rounds must be at least 1".into());
    }
    Ok(options)
}

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("serve") {
        return serve::main(&args[1..]);
    }
    let options = parse_options(&args)?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run(options))
}

/// A fresh PostgreSQL database for one run, dropped at the end.
#[derive(Debug)]
struct PgDatabase {
    admin: sea_orm::DatabaseConnection,
    name: String,
    url: String,
}

impl PgDatabase {
    async fn create(admin_url: &str) -> Result<Self, BoxError> {
        let admin = sea_orm::Database::connect(admin_url).await?;
        let name = format!("keyward_bench_{}", std::process::id());
        admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name}"))
            .await?;
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await?;
        let (base, query) = match admin_url.split_once('?') {
            Some((base, query)) => (base, format!("?{query}")),
            None => (admin_url, String::new()),
        };
        let authority_end = base.find("://").map_or(0, |i| i + 3);
        let host = match base[authority_end..].find('/') {
            Some(slash) => &base[..authority_end + slash],
            None => base,
        };
        let url = format!("{host}/{name}{query}");
        Ok(Self { admin, name, url })
    }

    async fn drop_database(self) -> Result<(), BoxError> {
        self.admin
            .execute_unprepared(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await?;
        Ok(())
    }
}

/// A temporary directory for the SQLite files, removed at the end.
#[derive(Debug)]
struct Scratch(PathBuf);

impl Scratch {
    fn create() -> Result<Self, BoxError> {
        let dir = std::env::temp_dir().join(format!("keyward-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }

    fn sqlite_url(&self, name: &str) -> String {
        format!(
            "sqlite://{}?mode=rwc",
            self.0.join(format!("{name}.db")).display()
        )
    }

    fn file(&self, name: &str) -> String {
        self.0.join(format!("{name}.db")).display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One line of the table: a server, the token sent to it, and its baseline.
#[derive(Debug)]
struct Target {
    label: &'static str,
    server: usize,
    token: String,
    /// The row this one is compared with.
    baseline: usize,
    /// The status every response should have.
    expect: u16,
    samples: Vec<Sample>,
}

/// A token with one character of its secret changed: the right shape, wrong check digits
/// (keyward) or wrong secret (modo-rs).
fn garble(token: &str) -> String {
    let mut bytes = token.as_bytes().to_vec();
    let i = bytes.len() - 10;
    bytes[i] = if bytes[i] == b'x' { b'y' } else { b'x' };
    String::from_utf8(bytes).unwrap_or_else(|_| "garbage".to_owned())
}

fn cpus(options: &Options) -> (Option<usize>, Option<usize>) {
    let parallelism = std::thread::available_parallelism().map_or(1, usize::from);
    let taskset = std::process::Command::new("taskset")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    if options.pin && parallelism >= 2 && taskset {
        (Some(0), Some(1))
    } else {
        (None, None)
    }
}

fn sibling(exe: &Path, name: &str) -> PathBuf {
    exe.with_file_name(name)
}

async fn run(options: Options) -> Result<(), BoxError> {
    let exe = std::env::current_exe()?;
    let modo_exe = sibling(&exe, "modo-server");
    let (server_cpu, wrk_cpu) = cpus(&options);
    let scratch = Scratch::create()?;
    let workers = options.server_workers.to_string();
    let load = Load {
        threads: options.wrk_threads,
        connections: options.connections,
        duration: options.duration,
        cpu: wrk_cpu,
    };

    let machine = report::Machine::read();
    eprintln!("{}", machine.describe());

    let postgres = match &options.postgres {
        Some(url) => match PgDatabase::create(url).await {
            Ok(db) => Some(db),
            Err(err) => {
                eprintln!("PostgreSQL row skipped: cannot create a database at {url}: {err}");
                None
            }
        },
        None => None,
    };

    let serve = |name: &str| {
        Launch::new(name, &exe, &["serve", name])
            .args(["--workers", workers.as_str()])
            .pinned(server_cpu)
    };
    let mut launches = vec![
        serve("bare"),
        serve("static"),
        Launch::new("modo-rs", &modo_exe, &[&scratch.file("modo")])
            .args(["--workers", workers.as_str()])
            .pinned(server_cpu),
        serve("keyward-memory"),
        serve("keyward-sqlite").args(["--db".to_owned(), scratch.sqlite_url("keyward")]),
        serve("keyward-sqlite-nocache")
            .args(["--db".to_owned(), scratch.sqlite_url("keyward-nocache")]),
    ];
    if let Some(pg) = &postgres {
        launches.push(serve("keyward-postgres").args(["--db", pg.url.as_str()]));
    }
    let mut servers: Vec<Server> = Vec::with_capacity(launches.len());
    for launch in launches {
        eprintln!("starting {}", launch.name);
        servers.push(launch.start().await?);
    }
    let [bare, stat, modo, memory, sqlite, nocache] = [0, 1, 2, 3, 4, 5];
    let keyward_token = servers[memory].token()?.to_owned();
    let target = |label, server, token: String, baseline, expect| Target {
        label,
        server,
        token,
        baseline,
        expect,
        samples: Vec::new(),
    };
    let mut targets = vec![
        target("bare axum (no auth)", bare, keyward_token.clone(), 0, 200),
        target(
            "static bearer (tower-http)",
            stat,
            servers[stat].token()?.to_owned(),
            0,
            200,
        ),
        target(
            "modo-rs apikey, SQLite",
            modo,
            servers[modo].token()?.to_owned(),
            0,
            200,
        ),
        target(
            "keyward, MemoryStore, cache on",
            memory,
            keyward_token.clone(),
            0,
            200,
        ),
        target(
            "keyward, SQLite, cache on",
            sqlite,
            servers[sqlite].token()?.to_owned(),
            0,
            200,
        ),
        target(
            "keyward, SQLite, cache off",
            nocache,
            servers[nocache].token()?.to_owned(),
            0,
            200,
        ),
    ];
    if postgres.is_some() {
        let pg = servers.len() - 1;
        targets.push(target(
            "keyward, PostgreSQL, cache on",
            pg,
            servers[pg].token()?.to_owned(),
            0,
            200,
        ));
    }
    let garbage_baseline = targets.len();
    targets.push(target(
        "garbage token → bare axum",
        bare,
        garble(&keyward_token),
        garbage_baseline,
        200,
    ));
    targets.push(target(
        "garbage token → keyward, SQLite, cache on",
        sqlite,
        garble(servers[sqlite].token()?),
        garbage_baseline,
        401,
    ));
    targets.push(target(
        "garbage token → modo-rs, SQLite",
        modo,
        garble(servers[modo].token()?),
        garbage_baseline,
        401,
    ));

    // Warm-up: connections, caches, and the first usage flush.
    for target in &targets {
        let server = &servers[target.server];
        load.run_for(&server.url(), &target.token, Duration::from_secs(1))
            .await?;
    }
    for round in 0..options.rounds {
        let offset = round % targets.len();
        for step in 0..targets.len() {
            let i = (offset + step) % targets.len();
            let target = &mut targets[i];
            let server = &servers[target.server];
            let cpu_before = server.cpu_time();
            let mut sample = load.run(&server.url(), &target.token).await?;
            if let (Some(before), Some(after)) = (cpu_before, server.cpu_time()) {
                sample.server_cpu_per_request =
                    Some((after - before).div_f64(sample.requests.max(1) as f64));
            }
            eprintln!(
                "round {}/{}  {:<44} {:>9.0} req/s  p50 {:>8.3} ms  p99 {:>8.3} ms  cpu {:>6.2} µs/req",
                round + 1,
                options.rounds,
                target.label,
                sample.requests_per_sec,
                sample.p50.as_secs_f64() * 1e3,
                sample.p99.as_secs_f64() * 1e3,
                sample
                    .server_cpu_per_request
                    .map_or(f64::NAN, |cpu| cpu.as_secs_f64() * 1e6),
            );
            target.samples.push(sample);
        }
    }
    for server in servers {
        server.stop().await?;
    }

    let rows: Vec<Row> = targets
        .iter()
        .map(|target| Row::new(target.label, &target.samples, target.expect))
        .collect();
    let baselines: Vec<usize> = targets.iter().map(|target| target.baseline).collect();
    let table = Table::new(rows, &baselines);

    let write_rows = measure_writes(&options, &exe, &modo_exe, &scratch).await?;

    if let Some(pg) = postgres {
        pg.drop_database().await?;
    }

    let machine_after = report::Machine::read();
    println!();
    println!(
        "{}",
        report::render(
            &options_summary(&options, server_cpu, wrk_cpu),
            &machine,
            &machine_after,
            &table,
            &write_rows,
            options.requests,
        )
    );
    Ok(())
}

fn options_summary(options: &Options, server_cpu: Option<usize>, wrk_cpu: Option<usize>) -> String {
    let pinning = match (server_cpu, wrk_cpu) {
        (Some(server), Some(wrk)) => format!("servers pinned to CPU {server}, wrk to CPU {wrk}"),
        _ => "no CPU pinning".to_owned(),
    };
    format!(
        "wrk -t{} -c{} -d{}s --latency, {} interleaved round(s), rotating order, medians; \
         each server a separate process with {} Tokio worker thread(s); {pinning}",
        options.wrk_threads,
        options.connections,
        options.duration.as_secs_f64(),
        options.rounds,
        options.server_workers,
    )
}

/// Keys used by the store-writes scenario.
const WRITE_KEYS: usize = 4;

/// Counts the store writes each approach makes for `options.requests` requests.
async fn measure_writes(
    options: &Options,
    exe: &Path,
    modo_exe: &Path,
    scratch: &Scratch,
) -> Result<Vec<WriteRow>, BoxError> {
    let keys = WRITE_KEYS.to_string();
    let common = ["--keys", keys.as_str(), "--count-writes"];
    let launches = [
        (
            "keyward, SQLite (usage batched, flushed every 10 s and at shutdown)",
            Launch::new("keyward-sqlite (writes)", exe, &["serve", "keyward-sqlite"])
                .args(common)
                .args(["--db".to_owned(), scratch.sqlite_url("writes-keyward")]),
        ),
        (
            "modo-rs, SQLite (last_used_at touch, 60 s threshold)",
            Launch::new(
                "modo-rs (writes)",
                modo_exe,
                &[&scratch.file("writes-modo")],
            )
            .args(common),
        ),
        (
            "hand-rolled from_fn, SQLite (UPDATE last_used_at per request)",
            Launch::new("hand-rolled (writes)", exe, &["serve", "hand-rolled"])
                .args(common)
                .args(["--db".to_owned(), scratch.sqlite_url("writes-hand-rolled")]),
        ),
    ];
    let mut rows = Vec::new();
    for (label, launch) in launches {
        eprintln!("writes: {label}");
        let server = launch.start().await?;
        let sent = writes::send(
            &server.url(),
            &server.tokens,
            options.requests,
            options.connections,
        )
        .await?;
        let printed = server.stop().await?;
        let line = printed
            .iter()
            .find_map(|line| line.strip_prefix("writes "))
            .ok_or("the server printed no write counts")?;
        rows.push(WriteRow::parse(label, line, sent, WRITE_KEYS)?);
    }
    Ok(rows)
}
