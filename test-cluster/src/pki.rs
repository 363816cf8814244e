//! The test CA and certificates, made with the `openssl` command line tool.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::process::run;

/// Files of the cluster's PKI (all PEM).
pub(crate) struct Pki {
    pub ca_cert: PathBuf,
    pub serving_cert: PathBuf,
    pub serving_key: PathBuf,
    pub service_account_key: PathBuf,
}

impl Pki {
    /// A CA, a serving certificate for `IP:127.0.0.1` and `DNS:localhost`
    /// signed by it, and an RSA key that signs service account tokens.
    pub(crate) fn create(dir: &Path) -> anyhow::Result<Pki> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create PKI directory {}", dir.display()))?;
        let ext = dir.join("serving.ext");
        std::fs::write(
            &ext,
            "basicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth,clientAuth\n\
             subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .context("cannot write the certificate extension file")?;
        let ec = [
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ];
        run("openssl", &[&ec[..], &["-out", "ca.key"]].concat(), dir)?;
        run(
            "openssl",
            &[
                "req",
                "-x509",
                "-new",
                "-key",
                "ca.key",
                "-subj",
                "/CN=test-cluster-ca",
                "-days",
                "3650",
                "-out",
                "ca.crt",
            ],
            dir,
        )?;
        run(
            "openssl",
            &[&ec[..], &["-out", "serving.key"]].concat(),
            dir,
        )?;
        run(
            "openssl",
            &[
                "req",
                "-new",
                "-key",
                "serving.key",
                "-subj",
                "/CN=127.0.0.1",
                "-out",
                "serving.csr",
            ],
            dir,
        )?;
        run(
            "openssl",
            &[
                "x509",
                "-req",
                "-in",
                "serving.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "3650",
                "-extfile",
                "serving.ext",
                "-out",
                "serving.crt",
            ],
            dir,
        )?;
        run(
            "openssl",
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                "sa.key",
            ],
            dir,
        )?;
        Ok(Pki {
            ca_cert: dir.join("ca.crt"),
            serving_cert: dir.join("serving.crt"),
            serving_key: dir.join("serving.key"),
            service_account_key: dir.join("sa.key"),
        })
    }
}

/// Parsed certificates for rustls.
pub(crate) fn load_certs(
    path: &Path,
) -> anyhow::Result<Vec<rustls::pki_types::CertificateDer<'static>>> {
    let pem = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{} holds no valid PEM certificate", path.display()))
}

/// A parsed private key for rustls.
pub(crate) fn load_key(path: &Path) -> anyhow::Result<rustls::pki_types::PrivateKeyDer<'static>> {
    let pem = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .with_context(|| format!("{} holds no valid PEM private key", path.display()))?
        .with_context(|| format!("{} holds no private key", path.display()))
}

/// The rustls crypto provider; passed explicitly so nothing depends on a
/// process-wide default.
pub(crate) fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS client configuration that trusts exactly the test CA.
pub(crate) fn client_config(ca_pem: &str) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots
            .add(cert.context("the test CA PEM is invalid")?)
            .context("the test CA certificate is not usable as a trust anchor")?;
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("the ring provider supports no TLS version")?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// An HTTP client for servers with certificates from the test CA. Unless
/// `pooled`, it keeps no idle connections, so one client can serve callers on
/// different tokio runtimes (each `#[tokio::test]` has its own).
pub(crate) fn https_client(ca_pem: &str, pooled: bool) -> anyhow::Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .use_preconfigured_tls(client_config(ca_pem)?)
        .connect_timeout(std::time::Duration::from_secs(5));
    if !pooled {
        b = b.pool_max_idle_per_host(0);
    }
    b.build()
        .context("cannot build an HTTPS client for the test CA")
}

/// The shim's TLS configuration: the serving certificate, HTTP/1.1 only.
pub(crate) fn server_config(pki: &Pki) -> anyhow::Result<rustls::ServerConfig> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("the ring provider supports no TLS version")?
        .with_no_client_auth()
        .with_single_cert(load_certs(&pki.serving_cert)?, load_key(&pki.serving_key)?)
        .context("the serving certificate and key do not match")?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// A client builder for plain-HTTP servers (the registry). reqwest still
/// wants a TLS configuration; it gets one that trusts nothing.
pub(crate) fn plain_http_builder() -> reqwest::ClientBuilder {
    let tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map(|b| {
            b.with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth()
        });
    let b = reqwest::Client::builder();
    match tls {
        Ok(cfg) => b.use_preconfigured_tls(cfg),
        Err(_) => b,
    }
}
