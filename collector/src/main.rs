//! `adit-collector`: parse the settings, run the collector until SIGTERM or
//! SIGINT. Everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;

use adit_collector::options::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colours for a terminal only, not in journald or a log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let config = match Cli::parse().into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("adit-collector: {e}");
            return ExitCode::from(2);
        }
    };
    match adit_collector::agent::run(config, shutdown()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, code = e.code(), "Collector failed.");
            eprintln!("adit-collector: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed now, before
/// the collector starts (its start may wait for adit), so a signal at any
/// moment stops it cleanly instead of killing it.
fn shutdown() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            (term, int) => {
                let e = term.err().or(int.err()).map(|e| e.to_string());
                tracing::warn!(error = ?e, "Signals not handled; stopping on ctrl-c only.");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}
