//! The daemon's notion of now. Everything that decides takes the time from a
//! [`Clock`], so tests and the sandbox can shift it; sleeping always uses
//! tokio's timer for the remaining span, re-reading the clock on wake-up.

use std::sync::Arc;

use chrono::{DateTime, Utc};

pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The wall clock shifted by a fixed offset: a test can put a window start a
/// few seconds ahead without waiting for the real one.
#[derive(Debug, Clone, Copy)]
pub struct ShiftedClock {
    pub offset: chrono::Duration,
}

impl Clock for ShiftedClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset
    }
}

pub type SharedClock = Arc<dyn Clock>;

/// Sleeps until `deadline` as read on `clock` (at once if it has passed).
pub async fn sleep_until(clock: &dyn Clock, deadline: DateTime<Utc>) {
    let remaining = (deadline - clock.now()).to_std().unwrap_or_default();
    tokio::time::sleep(remaining).await;
}
