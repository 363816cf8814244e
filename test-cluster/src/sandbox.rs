//! A packit-like installation for trying things by hand and for benchmarks:
//! namespaces `packit-stg` and `packit-prod`, one stream per packit image,
//! tags `stg` / `prod` pointing at images pushed to the real registry; with
//! workloads, Deployments that run them through image triggers.

use anyhow::Context as _;
use futures::TryStreamExt;
use serde_json::json;

use crate::cluster::{TagSeed, TestCluster};
use crate::kubelet::Failure;
use crate::workloads::workload_manifest;

/// The streams that get a Deployment with workloads (the images the
/// sandbox's pusher pushes), and its replicas.
pub const PACKIT_WORKLOADS: &[&str] = &["packit-service", "packit-worker", "packit-dashboard"];
const WORKLOAD_REPLICAS: usize = 2;

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

/// In each packit namespace, one Deployment per [`PACKIT_WORKLOADS`] stream,
/// container `app` set by an `image.openshift.io/triggers` entry on
/// `<stream>:<tag>`, running the tag's current image. Needs a cluster with
/// workloads and [`seed_packit`] done.
pub async fn seed_packit_workloads(cluster: &TestCluster) -> anyhow::Result<()> {
    for (ns, tag, _) in PACKIT_ENVIRONMENTS {
        for name in PACKIT_WORKLOADS {
            let is = cluster.stream(ns, name).await?;
            let image = is["status"]["tags"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|t| t["tag"] == *tag)
                .and_then(|t| t["items"][0]["dockerImageReference"].as_str())
                .with_context(|| format!("{ns}/{name}:{tag} has no image yet"))?
                .to_string();
            let deployment = workload_manifest(
                "Deployment",
                name,
                "app",
                &image,
                WORKLOAD_REPLICAS,
                Some(&format!("{name}:{tag}")),
            );
            cluster.create_workload(ns, deployment).await?;
        }
    }
    Ok(())
}

/// Marks `reference` bad on the stand-in node of the running cluster whose
/// front is `server` (`test-cluster push --bad`), through
/// `/_testcluster/bad-images`.
pub async fn mark_image_bad_at(
    server: &str,
    ca_pem: &str,
    reference: &str,
    failure: Failure,
) -> anyhow::Result<()> {
    let client = crate::pki::https_client(ca_pem, false)?;
    let failure = match failure {
        Failure::CrashLoop => "crashLoop",
        Failure::PullError => "pullError",
    };
    let url = format!("{server}/_testcluster/bad-images");
    let resp = client
        .post(&url)
        .json(&json!({"reference": reference, "failure": failure}))
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    if !resp.status().is_success() {
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        anyhow::bail!("{url} answered {status}: {text}");
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
