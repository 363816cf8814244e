//! `import-scheduler run`: the daemon.

use std::path::PathBuf;
use std::sync::Arc;

use super::{usage_error, EXIT_OK};
use crate::clock::SystemClock;
use crate::config::Settings;
use crate::daemon::{self, ConfigSource};
use crate::telemetry::{self, LogFormat};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Read the configuration from this file (re-read when it changes)
    /// instead of the ConfigMap named by IMPORT_SCHEDULER_CONFIGMAP.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Kubeconfig to use [default: KUBECONFIG, ~/.kube/config, or the pod's service account].
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
}

pub fn run(args: Args) -> u8 {
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => return usage_error(e),
    };
    let format = match settings.log_format.as_str() {
        "json" => LogFormat::Json,
        "text" => LogFormat::Text,
        _ => LogFormat::auto(),
    };
    if let Err(e) = telemetry::init(format, &settings.log) {
        return usage_error(format!("IMPORT_SCHEDULER_LOG: {e}"));
    }
    let source = match args.config {
        Some(path) => ConfigSource::File(path),
        None => ConfigSource::ConfigMap {
            namespace: settings.namespace(),
            name: settings.configmap.clone(),
            key: settings.config_key.clone(),
        },
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return super::EXIT_FAILED;
        }
    };
    runtime.block_on(async move {
        let shutdown = crate::shutdown::signal_token();
        let opts = daemon::Options {
            settings,
            source,
            kubeconfig: args.kubeconfig,
            clock: Arc::new(SystemClock),
        };
        match daemon::run(opts, shutdown).await {
            Ok(()) => EXIT_OK,
            Err(e) => {
                tracing::error!(error = %e, "stopped");
                eprintln!("error: {e}");
                e.exit_code()
            }
        }
    })
}
