//! `rules-bridge`: the local stand-in for the IoT rules' SQS actions (see `local_stack::bridge`).
//!
//! Environment: `MQTT_URL` (`mqtt://127.0.0.1:<port>`), `MQTT_USERNAME`, `MQTT_PASSWORD`,
//! `BRIDGE_CLIENT_ID` (default `classroom-rules-bridge`), `UPLINK_QUEUE_URL`,
//! `PRESENCE_QUEUE_URL`, `UPLINK_RECORD_TOPIC` (default `$classroom/uplink`),
//! `PRESENCE_EVENT_TOPIC` (default `$aws/events/presence/#`, where the plugin publishes the
//! lifecycle events as AWS IoT Core does), and the AWS SDK variables.

use std::process::ExitCode;

use kit::Env;
use local_stack::{bridge, shutdown};

#[tokio::main]
async fn main() -> ExitCode {
    kit::telemetry::init();
    let env = Env::process();
    let settings = match settings(&env) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "bad configuration");
            eprintln!("rules-bridge: {e}");
            return ExitCode::from(2);
        }
    };
    let Ok(stop) = shutdown::on_signals() else {
        return ExitCode::FAILURE;
    };
    let sqs = aws_sdk_sqs::Client::new(&kit::aws::sdk_config().await);
    tracing::info!(routes = ?settings.routes, port = settings.port, "rules bridge starting");
    bridge::run(sqs, settings, stop).await;
    ExitCode::SUCCESS
}

fn settings(env: &Env) -> Result<bridge::BridgeSettings, kit::ConfigError> {
    let url = env.required("MQTT_URL", "set it to mqtt://127.0.0.1:<port>")?;
    let (host, port, _tls) = kit::mqtt::parse_url(&url).map_err(|e| kit::ConfigError::Invalid {
        var: "MQTT_URL",
        value: url.clone(),
        problem: e.to_string(),
    })?;
    Ok(bridge::BridgeSettings {
        host,
        port,
        username: env.required("MQTT_USERNAME", "the backend identity, e.g. backend")?,
        password: env.required(
            "MQTT_PASSWORD",
            "the backend's password (see .run/stack.env)",
        )?,
        client_id: env.or("BRIDGE_CLIENT_ID", "classroom-rules-bridge"),
        routes: vec![
            (
                env.or("UPLINK_RECORD_TOPIC", "$classroom/uplink"),
                env.required(
                    "UPLINK_QUEUE_URL",
                    "the uplink queue URL (see .run/stack.env)",
                )?,
            ),
            (
                env.or("PRESENCE_EVENT_TOPIC", "$aws/events/presence/#"),
                env.required(
                    "PRESENCE_QUEUE_URL",
                    "the presence queue URL (see .run/stack.env)",
                )?,
            ),
        ],
    })
}
