//! Child processes that cannot outlive the process that started them.
//!
//! Every child runs under a small `sh` watchdog whose stdin is a pipe from
//! this process. When this process exits - normally, by panic, or by SIGKILL -
//! the kernel closes the pipe, `read` in the watchdog sees EOF and the
//! watchdog kills the child. The watchdog also exits when the child does, so
//! an early crash is visible to [`Supervised::exited`].

use std::fs::File;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use anyhow::{bail, Context};

/// Runs `"$@"` in the background, kills it (SIGKILL: all state is temporary)
/// on EOF of stdin, exits with the child's status. `$0` names the child in
/// `ps`. The watchdog and its child run in their own process group so a
/// terminal's Ctrl-C reaches only the parent, which then tears down in order.
const WATCHDOG: &str = r#"
exec 3<&0
"$@" 3<&- &
child=$!
( read _ <&3; kill -KILL "$child" 2>/dev/null ) &
reader=$!
exec 3<&-
wait "$child"
status=$?
kill "$reader" 2>/dev/null
exit "$status"
"#;

/// A process started under a watchdog.
pub(crate) struct Supervised {
    name: String,
    watchdog: Child,
    stdin: Option<ChildStdin>,
    log: PathBuf,
}

impl Supervised {
    /// Starts `program args` with stdout and stderr appended to `log`.
    pub(crate) fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        log: &Path,
    ) -> anyhow::Result<Supervised> {
        Supervised::spawn_with_env(name, program, args, &[], log)
    }

    /// [`Supervised::spawn`] with extra environment variables.
    pub(crate) fn spawn_with_env(
        name: &str,
        program: &Path,
        args: &[String],
        env: &[(&str, String)],
        log: &Path,
    ) -> anyhow::Result<Supervised> {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("cannot open log file {} for {name}", log.display()))?;
        let err = out
            .try_clone()
            .with_context(|| format!("cannot duplicate log file handle for {name}"))?;
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(WATCHDOG)
            .arg(format!("test-cluster-{name}"))
            .arg(program)
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::piped())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let mut watchdog = cmd
            .spawn()
            .with_context(|| format!("cannot start {name} ({})", program.display()))?;
        let stdin = watchdog.stdin.take();
        Ok(Supervised {
            name: name.to_string(),
            watchdog,
            stdin,
            log: log.to_path_buf(),
        })
    }

    /// `Some(description)` when the child has exited already.
    pub(crate) fn exited(&mut self) -> Option<String> {
        match self.watchdog.try_wait() {
            Ok(Some(status)) => {
                let text = std::fs::read_to_string(&self.log).unwrap_or_default();
                // A Go server that dies dumps its goroutines after the
                // line that says why: keep that line in view.
                let why = fatal_line(&text)
                    .map(|line| format!("; it said: {line}"))
                    .unwrap_or_default();
                Some(format!(
                    "{} exited ({status}){why}; last log lines:\n{}",
                    self.name,
                    self.log_tail(30)
                ))
            }
            Ok(None) => None,
            Err(e) => Some(format!("cannot check whether {} runs: {e}", self.name)),
        }
    }

    /// The last `n` lines of the child's log.
    pub(crate) fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Kills the child and waits for the watchdog.
    pub(crate) fn stop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            // A newline wakes `read` just like EOF; either way the child dies.
            let _ = stdin.write_all(b"\n");
        }
        let _ = self.watchdog.wait();
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The first line of a Go server's log that says why it stopped: a klog
/// fatal line (`F1204 22:10:01.123456 ...`), `panic: ...` or
/// `fatal error: ...`.
fn fatal_line(log: &str) -> Option<&str> {
    log.lines().find(|line| {
        let klog_fatal = line.strip_prefix('F').is_some_and(|rest| {
            rest.len() > 5
                && rest.as_bytes()[..4].iter().all(u8::is_ascii_digit)
                && rest.as_bytes()[4] == b' '
        });
        klog_fatal || line.starts_with("panic: ") || line.starts_with("fatal error: ")
    })
}

/// `name` from `$PATH` (or `/usr/bin`, `/usr/sbin`).
pub(crate) fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Runs a short command to completion; fails with its stderr.
pub(crate) fn run(program: &str, args: &[&str], cwd: &Path) -> anyhow::Result<()> {
    let out = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {program}; is it installed?"))?;
    if !out.status.success() {
        bail!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Free TCP ports on 127.0.0.1 right now, distinct from each other (all held until every one is chosen).
/// Another process may take one before the child binds it; callers retry the
/// start on such a race.
pub(crate) fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").context("cannot bind a free port on 127.0.0.1"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr().context("cannot read a bound port")?.port()))
        .collect()
}

/// Removes a directory when this process goes away without running
/// destructors (statics, SIGKILL): a `sh` waits for EOF on its stdin, then
/// removes the directory, retrying while the killed children release it.
pub(crate) struct Janitor {
    child: Child,
    stdin: Option<ChildStdin>,
}

const JANITOR: &str = r#"
read _
i=0
while [ -e "$1" ] && [ "$i" -lt 50 ]; do
  rm -rf "$1" 2>/dev/null
  i=$((i + 1))
  [ -e "$1" ] && sleep 0.1
done
exit 0
"#;

impl Janitor {
    pub(crate) fn spawn(dir: &Path) -> anyhow::Result<Janitor> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(JANITOR)
            .arg("test-cluster-janitor")
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .context("cannot start the cleanup process (sh)")?;
        let stdin = child.stdin.take();
        Ok(Janitor { child, stdin })
    }
}

impl Drop for Janitor {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod fatal_line_tests {
    use super::fatal_line;

    #[test]
    fn the_line_that_says_why_a_go_server_stopped_is_found() {
        let klog = "I1204 22:10:00.1 1 server.go:1] starting\nF1204 22:10:01.123456 1 controllermanager.go:244] error starting controllers: boom\ngoroutine 1 [running]:\n";
        assert_eq!(
            fatal_line(klog),
            Some("F1204 22:10:01.123456 1 controllermanager.go:244] error starting controllers: boom")
        );
        assert_eq!(
            fatal_line("x\npanic: runtime error\n\ngoroutine 7"),
            Some("panic: runtime error")
        );
        assert_eq!(
            fatal_line("fatal error: out of memory"),
            Some("fatal error: out of memory")
        );
        assert_eq!(fatal_line("Failed to list pods\nF12 short\n"), None);
    }
}
