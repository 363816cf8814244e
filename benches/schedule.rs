//! Schedule engine: next-window computations per second for typical and
//! pathological expressions, with `import_scheduler::schedule` in a release
//! build. Each case asks from 1024 instants spread over the range where the
//! case is hard (a year, the DST transition days, the years around 2100),
//! so neither the CPU's branch predictor nor the compiler sees one input.
//!
//! `cargo bench --bench schedule [-- --quick]`

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, TimeDelta, Utc};
use import_scheduler::schedule::{parse_time_zone, CronExpr, Schedule};

struct Case {
    kind: &'static str,
    expr: &'static str,
    tz: &'static str,
    window: Duration,
    /// Instants asked from: uniformly spread over `[from, to)`.
    from: &'static str,
    to: &'static str,
    why: &'static str,
}

const CASES: &[Case] = &[
    Case {
        kind: "typical",
        expr: "0 2 * * 2",
        tz: "Europe/Prague",
        window: Duration::from_secs(3600),
        from: "2026-01-01T00:00:00Z",
        to: "2027-01-01T00:00:00Z",
        why: "weekly prod window",
    },
    Case {
        kind: "typical",
        expr: "*/5 * * * *",
        tz: "UTC",
        window: Duration::from_secs(60),
        from: "2026-01-01T00:00:00Z",
        to: "2027-01-01T00:00:00Z",
        why: "every 5 minutes",
    },
    Case {
        kind: "pathological",
        expr: "0 0 29 2 *",
        tz: "UTC",
        window: Duration::from_secs(3600),
        from: "2097-03-01T00:00:00Z",
        to: "2104-02-28T00:00:00Z",
        why: "leap day across 2100: next start up to 7 years ahead",
    },
    Case {
        kind: "pathological",
        expr: "0 0 31 2,4,6,9,11 *",
        tz: "UTC",
        window: Duration::from_secs(3600),
        from: "2026-01-01T00:00:00Z",
        to: "2027-01-01T00:00:00Z",
        why: "31st of 30-day months: parses, never matches",
    },
    Case {
        kind: "pathological",
        expr: "* * * * *",
        tz: "Europe/Prague",
        window: Duration::from_secs(30),
        from: "2026-10-25T00:00:00Z",
        to: "2026-10-25T02:00:00Z",
        why: "every minute through the fall-back hour",
    },
    Case {
        kind: "pathological",
        expr: "30 2 * * *",
        tz: "Europe/Prague",
        window: Duration::from_secs(3600),
        from: "2026-03-28T01:00:00Z",
        to: "2026-03-29T00:30:00Z",
        why: "02:30 does not exist on 2026-03-29 (spring forward)",
    },
    Case {
        kind: "pathological",
        expr: "59 23 31 12 5",
        tz: "UTC",
        window: Duration::from_secs(60),
        from: "2026-01-01T00:00:00Z",
        to: "2027-01-01T00:00:00Z",
        why: "Dec 31 or a Friday in December (both day fields restricted)",
    },
];

const INPUTS: usize = 1024;

fn utc(s: &str) -> anyhow::Result<DateTime<Utc>> {
    Ok(DateTime::parse_from_rfc3339(s)
        .with_context(|| format!("bad instant {s}"))?
        .with_timezone(&Utc))
}

/// `INPUTS` instants spread over `[from, to)` by a fixed pseudo-random
/// sequence (the same every run), to the second.
fn instants(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let span = (to - from).num_seconds().max(1) as u64;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..INPUTS)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            from + TimeDelta::seconds(((x >> 11) % span) as i64)
        })
        .collect()
}

struct Timing {
    /// Median of the samples, ns per call.
    median_ns: f64,
    min_ns: f64,
    max_ns: f64,
}

/// Times `f` over the inputs: calibrates an iteration count that takes about
/// `sample` per run, then takes `samples` runs.
fn measure(samples: usize, sample: Duration, mut f: impl FnMut(usize)) -> Timing {
    let mut iters: u64 = 256;
    loop {
        let t = Instant::now();
        for i in 0..iters {
            f(i as usize % INPUTS);
        }
        let took = t.elapsed();
        if took >= sample / 4 {
            let per = took.as_secs_f64() / iters as f64;
            iters = ((sample.as_secs_f64() / per) as u64).max(1);
            break;
        }
        iters *= 4;
    }
    let mut per_call: Vec<f64> = (0..samples)
        .map(|_| {
            let t = Instant::now();
            for i in 0..iters {
                f(i as usize % INPUTS);
            }
            t.elapsed().as_nanos() as f64 / iters as f64
        })
        .collect();
    per_call.sort_by(f64::total_cmp);
    Timing {
        median_ns: per_call[per_call.len() / 2],
        min_ns: per_call[0],
        max_ns: per_call[per_call.len() - 1],
    }
}

fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let (samples, sample) = if quick {
        (3, Duration::from_millis(50))
    } else {
        (9, Duration::from_millis(300))
    };

    let mut rows = Vec::new();
    for case in CASES {
        let expr =
            CronExpr::parse(case.expr).with_context(|| format!("parsing {:?}", case.expr))?;
        let tz = parse_time_zone(case.tz)?;
        let schedule = Schedule::new(expr, tz, case.window)?;
        let inputs = instants(utc(case.from)?, utc(case.to)?);

        let next = measure(samples, sample, |i| {
            black_box(black_box(&schedule).next_start_after(black_box(inputs[i])));
        });
        let at = measure(samples, sample, |i| {
            black_box(black_box(&schedule).window_at(black_box(inputs[i])));
        });
        let example = match schedule.next_start_after(inputs[0]) {
            Some(s) => format!(
                "after {} -> {}",
                inputs[0].format("%Y-%m-%d %H:%M"),
                s.format("%Y-%m-%d %H:%MZ")
            ),
            None => "none".to_string(),
        };
        rows.push(format!(
            "| {} | `{}` | {} | {} .. {} | {:.0} | {:.2e} | {:.0} | {:.0}-{:.0} | {} ({}) |",
            case.kind,
            case.expr,
            case.tz,
            &case.from[..10],
            &case.to[..10],
            next.median_ns,
            1e9 / next.median_ns,
            at.median_ns,
            next.min_ns,
            next.max_ns,
            example,
            case.why
        ));
        println!(
            "RESULT bench=schedule expr={:?} tz={} next_ns={:.1} next_per_s={:.0} window_at_ns={:.1}",
            case.expr,
            case.tz,
            next.median_ns,
            1e9 / next.median_ns,
            at.median_ns
        );
    }

    let parse = measure(samples, sample, |_| {
        black_box(CronExpr::parse(black_box("0 2 * * 2")).is_ok());
    });
    println!(
        "RESULT bench=schedule parse_ns={:.1} parse_per_s={:.0}",
        parse.median_ns,
        1e9 / parse.median_ns
    );
    println!();
    println!("Schedule engine, {samples} samples of ~{sample:?} each, {INPUTS} different instants per case");
    println!();
    println!("| kind | expression | zone | instants from | next_start_after ns/op | next starts/s | window_at ns/op | spread (min-max ns) | example |");
    println!("| --- | --- | --- | --- | ---: | ---: | ---: | --- | --- |");
    for row in &rows {
        println!("{row}");
    }
    println!();
    println!(
        "CronExpr::parse(\"0 2 * * 2\"): {:.0} ns/op ({:.2e}/s)",
        parse.median_ns,
        1e9 / parse.median_ns
    );
    Ok(())
}
