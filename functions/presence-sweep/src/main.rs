//! The presence sweep function (`PresenceSweepFunction`), its Lambda entry point: the scheduled event (EventBridge, every 10
//! minutes; its body is not read) runs [`presence::Function::sweep`] at the time of the
//! invocation. Same configuration as the presence function (`PRESENCE_TABLE`,
//! `ATTENDANCE_TABLE`, `DOWNLINK_QUEUE_URL`). A client whose closing failed fails the
//! invocation (the Errors alarm), after every other client was swept.

use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    kit::telemetry::init();
    let function = kit::start::or_exit("presence-sweep", presence::Function::from_env().await);
    let function = &function;
    lambda_runtime::run(service_fn(
        move |_: LambdaEvent<serde_json::Value>| async move {
            let swept = function.sweep(kit::now_ms()).await?;
            if swept.failed > 0 {
                return Err(format!(
                    "{} of {} clients could not be swept (see the log); the next sweep tries again",
                    swept.failed, swept.clients
                )
                .into());
            }
            Ok::<_, lambda_runtime::Error>(serde_json::json!({
                "clients": swept.clients,
                "closed": swept.closed,
                "notices": swept.notices,
            }))
        },
    ))
    .await
}
