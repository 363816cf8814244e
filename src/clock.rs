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

/// `t + d`, saturating at the latest representable instant: a configured
/// duration of thousands of years means "never", not a panic.
pub fn after(t: DateTime<Utc>, d: std::time::Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_saturates() {
        let t: DateTime<Utc> = "2026-11-24T01:00:00Z".parse().unwrap();
        assert_eq!(
            after(t, std::time::Duration::from_secs(60)),
            "2026-11-24T01:01:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(after(t, std::time::Duration::MAX), DateTime::<Utc>::MAX_UTC);
        assert_eq!(
            after(t, std::time::Duration::from_secs(99_999_999_999 * 86_400)),
            DateTime::<Utc>::MAX_UTC
        );
    }
}
