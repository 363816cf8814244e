//! A real Docker distribution registry, and helpers that push images to it
//! over the registry HTTP API the way CI pushes to Quay. Clients reach it
//! through the front's HTTPS listener with the test CA.

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
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// The registry of a test cluster: `127.0.0.1:PORT`, HTTPS with the test CA.
#[derive(Clone, Debug)]
pub struct Registry {
    host: String,
    ca_pem: String,
}

/// One image of an index pushed by [`Registry::push_index`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushedIndex {
    /// The index digest (what Quay shows for the tag).
    pub index: String,
    /// `(os/architecture, manifest digest)` of each child, in index order.
    pub children: Vec<(String, String)>,
}

impl PushedIndex {
    /// The child digest for `platform` (`linux/amd64`).
    pub fn child(&self, platform: &str) -> Option<&str> {
        self.children
            .iter()
            .find(|(p, _)| p == platform)
            .map(|(_, d)| d.as_str())
    }
}

pub(crate) fn sha256_digest(bytes: &[u8]) -> String {
    let sum = Sha256::digest(bytes);
    let hex: String = sum.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Writes the registry configuration and starts `docker-registry serve` on
/// plain HTTP `127.0.0.1:port`, the backend of the front's registry listener.
pub(crate) fn start(program: &Path, dir: &Path, port: u16) -> anyhow::Result<Supervised> {
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
        // Relative upload Locations work through the front.
        "http": {"addr": format!("127.0.0.1:{port}"), "relativeurls": true},
    });
    let config_path = dir.join("config.yml");
    std::fs::write(&config_path, serde_yaml_ng::to_string(&config)?)
        .with_context(|| format!("cannot write {}", config_path.display()))?;
    Supervised::spawn(
        "registry",
        program,
        &["serve".to_string(), config_path.display().to_string()],
        &dir.join("registry.log"),
    )
}

impl Registry {
    /// The registry at `host` (`127.0.0.1:PORT`, HTTPS), whose certificate
    /// the CA `ca_pem` signed; e.g. one a `test-cluster up` started in
    /// another process.
    pub fn at(host: &str, ca_pem: &str) -> Registry {
        Registry {
            host: host.to_string(),
            ca_pem: ca_pem.to_string(),
        }
    }

    fn client(&self) -> anyhow::Result<reqwest::Client> {
        // No idle connections: callers live on different tokio runtimes.
        crate::pki::https_client(&self.ca_pem, false)
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
        format!("https://{}{path}", self.host)
    }

    /// Answers 200 on `/v2/` (the registry is up).
    pub(crate) async fn ready(&self) -> bool {
        let Ok(c) = self.client() else { return false };
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
        let c = self.client()?;
        let (digest, _) = self
            .push_platform_image(&c, repo, tag, "linux", "amd64")
            .await?;
        Ok(digest)
    }

    /// Pushes a new unique image index with a `linux/amd64` and a
    /// `linux/arm64` image (as multi-arch builds push to Quay) and moves `tag`
    /// to the index.
    pub async fn push_index(&self, repo: &str, tag: &str) -> anyhow::Result<PushedIndex> {
        let c = self.client()?;
        let mut children = Vec::new();
        let mut entries = Vec::new();
        for arch in ["amd64", "arm64"] {
            let (digest, size) = self
                .push_platform_image(&c, repo, "", "linux", arch)
                .await?;
            entries.push(json!({
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": size,
                "platform": {"os": "linux", "architecture": arch},
            }));
            children.push((format!("linux/{arch}"), digest));
        }
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": entries,
        }))?;
        let digest = self.put_manifest(&c, repo, tag, OCI_INDEX, index).await?;
        Ok(PushedIndex {
            index: digest,
            children,
        })
    }

    /// One image for `os/arch`, tagged `tag` (untagged, by digest, when
    /// empty). Returns its digest and manifest size.
    async fn push_platform_image(
        &self,
        c: &reqwest::Client,
        repo: &str,
        tag: &str,
        os: &str,
        arch: &str,
    ) -> anyhow::Result<(String, usize)> {
        let mut layer = vec![0u8; 1024];
        rand::rng().fill_bytes(&mut layer);
        let layer_size = layer.len();
        let layer_digest = self.upload_blob(c, repo, layer).await?;
        let config = serde_json::to_vec(&json!({
            "architecture": arch,
            "os": os,
            "created": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "config": {"Labels": {"io.test-cluster.repo": repo, "io.test-cluster.tag": tag}},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        }))?;
        let config_size = config.len();
        let config_digest = self.upload_blob(c, repo, config).await?;
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
        let size = manifest.len();
        let digest = self
            .put_manifest(c, repo, tag, OCI_MANIFEST, manifest)
            .await?;
        Ok((digest, size))
    }

    /// PUTs a manifest under `tag`, or under its own digest when `tag` is
    /// empty; checks the registry stored it under the expected digest.
    async fn put_manifest(
        &self,
        c: &reqwest::Client,
        repo: &str,
        tag: &str,
        media_type: &str,
        manifest: Vec<u8>,
    ) -> anyhow::Result<String> {
        let digest = sha256_digest(&manifest);
        let reference = if tag.is_empty() { digest.as_str() } else { tag };
        let resp = c
            .put(self.url(&format!("/v2/{repo}/manifests/{reference}")))
            .header("Content-Type", media_type)
            .body(manifest)
            .send()
            .await
            .with_context(|| {
                format!(
                    "pushing the manifest of {}/{repo}:{reference} failed",
                    self.host
                )
            })?;
        if resp.status() != StatusCode::CREATED {
            bail!(
                "pushing the manifest of {}/{repo}:{reference} answered {}: {}",
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
                "the registry stored {}/{repo}:{reference} as {answered:?}, expected {digest}",
                self.host
            );
        }
        Ok(digest)
    }

    /// The manifest digest `repo:reference` points at now, `None` when the
    /// repository, tag or digest does not exist.
    pub async fn digest(&self, repo: &str, reference: &str) -> anyhow::Result<Option<String>> {
        let c = self.client()?;
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
        let resp = self
            .client()?
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
