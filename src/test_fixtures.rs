//! Environments the unit tests of the pure core share, so a new
//! configuration field is added in one place.

use std::time::Duration;

use crate::config::{Environment, Mode, OnMissedWindow, StreamSelection};
use crate::schedule::{CronExpr, Schedule};

/// `prod` in `packit-prod`, tag `prod`, polled every minute, every stream.
pub fn environment(mode: Mode) -> Environment {
    Environment {
        name: "prod".into(),
        namespace: "packit-prod".into(),
        tag: "prod".into(),
        mode,
        poll_interval: Duration::from_secs(60),
        streams: StreamSelection::All,
        exclude: Vec::new(),
        sources: Vec::new(),
        paused: false,
        cluster: None,
        notifications: Default::default(),
        rollout: Default::default(),
        freeze: Default::default(),
        gates: Default::default(),
    }
}

/// Tuesdays 02:00-03:00 in Prague: 01:00Z-02:00Z in November.
pub fn prod(on_missed: OnMissedWindow) -> Environment {
    environment(Mode::Windowed {
        schedule: Schedule::new(
            CronExpr::parse("0 2 * * 2").unwrap(),
            chrono_tz::Europe::Prague,
            Duration::from_secs(3600),
        )
        .unwrap(),
        on_missed_window: on_missed,
    })
}
