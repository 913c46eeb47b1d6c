use clap::Parser;

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
