//! SIGINT / SIGTERM as a `watch` channel that every loop can select on.

use tokio::sync::watch;

/// A receiver that turns `true` once the process was asked to stop.
pub type Shutdown = watch::Receiver<bool>;

/// Installs the signal handlers and returns the receiver.
pub fn on_signals() -> std::io::Result<Shutdown> {
    let (tx, rx) = watch::channel(false);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutdown requested: finishing the batches in hand");
        let _ = tx.send(true);
    });
    Ok(rx)
}

/// Resolves when the shutdown flag is set (immediately if it already is).
pub async fn wait(shutdown: &mut Shutdown) {
    if *shutdown.borrow() {
        return;
    }
    // An error means the sender is gone: treat as a stop too.
    let _ = shutdown.wait_for(|stop| *stop).await;
}
