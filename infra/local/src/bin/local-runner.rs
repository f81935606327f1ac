//! `local-runner`: feeds each rule function from its local queue the way Lambda's SQS event
//! source does (see `local_stack::runner`), calling the same `Function::handle` the Lambda runs.
//!
//! Environment: the functions' own variables (`OUTFLOW_ROUTES`, `MQTT_URL`, ...), the source
//! queues `UPLINK_QUEUE_URL` (outflow), `DOWNLINK_QUEUE_URL` (inflow), `PRESENCE_QUEUE_URL`
//! (presence), `BACKEND_QUEUE_URL` (moderation), and optionally
//! `LOCAL_FUNCTIONS` (comma-separated subset), `LOCAL_BATCH_SIZE` (10), `LOCAL_WAIT_SECONDS`
//! (20), `LOCAL_POLLERS` (2 per function), `FUNCTION_TIMEOUT` (20 s), `LOCAL_SWEEP_SECONDS`
//! (600: how often the presence sweep runs, as PresenceSweepFunction's schedule does in AWS;
//! 0 = never).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use kit::Env;
use local_stack::runner::{self, Source, handler};
use local_stack::shutdown;

#[tokio::main]
async fn main() -> ExitCode {
    kit::telemetry::init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "local runner failed to start");
            eprintln!("local-runner: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run() -> Result<(), kit::ConfigError> {
    let env = Env::process();
    let wanted = env.or("LOCAL_FUNCTIONS", "outflow,moderation,presence,inflow");
    let wanted: Vec<&str> = wanted
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let settings = runner::RunnerSettings {
        batch_size: env.parse_or("LOCAL_BATCH_SIZE", 10)?,
        wait_seconds: env.parse_or("LOCAL_WAIT_SECONDS", 20)?,
        pollers: env.parse_or("LOCAL_POLLERS", 2)?,
        function_timeout: Duration::from_secs(env.parse_or("FUNCTION_TIMEOUT", 20)?),
        region: env.or("AWS_REGION", "us-east-1"),
    };
    let sdk = kit::aws::sdk_config().await;
    let mut sources = Vec::new();
    // Each function sees the variables the template gives it: where functions differ (each
    // its own DEAD_LETTER_QUEUE_URL), the stack writes `<LOGICAL_ID>__<VAR>`.
    for name in wanted {
        let source = match name {
            "outflow" => Source {
                name: name.into(),
                queue_url: env.required("UPLINK_QUEUE_URL", "outflow's source queue")?,
                handler: handler(
                    Arc::new(outflow::Function::from_env_with(
                        &env.scoped("OUTFLOW_FUNCTION"),
                        &sdk,
                    )?),
                    |f, e| async move { f.handle(e).await },
                ),
            },
            "inflow" => Source {
                name: name.into(),
                queue_url: env.required("DOWNLINK_QUEUE_URL", "inflow's source queue")?,
                handler: handler(
                    Arc::new(
                        inflow::Function::from_env_with(&env.scoped("INFLOW_FUNCTION"), &sdk)
                            .await?,
                    ),
                    |f, e| async move { f.handle(e).await },
                ),
            },
            "presence" => {
                let function = Arc::new(presence::Function::from_env_with(
                    &env.scoped("PRESENCE_FUNCTION"),
                    &sdk,
                )?);
                // The schedule of PresenceSweepFunction (every 10 minutes in AWS).
                let every: u64 = env.parse_or("LOCAL_SWEEP_SECONDS", 600)?;
                if every > 0 {
                    let sweeper = Arc::clone(&function);
                    tokio::spawn(async move {
                        let mut tick = tokio::time::interval(Duration::from_secs(every));
                        tick.tick().await;
                        loop {
                            tick.tick().await;
                            if let Err(e) = sweeper.sweep(kit::now_ms()).await {
                                tracing::warn!(error = %e, "presence sweep failed");
                            }
                        }
                    });
                }
                Source {
                    name: name.into(),
                    queue_url: env.required("PRESENCE_QUEUE_URL", "presence's source queue")?,
                    handler: handler(function, |f, e| async move { f.handle(e).await }),
                }
            }
            "moderation" => Source {
                name: name.into(),
                queue_url: env.required("BACKEND_QUEUE_URL", "moderation's source queue")?,
                handler: handler(
                    Arc::new(moderation::Function::from_env_with(
                        &env.scoped("MODERATION_FUNCTION"),
                        &sdk,
                    )?),
                    |f, e| async move { f.handle(e).await },
                ),
            },
            other => {
                return Err(kit::ConfigError::Invalid {
                    var: "LOCAL_FUNCTIONS",
                    value: other.to_owned(),
                    problem:
                        "not a function this runner was built with (outflow, moderation, presence, inflow)"
                            .into(),
                });
            }
        };
        sources.push(source);
    }
    let stop = shutdown::on_signals().map_err(|e| kit::ConfigError::Invalid {
        var: "signals",
        value: String::new(),
        problem: e.to_string(),
    })?;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    runner::run(sqs, sources, settings, stop).await;
    Ok(())
}
