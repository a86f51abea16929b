//! The reference app as a program: what `cargo run --example books` runs, and the binary the
//! multi-process tests start.

use std::process::ExitCode;

use super::{Config, serve, shutdown_signal};

/// Reads the configuration from the environment ([`Config::from_env`]), logs to standard
/// error (`RUST_LOG`, default `info`), and serves until Ctrl-C or SIGTERM, then writes the
/// last usage counts. Exit code 2 for a bad configuration, 1 when the app fails.
#[must_use]
pub fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,sea_orm_migration=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
