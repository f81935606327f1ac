//! `rules-bridge`: the local stand-in for the IoT rules' SQS actions (see `local_stack::bridge`).
//!
//! Environment: the broker and the backend identity exactly as the inflow reads them
//! ([`kit::Env::mqtt_settings`]: `MQTT_URL`, `mqtts://` for the stack's certificate listener,
//! and `MQTT_SECRET_ID`, the Secrets Manager secret with the backend's client certificate, or
//! `MQTT_USERNAME` / `MQTT_PASSWORD` for a password broker), `BRIDGE_CLIENT_ID` (default `classroom-rules-bridge`), `UPLINK_QUEUE_URL`,
//! `PRESENCE_QUEUE_URL`, `RULE_ERROR_QUEUE_URL` (the rules' error action: what SQS refuses for
//! good is reported there, then acknowledged), `UPLINK_RECORD_TOPIC` (default `$classroom/uplink`),
//! `PRESENCE_EVENT_TOPIC` (default `$aws/events/presence/#`, where the plugin publishes the
//! lifecycle events as AWS IoT Core does), and the AWS SDK variables.

use std::process::ExitCode;

use kit::Env;
use local_stack::{bridge, shutdown};

#[tokio::main]
async fn main() -> ExitCode {
    kit::telemetry::init();
    let env = Env::process();
    let sdk = kit::aws::sdk_config().await;
    let settings = match settings(&env, &sdk).await {
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
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    tracing::info!(routes = ?settings.routes, port = settings.port, "rules bridge starting");
    bridge::run(sqs, settings, stop).await;
    ExitCode::SUCCESS
}

async fn settings(
    env: &Env,
    sdk: &aws_config::SdkConfig,
) -> Result<bridge::BridgeSettings, kit::ConfigError> {
    let mqtt = env.mqtt_settings(sdk).await?;
    Ok(bridge::BridgeSettings {
        host: mqtt.host,
        port: mqtt.port,
        tls: mqtt.tls,
        credentials: mqtt.credentials,
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
        error_queue_url: env.required(
            "RULE_ERROR_QUEUE_URL",
            "the rule error queue URL (see .run/stack.env)",
        )?,
    })
}
