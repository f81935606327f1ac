//! Lambda entry point of the inflow function: cold start only (telemetry, configuration, the MQTT
//! publisher whose connection is reused by every invocation of this container), then the runtime
//! loop. A start-up error ends the process with one sentence naming the variable and the fix
//! ([`kit::start::or_exit`]).

use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    kit::telemetry::init();
    let function = kit::start::or_exit("inflow", inflow::Function::from_env().await);
    let function = &function;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        function.handle(event.payload).await
    }))
    .await
}
