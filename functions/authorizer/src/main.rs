//! Lambda entry point of the authorizer: cold start only (telemetry, the key set from Secrets
//! Manager, the TokenTable client), then the runtime loop. A start-up error ends the process with
//! one sentence naming the variable and the fix; IoT Core then refuses the CONNECT.

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    kit::telemetry::init();
    let function = kit::start::or_exit("authorizer", authorizer::Function::from_env().await);
    let function = &function;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        Ok::<_, lambda_runtime::Error>(function.handle(event.payload).await)
    }))
    .await
}
