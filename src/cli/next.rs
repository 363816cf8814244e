//! `import-scheduler next`: list the next windows of a schedule.

use std::path::PathBuf;

use chrono::{DateTime, SecondsFormat, Utc};

use super::cluster::ClusterArgs;
use super::next_gates::{gated_now, GatedNow};
use super::{load_config_file, usage_error, Output, EXIT_OK};
use crate::cli::check::describe_window;
use crate::config::Mode;
use crate::duration::{format_duration, parse_duration};
use crate::env_windows::EnvWindows;
use crate::freeze::{Freezes, Slot};
use crate::gates::describe;
use crate::image_ref::short_digest;
use crate::schedule::{parse_time_zone, CronExpr, Schedule, Window};

const MAX_COUNT: usize = 10_000;

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["schedule", "config"])))]
pub struct Args {
    /// CronJob-style expression, e.g. "0 2 * * 2" (Tuesday 02:00).
    #[arg(long, value_name = "EXPR", conflicts_with_all = ["config", "env"])]
    pub schedule: Option<String>,
    /// Configuration file; use with --env.
    #[arg(long, value_name = "FILE", requires = "env")]
    pub config: Option<PathBuf>,
    /// Environment of the configuration file.
    #[arg(long, value_name = "NAME", requires = "config")]
    pub env: Option<String>,
    /// IANA time zone [default: UTC, or the environment's]. Overrides the configuration's.
    #[arg(long, value_name = "TZ")]
    pub time_zone: Option<String>,
    /// Window length, e.g. 1h, 1h30m [default: 1h, or the environment's]. Overrides the configuration's.
    #[arg(long, value_name = "DURATION")]
    pub window: Option<String>,
    /// List windows from this instant (RFC 3339); a window open at it is listed first [default: now].
    #[arg(long, value_name = "RFC3339")]
    pub after: Option<String>,
    /// How many windows to list.
    #[arg(long, default_value_t = 5)]
    pub count: usize,
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// Also tell whether the environment's gates would hold the next
    /// window's imports if it opened now (reads the cluster; with --config
    /// and --env).
    #[arg(long, requires = "env")]
    pub gates: bool,
    /// Kubeconfig for --gates [default: KUBECONFIG, ~/.kube/config].
    #[arg(long, value_name = "FILE", requires = "gates")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context for --gates [default: the current context].
    #[arg(long, value_name = "NAME", requires = "gates")]
    pub context: Option<String>,
}

#[derive(serde::Serialize)]
struct JsonWindow {
    start: String,
    end: String,
    /// Only on frozen windows: why they do not open.
    #[serde(skip_serializing_if = "Option::is_none")]
    frozen: Option<String>,
    /// With --gates, on the next window only: the tags the gates would hold
    /// if it opened now.
    #[serde(skip_serializing_if = "Option::is_none")]
    gated: Option<Vec<super::next_gates::GatedNow>>,
}

pub fn run(args: &Args) -> u8 {
    match plan(args) {
        Ok((schedule, freezes, after)) => print(args, &schedule, &freezes, after),
        Err(code) => code,
    }
}

fn plan(args: &Args) -> Result<(Schedule, Freezes, DateTime<Utc>), u8> {
    let after = match &args.after {
        None => Utc::now(),
        Some(s) => DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| {
                usage_error(format!(
                    "--after: `{s}` is not an RFC 3339 time ({e}); write e.g. 2026-11-24T01:30:00Z or 2026-11-24T02:30:00+01:00"
                ))
            })?,
    };
    if args.count == 0 || args.count > MAX_COUNT {
        return Err(usage_error(format!(
            "--count: must be from 1 to {MAX_COUNT}, found {}",
            args.count
        )));
    }
    let mut freezes = Freezes::default();
    let (expr, mut tz, mut window) = match (&args.schedule, &args.config, &args.env) {
        (Some(s), _, _) => {
            let expr = CronExpr::parse(s).map_err(|e| usage_error(format!("--schedule: {e}")))?;
            (expr, chrono_tz::UTC, std::time::Duration::from_secs(3600))
        }
        (None, Some(path), Some(env)) => {
            let loaded = load_config_file(path, after)?;
            let Some(e) = loaded.config.environments.get(env) else {
                let known: Vec<_> = loaded.config.environments.keys().cloned().collect();
                return Err(usage_error(format!(
                    "--env: no environment `{env}` in {}; it defines: {}",
                    path.display(),
                    known.join(", ")
                )));
            };
            freezes = e.freeze.clone();
            match &e.mode {
                Mode::Windowed { schedule, .. } => (
                    schedule.expr().clone(),
                    schedule.time_zone(),
                    schedule.window(),
                ),
                Mode::Immediate => {
                    return Err(usage_error(format!(
                        "--env: environment `{env}` is in immediate mode and has no windows; it imports as soon as the source changes"
                    )))
                }
            }
        }
        _ => {
            return Err(usage_error(
                "give --schedule EXPR, or --config FILE with --env NAME",
            ))
        }
    };
    if let Some(s) = &args.time_zone {
        tz = parse_time_zone(s).map_err(|e| usage_error(format!("--time-zone: {e}")))?;
    }
    if let Some(s) = &args.window {
        window = parse_duration(s).map_err(|e| usage_error(format!("--window: {e}")))?;
        if window.is_zero() {
            return Err(usage_error(
                "--window: must be longer than zero; write e.g. 30m, 1h, 1h30m",
            ));
        }
    }
    let schedule =
        Schedule::new(expr, tz, window).map_err(|e| usage_error(format!("--window: {e}")))?;
    Ok((schedule, freezes, after))
}

/// The next `count` windows that open from `after`, with the frozen ones
/// passed on the way.
fn listed(schedule: &Schedule, freezes: &Freezes, after: DateTime<Utc>, count: usize) -> Vec<Slot> {
    let mut open = 0;
    EnvWindows::frozen(schedule, freezes)
        .slots(after)
        .take_while(|s| {
            let more = open < count;
            open += usize::from(matches!(s, Slot::Open(_)));
            more
        })
        .collect()
}

/// With --gates: the tags the gates would hold in `next` now.
fn gated(args: &Args, next: Option<&Window>) -> Result<Option<Vec<GatedNow>>, u8> {
    let (true, Some(env), Some(window)) = (args.gates, &args.env, next) else {
        return Ok(None);
    };
    let cluster = ClusterArgs {
        config: args.config.clone(),
        configmap: None,
        kubeconfig: args.kubeconfig.clone(),
        context: args.context.clone(),
        output: args.output,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| usage_error(format!("cannot start the async runtime: {e}")))?;
    runtime
        .block_on(gated_now(&cluster, env, window))
        .map(Some)
        .map_err(|e| e.report(args.output))
}

fn print(args: &Args, schedule: &Schedule, freezes: &Freezes, after: DateTime<Utc>) -> u8 {
    let tz = schedule.time_zone();
    let windows = listed(schedule, freezes, after, args.count);
    let next = windows.iter().find_map(|s| match s {
        Slot::Open(w) => Some(*w),
        Slot::Frozen { .. } => None,
    });
    let mut gated = match gated(args, next.as_ref()) {
        Ok(g) => g,
        Err(code) => return code,
    };
    match args.output {
        Output::Json => {
            let out: Vec<JsonWindow> = windows
                .iter()
                .map(|slot| (slot.window(), slot))
                .map(|(w, slot)| JsonWindow {
                    gated: if Some(w) == next { gated.take() } else { None },
                    frozen: match slot {
                        Slot::Frozen { reason, .. } => Some(reason.clone()),
                        Slot::Open(_) => None,
                    },
                    start: w
                        .start
                        .with_timezone(&tz)
                        .to_rfc3339_opts(SecondsFormat::Secs, false),
                    end: w
                        .end
                        .with_timezone(&tz)
                        .to_rfc3339_opts(SecondsFormat::Secs, false),
                })
                .collect();
            match serde_json::to_string(&out) {
                Ok(s) => println!("{s}"),
                Err(e) => return usage_error(format!("cannot encode JSON: {e}")),
            }
        }
        Output::Text => {
            println!(
                "schedule \"{}\" in {}, window {}, from {}:",
                schedule.expr(),
                tz,
                format_duration(schedule.window()),
                after.with_timezone(&tz).format("%a %Y-%m-%d %H:%M:%S %Z")
            );
            if !windows.iter().any(|s| matches!(s, Slot::Open(_))) {
                println!("  no window in the search horizon");
            }
            for slot in &windows {
                let w = slot.window();
                let mark = match slot {
                    Slot::Frozen { reason, .. } => format!("  frozen ({reason})"),
                    Slot::Open(_) if w.contains(after) => "  [open]".to_string(),
                    Slot::Open(_) => String::new(),
                };
                println!("  {}{mark}", describe_window(&w, tz));
                if Some(w) == next {
                    match gated.take() {
                        Some(tags) if tags.is_empty() => {
                            println!("    gates: none would hold it now")
                        }
                        Some(tags) => {
                            for t in tags {
                                println!(
                                    "    GATED now: {} ({}): {}",
                                    t.stream,
                                    short_digest(&t.digest),
                                    describe(&t.holds)
                                );
                            }
                        }
                        None => {}
                    }
                }
            }
        }
    }
    EXIT_OK
}
