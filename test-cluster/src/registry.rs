//! A real Docker distribution registry, and helpers that push images to it
//! over the registry HTTP API the way CI pushes to Quay.

use std::path::Path;

use anyhow::{bail, Context};
use rand::RngCore;
use reqwest::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::process::Supervised;

pub(crate) const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.list.v2+json";

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// The registry of a test cluster, on `127.0.0.1:PORT`, plain HTTP.
#[derive(Clone, Debug)]
pub struct Registry {
    host: String,
}

pub(crate) fn sha256_digest(bytes: &[u8]) -> String {
    let sum = Sha256::digest(bytes);
    let hex: String = sum.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Writes the registry configuration and starts `docker-registry serve`.
pub(crate) fn start(
    program: &Path,
    dir: &Path,
    port: u16,
) -> anyhow::Result<(Registry, Supervised)> {
    let storage = dir.join("storage");
    std::fs::create_dir_all(&storage)
        .with_context(|| format!("cannot create registry storage {}", storage.display()))?;
    let config = json!({
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": true}},
        "storage": {
            "filesystem": {"rootdirectory": storage},
            "delete": {"enabled": true},
            "maintenance": {"uploadpurging": {"enabled": false}},
        },
        "http": {"addr": format!("127.0.0.1:{port}")},
    });
    let config_path = dir.join("config.yml");
    std::fs::write(&config_path, serde_yaml::to_string(&config)?)
        .with_context(|| format!("cannot write {}", config_path.display()))?;
    let child = Supervised::spawn(
        "registry",
        program,
        &["serve".to_string(), config_path.display().to_string()],
        &dir.join("registry.log"),
    )?;
    Ok((
        Registry {
            host: format!("127.0.0.1:{port}"),
        },
        child,
    ))
}

fn client() -> anyhow::Result<reqwest::Client> {
    // No idle connections: callers live on different tokio runtimes.
    crate::pki::plain_http_builder()
        .pool_max_idle_per_host(0)
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .context("cannot build an HTTP client for the registry")
}

impl Registry {
    /// A registry already running at `host` (`127.0.0.1:PORT`), e.g. one a
    /// `test-cluster up` started in another process.
    pub fn at(host: &str) -> Registry {
        Registry {
            host: host.to_string(),
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.host.clone()
    }

    /// `127.0.0.1:PORT/repo:tag`, a `DockerImage` reference for spec tags.
    pub fn image_ref(&self, repo: &str, tag: &str) -> String {
        format!("{}/{repo}:{tag}", self.host)
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.host)
    }

    /// Answers 200 on `/v2/` (the registry is up).
    pub(crate) async fn ready(&self) -> bool {
        let Ok(c) = client() else { return false };
        matches!(c.get(self.url("/v2/")).send().await, Ok(r) if r.status().is_success())
    }

    async fn upload_blob(
        &self,
        c: &reqwest::Client,
        repo: &str,
        bytes: Vec<u8>,
    ) -> anyhow::Result<String> {
        let digest = sha256_digest(&bytes);
        let start = c
            .post(self.url(&format!("/v2/{repo}/blobs/uploads/")))
            .send()
            .await
            .with_context(|| format!("starting a blob upload to {}/{repo} failed", self.host))?;
        if start.status() != StatusCode::ACCEPTED {
            bail!(
                "starting a blob upload to {}/{repo} answered {}: {}",
                self.host,
                start.status(),
                start.text().await.unwrap_or_default()
            );
        }
        let location = start
            .headers()
            .get("Location")
            .and_then(|v| v.to_str().ok())
            .context("the registry gave no Location for a blob upload")?;
        let base = reqwest::Url::parse(&self.url("/")).context("registry URL")?;
        let mut url = base
            .join(location)
            .with_context(|| format!("the registry's upload Location {location:?} is invalid"))?;
        url.query_pairs_mut().append_pair("digest", &digest);
        let put = c
            .put(url)
            .header("Content-Type", "application/octet-stream")
            .body(bytes)
            .send()
            .await
            .with_context(|| format!("uploading blob {digest} to {}/{repo} failed", self.host))?;
        if put.status() != StatusCode::CREATED {
            bail!(
                "uploading blob {digest} to {}/{repo} answered {}: {}",
                self.host,
                put.status(),
                put.text().await.unwrap_or_default()
            );
        }
        Ok(digest)
    }

    /// Pushes a new unique image (a random layer and a config blob, an OCI
    /// image manifest) to `repo` and moves `tag` to it. Returns the manifest
    /// digest `sha256:...`.
    pub async fn push_image(&self, repo: &str, tag: &str) -> anyhow::Result<String> {
        let c = client()?;
        let mut layer = vec![0u8; 1024];
        rand::rng().fill_bytes(&mut layer);
        let layer_size = layer.len();
        let layer_digest = self.upload_blob(&c, repo, layer).await?;
        let config = serde_json::to_vec(&json!({
            "architecture": "amd64",
            "os": "linux",
            "created": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "config": {"Labels": {"io.test-cluster.repo": repo, "io.test-cluster.tag": tag}},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        }))?;
        let config_size = config.len();
        let config_digest = self.upload_blob(&c, repo, config).await?;
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": config_size,
            },
            "layers": [{
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": layer_digest,
                "size": layer_size,
            }],
        }))?;
        let digest = sha256_digest(&manifest);
        let resp = c
            .put(self.url(&format!("/v2/{repo}/manifests/{tag}")))
            .header("Content-Type", OCI_MANIFEST)
            .body(manifest)
            .send()
            .await
            .with_context(|| {
                format!("pushing the manifest of {}/{repo}:{tag} failed", self.host)
            })?;
        if resp.status() != StatusCode::CREATED {
            bail!(
                "pushing the manifest of {}/{repo}:{tag} answered {}: {}",
                self.host,
                resp.status(),
                resp.text().await.unwrap_or_default()
            );
        }
        let answered = resp
            .headers()
            .get("Docker-Content-Digest")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if answered != digest {
            bail!(
                "the registry stored {}/{repo}:{tag} as {answered:?}, expected {digest}",
                self.host
            );
        }
        Ok(digest)
    }

    /// The manifest digest `repo:reference` points at now, `None` when the
    /// repository, tag or digest does not exist.
    pub async fn digest(&self, repo: &str, reference: &str) -> anyhow::Result<Option<String>> {
        let c = client()?;
        let resp = c
            .head(self.url(&format!("/v2/{repo}/manifests/{reference}")))
            .header("Accept", MANIFEST_ACCEPT)
            .send()
            .await
            .with_context(|| format!("looking up {}/{repo}:{reference} failed", self.host))?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            bail!(
                "looking up {}/{repo}:{reference} answered {}",
                self.host,
                resp.status()
            );
        }
        Ok(resp
            .headers()
            .get("Docker-Content-Digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string))
    }

    /// Deletes the manifest `tag` points to (every tag on it disappears).
    pub async fn delete_tag(&self, repo: &str, tag: &str) -> anyhow::Result<()> {
        let digest = self.digest(repo, tag).await?.with_context(|| {
            format!(
                "{}/{repo}:{tag} does not exist; nothing to delete",
                self.host
            )
        })?;
        let resp = client()?
            .delete(self.url(&format!("/v2/{repo}/manifests/{digest}")))
            .send()
            .await
            .with_context(|| format!("deleting {}/{repo}@{digest} failed", self.host))?;
        if resp.status() != StatusCode::ACCEPTED {
            bail!(
                "deleting {}/{repo}@{digest} answered {}: {}",
                self.host,
                resp.status(),
                resp.text().await.unwrap_or_default()
            );
        }
        Ok(())
    }
}
