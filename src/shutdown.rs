//! Turns SIGTERM (Kubernetes stopping the pod) and SIGINT (Ctrl-C) into a
//! cancellation token that every loop selects on.

use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

/// A token cancelled on the first SIGTERM or SIGINT.
///
/// Must be called inside a tokio runtime. If the signal handlers cannot be
/// installed (which only happens when the process is out of resources), the
/// error is logged and the token is never cancelled by a signal.
pub fn signal_token() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    let handlers = signal(SignalKind::terminate())
        .and_then(|term| Ok((term, signal(SignalKind::interrupt())?)));
    match handlers {
        Ok((mut term, mut int)) => {
            tokio::spawn(async move {
                let name = tokio::select! {
                    _ = term.recv() => "SIGTERM",
                    _ = int.recv() => "SIGINT",
                };
                tracing::info!(
                    signal = name,
                    "received {name}: stopping new work and shutting down"
                );
                cancel.cancel();
            });
        }
        Err(error) => {
            tracing::error!(%error, "cannot install SIGTERM/SIGINT handlers; the process will not shut down gracefully");
        }
    }
    token
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Signals go to the whole test process: this must stay the only test
    /// that installs these handlers, or the others' tokens are cancelled too.
    #[tokio::test]
    async fn sigterm_cancels_the_token() {
        let token = signal_token();
        assert!(!token.is_cancelled());
        let status = std::process::Command::new("kill")
            .args(["-TERM", &std::process::id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        // Polls the condition; the deadline only bounds a broken run.
        tokio::time::timeout(std::time::Duration::from_secs(30), token.cancelled())
            .await
            .unwrap();
    }
}
