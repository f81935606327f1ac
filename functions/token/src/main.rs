//! Lambda entry point of the token issuer: cold start only (telemetry, configuration, the signing
//! keys, SDK clients), then the HTTP runtime loop. A start-up error ends the process with one
//! sentence naming the variable and the fix ([`kit::start::or_exit`]).

use lambda_http::{Request, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    kit::telemetry::init();
    let function = kit::start::or_exit("token", token::Function::from_env().await);
    let function = &function;
    lambda_http::run(service_fn(move |request: Request| async move {
        Ok::<_, std::convert::Infallible>(function.handle(request).await)
    }))
    .await
}
