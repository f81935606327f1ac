//! `classroom`: the admin command line. Parses the arguments, loads the configuration from the
//! environment (the same variables as the functions), runs the command.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match classroom_cli::Command::parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("classroom: {e}\n\n{}", classroom_cli::USAGE);
            return ExitCode::from(2);
        }
    };
    let sdk = kit::aws::sdk_config().await;
    match classroom_cli::run(&command, &kit::Env::process(), &sdk).await {
        Ok(output) => {
            println!("{output}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("classroom: {e}");
            ExitCode::FAILURE
        }
    }
}
