//! The rollout checks running in this process: each its own task, a
//! bounded number following the cluster at once, one per tag.
//!
//! A newer import of a tag supersedes the check of the older image (that
//! rollout no longer matters). A check stops with its environment loop
//! (shutdown, lost leadership, configuration change) and leaves its record
//! in the status ConfigMap, from which the next loop resumes it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::check::{self, CheckContext, CheckJob, Ended};

/// Checks following the cluster at once; the others wait for a turn (their
/// record is kept already, so a restart meanwhile loses nothing).
pub const MAX_CHECKS: usize = 8;

#[derive(Clone, Debug)]
struct Running {
    digest: String,
    id: u64,
    stop: CancellationToken,
}

type Key = (String, String);

/// The verdict of the rollout of one import.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The image the import brought.
    pub digest: String,
    pub ended: Ended,
    /// When the verdict was reached (the daemon's clock).
    pub at: DateTime<Utc>,
}

/// Handle on the checks of every environment; cheap to clone.
#[derive(Clone)]
pub struct Rollouts {
    permits: Arc<Semaphore>,
    running: Arc<Mutex<HashMap<Key, Running>>>,
    /// The last verdict per (environment, stream).
    ended: Arc<Mutex<HashMap<Key, Verdict>>>,
    next_id: Arc<std::sync::atomic::AtomicU64>,
}

impl Default for Rollouts {
    fn default() -> Self {
        Self::new(MAX_CHECKS)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Rollouts {
    pub fn new(max: usize) -> Self {
        Rollouts {
            permits: Arc::new(Semaphore::new(max.max(1))),
            running: Arc::default(),
            ended: Arc::default(),
            next_id: Arc::default(),
        }
    }

    /// Whether a live check of `env`/`stream` runs for `digest`.
    pub fn is_running(&self, env: &str, stream: &str, digest: &str) -> bool {
        lock(&self.running)
            .get(&(env.to_owned(), stream.to_owned()))
            .is_some_and(|r| r.digest == digest && !r.stop.is_cancelled())
    }

    /// Starts `job` as its own task, stopped by `stop`. A live check of the
    /// same image is left alone (never started twice); one of an older image
    /// is superseded.
    pub fn start(&self, mut ctx: CheckContext, job: CheckJob, stop: &CancellationToken) {
        let key = (job.env.clone(), job.stream.clone());
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let token = stop.child_token();
        {
            let mut running = lock(&self.running);
            if let Some(r) = running.get(&key) {
                if r.digest == job.record.digest && !r.stop.is_cancelled() {
                    debug!(env = %job.env, stream = %job.stream, "rollout check already running");
                    return;
                }
                r.stop.cancel();
            }
            running.insert(
                key.clone(),
                Running {
                    digest: job.record.digest.clone(),
                    id,
                    stop: token.clone(),
                },
            );
        }
        let this = self.clone();
        let (verdicts, digest, at) = (self.ended.clone(), job.record.digest.clone(), key.clone());
        ctx.on_verdict = Some(Arc::new(move |ended: Ended, when: DateTime<Utc>| {
            let verdict = Verdict {
                digest: digest.clone(),
                ended,
                at: when,
            };
            lock(&verdicts).insert(at.clone(), verdict);
        }));
        tokio::spawn(async move {
            tokio::select! {
                _ = token.cancelled() => {}
                _ = async {
                    let _permit = this.permits.acquire().await.ok()?;
                    check::run(&ctx, job).await
                } => {}
            }
            let mut running = lock(&this.running);
            if running.get(&key).is_some_and(|r| r.id == id) {
                running.remove(&key);
            }
        });
    }

    /// The verdicts reached since `since` of the rollouts of `env`'s
    /// imports, by stream (the last one of each).
    pub fn ended(&self, env: &str, since: DateTime<Utc>) -> BTreeMap<String, Verdict> {
        lock(&self.ended)
            .iter()
            .filter(|((e, _), v)| e == env && v.at >= since)
            .map(|((_, s), v)| (s.clone(), v.clone()))
            .collect()
    }
}
