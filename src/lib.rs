//! The `otasim` command as a library: argument types and one module per subcommand, so that
//! end-to-end tests can drive exactly what users run.

mod cmd;
pub mod console;

pub use cmd::{Cli, Command, execute};

/// Installs a tracing subscriber on stderr: errors only by default (scenarios provoke warnings on
/// purpose, and their outcome is on stdout), `-v` for warnings and info, `-vv` for debug;
/// `RUST_LOG` overrides. Colours only when stderr is a terminal, never into a pipe or a file.
pub fn install_tracing(verbose: u8) {
    let default = match verbose {
        0 => "error",
        1 => "info,rmqtt=warn",
        _ => "debug,rmqtt=info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}
