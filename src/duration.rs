//! Human-written durations such as `30s`, `15m`, `1h`, `1h30m` and `2d`.
//!
//! The grammar is deliberately small: one or more `<whole number><unit>`
//! parts, units `d` (24 hours), `h`, `m` and `s`, each unit at most once and
//! from the largest to the smallest (`1h30m`, not `30m1h`). There are no
//! fractions, signs, spaces or other units, so a value means one thing to
//! everybody who reads the configuration. `0s` parses; whether zero makes
//! sense is for the caller to decide.
//!
//! [`format_duration`] is the inverse: it prints the shortest string in the
//! same grammar (`5400s` prints as `1h30m`).

use std::time::Duration;

/// What every error message suggests writing instead.
const EXAMPLES: &str = "write e.g. 30s, 15m, 1h, 1h30m, 2d";

/// Why a string is not a duration. Each message quotes the input, says what
/// is wrong with it and shows valid examples.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("invalid duration \"\": it is empty; {EXAMPLES}")]
    Empty,
    #[error("invalid duration {input:?}: negative durations are not allowed; {EXAMPLES}")]
    Negative { input: String },
    #[error(
        "invalid duration {input:?}: fractions are not supported; use a smaller unit \
         instead (1h30m rather than 1.5h); {EXAMPLES}"
    )]
    Fraction { input: String },
    #[error("invalid duration {input:?}: unit {unit:?} has no number before it; {EXAMPLES}")]
    MissingNumber { input: String, unit: String },
    #[error(
        "invalid duration {input:?}: the number {number} has no unit; add one of d, h, m, s \
         ({number}s, {number}m, ...)"
    )]
    MissingUnit { input: String, number: String },
    #[error(
        "invalid duration {input:?}: unknown unit {unit:?}; units are d, h, m and s; {EXAMPLES}"
    )]
    UnknownUnit { input: String, unit: String },
    #[error(
        "invalid duration {input:?}: unit {unit:?} is out of order or repeated; write each \
         unit at most once, largest first (d, h, m, s), e.g. 1d12h or 1h30m"
    )]
    UnitOrder { input: String, unit: char },
    #[error("invalid duration {input:?}: unexpected character {found:?}; {EXAMPLES}")]
    UnexpectedCharacter { input: String, found: char },
    #[error("invalid duration {input:?}: it is too large; {EXAMPLES}")]
    Overflow { input: String },
}

/// Units from the largest to the smallest, with their length in seconds.
const UNITS: [(char, u64); 4] = [('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)];

/// Parses a duration such as `30s`, `15m`, `1h`, `1h30m` or `2d`.
///
/// Leading and trailing whitespace is ignored. Zero (`0s`, `0m`) parses.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let text = s.trim();
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    let input = || text.to_owned();
    if text.starts_with('-') {
        return Err(DurationError::Negative { input: input() });
    }

    let bytes = text.as_bytes();
    let mut pos = 0;
    let mut total: u64 = 0;
    // Index into UNITS of the next unit that may still appear.
    let mut next_unit = 0;
    while pos < bytes.len() {
        let digits_start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_digit() {
            pos += 1;
        }
        let number = &text[digits_start..pos];
        let Some(unit) = text[pos..].chars().next() else {
            return Err(DurationError::MissingUnit {
                input: input(),
                number: number.to_owned(),
            });
        };
        if unit == '.' || unit == ',' {
            return Err(DurationError::Fraction { input: input() });
        }
        if !unit.is_alphabetic() {
            return Err(DurationError::UnexpectedCharacter {
                input: input(),
                found: unit,
            });
        }
        // A unit is a run of letters, so `ms` or `min` are reported whole.
        let unit_start = pos;
        while let Some(c) = text[pos..].chars().next().filter(|c| c.is_alphabetic()) {
            pos += c.len_utf8();
        }
        let unit_text = &text[unit_start..pos];
        let Some(index) = UNITS
            .iter()
            .position(|(name, _)| unit_text.len() == 1 && unit_text.starts_with(*name))
        else {
            return Err(DurationError::UnknownUnit {
                input: input(),
                unit: unit_text.to_owned(),
            });
        };
        if number.is_empty() {
            return Err(DurationError::MissingNumber {
                input: input(),
                unit: unit_text.to_owned(),
            });
        }
        if index < next_unit {
            return Err(DurationError::UnitOrder {
                input: input(),
                unit: UNITS[index].0,
            });
        }
        next_unit = index + 1;
        let overflow = || DurationError::Overflow { input: input() };
        let value: u64 = number.parse().map_err(|_| overflow())?;
        let seconds = value.checked_mul(UNITS[index].1).ok_or_else(overflow)?;
        total = total.checked_add(seconds).ok_or_else(overflow)?;
    }
    Ok(Duration::from_secs(total))
}

/// Formats a duration in the grammar [`parse_duration`] reads, largest unit
/// first and zero parts left out: 5400 s is `1h30m`, zero is `0s`.
///
/// Fractions of a second are dropped (the grammar has none).
pub fn format_duration(d: Duration) -> String {
    let mut rest = d.as_secs();
    if rest == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, seconds) in UNITS {
        let count = rest / seconds;
        rest %= seconds;
        if count > 0 {
            out.push_str(&count.to_string());
            out.push(unit);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        let cases = [
            ("30s", 30),
            ("15m", 15 * 60),
            ("1h", 3600),
            ("1h30m", 5400),
            ("2d", 2 * 86_400),
            ("0s", 0),
            ("0m", 0),
            ("1d2h3m4s", 86_400 + 2 * 3600 + 3 * 60 + 4),
            ("90m", 5400),
            ("  45s ", 45),
            ("007m", 7 * 60),
        ];
        for (input, seconds) in cases {
            assert_eq!(
                parse_duration(input),
                Ok(Duration::from_secs(seconds)),
                "input {input:?}"
            );
        }
    }

    #[test]
    fn rejects_malformed_input_with_a_reason() {
        type Check = fn(&DurationError) -> bool;
        let cases: [(&str, Check); 16] = [
            ("", |e| matches!(e, DurationError::Empty)),
            ("   ", |e| matches!(e, DurationError::Empty)),
            ("-1h", |e| matches!(e, DurationError::Negative { .. })),
            ("1.5h", |e| matches!(e, DurationError::Fraction { .. })),
            ("h", |e| matches!(e, DurationError::MissingNumber { .. })),
            ("1h m", |e| {
                matches!(e, DurationError::UnexpectedCharacter { found: ' ', .. })
            }),
            ("30", |e| matches!(e, DurationError::MissingUnit { .. })),
            ("1h30", |e| matches!(e, DurationError::MissingUnit { .. })),
            (
                "1x",
                |e| matches!(e, DurationError::UnknownUnit { unit, .. } if unit == "x"),
            ),
            (
                "100ms",
                |e| matches!(e, DurationError::UnknownUnit { unit, .. } if unit == "ms"),
            ),
            ("1H", |e| matches!(e, DurationError::UnknownUnit { .. })),
            ("30m1h", |e| {
                matches!(e, DurationError::UnitOrder { unit: 'h', .. })
            }),
            ("1h1h", |e| {
                matches!(e, DurationError::UnitOrder { unit: 'h', .. })
            }),
            ("+1h", |e| {
                matches!(e, DurationError::UnexpectedCharacter { .. })
            }),
            ("99999999999999999999s", |e| {
                matches!(e, DurationError::Overflow { .. })
            }),
            ("999999999999999999d", |e| {
                matches!(e, DurationError::Overflow { .. })
            }),
        ];
        for (input, expected) in cases {
            match parse_duration(input) {
                Ok(d) => panic!("{input:?} parsed as {d:?}"),
                Err(e) => assert!(expected(&e), "{input:?} gave {e:?}"),
            }
        }
    }

    #[test]
    fn messages_name_the_input_and_the_fix() {
        let message = parse_duration("1x").unwrap_err().to_string();
        assert_eq!(
            message,
            "invalid duration \"1x\": unknown unit \"x\"; units are d, h, m and s; \
             write e.g. 30s, 15m, 1h, 1h30m, 2d"
        );
        let message = parse_duration("-1h").unwrap_err().to_string();
        assert!(
            message.contains("negative durations are not allowed"),
            "{message}"
        );
        let message = parse_duration("1.5h").unwrap_err().to_string();
        assert!(message.contains("1h30m"), "{message}");
    }

    #[test]
    fn formats_largest_unit_first() {
        let cases = [
            (0, "0s"),
            (1, "1s"),
            (59, "59s"),
            (60, "1m"),
            (5400, "1h30m"),
            (3600, "1h"),
            (86_400, "1d"),
            (90_061, "1d1h1m1s"),
            (2 * 86_400 + 30, "2d30s"),
        ];
        for (seconds, text) in cases {
            assert_eq!(format_duration(Duration::from_secs(seconds)), text);
        }
        assert_eq!(format_duration(Duration::from_millis(1500)), "1s");
    }

    #[test]
    fn format_and_parse_round_trip() {
        for seconds in [0, 1, 61, 3599, 3600, 3661, 86_399, 86_400, 1_000_000] {
            let d = Duration::from_secs(seconds);
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }
}
