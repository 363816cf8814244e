//! The alerts gate: no alert that matches the environment's `match` may be
//! firing; an answer Prometheus did not give holds too (fail closed).

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::matchers::{all_match, Matcher};
use super::Verdict;

/// One alert of Prometheus' `/api/v1/alerts`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Alert {
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `firing` or `pending`.
    #[serde(default)]
    pub state: String,
}

/// The verdict from what Prometheus answered (`Err`: why it did not).
pub fn verdict(answer: &Result<Vec<Alert>, String>, matchers: &[Matcher]) -> Verdict {
    let alerts = match answer {
        Ok(alerts) => alerts,
        Err(e) => {
            return Err(format!(
                "Prometheus cannot be asked for alerts ({e}); holding, as no answer is no all-clear"
            ))
        }
    };
    let firing: BTreeSet<&str> = alerts
        .iter()
        .filter(|a| a.state == "firing" && all_match(matchers, &a.labels))
        .map(|a| {
            a.labels
                .get("alertname")
                .map_or("(unnamed)", String::as_str)
        })
        .collect();
    if firing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "firing: {}",
        firing.into_iter().collect::<Vec<_>>().join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gates::matchers::parse_matchers;

    fn alert(name: Option<&str>, ns: &str, state: &str) -> Alert {
        let mut labels = BTreeMap::from([("namespace".to_owned(), ns.to_owned())]);
        if let Some(n) = name {
            labels.insert("alertname".into(), n.into());
        }
        Alert {
            labels,
            state: state.into(),
        }
    }

    #[test]
    fn only_firing_matching_alerts_hold_named_once_in_order() {
        let m = parse_matchers(r#"namespace="packit-prod""#).unwrap();
        let answer = Ok(vec![
            alert(Some("WorkerDown"), "packit-prod", "firing"),
            alert(Some("ApiErrors"), "packit-prod", "firing"),
            alert(Some("WorkerDown"), "packit-prod", "firing"),
            alert(Some("Pending"), "packit-prod", "pending"),
            alert(Some("StgDown"), "packit-stg", "firing"),
        ]);
        assert_eq!(
            verdict(&answer, &m),
            Err("firing: ApiErrors, WorkerDown".into())
        );
        let quiet = Ok(vec![
            alert(Some("Pending"), "packit-prod", "pending"),
            alert(Some("StgDown"), "packit-stg", "firing"),
        ]);
        assert_eq!(verdict(&quiet, &m), Ok(()));
        assert_eq!(verdict(&Ok(vec![]), &m), Ok(()));
        assert_eq!(
            verdict(&Ok(vec![alert(None, "packit-prod", "firing")]), &m),
            Err("firing: (unnamed)".into())
        );
    }

    #[test]
    fn no_answer_holds() {
        let e = verdict(&Err("connection refused".into()), &[]).unwrap_err();
        assert_eq!(
            e,
            "Prometheus cannot be asked for alerts (connection refused); holding, as no answer is no all-clear"
        );
    }
}
