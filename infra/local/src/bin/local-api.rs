//! `local-api`: the token issuer and the presence query over HTTP on loopback, as API Gateway
//! serves them in AWS (see `local_stack::api`), plus the revocations export for the broker.
//!
//! Environment: the two functions' own variables (`TOKEN_TABLE`, `ENROLLMENT_TABLE`,
//! `SIGNING_KEYS_SECRET_ID`, `PRESENCE_TABLE`, ...), `LOCAL_API_PORT` (required: the stack
//! picks a free port), `LOCAL_REVOCATIONS_FILE` (required: the file the broker plugin reads),
//! `LOCAL_REVOCATIONS_POLL_MS` (1000).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use kit::{ConfigError, Env};
use local_stack::api::{self, Handlers};
use local_stack::shutdown;

#[tokio::main]
async fn main() -> ExitCode {
    kit::telemetry::init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "local API failed to start");
            eprintln!("local-api: {e}");
            ExitCode::from(2)
        }
    }
}

fn invalid(var: &'static str, value: String, problem: String) -> ConfigError {
    ConfigError::Invalid {
        var,
        value,
        problem,
    }
}

async fn run() -> Result<(), ConfigError> {
    let env = Env::process();
    let port: u16 = env.parse_or("LOCAL_API_PORT", 0)?;
    if port == 0 {
        return Err(invalid(
            "LOCAL_API_PORT",
            String::new(),
            "set it to the loopback port the local API listens on".into(),
        ));
    }
    let file = PathBuf::from(env.required(
        "LOCAL_REVOCATIONS_FILE",
        "set it to the revocations file the broker plugin reads (plugin_opt_revocations_file)",
    )?);
    let poll = Duration::from_millis(env.parse_or("LOCAL_REVOCATIONS_POLL_MS", 1000)?);
    let sdk = kit::aws::sdk_config().await;
    let handlers = Arc::new(Handlers {
        token: token::Function::from_env_with(&env, &sdk).await?,
        presence: presence_query::Function::from_env_with(&env, &sdk)?,
    });
    let table = env.required("TOKEN_TABLE", "set it to the TokenTable name")?;
    let store = stores::TokenTable::new(aws_sdk_dynamodb::Client::new(&sdk), table);
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| invalid("LOCAL_API_PORT", port.to_string(), e.to_string()))?;
    let stop =
        shutdown::on_signals().map_err(|e| invalid("signals", String::new(), e.to_string()))?;
    tracing::info!(%addr, revocations = %file.display(), "local API listening");
    tokio::join!(
        api::run(listener, handlers, stop.clone()),
        api::export_revocations(store, file, poll, stop),
    );
    Ok(())
}
