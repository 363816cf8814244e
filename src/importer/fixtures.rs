//! Test helpers of the importer's unit tests: recorded OpenShift objects
//! and selectors.

use std::time::Duration;

use super::TargetSelector;
use crate::openshift::ImageStream;

pub fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/openshift/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read fixture {path}: {e}"))
}

pub fn stream(name: &str) -> ImageStream {
    serde_json::from_str(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

pub fn sel(tag: &str, names: Option<&[String]>) -> TargetSelector {
    TargetSelector {
        environment: "prod".into(),
        namespace: "packit-prod".into(),
        tag: tag.into(),
        streams: names.map(<[String]>::to_vec),
        ..TargetSelector::default()
    }
}
