//! The reference app, built with the tests so that they can run it as separate processes
//! (`CARGO_BIN_EXE_books`); the same program as `cargo run --example books`.

use std::process::ExitCode;

fn main() -> ExitCode {
    keyward_examples::books::program::main()
}
