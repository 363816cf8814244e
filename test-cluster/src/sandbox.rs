//! A packit-like installation for trying things by hand and for benchmarks:
//! namespaces `packit-stg` and `packit-prod`, one stream per packit image,
//! tags `stg` / `prod` pointing at images pushed to the real registry.

use anyhow::Context as _;
use futures::TryStreamExt;

use crate::cluster::{TagSeed, TestCluster};

/// The packit images (the first streams of each namespace).
pub const PACKIT_STREAMS: &[&str] = &[
    "packit-service",
    "packit-worker",
    "packit-service-fedmsg",
    "packit-dashboard",
    "packit-tokman",
    "packit-service-centosmsg",
];

/// Namespace and tag of each environment; stg is imported on OpenShift's own
/// schedule (`scheduled: true`), prod is not.
pub const PACKIT_ENVIRONMENTS: &[(&str, &str, bool)] =
    &[("packit-stg", "stg", true), ("packit-prod", "prod", false)];

/// The names of `count` streams: the packit images, then `packit-extra-NNN`.
pub fn stream_names(count: usize) -> Vec<String> {
    (0..count)
        .map(|i| match PACKIT_STREAMS.get(i) {
            Some(n) => n.to_string(),
            None => format!("packit-extra-{:03}", i + 1 - PACKIT_STREAMS.len()),
        })
        .collect()
}

/// Creates the namespaces and `count` streams in each, every tag pointing at
/// a freshly pushed `<registry>/packit/<name>:<env>` and imported once.
pub async fn seed_packit(cluster: &TestCluster, count: usize) -> anyhow::Result<()> {
    let names = stream_names(count);
    for (ns, tag, scheduled) in PACKIT_ENVIRONMENTS {
        cluster.ensure_namespace(ns).await?;
        futures::stream::iter(names.iter().map(Ok::<_, anyhow::Error>))
            .try_for_each_concurrent(8, |name| async move {
                let repo = format!("packit/{name}");
                cluster
                    .registry()
                    .push_image(&repo, tag)
                    .await
                    .with_context(|| format!("pushing {repo}:{tag}"))?;
                let seed = TagSeed {
                    scheduled: *scheduled,
                    ..TagSeed::new(*tag, cluster.registry().image_ref(&repo, tag))
                };
                cluster.seed_stream(ns, name, &[seed]).await
            })
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_start_with_packit_images_then_extras() {
        let n = super::stream_names(8);
        assert_eq!(n[0], "packit-service");
        assert_eq!(n[6], "packit-extra-001");
        assert_eq!(n[7], "packit-extra-002");
        assert_eq!(super::stream_names(2).len(), 2);
    }
}
