use clap::Parser;

/// mimalloc instead of glibc's malloc: under the inbox benchmark glibc's allocator (with its
/// arena locks and consolidation) took about a fifth of the process's CPU time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = frontdesk::Cli::parse();
    match frontdesk::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("frontdesk: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
