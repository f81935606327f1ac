//! Lambda entry point of the presence query: cold start only (telemetry, configuration, SDK
//! client), then the HTTP runtime loop. A start-up error ends the process with one sentence naming
//! the variable and the fix ([`kit::start::or_exit`]).

use lambda_http::{Request, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    kit::telemetry::init();
    let function =
        kit::start::or_exit("presence-query", presence_query::Function::from_env().await);
    let function = &function;
    lambda_http::run(service_fn(move |request: Request| async move {
        Ok::<_, std::convert::Infallible>(function.handle(request).await)
    }))
    .await
}
