//! Prometheus label matchers (`name="v"`, `!=`, `=~`, `!~`), as
//! Alertmanager and kured filter alerts: parsed when the configuration is
//! read, applied to the alerts Prometheus returns.

use std::collections::BTreeMap;
use std::fmt;

use regex::Regex;

/// How a matcher compares a label's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

impl MatchOp {
    pub fn symbol(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}

/// One `name<op>"value"`. A missing label reads as the empty string, as in
/// Prometheus.
#[derive(Clone, Debug)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    /// The value anchored at both ends (`^(?:v)$`), for `=~` and `!~`.
    regex: Option<Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op.symbol(), self.value)
    }
}

impl Matcher {
    /// Whether `labels` satisfy this matcher.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.name).map_or("", String::as_str);
        match (&self.op, &self.regex) {
            (MatchOp::Equal, _) => value == self.value,
            (MatchOp::NotEqual, _) => value != self.value,
            (MatchOp::Regex, Some(re)) => re.is_match(value),
            (MatchOp::NotRegex, Some(re)) => !re.is_match(value),
            // Built only by `parse_matchers`, which compiles every regex.
            (_, None) => false,
        }
    }
}

/// Whether `labels` satisfy every matcher (an empty list matches everything).
pub fn all_match(matchers: &[Matcher], labels: &BTreeMap<String, String>) -> bool {
    matchers.iter().all(|m| m.matches(labels))
}

fn is_label_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Parses `name="v",other=~"a|b"` (whitespace around items allowed, values
/// double-quoted with `\"` and `\\` escapes). Every problem is an error
/// that says what to write.
pub fn parse_matchers(text: &str) -> Result<Vec<Matcher>, String> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err("no matcher given; write e.g. namespace=\"packit-prod\"".into());
    }
    loop {
        let name_end = rest
            .find(['=', '!'])
            .ok_or_else(|| format!("`{rest}` has no operator; use =, !=, =~ or !~"))?;
        let name = rest[..name_end].trim();
        if !is_label_name(name) {
            return Err(format!(
                "`{name}` is not a label name (letters, digits and '_', not starting with a digit)"
            ));
        }
        let after = &rest[name_end..];
        let op = [
            ("=~", MatchOp::Regex),
            ("!~", MatchOp::NotRegex),
            ("!=", MatchOp::NotEqual),
            ("=", MatchOp::Equal),
        ]
        .into_iter()
        .find(|(s, _)| after.starts_with(s))
        .ok_or_else(|| format!("after `{name}`: expected =, !=, =~ or !~"))?;
        let after = after[op.0.len()..].trim_start();
        let (value, tail) = quoted(after).ok_or_else(|| {
            format!(
                "the value of `{name}` must be double-quoted, e.g. {name}{}\"value\"",
                op.0
            )
        })?;
        let regex = match op.1 {
            MatchOp::Regex | MatchOp::NotRegex => Some(
                Regex::new(&format!("^(?:{value})$"))
                    .map_err(|e| format!("`{value}` is not a valid regular expression: {e}"))?,
            ),
            _ => None,
        };
        out.push(Matcher {
            name: name.to_owned(),
            op: op.1,
            value,
            regex,
        });
        let tail = tail.trim_start();
        if tail.is_empty() {
            return Ok(out);
        }
        let Some(next) = tail.strip_prefix(',') else {
            return Err(format!("expected `,` between matchers, found `{tail}`"));
        };
        rest = next.trim_start();
        if rest.is_empty() {
            // A trailing comma is accepted, as Prometheus does.
            return Ok(out);
        }
    }
}

/// The value of a double-quoted string at the start of `s`, and what follows.
fn quoted(s: &str) -> Option<(String, &str)> {
    let body = s.strip_prefix('"')?;
    let mut value = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &body[i + 1..])),
            '\\' => match chars.next()? {
                (_, 'n') => value.push('\n'),
                (_, other) => value.push(other),
            },
            c => value.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Equality decides whether a reloaded configuration reaches a running
    /// environment: a changed name, operator or value must count.
    #[test]
    fn matchers_are_equal_only_with_the_same_name_operator_and_value() {
        let one = |text: &str| parse_matchers(text).unwrap().remove(0);
        assert_eq!(one(r#"namespace="a""#), one(r#" namespace = "a" "#));
        assert_eq!(one(r#"severity=~"x|y""#), one(r#"severity=~"x|y""#));
        for other in [
            r#"severity="a""#,
            r#"namespace!="a""#,
            r#"namespace=~"a""#,
            r#"namespace="b""#,
        ] {
            assert_ne!(one(r#"namespace="a""#), one(other), "{other}");
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_documented_filter_is_read_and_applied() {
        let m = parse_matchers(r#"namespace="packit-prod",severity=~"critical|warning""#).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].to_string(), r#"namespace="packit-prod""#);
        assert_eq!(m[1].to_string(), r#"severity=~"critical|warning""#);
        let ok = labels(&[("namespace", "packit-prod"), ("severity", "critical")]);
        assert!(all_match(&m, &ok));
        let info = labels(&[("namespace", "packit-prod"), ("severity", "info")]);
        assert!(!all_match(&m, &info));
        let other = labels(&[("namespace", "packit-stg"), ("severity", "warning")]);
        assert!(!all_match(&m, &other));
        assert!(all_match(&[], &other), "no matcher matches everything");
    }

    #[test]
    fn each_operator_and_a_missing_label() {
        let one =
            |text: &str, l: &[(&str, &str)]| parse_matchers(text).unwrap()[0].matches(&labels(l));
        assert!(one(r#"a="x""#, &[("a", "x")]));
        assert!(!one(r#"a="x""#, &[("a", "y")]));
        assert!(one(r#"a!="x""#, &[("a", "y")]));
        assert!(!one(r#"a!="x""#, &[("a", "x")]));
        assert!(one(r#"a=~"x|y""#, &[("a", "y")]));
        assert!(!one(r#"a=~"x""#, &[("a", "xx")]), "regexes are anchored");
        assert!(!one(r#"a=~"x""#, &[("a", "yx")]), "at both ends");
        assert!(one(r#"a!~"x.*""#, &[("a", "y")]));
        assert!(!one(r#"a!~"x.*""#, &[("a", "xz")]));
        assert!(one(r#"a="""#, &[]), "a missing label is empty");
        assert!(one(r#"a!="x""#, &[]));
        assert!(!one(r#"a=~".+""#, &[]));
    }

    #[test]
    fn spaces_escapes_and_a_trailing_comma() {
        let m = parse_matchers(r#"  a = "q\"uo\\te" ,  b!~ "c" , "#).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].value, r#"q"uo\te"#);
        assert_eq!(m[0].op, MatchOp::Equal);
        assert_eq!(m[1].op, MatchOp::NotRegex);
        assert_eq!(parse_matchers(r#"a="\n""#).unwrap()[0].value, "\n");
        assert_eq!(MatchOp::NotEqual.symbol(), "!=");
    }

    #[test]
    fn bad_matchers_say_what_to_write() {
        for (text, want) in [
            ("", "no matcher given"),
            ("  ", "no matcher given"),
            ("severity", "has no operator"),
            (r#"1a="x""#, "`1a` is not a label name"),
            (r#"="x""#, "`` is not a label name"),
            (r#"a-b="x""#, "`a-b` is not a label name"),
            ("a=x", "must be double-quoted"),
            (r#"a="x"#, "must be double-quoted"),
            (r#"a=~"(""#, "not a valid regular expression"),
            (r#"a!"x""#, "expected =, !=, =~ or !~"),
            (r#"a="x" b="y""#, "expected `,` between matchers"),
            (r#"a="x",,"#, "has no operator"),
        ] {
            let e = parse_matchers(text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
