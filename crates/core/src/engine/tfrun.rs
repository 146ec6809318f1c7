//! A terraform service as a node of the graph (issue 18): `init` when its backend
//! config changed, `plan -detailed-exitcode` on every start, `apply` of that saved plan
//! with `autoApply`, then `output -json`. Ready once the outputs are read; the outputs
//! are kept on the board (`Shared::tf_outputs`, memory only) for the services that
//! reference them as `${tf.SERVICE.OUTPUT}` ([`substitute`], called by `up` just
//! before it starts one of them). `down --volumes` runs [`destroy`] when
//! `allowDestroy`.
//!
//! Terraform's output goes to the service's log (with `TF_IN_AUTOMATION`, `-no-color`,
//! `-input=false`); `output -json` is read, never logged: sensitive outputs stay out of
//! logs, status and state.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::io::AsyncReadExt as _;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::board::{lock, Shared};
use super::hooks::Tail;
use super::supervisor::{Ctl, Supervisor};
use crate::config::{Service, Terraform};
use crate::logs::{self, Stream};
use crate::process;
use crate::status::ServiceState;
use crate::terraform::{self as tf, DataDir, Output, PlanSummary, TfError};

/// Outputs of the terraform services that are ready, by service then output name.
type TfOutputs = BTreeMap<String, BTreeMap<String, Output>>;

/// What one run of the node did.
struct Done {
    plan: PlanSummary,
    applied: bool,
    outputs: BTreeMap<String, Output>,
}

/// One terraform service's node: the context of each terraform command it runs.
#[derive(Clone)]
pub(super) struct Tf {
    shared: Arc<Shared>,
    svc: Service,
    spec: Terraform,
    /// The process environment of terraform: the client's, the service's `env` and
    /// secrets, and terraform's automation settings.
    env: BTreeMap<String, String>,
    data: DataDir,
    /// `TF_CLI_CONFIG_FILE` left out of `env`: it names no file
    /// ([`tf::missing_cli_config`]).
    dropped_cli_config: Option<String>,
    /// Where terraform's output lines also go (`devenv tf plan|apply`).
    echo: Option<Echo>,
}

/// Terraform's output lines for a client as well as the log: bounded, never waited
/// for (a slow client loses lines, counted in `dropped`; the log has them all).
#[derive(Clone)]
pub(super) struct Echo {
    /// Hands a line on without waiting; `false` when it could not (a full queue).
    pub send: Arc<dyn Fn(String) -> bool + Send + Sync>,
    pub dropped: Arc<std::sync::atomic::AtomicU64>,
}

/// Bytes of one echoed line; a longer one is cut into pieces of this size.
const ECHO_LINE_BYTES: usize = 8 << 10;

/// A pipe whose complete lines are also sent to an [`Echo`].
struct Echoed<R> {
    inner: R,
    echo: Echo,
    pending: Vec<u8>,
}

impl<R> Echoed<R> {
    fn send(&mut self, upto: usize, skip: usize) {
        let line: Vec<u8> = self.pending.drain(..upto + skip).take(upto).collect();
        let text = String::from_utf8_lossy(&line)
            .trim_end_matches('\r')
            .to_string();
        if !(self.echo.send)(text) {
            self.echo
                .dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

impl<R: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Echoed<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if let std::task::Poll::Ready(Ok(())) = &r {
            let new = &buf.filled()[before..];
            if new.is_empty() {
                if !self.pending.is_empty() {
                    let n = self.pending.len();
                    self.send(n, 0);
                }
            } else {
                self.pending.extend_from_slice(new);
                while let Some(i) = self.pending.iter().position(|b| *b == b'\n') {
                    self.send(i, 1);
                }
                while self.pending.len() >= ECHO_LINE_BYTES {
                    self.send(ECHO_LINE_BYTES, 0);
                }
            }
        }
        r
    }
}

impl Tf {
    pub(super) fn new(
        shared: Arc<Shared>,
        svc: &Service,
        vars: &BTreeMap<String, String>,
        secrets: BTreeMap<String, String>,
    ) -> Option<Self> {
        let spec = svc.terraform.clone()?;
        let data = DataDir::of(&shared.state.env_dir(&shared.id), &svc.name);
        let mut env = vars.clone();
        env.extend(secrets);
        env.extend(svc.env.clone());
        env.insert("TF_IN_AUTOMATION".into(), "1".into());
        env.insert("TF_INPUT".into(), "0".into());
        env.insert("TF_DATA_DIR".into(), data.0.display().to_string());
        // The workspace is selected in the data dir; a stray one from the client's
        // shell would override it.
        env.remove("TF_WORKSPACE");
        let dropped_cli_config = tf::missing_cli_config(&env, &spec.dir);
        if dropped_cli_config.is_some() {
            env.remove("TF_CLI_CONFIG_FILE");
        }
        Some(Self {
            shared,
            svc: svc.clone(),
            spec,
            env,
            data,
            dropped_cli_config,
            echo: None,
        })
    }

    /// Terraform's output lines go to `echo` too.
    pub(super) fn with_echo(mut self, echo: Echo) -> Self {
        self.echo = Some(echo);
        self
    }

    /// `pipe`, echoed when there is an [`Echo`].
    fn echoed<'a, R: tokio::io::AsyncRead + Unpin + Send + 'a>(
        &self,
        pipe: R,
    ) -> Box<dyn tokio::io::AsyncRead + Unpin + Send + 'a> {
        match &self.echo {
            Some(echo) => Box::new(Echoed {
                inner: pipe,
                echo: echo.clone(),
                pending: Vec::new(),
            }),
            None => Box::new(pipe),
        }
    }

    fn program(&self) -> Result<PathBuf, TfError> {
        let path = self.env.get("PATH").cloned().unwrap_or_default();
        process::find_program(&["terraform"], std::env::split_paths(&path)).ok_or(TfError::Missing)
    }

    pub(super) fn system(&self, msg: &str) {
        self.shared
            .logs
            .push(&Arc::from(self.svc.name.as_str()), Stream::System, msg);
    }

    fn progress(&self, msg: String) {
        self.shared.update(&self.svc.name, |s| {
            s.state = ServiceState::Starting;
            s.message = msg;
        });
    }

    /// Runs `terraform ARGS` in the module's directory: its output to the log (and a
    /// tail for the failure's first error), or its stdout returned unlogged when
    /// `capture` (bounded by [`tf::MAX_JSON_BYTES`]). `Ok(code)` with the exit code.
    async fn run(
        &self,
        step: &'static str,
        args: &[String],
        capture: Option<&mut Vec<u8>>,
    ) -> Result<i32, TfError> {
        let program = self.program()?;
        let mut cmd = tokio::process::Command::new(&program);
        cmd.args(args)
            .current_dir(&self.spec.dir)
            .env_clear()
            .envs(&self.env)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = self
            .shared
            .spawner
            .spawn(cmd)
            .await
            .map_err(|source| TfError::Spawn { step, source })?;
        let leader = process::Leader::of(&child);
        // Kills what terraform started (providers) if this run is dropped.
        let mut group = Some(process::GroupGuard::new(
            leader.pid(),
            Some(self.shared.guardian.clone()),
        ));
        let log: Arc<str> = Arc::from(self.svc.name.as_str());
        let tail = Tail::default();
        let mut pipes = JoinSet::new();
        if let Some(err) = child.stderr.take() {
            pipes.spawn(logs::copy_pipe(
                self.shared.logs.clone(),
                tail.tee(self.echoed(err)),
                log.clone(),
                Stream::Stderr,
            ));
        }
        let mut stdout = child.stdout.take();
        let read = async {
            match (capture, stdout.as_mut()) {
                (Some(buf), Some(out)) => {
                    let mut limited = out.take(tf::MAX_JSON_BYTES as u64 + 1);
                    limited.read_to_end(buf).await.map(|_| ())
                }
                (None, Some(out)) => {
                    logs::copy_pipe(
                        self.shared.logs.clone(),
                        tail.tee(self.echoed(out)),
                        log.clone(),
                        Stream::Stdout,
                    )
                    .await;
                    Ok(())
                }
                _ => Ok(()),
            }
        };
        let (read, _) = tokio::join!(read, leader.exited(&mut child));
        drop(group.take());
        let status = child.wait().await;
        while pipes.join_next().await.is_some() {}
        read.map_err(|e| TfError::Unreadable {
            step,
            reason: e.to_string(),
        })?;
        let code = status
            .map_err(|source| TfError::Spawn { step, source })?
            .code()
            .unwrap_or(-1);
        if code != 0 && !(step == "plan" && code == 2) {
            return Err(TfError::Failed {
                step,
                error: tf::first_error(&tail.lines()),
            });
        }
        Ok(code)
    }

    async fn json(&self, step: &'static str, args: &[String]) -> Result<Vec<u8>, TfError> {
        let mut buf = Vec::new();
        self.run(step, args, Some(&mut buf)).await?;
        if buf.len() > tf::MAX_JSON_BYTES {
            return Err(TfError::Unreadable {
                step,
                reason: format!("more than {} MiB", tf::MAX_JSON_BYTES >> 20),
            });
        }
        Ok(buf)
    }

    /// The data dir with the var file written (0600: vars may hold secrets), and
    /// `init` run when its key changed.
    async fn prepare(&self) -> Result<(), TfError> {
        let data_err = |source| TfError::DataDir {
            dir: self.data.0.clone(),
            source,
        };
        tokio::fs::create_dir_all(&self.data.0)
            .await
            .map_err(data_err)?;
        {
            use std::os::unix::fs::PermissionsExt as _;
            tokio::fs::set_permissions(&self.data.0, std::fs::Permissions::from_mode(0o700))
                .await
                .map_err(data_err)?;
        }
        if let Some(file) = &self.dropped_cli_config {
            self.system(&format!(
                "TF_CLI_CONFIG_FILE={file} names no file: left out of terraform's environment (terraform would warn on every step and go on without it)"
            ));
        }
        write_private(&self.data.var_file(), &tf::var_file(&self.spec))
            .await
            .map_err(data_err)?;
        let key = tf::init_key(&self.spec);
        let stamp = tokio::fs::read_to_string(self.data.init_stamp()).await.ok();
        if stamp.as_deref() != Some(key.as_str()) {
            self.progress("terraform init".into());
            self.system(if stamp.is_some() {
                "the backend config or lock file changed: terraform init -reconfigure"
            } else {
                "terraform init"
            });
            self.run("init", &tf::init_args(&self.spec, stamp.is_some()), None)
                .await?;
            tokio::fs::write(self.data.init_stamp(), &key)
                .await
                .map_err(data_err)?;
        }
        if let Some(w) = &self.spec.workspace {
            self.run("workspace select", &tf::workspace_args(w), None)
                .await?;
        }
        Ok(())
    }

    /// `plan` (saved), and `apply` of it when `apply` and it has changes.
    async fn plan(&self, apply: bool) -> Result<(PlanSummary, bool), TfError> {
        self.progress("terraform plan".into());
        let (plan, changes) = self.plan_saved().await?;
        if !changes || !apply {
            return Ok((plan, false));
        }
        self.progress(format!("terraform apply: {}", plan.describe()));
        self.apply_saved(&plan).await?;
        Ok((plan, true))
    }

    /// `plan` saved to the data dir's plan file (which holds sensitive values: the
    /// caller deletes it, [`Tf::discard_plan`]): what it would do, and whether it has
    /// changes (exit code 2).
    pub(super) async fn plan_saved(&self) -> Result<(PlanSummary, bool), TfError> {
        let code = self.run("plan", &tf::plan_args(&self.data), None).await?;
        let plan = if code == 2 {
            let json = self.json("show", &tf::show_plan_args(&self.data)).await?;
            PlanSummary::parse(&json).map_err(|reason| TfError::Unreadable {
                step: "show",
                reason,
            })?
        } else {
            PlanSummary::default()
        };
        self.system(&format!("plan: {}", plan.describe()));
        Ok((plan, code == 2))
    }

    /// `apply` of exactly the saved plan.
    pub(super) async fn apply_saved(&self, plan: &PlanSummary) -> Result<(), TfError> {
        self.run("apply", &tf::apply_args(&self.data), None).await?;
        self.system(&format!("applied: {}", plan.describe_applied()));
        Ok(())
    }

    pub(super) async fn discard_plan(&self) {
        let _ = tokio::fs::remove_file(self.data.plan_file()).await;
    }

    /// The terraform binary and the data dir ready (`init` when needed).
    pub(super) async fn ready(&self) -> Result<(), TfError> {
        self.program()?;
        self.prepare().await
    }

    pub(super) async fn outputs(&self) -> Result<BTreeMap<String, Output>, TfError> {
        let json = self.json("output", &tf::output_args()).await?;
        tf::parse_outputs(&json).map_err(|reason| TfError::Unreadable {
            step: "output",
            reason,
        })
    }

    async fn once(&self, apply: bool) -> Result<Done, TfError> {
        self.program()?;
        self.prepare().await?;
        let planned = self.plan(apply).await;
        // A saved plan holds the values of sensitive outputs: kept no longer than
        // the run that applies it.
        let _ = tokio::fs::remove_file(self.data.plan_file()).await;
        let (plan, applied) = planned?;
        let outputs = self.outputs().await?;
        Ok(Done {
            plan,
            applied,
            outputs,
        })
    }

    /// One run, its outcome on the board.
    async fn run_node(&self, apply: bool) {
        match self.once(apply).await {
            Ok(done) => {
                let sensitive = done.outputs.values().filter(|o| o.sensitive).count();
                let mut message = if done.applied {
                    format!("applied: {}", done.plan.describe_applied())
                } else if done.plan.is_empty() {
                    "plan: no changes".to_string()
                } else {
                    format!(
                        "plan: {} (not applied: autoApply is off; run `devenv tf apply {}`, or set `autoApply: true` on {} and run `devenv up`)",
                        done.plan.describe(),
                        self.svc.name,
                        self.svc.name
                    )
                };
                message.push_str(&format!(
                    "; {} output{}",
                    done.outputs.len(),
                    if done.outputs.len() == 1 { "" } else { "s" }
                ));
                if sensitive > 0 {
                    message.push_str(&format!(" ({sensitive} sensitive)"));
                }
                lock(&self.shared.tf_outputs).insert(self.svc.name.clone(), done.outputs);
                self.shared.update(&self.svc.name, |s| {
                    s.state = ServiceState::Ready;
                    s.message = message;
                    s.pid = None;
                    s.last_lines.clear();
                });
            }
            Err(e) => {
                lock(&self.shared.tf_outputs).remove(&self.svc.name);
                let lines = self
                    .shared
                    .logs
                    .last_lines(&self.svc.name, 10)
                    .iter()
                    .map(|l| tf::strip_ansi(l))
                    .collect();
                let msg = tf::strip_ansi(&e.to_string());
                self.system(&msg);
                self.shared.update(&self.svc.name, |s| {
                    s.state = ServiceState::Failed;
                    s.message = msg;
                    s.pid = None;
                    s.last_lines = lines;
                });
            }
        }
    }

    /// `terraform destroy` (for `down --volumes` with `allowDestroy`).
    pub(super) async fn destroy(&self) -> Result<(), TfError> {
        self.program()?;
        self.prepare().await?;
        self.system("terraform destroy (down --volumes, allowDestroy)");
        self.run("destroy", &tf::destroy_args(&self.data), None)
            .await?;
        lock(&self.shared.tf_outputs).remove(&self.svc.name);
        Ok(())
    }
}

async fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = path.to_path_buf();
    let bytes = bytes.to_vec();
    tokio::task::spawn_blocking(move || {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?;
        f.write_all(&bytes)
    })
    .await
    .map_err(std::io::Error::other)?
}

/// Starts the node of a terraform service: one run, then it waits to be told
/// (`Restart`: run again, e.g. `devenv restart`; `Stop`: end, killing a run).
pub(super) fn start(tf: Tf) -> Supervisor {
    let (tx, mut rx) = mpsc::channel::<Ctl>(8);
    let service = tf.svc.clone();
    let task = tokio::spawn(async move {
        loop {
            let apply = tf.spec.auto_apply;
            tokio::select! {
                () = tf.run_node(apply) => {}
                ctl = rx.recv() => match ctl {
                    Some(Ctl::Restart | Ctl::Rebuild) => continue,
                    Some(Ctl::Stop(done)) => {
                        stopped(&tf);
                        let _ = done.send(());
                        return;
                    }
                    None => return,
                },
            }
            match rx.recv().await {
                Some(Ctl::Restart | Ctl::Rebuild) => continue,
                Some(Ctl::Stop(done)) => {
                    stopped(&tf);
                    let _ = done.send(());
                    return;
                }
                None => return,
            }
        }
    });
    Supervisor {
        ctl: tx,
        task,
        service,
        dev: false,
        secrets_revision: String::new(),
        tf_values: String::new(),
        context: Default::default(),
    }
}

fn stopped(tf: &Tf) {
    lock(&tf.shared.tf_outputs).remove(&tf.svc.name);
    tf.shared.update(&tf.svc.name, |s| {
        s.state = ServiceState::Stopped;
        s.message = "stopped".into();
        s.pid = None;
    });
}

/// Why a service cannot start: a reference to an output that does not exist.
pub(super) fn missing_message(
    outputs: &TfOutputs,
    svc: &Service,
    r: &crate::config::OutputRef<'_>,
) -> String {
    match outputs.get(r.service) {
        None => format!(
            "`${{tf.{}.{}}}`: terraform service `{}` has no outputs (it is not ready)",
            r.service, r.output, r.service
        ),
        Some(o) => format!(
            "`${{tf.{}.{}}}` in service `{}`: terraform service `{}` has no output `{}` (its outputs: {})",
            r.service,
            r.output,
            svc.name,
            r.service,
            r.output,
            if o.is_empty() {
                "none".to_string()
            } else {
                o.keys().cloned().collect::<Vec<_>>().join(", ")
            }
        ),
    }
}

/// `svc` with its `${tf.SERVICE.OUTPUT}` references replaced by the outputs of the
/// terraform services it depends on (which `up` has waited for); the error names
/// the first reference without a value. Sensitive values go in like any other: the
/// service's environment is never shown.
pub(super) fn substitute(shared: &Shared, svc: &Service) -> Result<Service, String> {
    if crate::config::referencing_strings(svc)
        .iter()
        .all(|(_, t)| crate::config::output_refs(t).is_empty())
    {
        return Ok(svc.clone());
    }
    let outputs = lock(&shared.tf_outputs).clone();
    let lookup =
        |s: &str, o: &str| -> Option<String> { outputs.get(s)?.get(o).map(|v| v.value.clone()) };
    let mut out = svc.clone();
    for (k, v) in out.env.iter_mut() {
        if crate::config::output_refs(v).iter().any(|r| {
            outputs
                .get(r.service)
                .and_then(|o| o.get(r.output))
                .is_some_and(|o| o.sensitive)
        }) {
            out.sensitive_env.insert(k.clone());
        }
        match tf::substitute(v, &lookup) {
            Ok(s) => *v = s.into_owned(),
            Err(r) => return Err(missing_message(&outputs, svc, &r)),
        }
    }
    if !out.sensitive_env.is_empty() {
        let values: BTreeMap<String, String> = out
            .sensitive_env
            .iter()
            .filter_map(|k| Some((k.clone(), out.env.get(k)?.clone())))
            .collect();
        let key = crate::secrets::digest_key(shared.state.dir())
            .map_err(|e| format!("cannot keep the key of secret revisions: {e}"))?;
        out.sensitive_revision = crate::secrets::revision(&key, &values);
    }
    if let Some(values) = out.values.as_mut() {
        fn walk(
            v: &mut serde_json::Value,
            lookup: &dyn Fn(&str, &str) -> Option<String>,
        ) -> Result<(), (String, String)> {
            match v {
                serde_json::Value::String(s) => match tf::substitute(s, lookup) {
                    Ok(new) => {
                        *s = new.into_owned();
                        Ok(())
                    }
                    Err(r) => Err((r.service.to_owned(), r.output.to_owned())),
                },
                serde_json::Value::Array(items) => {
                    items.iter_mut().try_for_each(|i| walk(i, lookup))
                }
                serde_json::Value::Object(map) => {
                    map.values_mut().try_for_each(|i| walk(i, lookup))
                }
                _ => Ok(()),
            }
        }
        if let Err((service, output)) = walk(values, &lookup) {
            let text = format!("${{tf.{service}.{output}}}");
            let r = crate::config::output_refs(&text)
                .into_iter()
                .next()
                .expect("a reference built from its parts parses");
            return Err(missing_message(&outputs, svc, &r));
        }
    }
    Ok(out)
}

/// The terraform services `svc` references outputs of (`${tf.SERVICE.OUTPUT}`).
pub(super) fn referenced_services(svc: &Service) -> Vec<String> {
    let mut out: Vec<String> = crate::config::referencing_strings(svc)
        .iter()
        .flat_map(|(_, t)| crate::config::output_refs(t))
        .map(|r| r.service.to_owned())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// A digest of the values of the outputs `svc` references (empty when it references
/// none): what it was started with, kept on its supervisor, so that a changed output
/// restarts exactly the services that use it. A digest, not the values: sensitive
/// ones stay in the outputs' one place.
pub(super) fn values_digest(shared: &Shared, svc: &Service) -> String {
    use md5::{Digest, Md5};
    let mut refs: Vec<(String, String)> = crate::config::referencing_strings(svc)
        .iter()
        .flat_map(|(_, t)| crate::config::output_refs(t))
        .map(|r| (r.service.to_owned(), r.output.to_owned()))
        .collect();
    if refs.is_empty() {
        return String::new();
    }
    refs.sort();
    refs.dedup();
    let outputs = lock(&shared.tf_outputs);
    let mut h = Md5::new();
    for (service, output) in &refs {
        h.update(service.as_bytes());
        h.update([0]);
        h.update(output.as_bytes());
        match outputs.get(service).and_then(|o| o.get(output)) {
            Some(v) => {
                h.update([1]);
                h.update(v.value.as_bytes());
            }
            None => h.update([2]),
        }
        h.update([3]);
    }
    format!("{:x}", h.finalize())
}
