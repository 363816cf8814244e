//! `import-scheduler check --config FILE`: validate and summarise.

use std::path::PathBuf;

use chrono::Utc;

use super::{load_config_file, EXIT_OK};
use crate::config::{Config, Mode, StreamSelection};
use crate::duration::format_duration;
use crate::env_windows::EnvWindows;
use crate::schedule::Window;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file to check (the ConfigMap's config.yaml).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

pub fn run(args: &Args) -> u8 {
    let now = Utc::now();
    let loaded = match load_config_file(&args.config, now) {
        Ok(l) => l,
        Err(code) => return code,
    };
    for w in &loaded.warnings {
        eprintln!("warning: {w}");
    }
    print!("{}", summary(&loaded.config, now));
    EXIT_OK
}

/// A short description of every environment, for people.
pub fn summary(config: &Config, now: chrono::DateTime<Utc>) -> String {
    let mut out = format!(
        "configuration is valid: {} environment{}\n",
        config.environments.len(),
        if config.environments.len() == 1 {
            ""
        } else {
            "s"
        }
    );
    for env in config.environments.values() {
        let streams = match &env.streams {
            StreamSelection::All => "every stream with the tag".to_string(),
            StreamSelection::Names(n) => format!("streams {}", n.join(", ")),
            StreamSelection::Labels(_) => {
                format!(
                    "streams labelled {}",
                    env.streams.label_selector().unwrap_or_default()
                )
            }
        };
        out.push_str(&format!(
            "  {}: {} in {}, tag {}, {}{}\n",
            env.name,
            env.mode.name(),
            env.namespace,
            env.tag,
            streams,
            if env.paused { ", PAUSED" } else { "" }
        ));
        match &env.mode {
            Mode::Immediate => out.push_str(&format!(
                "    polls every {}\n",
                format_duration(env.poll_interval)
            )),
            Mode::Windowed {
                schedule,
                on_missed_window,
            } => {
                out.push_str(&format!(
                    "    schedule \"{}\" in {}, window {}, polls every {} inside it, on a missed window: {}\n",
                    schedule.expr(),
                    schedule.time_zone(),
                    format_duration(schedule.window()),
                    format_duration(env.poll_interval),
                    on_missed_window.name()
                ));
                match EnvWindows::frozen(schedule, &env.freeze).current_or_next(now) {
                    Some(w) => out.push_str(&format!(
                        "    {} window: {}\n",
                        if w.contains(now) { "open" } else { "next" },
                        describe_window(&w, schedule.time_zone())
                    )),
                    None => out.push_str("    no window in the search horizon\n"),
                }
            }
        }
    }
    out
}

/// `Tue 2026-11-24 02:00 CET - 03:00 CET (01:00Z - 02:00Z)`.
pub fn describe_window(w: &Window, tz: chrono_tz::Tz) -> String {
    let start = w.start.with_timezone(&tz);
    let end = w.end.with_timezone(&tz);
    let end_fmt = if start.date_naive() == end.date_naive() {
        "%H:%M %Z"
    } else {
        "%a %Y-%m-%d %H:%M %Z"
    };
    format!(
        "{} - {} ({} - {})",
        start.format("%a %Y-%m-%d %H:%M %Z"),
        end.format(end_fmt),
        w.start.format("%Y-%m-%d %H:%MZ"),
        w.end.format("%Y-%m-%d %H:%MZ"),
    )
}
