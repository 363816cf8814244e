//! `test-cluster up`: a real kube-apiserver + etcd, the image-API shim and a
//! registry, seeded like packit, until SIGINT/SIGTERM.
//! `test-cluster push --state FILE REPO:TAG`: push a new image to its registry.
//! `test-cluster up --prometheus-rules FILE`: also a Prometheus with those
//! rules and a Pushgateway it scrapes.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use serde::{Deserialize, Serialize};
use test_cluster::prometheus::{self, Prometheus};
use test_cluster::{sandbox, ClusterOptions, Failure, Registry, TestCluster};

#[derive(Parser)]
#[command(
    version,
    about = "Real kube-apiserver, openshift-apiserver and openshift-controller-manager behind one HTTPS front, and a real registry"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

fn default_state() -> PathBuf {
    std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join("test-cluster-state.json")
}

#[derive(Subcommand)]
enum Cmd {
    /// Start everything, seed, write a kubeconfig; stop on SIGINT/SIGTERM.
    Up {
        /// What to create: `packit` (namespaces packit-stg/packit-prod) or `none`.
        #[arg(long, default_value = "packit")]
        seed: String,
        /// Also write the admin kubeconfig here (kept after shutdown).
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        /// Latency added to every API request, in milliseconds.
        #[arg(long, default_value_t = 0)]
        api_latency_ms: u64,
        /// Latency added to every image import, in milliseconds.
        #[arg(long, default_value_t = 0)]
        import_latency_ms: u64,
        /// Also run kube-controller-manager, kube-scheduler and a stand-in
        /// node, so Deployments and StatefulSets get pods.
        #[arg(long)]
        workloads: bool,
        /// Streams per namespace (the packit images, then packit-extra-NNN).
        #[arg(long, default_value_t = sandbox::PACKIT_STREAMS.len())]
        streams: usize,
        /// Also start a Prometheus with these alert rules (a rules file or a
        /// PrometheusRule, e.g. manifests/components/prometheus-rules/prometheusrule.yaml)
        /// and a Pushgateway it scrapes.
        #[arg(long, value_name = "FILE")]
        prometheus_rules: Option<PathBuf>,
        /// Where to write addresses for other commands (removed on shutdown).
        #[arg(long, env = "TEST_CLUSTER_STATE", default_value_os_t = default_state())]
        state: PathBuf,
    },
    /// Push a new unique image to the running cluster's registry and move the tag.
    Push {
        #[arg(long, env = "TEST_CLUSTER_STATE", default_value_os_t = default_state())]
        state: PathBuf,
        /// `REPO:TAG`, e.g. `packit/packit-worker:prod`.
        image: String,
        /// Make the new image fail on the stand-in node (a cluster `up
        /// --workloads`): `crash-loop` or `pull-error`.
        #[arg(long, value_name = "HOW")]
        bad: Option<String>,
    },
}

/// What `up` tells other processes.
#[derive(Serialize, Deserialize)]
struct State {
    pid: u32,
    server: String,
    apiserver: String,
    registry: String,
    kubeconfig: PathBuf,
    ca_file: PathBuf,
    admin_token: String,
    faults_endpoint: String,
    /// With `--prometheus-rules`: Prometheus and the Pushgateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prometheus: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pushgateway: Option<String>,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Cmd::Up {
            seed,
            kubeconfig,
            api_latency_ms,
            import_latency_ms,
            workloads,
            streams,
            prometheus_rules,
            state,
        } => up(
            &seed,
            kubeconfig.as_deref(),
            ClusterOptions {
                api_latency: (api_latency_ms > 0).then(|| Duration::from_millis(api_latency_ms)),
                import_latency: (import_latency_ms > 0)
                    .then(|| Duration::from_millis(import_latency_ms)),
                workloads,
            },
            streams,
            prometheus_rules.as_deref(),
            &state,
        ),
        Cmd::Push { state, image, bad } => push(&state, &image, bad.as_deref()),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot build a tokio runtime")
}

fn up(
    seed: &str,
    kubeconfig: Option<&Path>,
    opts: ClusterOptions,
    streams: usize,
    prometheus_rules: Option<&Path>,
    state_path: &Path,
) -> anyhow::Result<()> {
    if !matches!(seed, "packit" | "none") {
        bail!("--seed {seed:?} is unknown; use `packit` or `none`");
    }
    let started = Instant::now();
    let cluster = TestCluster::start(opts)?;
    eprintln!(
        "cluster started in {:.1?} (etcd, kube-apiserver, openshift-apiserver, openshift-controller-manager, registry)",
        started.elapsed()
    );
    let rt = runtime()?;
    let result = rt.block_on(async {
        if seed == "packit" {
            let t = Instant::now();
            sandbox::seed_packit(&cluster, streams).await?;
            if cluster.runs_workloads() {
                sandbox::seed_packit_workloads(&cluster).await?;
            }
            eprintln!(
                "seeded {streams} streams in each of {} in {:.1?}",
                sandbox::PACKIT_ENVIRONMENTS
                    .iter()
                    .map(|(ns, _, _)| *ns)
                    .collect::<Vec<_>>()
                    .join(", "),
                t.elapsed()
            );
        }
        let prometheus = match prometheus_rules {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read --prometheus-rules {}", path.display()))?;
                let rules = prometheus::rules_file(&text)
                    .with_context(|| format!("--prometheus-rules {}", path.display()))?;
                Some(Prometheus::start(&rules).await?)
            }
            None => None,
        };
        let kubeconfig = match kubeconfig {
            Some(p) => {
                cluster.write_kubeconfig(&cluster.admin_token(), p)?;
                p.to_path_buf()
            }
            None => cluster.kubeconfig_path().to_path_buf(),
        };
        let state = State {
            pid: std::process::id(),
            server: cluster.server_url(),
            apiserver: cluster.apiserver_url(),
            registry: cluster.registry().host(),
            kubeconfig: kubeconfig.clone(),
            ca_file: cluster.ca_path(),
            admin_token: cluster.admin_token(),
            faults_endpoint: format!("{}/_testcluster/faults", cluster.server_url()),
            prometheus: prometheus.as_ref().map(Prometheus::url),
            pushgateway: prometheus.as_ref().map(Prometheus::pushgateway_url),
        };
        std::fs::write(state_path, serde_json::to_vec_pretty(&state)?)
            .with_context(|| format!("cannot write the state file {}", state_path.display()))?;
        println!("test cluster is up (stop with Ctrl-C)");
        println!("  front (use this):     {}", state.server);
        println!("  kube-apiserver:       {}", state.apiserver);
        println!("  openshift-apiserver:  {}", cluster.openshift_apiserver_url());
        println!("  registry (HTTPS):     {}", state.registry);
        println!("  oc:                   {}", cluster.oc_path().display());
        if let Some(p) = &prometheus {
            println!("  prometheus:           {}", p.url());
            println!("  pushgateway:          {}", p.pushgateway_url());
        }
        println!("  state file:       {}", state_path.display());
        println!();
        println!("  export KUBECONFIG={}", kubeconfig.display());
        println!("  kubectl get is -n packit-prod");
        println!("  kubectl describe is packit-worker -n packit-prod");
        println!(
            "  test-cluster push --state {} packit/packit-worker:prod",
            state_path.display()
        );
        println!(
            "  curl --cacert {} -X POST {} -d '{{\"path_contains\": \"/imagestreamimports\", \"kind\": {{\"status\": {{\"code\": 500}}}}, \"times\": 1}}'",
            state.ca_file.display(),
            state.faults_endpoint
        );
        wait_for_signal().await
    });
    let _ = std::fs::remove_file(state_path);
    let t = Instant::now();
    drop(cluster);
    eprintln!("stopped in {:.1?}", t.elapsed());
    result
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    tokio::select! {
        _ = term.recv() => eprintln!("SIGTERM: stopping"),
        _ = int.recv() => eprintln!("SIGINT: stopping"),
    }
    Ok(())
}

fn push(state_path: &Path, image: &str, bad: Option<&str>) -> anyhow::Result<()> {
    let failure = match bad {
        None => None,
        Some("crash-loop") => Some(Failure::CrashLoop),
        Some("pull-error") => Some(Failure::PullError),
        Some(other) => bail!("--bad {other:?} is unknown; use `crash-loop` or `pull-error`"),
    };
    let text = std::fs::read(state_path).with_context(|| {
        format!(
            "cannot read the state file {}; is `test-cluster up` running (with the same --state)?",
            state_path.display()
        )
    })?;
    let state: State = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a test-cluster state file", state_path.display()))?;
    let Some((repo, tag)) = image
        .rsplit_once(':')
        .filter(|(r, t)| !r.is_empty() && !t.is_empty() && !t.contains('/'))
    else {
        bail!("{image:?} is not REPO:TAG (e.g. packit/packit-worker:prod)");
    };
    let ca = std::fs::read_to_string(&state.ca_file)
        .with_context(|| format!("cannot read the test CA {}", state.ca_file.display()))?;
    let registry = Registry::at(&state.registry, &ca);
    let rt = runtime()?;
    let digest = rt.block_on(registry.push_image(repo, tag))?;
    if let Some(failure) = failure {
        // By digest: every reference to the new image fails.
        rt.block_on(sandbox::mark_image_bad_at(
            &state.server,
            &ca,
            &digest,
            failure,
        ))?;
        eprintln!("marked {digest} as {bad:?} on the stand-in node");
    }
    println!("{digest}");
    eprintln!("pushed {}@{digest}", registry.image_ref(repo, tag));
    Ok(())
}
