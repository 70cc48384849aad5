//! Runs the store day wired from `store-day.toml` (or the file given as the first argument) and prints the
//! report. Exits non-zero when the day cannot run or its books do not balance.

use std::path::PathBuf;
use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let config = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("store-day.toml"));
    match store_day::run_day(&config).await {
        Ok(report) => {
            print!("{report}");
            if report.books_balance() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Err(e) => {
            eprintln!("store day failed: {e}");
            ExitCode::FAILURE
        }
    }
}
