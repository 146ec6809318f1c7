//! What a batch of changes does: restart the service, or run its `exec` command with
//! the output in the service's log.
//!
//! Both coalesce. A restart asked for while the previous one has not yet started the
//! new process is dropped: that process starts after the change and sees it. An
//! `exec` asked for while the command runs is run once more when it ends.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::worker::rel;
use super::{Action, Batch, Hit, Services, Target};
use crate::config::Command;
use crate::logs::{self, LogHub, Stream};
use crate::process::{self, Guardian};
use crate::status::ServiceState;

/// A restart asked for longer ago than this no longer holds back new ones, even if
/// the supervisor never acted on it (the stop grace plus start-up slack).
const RESTART_PENDING_LIMIT: Duration = Duration::from_secs(15);
/// An `exec` command running longer is killed.
const EXEC_LIMIT: Duration = Duration::from_secs(600);
/// Output still in the pipes after the command exited, waited for at most this long
/// (something it started in the background may hold them open).
const DRAIN_LIMIT: Duration = Duration::from_secs(1);

pub(crate) struct Dispatcher {
    pub cancel: CancellationToken,
    pub targets: tokio::sync::watch::Receiver<Arc<Vec<Target>>>,
    pub services: Arc<dyn Services>,
    pub logs: LogHub,
    pub guardian: Option<Arc<Guardian>>,
    pub project_dir: PathBuf,
}

impl Dispatcher {
    pub(crate) async fn run(self, mut batches: mpsc::Receiver<Batch>) {
        // When each service's last restart was asked for.
        let mut restarts: HashMap<String, SystemTime> = HashMap::new();
        // Services whose command runs, and whether it should run again after.
        let mut execs: HashMap<String, bool> = HashMap::new();
        let mut running: JoinSet<()> = JoinSet::new();
        let mut task_service: HashMap<tokio::task::Id, String> = HashMap::new();
        loop {
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => break,
                done = running.join_next_with_id(), if !running.is_empty() => {
                    let id = match done {
                        Some(Ok((id, ()))) => id,
                        Some(Err(e)) => e.id(),
                        None => continue,
                    };
                    let Some(service) = task_service.remove(&id) else { continue };
                    if execs.remove(&service) == Some(true) {
                        let targets = self.targets.borrow().clone();
                        if let Some(t) = targets.iter().find(|t| t.service == service) {
                            self.exec(t, "more changes".into(), &mut execs, &mut running, &mut task_service);
                        }
                    }
                }
                batch = batches.recv() => {
                    let Some(batch) = batch else { break };
                    let targets = self.targets.borrow().clone();
                    for hit in batch.hits {
                        let Some(t) = targets.get(usize::from(hit.rule)) else { continue };
                        let what = describe(&hit, &self.project_dir);
                        match &t.action {
                            Action::Sync(sink) => (sink.0)(super::SyncHit {
                                paths: hit.paths,
                                overflow: hit.overflow,
                            }),
                            Action::Restart => self.restart(&t.service, &what, &mut restarts),
                            // The runner coalesces: changes during a build build again.
                            Action::Rebuild => {
                                if self.services.running(&t.service) {
                                    self.logs.push(
                                        &Arc::from(t.service.as_str()),
                                        Stream::System,
                                        &format!("watch: {what}: rebuilding the image"),
                                    );
                                    self.services.rebuild(&t.service);
                                }
                            }
                            Action::Exec { .. } => {
                                if let Some(again) = execs.get_mut(&t.service) {
                                    *again = true;
                                } else {
                                    self.exec(t, what, &mut execs, &mut running, &mut task_service);
                                }
                            }
                        }
                    }
                }
            }
        }
        // Stopping: commands still running die with the watcher.
        running.abort_all();
        while running.join_next().await.is_some() {}
    }

    fn restart(&self, service: &str, what: &str, restarts: &mut HashMap<String, SystemTime>) {
        if let (Some(asked), Some(status)) = (restarts.get(service), self.services.status(service))
        {
            // The supervisor publishes a new `since` when it starts the new process.
            let pending = status.since < *asked || status.state == ServiceState::Stopping;
            let recent = asked.elapsed().unwrap_or_default() < RESTART_PENDING_LIMIT;
            if pending && recent {
                self.logs.push(
                    &Arc::from(service),
                    Stream::System,
                    &format!("watch: {what}: a restart is already under way"),
                );
                return;
            }
        }
        if !self.services.running(service) {
            return;
        }
        let asked = SystemTime::now();
        self.logs.push(
            &Arc::from(service),
            Stream::System,
            &format!("watch: {what}: restarting"),
        );
        if self.services.restart(service) {
            restarts.insert(service.to_owned(), asked);
        }
    }

    fn exec(
        &self,
        t: &Target,
        what: String,
        execs: &mut HashMap<String, bool>,
        running: &mut JoinSet<()>,
        task_service: &mut HashMap<tokio::task::Id, String>,
    ) {
        let Action::Exec {
            command,
            workdir,
            env,
        } = &t.action
        else {
            return;
        };
        if !self.services.running(&t.service) {
            return;
        }
        let run = Exec {
            service: Arc::from(t.service.as_str()),
            command: command.clone(),
            workdir: workdir.clone(),
            env: env.clone(),
            logs: self.logs.clone(),
            guardian: self.guardian.clone(),
        };
        let handle = running.spawn(run.run(what));
        execs.insert(t.service.clone(), false);
        task_service.insert(handle.id(), t.service.clone());
    }
}

/// One run of a rule's command.
struct Exec {
    service: Arc<str>,
    command: Command,
    workdir: PathBuf,
    env: std::collections::BTreeMap<String, String>,
    logs: LogHub,
    guardian: Option<Arc<Guardian>>,
}

impl Exec {
    async fn run(self, what: String) {
        let shown = match &self.command {
            Command::Shell(s) => s.clone(),
            Command::Exec(argv) => argv.join(" "),
        };
        let say = |line: String| self.logs.push(&self.service, Stream::System, &line);
        say(format!("watch: {what}: running `{shown}`"));
        let mut cmd =
            crate::probe::build_command(&self.command, self.env.get("PATH").map(String::as_str));
        cmd.current_dir(&self.workdir)
            .env_clear()
            .envs(&self.env)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let started = Instant::now();
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                say(format!(
                    "watch: cannot run `{shown}` in {}: {e}",
                    self.workdir.display()
                ));
                return;
            }
        };
        let leader = process::Leader::of(&child);
        // Dropped before `child` if this run is cancelled: the group is killed while
        // the leader is unreaped (kill_on_drop and tokio's reaper come after).
        let mut group = Some(process::GroupGuard::new(
            leader.pid(),
            self.guardian.clone(),
        ));
        let mut pipes = JoinSet::new();
        if let Some(out) = child.stdout.take() {
            pipes.spawn(logs::copy_pipe(
                self.logs.clone(),
                out,
                self.service.clone(),
                Stream::System,
            ));
        }
        if let Some(err) = child.stderr.take() {
            pipes.spawn(logs::copy_pipe(
                self.logs.clone(),
                err,
                self.service.clone(),
                Stream::System,
            ));
        }
        let exited = tokio::time::timeout(EXEC_LIMIT, leader.exited(&mut child)).await;
        // Kill what it left behind before reaping the leader (the group id is ours
        // only until then).
        drop(group.take());
        let status = match exited {
            Ok(()) => Ok(child.wait().await),
            Err(elapsed) => {
                let _ = child.wait().await;
                Err(elapsed)
            }
        };
        let _ = tokio::time::timeout(DRAIN_LIMIT, async {
            while pipes.join_next().await.is_some() {}
        })
        .await;
        pipes.abort_all();
        let took = started.elapsed().as_secs_f64();
        say(match status {
            Ok(Ok(st)) => match (
                st.code(),
                std::os::unix::process::ExitStatusExt::signal(&st),
            ) {
                (Some(code), _) => {
                    format!("watch: `{shown}` exited with code {code} in {took:.2}s")
                }
                (None, Some(sig)) => format!("watch: `{shown}` was killed by signal {sig}"),
                _ => format!("watch: `{shown}` ended in {took:.2}s"),
            },
            Ok(Err(e)) => format!("watch: waiting for `{shown}` failed: {e}"),
            Err(_) => format!(
                "watch: `{shown}` did not finish within {}s: killed",
                EXEC_LIMIT.as_secs()
            ),
        });
    }
}

/// Paths named in a log line about a batch (the count covers the rest).
const NAMED: usize = 3;

/// "./api/app.py changed", "3 files changed (...)", for the log.
fn describe(hit: &Hit, project: &Path) -> String {
    if hit.overflow {
        return "many files changed".into();
    }
    let names: Vec<String> = hit
        .paths
        .iter()
        .take(NAMED)
        .map(|p| rel(project, p))
        .collect();
    if hit.count <= names.len() {
        format!("{} changed", names.join(", "))
    } else {
        format!("{} files changed ({}, ...)", hit.count, names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_changes_briefly() {
        let p = Path::new("/p");
        let hit = |count, sample: &[&str], overflow| Hit {
            rule: 0,
            count,
            paths: sample.iter().map(PathBuf::from).collect(),
            overflow,
        };
        assert_eq!(
            describe(&hit(1, &["/p/api/app.py"], false), p),
            "./api/app.py changed"
        );
        assert_eq!(
            describe(&hit(5, &["/p/a", "/p/b", "/p/c"], false), p),
            "5 files changed (./a, ./b, ./c, ...)"
        );
        assert_eq!(describe(&hit(0, &[], true), p), "many files changed");
    }
}
