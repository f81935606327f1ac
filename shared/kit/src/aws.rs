//! AWS SDK configuration, loaded once at cold start. `AWS_ENDPOINT_URL` points every client
//! at an emulator (moto) locally; in Lambda the defaults apply.
//!
//! The SDK's HTTPS client is made here, not by the SDK's `default-https-client` feature (which
//! brings rustls with the aws-lc provider): it is the same client (hyper 1, rustls 0.23, the
//! proxy settings of the environment, as the SDK's default) with the ring provider, the one
//! rumqttc's rustls uses. So a function links one TLS stack and one crypto provider.

use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use aws_smithy_http_client::{Builder, ConnectorBuilder, proxy::ProxyConfig};

/// The SDK configuration loader with the project's defaults: the latest behavior version and
/// the HTTPS client (rustls with ring). Callers add their own settings (endpoint, region,
/// credentials) before `load()`.
pub fn loader() -> aws_config::ConfigLoader {
    let client = Builder::new().build_with_connector_fn(|settings, components| {
        let mut connector =
            ConnectorBuilder::default().tls_provider(Provider::Rustls(CryptoMode::Ring));
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    });
    aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(client)
}

/// Loads the shared SDK configuration from the environment.
pub async fn sdk_config() -> aws_config::SdkConfig {
    loader().load().await
}
