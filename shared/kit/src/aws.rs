//! AWS SDK configuration, loaded once at cold start. `AWS_ENDPOINT_URL` points every client
//! at an emulator (moto) locally; in Lambda the defaults apply.

/// Loads the shared SDK configuration from the environment.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}
