use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = adit::config::parse_command_line();
    let log_format = cli.log_format;
    adit::init_tracing(log_format);
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(adit::run(cli)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, the error and its causes: a failure to report, not a
            // crash, so no backtrace even when RUST_BACKTRACE is set.
            match log_format {
                adit::cli::LogFormat::Text => eprintln!("error: {e:#}"),
                // A log shipper reads JSON lines only.
                adit::cli::LogFormat::Json => {
                    tracing::error!(error = format!("{e:#}"), "adit failed.")
                }
            }
            ExitCode::FAILURE
        }
    }
}
