//! Load benchmark: the same trivial JSON handler behind no authentication, a static bearer
//! check, modo-rs's `auth::apikey` layer and keyward (memory, SQLite, PostgreSQL; cache on
//! and off), driven by `wrk` in one run, interleaved, with medians and ratios to bare axum.
//! Then a garbage-token flood, a forged-token flood (well-formed tokens no key has, never
//! repeated, from one client), a paced well-behaved client's cache hits with and without
//! another client's forged flood, and the store writes per fixed number of requests.
//!
//! Run it with `bash benches/load/run.sh` (builds in release mode, installs `wrk` if needed);
//! `bash benches/load/run.sh --help` lists the options.

mod calls;
mod child;
mod counting;
mod forged;
mod pace;
mod report;
mod serve;
mod writes;
mod wrk;

use std::path::{Path, PathBuf};
use std::time::Duration;

use sea_orm::ConnectionTrait;

use crate::child::{Launch, Server, ServerStats};
use crate::forged::{Flood, Stream, TokenFile};
use crate::pace::Pacer;
use crate::report::{FloodReport, LookupSummary, Row, Table, WriteRow};
use crate::wrk::{Load, Sample};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const HELP: &str = "\
loadbench: keyward against no auth, a static bearer check and modo-rs, in one run

usage: loadbench [options]
       loadbench serve <kind> [--db URL] [--keys N] [--workers N] [--count-writes]
                       [--trust-loopback] [--count-lookups]
       loadbench calls <kind> [--requests N] [--forged] [serve options]
       loadbench pace --addr HOST:PORT --token TOKEN [--forwarded-for IP] [--rate N]
                      [--connections N] [--duration-ms N] [--delay-ms N]

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
  --paced-rate N         request rate of the well-behaved client (default 10000 req/s)
  --paced-connections N  its keep-alive connections (default 16)
  --forged-per-second N  forged tokens set aside per second of a flood run, above what wrk
                         can send, so that none repeats (default 250000)
  --paired               run each row's baseline (bare axum) again right before the row in
                         every round, and give × bare as the median of those pairs' ratios:
                         steadier on a machine whose speed drifts
  --redis URL            also measure keyward-redis (MemoryStore, cache on): a rate-limited key
                         on the Redis limiter and on the in-memory one, and a key without a
                         limit with Redis configured (the limit is high enough that every
                         request is admitted, so the rows show the check's cost)
  --quick                --duration 1 --rounds 1 --requests 2000: checks the harness only
";

/// The rate limit of the keys of the `--redis` rows: high enough never to refuse.
const UNREACHED_RATE_LIMIT: &str = "1000000000";

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
    paced_rate: u64,
    paced_connections: usize,
    forged_per_second: u64,
    redis: Option<String>,
    /// Run each row's baseline right before it and compare the two (`--paired`).
    paired: bool,
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
        paced_rate: 10_000,
        paced_connections: 16,
        forged_per_second: 250_000,
        redis: None,
        paired: false,
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
            "--paced-rate" => options.paced_rate = value()?.parse()?,
            "--paced-connections" => options.paced_connections = value()?.parse()?,
            "--forged-per-second" => options.forged_per_second = value()?.parse()?,
            "--redis" => options.redis = Some(value()?.clone()),
            "--paired" => options.paired = true,
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
    if options.paced_rate == 0 || options.paced_connections == 0 {
        return Err("--paced-rate and --paced-connections must be at least 1".into());
    }
    Ok(options)
}

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => return serve::main(&args[1..]),
        Some("calls") => return calls::main(&args[1..]),
        Some("pace") => return pace::main(&args[1..]),
        _ => {}
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

/// How a step drives its server.
#[derive(Debug, Clone)]
enum Drive {
    /// wrk with `Authorization: Bearer token` on every request.
    Wrk { token: String },
    /// wrk with `forged.lua`: a different forged token on every request, from the stream.
    Forged { stream: usize },
    /// The paced well-behaved client with a valid key; with `flood`, while wrk floods forged
    /// tokens from the stream as another client.
    Paced { token: String, flood: Option<usize> },
}

/// One line of the table: a server, how it is driven, and its baseline.
#[derive(Debug)]
struct Target {
    label: &'static str,
    server: usize,
    drive: Drive,
    /// The row this one is compared with.
    baseline: usize,
    /// The status every response should have.
    expect: u16,
    samples: Vec<Sample>,
    /// The flood beside a paced client, one per round.
    flood_samples: Vec<Sample>,
    /// With `--paired`: this row's rate over its baseline's, measured right before it, per
    /// round.
    pair_ratios: Vec<f64>,
}

/// The client identities of the well-behaved-client scenario (documentation ranges), sent as
/// `X-Forwarded-For` to a server that trusts 127.0.0.1 as a proxy.
const WELL_BEHAVED_CLIENT: &str = "203.0.113.10";
const FLOODING_CLIENT: &str = "198.51.100.20";

/// How long the paced client waits after connecting before its window opens, so that the
/// flood beside it (started at the same time, one second longer) covers the whole window.
const PACED_DELAY: Duration = Duration::from_millis(500);

/// What drives the servers: wrk, the forged flood and the paced client.
#[derive(Debug)]
struct Harness {
    load: Load,
    flood: Flood,
    tokens: TokenFile,
    streams: Vec<Stream>,
    pacer: Pacer,
}

impl Harness {
    /// One step: drives `server` as `drive` says for `duration`. Returns the sample and, for
    /// a paced client under a flood, the flood's sample; server CPU per request and the
    /// server's counts are filled in.
    async fn step(
        &mut self,
        drive: &Drive,
        server: &mut Server,
        duration: Duration,
    ) -> Result<(Sample, Option<Sample>), BoxError> {
        let counting = !matches!(drive, Drive::Wrk { .. });
        if let Drive::Forged { stream }
        | Drive::Paced {
            flood: Some(stream),
            ..
        } = drive
        {
            // Generate the tokens before anything starts.
            let flood_duration = match drive {
                Drive::Paced { .. } => duration + Duration::from_secs(1),
                _ => duration,
            };
            self.flood.prepare(
                &self.load,
                &mut self.tokens,
                &self.streams[*stream],
                flood_duration,
            )?;
        }
        let stats_before = if counting {
            Some(server.stats().await?)
        } else {
            None
        };
        let cpu_before = server.cpu_time();
        let url = server.url();
        let (mut sample, mut flood) = match drive {
            Drive::Wrk { token } => (self.load.run_for(&url, token, duration).await?, None),
            Drive::Forged { stream } => {
                let sample = self
                    .flood
                    .run(
                        &self.load,
                        &self.tokens,
                        &mut self.streams[*stream],
                        &url,
                        None,
                        duration,
                    )
                    .await?;
                (sample, None)
            }
            Drive::Paced { token, flood } => {
                let pacing = self.pacer.start(
                    &server.addr,
                    token,
                    WELL_BEHAVED_CLIENT,
                    duration,
                    PACED_DELAY,
                )?;
                match flood {
                    None => (pacing.finish().await?.0, None),
                    Some(stream) => {
                        let flood = self.flood.run(
                            &self.load,
                            &self.tokens,
                            &mut self.streams[*stream],
                            &url,
                            Some(FLOODING_CLIENT),
                            duration + Duration::from_secs(1),
                        );
                        let (flood, paced) = tokio::join!(flood, pacing.finish());
                        (paced?.0, Some(flood?))
                    }
                }
            }
        };
        if let (Some(before), Some(after)) = (cpu_before, server.cpu_time()) {
            let requests = sample.requests + flood.as_ref().map_or(0, |f| f.requests);
            let per_request = (after - before).div_f64(requests.max(1) as f64);
            sample.server_cpu_per_request = Some(per_request);
            if let Some(flood) = &mut flood {
                flood.server_cpu_per_request = Some(per_request);
            }
        }
        if let Some(before) = stats_before {
            let counted = server.stats().await?.since(before);
            match &mut flood {
                Some(flood) => flood.server_stats = Some(counted),
                None => sample.server_stats = Some(counted),
            }
        }
        Ok((sample, flood))
    }
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

/// Reads a server's `lookups …` line, printed when it stops.
fn lookup_summary(name: &str, printed: &[String]) -> Result<LookupSummary, BoxError> {
    let line = printed
        .iter()
        .find_map(|line| line.strip_prefix("lookups "))
        .ok_or_else(|| format!("{name} printed no lookup counts"))?;
    LookupSummary::parse(line)
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
        // The forged flood's server and the well-behaved client's: SQLite, cache on, the
        // default failure budget (counted), 127.0.0.1 trusted as a proxy.
        serve("keyward-sqlite")
            .args(["--db".to_owned(), scratch.sqlite_url("keyward-forged")])
            .args(["--trust-loopback", "--count-lookups"]),
        serve("keyward-sqlite")
            .args(["--db".to_owned(), scratch.sqlite_url("keyward-paced")])
            .args(["--trust-loopback", "--count-lookups"]),
    ];
    let pg_server = postgres.as_ref().map(|pg| {
        launches.push(serve("keyward-postgres").args(["--db", pg.url.as_str()]));
        launches.len() - 1
    });
    // With --redis: the in-memory limiter, the Redis limiter, and Redis without a limit.
    let redis_servers = options.redis.as_deref().map(|url| {
        let first = launches.len();
        launches.push(serve("keyward-memory").args(["--rate-limit", UNREACHED_RATE_LIMIT]));
        launches.push(
            serve("keyward-memory")
                .args(["--rate-limit", UNREACHED_RATE_LIMIT])
                .args(["--redis", url]),
        );
        launches.push(serve("keyward-memory").args(["--redis", url]));
        first
    });
    let mut servers: Vec<Server> = Vec::with_capacity(launches.len());
    for launch in launches {
        eprintln!("starting {}", launch.name);
        servers.push(launch.start().await?);
    }
    let [bare, stat, modo, memory, sqlite, nocache, forged, paced] = [0, 1, 2, 3, 4, 5, 6, 7];
    let keyward_token = servers[memory].token()?.to_owned();
    let target = |label, server, drive, baseline, expect| Target {
        label,
        server,
        drive,
        baseline,
        expect,
        samples: Vec::new(),
        flood_samples: Vec::new(),
        pair_ratios: Vec::new(),
    };
    let wrk = |token: &str| Drive::Wrk {
        token: token.to_owned(),
    };
    let mut targets = vec![
        target("bare axum (no auth)", bare, wrk(&keyward_token), 0, 200),
        target(
            "static bearer (tower-http)",
            stat,
            wrk(servers[stat].token()?),
            0,
            200,
        ),
        target(
            "modo-rs apikey, SQLite",
            modo,
            wrk(servers[modo].token()?),
            0,
            200,
        ),
        target(
            "keyward, MemoryStore, cache on",
            memory,
            wrk(&keyward_token),
            0,
            200,
        ),
        target(
            "keyward, SQLite, cache on",
            sqlite,
            wrk(servers[sqlite].token()?),
            0,
            200,
        ),
        target(
            "keyward, SQLite, cache off",
            nocache,
            wrk(servers[nocache].token()?),
            0,
            200,
        ),
    ];
    if let Some(first) = redis_servers {
        for (offset, label) in [
            "keyward, MemoryStore, rate-limited key, in-memory limiter",
            "keyward, MemoryStore, rate-limited key, Redis limiter",
            "keyward, MemoryStore, key without a limit, Redis configured",
        ]
        .into_iter()
        .enumerate()
        {
            let server = first + offset;
            targets.push(target(
                label,
                server,
                wrk(servers[server].token()?),
                memory,
                200,
            ));
        }
    }
    if let Some(pg) = pg_server {
        targets.push(target(
            "keyward, PostgreSQL, cache on",
            pg,
            wrk(servers[pg].token()?),
            0,
            200,
        ));
    }
    let garbage_baseline = targets.len();
    targets.push(target(
        "garbage token → bare axum",
        bare,
        wrk(&garble(&keyward_token)),
        garbage_baseline,
        200,
    ));
    targets.push(target(
        "garbage token → keyward, SQLite, cache on",
        sqlite,
        wrk(&garble(servers[sqlite].token()?)),
        garbage_baseline,
        401,
    ));
    targets.push(target(
        "garbage token → modo-rs, SQLite",
        modo,
        wrk(&garble(servers[modo].token()?)),
        garbage_baseline,
        401,
    ));
    // One token stream per server that receives forged tokens: none sees a token twice.
    let [bare_stream, forged_stream, paced_stream] = [0, 1, 2];
    let forged_baseline = targets.len();
    targets.push(target(
        "forged token → bare axum (same script)",
        bare,
        Drive::Forged {
            stream: bare_stream,
        },
        forged_baseline,
        200,
    ));
    targets.push(target(
        "forged token → keyward, SQLite, cache on, budget",
        forged,
        Drive::Forged {
            stream: forged_stream,
        },
        forged_baseline,
        429,
    ));
    let paced_baseline = targets.len();
    targets.push(target(
        "well-behaved client alone (paced, cache hits)",
        paced,
        Drive::Paced {
            token: servers[paced].token()?.to_owned(),
            flood: None,
        },
        paced_baseline,
        200,
    ));
    targets.push(target(
        "well-behaved client, another client flooding forged tokens",
        paced,
        Drive::Paced {
            token: servers[paced].token()?.to_owned(),
            flood: Some(paced_stream),
        },
        paced_baseline,
        200,
    ));

    let mut harness = Harness {
        load,
        flood: Flood {
            tokens_per_second: options.forged_per_second,
        },
        tokens: TokenFile::create(&scratch.0, "bench")?,
        streams: (0..3).map(|_| Stream::default()).collect(),
        pacer: Pacer {
            exe: exe.clone(),
            cpu: wrk_cpu,
            rate: options.paced_rate,
            connections: options.paced_connections,
        },
    };

    // Warm-up: connections, caches, the first usage flush, and the flooding clients' first
    // budget windows.
    for target in &targets {
        let server = &mut servers[target.server];
        harness
            .step(&target.drive, server, Duration::from_secs(1))
            .await?;
    }
    for round in 0..options.rounds {
        let offset = round % targets.len();
        for step in 0..targets.len() {
            let i = (offset + step) % targets.len();
            let base = targets[i].baseline;
            let paired = if options.paired && base != i {
                let drive = targets[base].drive.clone();
                let server = &mut servers[targets[base].server];
                let (sample, _) = harness.step(&drive, server, options.duration).await?;
                log_sample(
                    round,
                    options.rounds,
                    "  its baseline, just before",
                    &sample,
                );
                Some(sample.requests_per_sec)
            } else {
                None
            };
            let target = &mut targets[i];
            let server = &mut servers[target.server];
            let (sample, flood) = harness
                .step(&target.drive, server, options.duration)
                .await?;
            log_sample(round, options.rounds, target.label, &sample);
            if let Some(base_rate) = paired {
                target.pair_ratios.push(sample.requests_per_sec / base_rate);
            }
            if let Some(flood) = flood {
                log_sample(round, options.rounds, "  the flood beside it", &flood);
                target.flood_samples.push(flood);
            }
            target.samples.push(sample);
        }
    }
    let mut summaries = Vec::new();
    for (i, server) in servers.into_iter().enumerate() {
        let name = server.name.clone();
        let printed = server.stop().await?;
        if i == forged || i == paced {
            summaries.push(lookup_summary(&name, &printed)?);
        }
    }

    let mut rows: Vec<Row> = targets
        .iter()
        .map(|target| Row::new(target.label, &target.samples, target.expect))
        .collect();
    let mut baselines: Vec<Option<usize>> =
        targets.iter().map(|target| Some(target.baseline)).collect();
    let under_flood = &targets[paced_baseline + 1];
    rows.push(Row::new(
        "the forged flood beside it (second client)",
        &under_flood.flood_samples,
        429,
    ));
    baselines.push(None);
    let mut table = Table::new(rows, &baselines);
    if options.paired {
        table.use_pairs(targets.iter().map(|target| target.pair_ratios.as_slice()));
    }
    let sum_stats = |samples: &[Sample]| {
        samples
            .iter()
            .filter_map(|s| s.server_stats)
            .fold(ServerStats::default(), ServerStats::add)
    };
    let flood_report = FloodReport {
        forged_label: targets[forged_baseline + 1].label,
        forged_bare_label: targets[forged_baseline].label,
        forged_runs: targets[forged_baseline + 1]
            .samples
            .iter()
            .filter_map(|s| s.server_stats)
            .collect(),
        forged_server: summaries[0],
        alone_label: targets[paced_baseline].label,
        under_flood_label: under_flood.label,
        flood_label: "the forged flood beside it (second client)",
        flood_stats: sum_stats(&under_flood.flood_samples),
        flood_runs: under_flood
            .flood_samples
            .iter()
            .filter_map(|s| s.server_stats)
            .collect(),
        paced_server: summaries[1],
        paced_rate: options.paced_rate,
        paced_connections: options.paced_connections,
        well_behaved_client: WELL_BEHAVED_CLIENT,
        flooding_client: FLOODING_CLIENT,
        flood_connections: options.connections,
        budget: keyward::LocalFailureBudget::default().limit(),
        flood_duration: options.duration + Duration::from_secs(1),
    };

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
            &flood_report,
            &write_rows,
            options.requests,
        )
    );
    Ok(())
}

fn log_sample(round: usize, rounds: usize, label: &str, sample: &Sample) {
    eprintln!(
        "round {}/{}  {:<44} {:>9.0} req/s  p50 {:>8.3} ms  p99 {:>8.3} ms  cpu {:>6.2} µs/req{}",
        round + 1,
        rounds,
        label,
        sample.requests_per_sec,
        sample.p50.as_secs_f64() * 1e3,
        sample.p99.as_secs_f64() * 1e3,
        sample
            .server_cpu_per_request
            .map_or(f64::NAN, |cpu| cpu.as_secs_f64() * 1e6),
        sample
            .server_stats
            .map_or_else(String::new, |stats| format!(
                "  lookups {} charged {} refused {}",
                stats.lookups, stats.charged, stats.refused
            )),
    );
}

fn options_summary(options: &Options, server_cpu: Option<usize>, wrk_cpu: Option<usize>) -> String {
    let pinning = match (server_cpu, wrk_cpu) {
        (Some(server), Some(wrk)) => format!("servers pinned to CPU {server}, wrk to CPU {wrk}"),
        _ => "no CPU pinning".to_owned(),
    };
    let ratios = if options.paired {
        "; each row's baseline run again right before it in every round, and × bare the median \
         of those pairs' ratios (req/s, p50, p99 and CPU stay medians of the row's own runs)"
    } else {
        ""
    };
    format!(
        "wrk -t{} -c{} -d{}s --latency, {} interleaved round(s), rotating order, medians{ratios}; \
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
