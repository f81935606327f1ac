//! `classroom`: the admin command line. Parses the arguments, loads the configuration from the
//! environment (the same variables as the functions), runs the command.

use std::io::Read as _;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut command = match classroom_cli::CliCommand::parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("classroom: {e}\n\n{}", classroom_cli::USAGE);
            return ExitCode::from(2);
        }
    };
    // `token query -` reads the token from stdin, so it stays out of the process list and the
    // shell history.
    if let classroom_cli::CliCommand::Token(classroom_cli::TokenCommand::Query { token, .. }) =
        &mut command
        && token == "-"
    {
        let mut text = String::new();
        if let Err(e) = std::io::stdin().read_to_string(&mut text) {
            eprintln!("classroom: cannot read the token from stdin: {e}");
            return ExitCode::FAILURE;
        }
        *token = text.trim().to_owned();
    }
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
