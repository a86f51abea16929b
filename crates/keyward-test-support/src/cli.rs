//! The workspace's `keyward` command line, built on demand and run as another process would.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The `keyward` binary of this workspace, built by cargo if it is not up to date (a
/// dependency's binary is not built for another package's tests).
///
/// # Panics
///
/// When cargo cannot build it.
pub fn keyward_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let cargo = std::env::var_os("CARGO")
            .or_else(|| option_env!("CARGO").map(Into::into))
            .unwrap_or_else(|| "cargo".into());
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .nth(2)
            .expect("the workspace root");
        let mut build = Command::new(cargo);
        // Cargo describes the calling test's package in variables that build scripts read:
        // left in place, they would make this build differ from the workspace's and rebuild
        // half of it.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if name.starts_with("CARGO_PKG_")
                || name.starts_with("CARGO_BIN_")
                || [
                    "CARGO_MANIFEST_DIR",
                    "CARGO_MANIFEST_PATH",
                    "CARGO_CRATE_NAME",
                    "CARGO_PRIMARY_PACKAGE",
                    "CARGO_TARGET_TMPDIR",
                    "CARGO_RUSTC_CURRENT_DIR",
                    "OUT_DIR",
                ]
                .contains(&name.as_ref())
            {
                build.env_remove(name.as_ref());
            }
        }
        build.current_dir(workspace).args([
            "build",
            "--quiet",
            "--package",
            "keyward-cli",
            "--bin",
            "keyward",
            "--message-format=json",
        ]);
        if !cfg!(debug_assertions) {
            build.arg("--release");
        }
        let output = build.output().expect("run cargo");
        assert!(
            output.status.success(),
            "cargo build failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|message| message["target"]["name"] == "keyward")
            .find_map(|message| message["executable"].as_str().map(PathBuf::from))
            .expect("cargo names the built binary")
    })
}

/// Runs `keyward args…` on the database at `url` with only `DATABASE_URL` set (and
/// `KEYWARD_PEPPER` when `pepper` is given), off the async runtime; returns the exit code,
/// stdout and stderr.
///
/// # Panics
///
/// When the command cannot be run or prints something other than UTF-8.
pub async fn run_keyward(url: &str, pepper: Option<&str>, args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(keyward_binary());
    cmd.env("DATABASE_URL", url)
        .env_remove("KEYWARD_PREFIX")
        .env_remove("KEYWARD_PEPPER")
        .args(args);
    if let Some(pepper) = pepper {
        cmd.env("KEYWARD_PEPPER", pepper);
    }
    let output = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("the command's thread")
        .expect("run keyward");
    (
        output.status.code().expect("an exit code"),
        String::from_utf8(output.stdout).expect("UTF-8"),
        String::from_utf8(output.stderr).expect("UTF-8"),
    )
}
