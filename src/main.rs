//! The `otasim` command: parses arguments, installs tracing and hands over to the library.

use clap::Parser;
use otasim::Cli;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    otasim::install_tracing(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("otasim: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(otasim::execute(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("otasim: {e:#}");
            ExitCode::FAILURE
        }
    }
}
