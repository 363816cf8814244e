//! Telling the receivers when a freeze begins to apply or is lifted: the
//! edge of [`crate::freeze_in_force`]. The freeze told about is kept in the
//! status ConfigMap (`freezeAnnounced`), so a restart or a failover tells
//! only what changed meanwhile.

use chrono::{DateTime, Utc};
use tracing::info;

use super::Reporter;
use crate::config::{Environment, Mode};
use crate::env_windows::EnvWindows;
use crate::freeze_in_force::{change, in_force, notice, FreezeChange, FreezeInForce};
use crate::manual_freeze::ManualFreeze;

/// One environment loop's memory of the freeze it last told about.
#[derive(Debug, Default)]
pub struct FreezeAnnouncer {
    /// `None` until read from the status ConfigMap.
    told: Option<Option<FreezeInForce>>,
}

impl FreezeAnnouncer {
    /// Compares the freeze in force on `configured` at `now` (with the
    /// `manual` ones, which `frozen` already counts) with the one told
    /// about, and tells the change. When the record cannot be read, the
    /// freeze in force is taken as told: a notice missed rather than one
    /// repeated at every restart.
    pub async fn observe(
        &mut self,
        reporter: &Reporter,
        configured: &Environment,
        manual: &[ManualFreeze],
        frozen: &Environment,
        now: DateTime<Utc>,
    ) {
        let current = in_force(configured, manual, now);
        let told = match &self.told {
            Some(told) => told.clone(),
            // Never frozen: no request to read what was told.
            None if current.is_none() && matches!(configured.mode, Mode::Immediate) => None,
            None => reporter
                .freeze_announced(&configured.name)
                .await
                .unwrap_or_else(|| current.clone()),
        };
        if let Some(what) = change(told.as_ref(), current.as_ref()) {
            let next = EnvWindows::of(frozen)
                .and_then(|w| w.current_or_next(now))
                .map(|w| w.start);
            reporter
                .freeze_changed(&configured.name, &what, current.as_ref(), next)
                .await;
        }
        self.told = Some(current);
    }
}

impl Reporter {
    /// The freeze last told about on `env`; `None` if the status ConfigMap
    /// cannot be read.
    async fn freeze_announced(&self, env: &str) -> Option<Option<FreezeInForce>> {
        match self.state.load().await {
            Ok(mut all) => Some(all.remove(env).and_then(|s| s.freeze_announced)),
            Err(_) => None,
        }
    }

    async fn freeze_changed(
        &self,
        env: &str,
        what: &FreezeChange,
        current: Option<&FreezeInForce>,
        next_window: Option<DateTime<Utc>>,
    ) {
        let at = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        match what {
            FreezeChange::Frozen(f) => info!(
                env,
                decision = "freeze began",
                reason = %f.reason,
                source = f.source.name(),
                by = f.by.as_deref().unwrap_or_default(),
                frozen_until = %at(f.until),
                "telling the receivers that the environment is frozen"
            ),
            FreezeChange::Unfrozen { lifted } => info!(
                env,
                decision = "freeze lifted",
                reason = %lifted.reason,
                source = lifted.source.name(),
                next_window = next_window.map(at).unwrap_or_default(),
                "telling the receivers that the freeze no longer applies"
            ),
        }
        self.notify(notice(env, what, next_window));
        let current = current.cloned();
        self.update(env, |s| s.freeze_announced = current.clone())
            .await;
    }
}
