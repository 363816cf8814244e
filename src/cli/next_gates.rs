//! `next --gates`: whether the gates of an environment would hold the next
//! window's imports if it opened now. Reads what the daemon reads before an
//! import (the source's digest, the soak environment, Prometheus, the
//! approvals) with the caller's account, and changes nothing.

use chrono::Utc;
use serde::Serialize;

use super::cluster::{CliError, ClusterArgs, Session};
use crate::decide::needs_import;
use crate::gate_check::RoundGates;
use crate::gates::{combine, Hold};
use crate::schedule::Window;
use crate::state::StateStore;

/// A tag a gate would hold now.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatedNow {
    pub stream: String,
    /// The digest the window would import.
    pub digest: String,
    pub holds: Vec<Hold>,
}

/// The tags of `env` that the gates would hold in `window` now; a tag
/// already current or pinned is not asked about.
pub async fn gated_now(
    args: &ClusterArgs,
    env: &str,
    window: &Window,
) -> Result<Vec<GatedNow>, CliError> {
    let session = Session::connect(args, Some(env)).await?;
    let env = session.environment(env)?.clone();
    let store = StateStore::new(
        session.client.clone(),
        &session.daemon_namespace,
        &session.status_configmap,
    );
    let Some(gates) = RoundGates::new(&env, &session.importer, window.id(), &store) else {
        return Ok(Vec::new());
    };
    let discovery = session.discover(&env).await?;
    let mut out = Vec::new();
    for t in discovery.targets.iter().filter(|t| !t.held) {
        let digest = session
            .importer
            .preview(t)
            .await
            .map_err(|e| session.import_error(e))?;
        if !needs_import(t.current.as_deref(), &digest) {
            continue;
        }
        let holds = combine(gates.check(t, &digest, Utc::now()).await);
        if !holds.is_empty() {
            out.push(GatedNow {
                stream: t.stream.clone(),
                digest,
                holds,
            });
        }
    }
    Ok(out)
}
