//! The per-environment loop's state machine, as pure steps.
//!
//! The scheduler's `run_environment` owns the state ([`Pass`],
//! [`CatchUp`], the poll and watch times), asks these functions what to do
//! next and carries it out (listing streams, importing, reporting). Nothing
//! here talks to the cluster or sleeps, so the rules for resuming after a
//! restart, closing a window, reporting a missed one and catching up are
//! tested in milliseconds.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::config::{Environment, Mode, OnMissedWindow};
use crate::decide::{wake_at, Decision, SeenImages};
use crate::env_windows::EnvWindows;
use crate::importer::ImportOutcome;
use crate::schedule::Window;
use crate::trigger::Trigger;

/// Why a tag of a window that passed unhandled was not imported.
pub const NO_SCHEDULER_RUNNING: &str = "no scheduler was running during the window";
/// Why a tag seen in a window was not imported, when nothing failed.
pub const NOT_IMPORTED_BEFORE_CLOSE: &str = "not imported before the window closed";
/// How the reason of a tag the gates held until the window closed starts.
pub const GATED_PREFIX: &str = "held by gates until the window closed: ";

/// What the last run of an environment left behind.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resumed {
    pub window_id: Option<String>,
    pub window_end: Option<DateTime<Utc>>,
    /// Streams touched in that window.
    pub known: BTreeSet<String>,
    /// Streams brought up to date in that window.
    pub done: BTreeSet<String>,
}

/// A tag and why it was not imported.
#[derive(Clone, Debug, PartialEq)]
pub struct TagRecord {
    pub stream: String,
    pub reason: String,
}

/// Tags of missed windows still to import (`onMissedWindow: importNow`).
#[derive(Clone, Debug, Default, PartialEq)]
pub enum CatchUp {
    #[default]
    Nothing,
    /// Which streams missed is unknown (nothing was recorded): all of them.
    All,
    Streams(BTreeSet<String>),
}

impl CatchUp {
    pub fn pending(&self) -> bool {
        *self != CatchUp::Nothing
    }

    pub fn add(&mut self, streams: impl IntoIterator<Item = String>) {
        let mut streams: BTreeSet<String> = streams.into_iter().collect();
        *self = match std::mem::take(self) {
            CatchUp::All => CatchUp::All,
            _ if streams.is_empty() => CatchUp::All,
            CatchUp::Streams(mut s) => {
                s.append(&mut streams);
                CatchUp::Streams(s)
            }
            CatchUp::Nothing => CatchUp::Streams(streams),
        };
    }

    /// The streams a catch-up round checks; `None`: every stream.
    pub fn only(&self) -> Option<&BTreeSet<String>> {
        match self {
            CatchUp::Streams(s) => Some(s),
            _ => None,
        }
    }

    /// Forgets the streams now current; `All` ends once every known one is.
    pub fn settle(&mut self, known: &BTreeSet<String>, done: &BTreeSet<String>) {
        match self {
            CatchUp::Nothing => {}
            CatchUp::All => {
                if !known.is_empty() && known.is_subset(done) {
                    *self = CatchUp::Nothing;
                }
            }
            CatchUp::Streams(s) => {
                s.retain(|x| !done.contains(x));
                if s.is_empty() {
                    *self = CatchUp::Nothing;
                }
            }
        }
    }

    /// After a catch-up round: forgets what the round brought up to date
    /// (every stream it checked counts as known) and says whether the
    /// catch-up is complete.
    pub fn settle_round(&mut self, pass: &Pass) -> bool {
        let known: BTreeSet<String> = pass
            .done
            .iter()
            .chain(pass.failing.keys())
            .cloned()
            .collect();
        self.settle(&known, &pass.done);
        !self.pending()
    }
}

/// A tag whose last import failed.
#[derive(Clone, Debug, PartialEq)]
pub struct Failing {
    pub attempts: u32,
    pub retry_at: DateTime<Utc>,
    pub reason: String,
    /// False when a person must fix it (see [`crate::decide::failure_backoff`]).
    pub transient: bool,
    /// The tag's source when it failed.
    pub source: String,
}

/// Progress of one window (or, in immediate mode, of the running process).
#[derive(Debug, Default)]
pub struct Pass {
    pub window: Option<Window>,
    /// Streams seen while the window was open.
    pub known: BTreeSet<String>,
    /// Streams whose tag was verified current or imported in this window.
    pub done: BTreeSet<String>,
    pub failing: BTreeMap<String, Failing>,
    pub held_reported: BTreeSet<String>,
    pub scheduled_reported: BTreeSet<String>,
    pub missing_reported: BTreeSet<String>,
    pub skipped_reported: BTreeSet<String>,
    pub discovery_error: Option<String>,
    /// The last outcome of each stream in this window, for its summary.
    pub outcomes: BTreeMap<String, crate::notify::Outcome>,
    /// Streams the gates held at their last check in this window.
    pub gated: BTreeMap<String, crate::gates::GatedTag>,
    /// Newest images the daemon imported or saw while it could import; kept
    /// across windows (see [`Pass::restart`]).
    pub seen: SeenImages,
}

impl Pass {
    pub fn for_window(window: Option<Window>) -> Pass {
        Pass {
            window,
            ..Pass::default()
        }
    }

    /// Starts over for `window` (or none), keeping what was seen of the streams.
    pub fn restart(&mut self, window: Option<Window>) {
        let seen = std::mem::take(&mut self.seen);
        *self = Pass {
            seen,
            ..Pass::for_window(window)
        };
    }

    pub fn next_retry(&self) -> Option<DateTime<Utc>> {
        self.failing.values().map(|f| f.retry_at).min()
    }
}

/// How an environment starts, given what the last run left behind.
#[derive(Clone, Debug, PartialEq)]
pub enum Resume {
    /// Nothing to pick up.
    Fresh,
    /// The window the last run worked in is still open: go on with it.
    Continue {
        window: Window,
        known: BTreeSet<String>,
        done: BTreeSet<String>,
    },
    /// Windows ended while nobody handled them: report each as missed for
    /// `tags`, and import them now when `catch_up`.
    Missed {
        windows: Vec<Window>,
        tags: Vec<TagRecord>,
        catch_up: bool,
    },
}

/// Picks up where the last run (this process before a restart, or another
/// replica before a failover) left off. Only windowed environments have
/// anything to pick up.
pub fn resume(env: &Environment, saved: &Resumed, now: DateTime<Utc>) -> Resume {
    let Mode::Windowed {
        schedule,
        on_missed_window,
    } = &env.mode
    else {
        return Resume::Fresh;
    };
    let windows = EnvWindows::frozen(schedule, &env.freeze);
    if let (Some(open), Some(id)) = (windows.current(now), saved.window_id.as_deref()) {
        if open.id() == id {
            return Resume::Continue {
                window: open,
                known: saved.known.clone(),
                done: saved.done.clone(),
            };
        }
    }
    let passed = windows.passed(saved.window_end.unwrap_or(now), now);
    if passed.is_empty() {
        return Resume::Fresh;
    }
    Resume::Missed {
        windows: passed,
        tags: saved
            .known
            .iter()
            .map(|s| TagRecord {
                stream: s.clone(),
                reason: NO_SCHEDULER_RUNNING.into(),
            })
            .collect(),
        catch_up: *on_missed_window == OnMissedWindow::ImportNow,
    }
}

/// What closing a window reports.
#[derive(Clone, Debug, PartialEq)]
pub struct Closing {
    pub window: Window,
    /// The window is reported missed for these tags, with this summary;
    /// `None`: nothing was missed.
    pub missed: Option<(Vec<TagRecord>, String)>,
    /// The missed tags are imported now (`onMissedWindow: importNow`).
    pub catch_up: bool,
    /// Tags brought up to date in the window, and tags seen in it.
    pub done: usize,
    pub known: usize,
}

/// Closes the window of `pass`, if it has one: every tag seen in it and not
/// brought up to date was missed. A window in which no stream could be
/// listed is missed too; one without any stream is not (nothing to miss).
pub fn close(env: &Environment, pass: &Pass) -> Option<Closing> {
    let window = pass.window?;
    // A cluster that went away mid-window is why the rest was not done.
    let listing = pass
        .discovery_error
        .as_ref()
        .map(|e| format!("; then the image streams could not be listed: {e}"))
        .unwrap_or_default();
    let tags: Vec<TagRecord> = pass
        .known
        .iter()
        .filter(|s| !pass.done.contains(*s))
        .map(|s| TagRecord {
            stream: s.clone(),
            // What held it last: the gates at their last check, else the
            // last failure.
            reason: pass
                .gated
                .get(s)
                .map(|g| format!("{GATED_PREFIX}{}", crate::gates::describe(&g.holds)))
                .or_else(|| pass.failing.get(s).map(|f| f.reason.clone()))
                .unwrap_or_else(|| NOT_IMPORTED_BEFORE_CLOSE.into())
                + &listing,
        })
        .collect();
    let gated = tags
        .iter()
        .filter(|t| pass.gated.contains_key(&t.stream))
        .count();
    let nothing_to_miss = pass.known.is_empty() && pass.discovery_error.is_none();
    let missed = if nothing_to_miss || (tags.is_empty() && !pass.known.is_empty()) {
        None
    } else {
        // No tag missed but reported: no stream could ever be listed.
        let why = match &pass.discovery_error {
            Some(e) if tags.is_empty() => format!("the image streams could not be listed: {e}"),
            _ if gated > 0 => format!(
                "{} of {} tags were not imported ({gated} held by gates)",
                tags.len(),
                pass.known.len()
            ),
            _ => format!(
                "{} of {} tags were not imported",
                tags.len(),
                pass.known.len()
            ),
        };
        Some((tags, why))
    };
    let catch_up = missed.is_some()
        && matches!(
            env.mode,
            Mode::Windowed {
                on_missed_window: OnMissedWindow::ImportNow,
                ..
            }
        );
    Some(Closing {
        window,
        missed,
        catch_up,
        done: pass.done.len(),
        known: pass.known.len(),
    })
}

/// Keeps `outcome` as `stream`'s outcome in the window, except that a
/// later poll finding the tag on the image the window imported leaves the
/// import told: the summary says the tag was updated, not unchanged.
pub fn keep_outcome(
    outcomes: &mut BTreeMap<String, crate::notify::Outcome>,
    stream: &str,
    outcome: crate::notify::Outcome,
) {
    use crate::notify::Outcome;
    if let (Some(Outcome::Updated { to, .. }), Outcome::Unchanged { digest }) =
        (outcomes.get(stream), &outcome)
    {
        if to == digest {
            return;
        }
    }
    outcomes.insert(stream.to_owned(), outcome);
}

/// An import's outcome as a window summary tells it.
pub fn notice_outcome(outcome: &ImportOutcome) -> crate::notify::Outcome {
    use crate::notify::Outcome;
    match outcome {
        ImportOutcome::Updated { from, to } => Outcome::Updated {
            from: from.clone(),
            to: to.clone(),
        },
        ImportOutcome::Unchanged { digest } => Outcome::Unchanged {
            digest: digest.clone(),
        },
        ImportOutcome::Held { reference } => Outcome::Held {
            digest: reference.clone(),
        },
        ImportOutcome::Failed {
            reason, message, ..
        } => Outcome::Failed {
            reason: format!("{reason}: {message}"),
        },
    }
}

/// When the loop is next due to do something by itself.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Due {
    /// Sources are checked again (inside a window, or in immediate mode).
    pub poll: DateTime<Utc>,
    /// Outside a window: the streams are listed to notice others' imports.
    pub watch: DateTime<Utc>,
    /// A failed tag may be tried again.
    pub retry: Option<DateTime<Utc>>,
}

/// What one turn of the loop does after closing a window (if one closed).
#[derive(Clone, Debug, PartialEq)]
pub enum Work {
    Idle,
    /// List the streams outside a window (see `watch_outside_window`).
    Watch,
    /// A new window opened: start a pass for it and check every tag.
    Open(Window),
    /// Check the tags (for a retry: only those due).
    Round(Trigger),
}

impl Work {
    /// Whether the next poll is counted from this turn.
    pub fn restarts_poll(&self) -> bool {
        matches!(
            self,
            Work::Open(_) | Work::Round(Trigger::Poll) | Work::Round(Trigger::CatchUp)
        )
    }
}

/// One turn of the loop.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// The window of the pass is no longer open: close it first.
    pub close: bool,
    pub work: Work,
}

/// What the loop does at `now`, given the decision for `now`, the window of
/// the current pass and what is due.
pub fn step(
    decision: &Decision,
    now: DateTime<Utc>,
    pass_window: Option<Window>,
    due: &Due,
) -> Step {
    let close = pass_window.is_some_and(|w| *decision != Decision::InWindow(w));
    let pass_window = if close { None } else { pass_window };
    let poll_due = now >= due.poll;
    // Closing a window starts a new pass, which has no failures to retry.
    let retry_due = !close && due.retry.is_some_and(|t| t <= now);
    let poll_or_retry = |poll: Trigger| {
        if poll_due {
            Work::Round(poll)
        } else if retry_due {
            Work::Round(Trigger::Retry)
        } else {
            Work::Idle
        }
    };
    let work = match decision {
        Decision::Paused => Work::Idle,
        Decision::Wait { .. } | Decision::Frozen { .. } if now >= due.watch => Work::Watch,
        Decision::Wait { .. } | Decision::Frozen { .. } => Work::Idle,
        Decision::Follow => poll_or_retry(Trigger::Poll),
        Decision::InWindow(w) if pass_window != Some(*w) => Work::Open(*w),
        Decision::InWindow(_) => poll_or_retry(Trigger::Poll),
        // A catch-up round is due at a poll or a retry alike; failed tags
        // are retried by the next catch-up round.
        Decision::CatchUp if poll_due || retry_due => Work::Round(Trigger::CatchUp),
        Decision::CatchUp => Work::Idle,
    };
    Step { close, work }
}

/// When the loop next wakes up by itself, after a turn: at once when the
/// window of the pass closed during the turn (to close it and report what
/// it missed now, not at the next wake-up), else as [`wake_at`] says.
pub fn wake(
    decision: &Decision,
    now: DateTime<Utc>,
    pass_window: Option<Window>,
    due: &Due,
) -> DateTime<Utc> {
    match pass_window {
        Some(w) if *decision != Decision::InWindow(w) => now,
        _ => {
            let poll_at = match decision {
                Decision::Wait { .. } | Decision::Frozen { .. } => due.watch,
                _ => due.poll,
            };
            wake_at(decision, now, poll_at, due.retry)
        }
    }
}

#[cfg(test)]
#[path = "loop_steps_tests.rs"]
mod tests;
