//! `devenv tf plan|apply SERVICE` (`Engine::terraform`): a plan of one terraform
//! service with terraform's output streamed to the client; for an apply, the client's
//! confirmation, then the apply of exactly that saved plan, the outputs read again,
//! and an `up` of the services that wait for them (started, or restarted when a value
//! they use changed: `up`'s `outputs_changed`).
//!
//! The environment's operation lock is held while terraform runs, not while the
//! client decides: terraform refuses a saved plan that went stale meanwhile.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::board::lock;
use super::error::{EngineError, UnknownService};
use super::runtime::LiveEnv;
use super::tfrun::{Echo, Tf};
use super::up::{UpEvent, UpOptions};
use super::{Engine, ProjectRef};
use crate::config::{Environment, RuntimeKind};
use crate::status::{ServiceState, ServiceStatus};
use crate::terraform::PlanSummary;

/// How long a saved plan waits for the client's answer; then it is discarded.
const CONFIRM_LIMIT: Duration = Duration::from_secs(15 * 60);

/// Terraform output lines queued for a client; more are dropped (and counted).
const ECHO_LINES: usize = 1024;

/// What a `devenv tf` run reports, in order: lines, one plan, then done.
#[derive(Debug)]
pub enum TfMsg {
    /// A line terraform printed.
    Line(String),
    /// What the plan would do; `changes`: terraform's exit code 2.
    Plan {
        summary: PlanSummary,
        changes: bool,
    },
    Done(TfDone),
}

#[derive(Debug, Default)]
pub struct TfDone {
    pub ok: bool,
    pub applied: bool,
    pub message: String,
    /// After an apply: the services that waited for the outputs, as they are now.
    pub services: Vec<ServiceStatus>,
}

impl TfDone {
    fn failed(message: String) -> Self {
        Self {
            message,
            ..Self::default()
        }
    }
}

/// A running `devenv tf`: its reports, and the answer to the plan (an apply waits
/// for `true`; `false` or dropping it discards the plan).
pub struct TfSession {
    pub events: mpsc::Receiver<TfMsg>,
    pub confirm: oneshot::Sender<bool>,
}

impl Engine {
    /// Plans `service` (a terraform service) and, with `apply`, applies the saved
    /// plan once confirmed. A config that does not check, an unknown service or one
    /// that is not terraform's is an error here, before anything runs.
    pub fn terraform(
        &self,
        req: ProjectRef,
        service: String,
        apply: bool,
    ) -> Result<TfSession, EngineError> {
        let loaded = self.load(&req)?;
        UnknownService::check(&loaded.environment, std::slice::from_ref(&service))?;
        if loaded
            .environment
            .service(&service)
            .is_none_or(|s| s.runtime != RuntimeKind::Terraform)
        {
            return Err(EngineError::NotTerraform(service));
        }
        let rt = self.register(&loaded, &req)?;
        let (tx, events) = mpsc::channel(ECHO_LINES + 8);
        let (confirm, answer) = oneshot::channel();
        let env = Arc::new(loaded.environment);
        let vars = Arc::new(req.vars);
        let closing = self.closing.clone();
        self.tasks.spawn(async move {
            let run = rt.tf_command(env, vars, service, apply, tx.clone(), answer);
            let done = tokio::select! {
                done = run => done,
                () = closing.cancelled() => TfDone::failed("devenvd is shutting down".into()),
            };
            let _ = tx.send(TfMsg::Done(done)).await;
        });
        Ok(TfSession { events, confirm })
    }
}

impl LiveEnv {
    async fn tf_command(
        self: Arc<Self>,
        env: Arc<Environment>,
        vars: Arc<BTreeMap<String, String>>,
        service: String,
        apply: bool,
        out: mpsc::Sender<TfMsg>,
        answer: oneshot::Receiver<bool>,
    ) -> TfDone {
        let op = self.ops.lock().await;
        let env = match self.resolve_secrets(&env, &vars).await {
            Ok(env) => env,
            Err(message) => return TfDone::failed(message),
        };
        let Some(svc) = env.service(&service) else {
            return TfDone::failed(format!("unknown service `{service}`"));
        };
        let dropped = Arc::new(AtomicU64::new(0));
        // Lines to the client in order with the rest (the same queue); a slow client
        // loses lines, never holds terraform up.
        let lines_out = out.clone();
        let echo = Echo {
            send: Arc::new(move |line| lines_out.try_send(TfMsg::Line(line)).is_ok()),
            dropped: dropped.clone(),
        };
        let Some(tf) = Tf::new(self.shared.clone(), svc, &vars, env.secret_vars(svc)) else {
            return TfDone::failed(format!("`{service}` is not a terraform service"));
        };
        let tf = tf.with_echo(echo);
        tf.system(if apply {
            "devenv tf apply: plan, then apply it once confirmed"
        } else {
            "devenv tf plan"
        });
        let planned = match tf.ready().await {
            Ok(()) => tf.plan_saved().await,
            Err(e) => Err(e),
        };
        let (summary, changes) = match planned {
            Ok(p) => p,
            Err(e) => {
                tf.discard_plan().await;
                return TfDone::failed(crate::terraform::strip_ansi(&e.to_string()));
            }
        };
        let _ = out.send(TfMsg::Plan { summary, changes }).await;
        let note = lost_lines(&dropped, &service);
        if !apply || !changes {
            tf.discard_plan().await;
            let mut message = format!("plan: {}", summary.describe());
            if apply {
                message = "no changes: nothing to apply".into();
            }
            message.push_str(&note);
            return TfDone {
                ok: true,
                message,
                ..TfDone::default()
            };
        }
        drop(op);
        let confirmed = tokio::select! {
            a = answer => a.unwrap_or(false),
            () = tokio::time::sleep(CONFIRM_LIMIT) => false,
            () = out.closed() => false,
        };
        if !confirmed {
            tf.discard_plan().await;
            tf.system("not applied: the plan was not confirmed; it was discarded");
            return TfDone::failed(format!(
                "not applied: the plan was not confirmed (it was discarded){note}"
            ));
        }
        let op = self.ops.lock().await;
        let applied = tf.apply_saved(&summary).await;
        tf.discard_plan().await;
        let outputs = match applied {
            Ok(()) => tf.outputs().await,
            Err(e) => Err(e),
        };
        let outputs = match outputs {
            Ok(o) => o,
            Err(e) => {
                let msg = crate::terraform::strip_ansi(&e.to_string());
                tf.system(&msg);
                return TfDone::failed(msg);
            }
        };
        let count = outputs.len();
        lock(&self.shared.tf_outputs).insert(service.clone(), outputs);
        let message = format!(
            "applied: {}; {count} output{}",
            summary.describe_applied(),
            if count == 1 { "" } else { "s" }
        );
        if self.shared.status_of(&service).is_some() {
            self.shared.update(&service, |s| {
                s.state = ServiceState::Ready;
                s.message = message.clone();
                s.pid = None;
                s.last_lines.clear();
            });
        }
        drop(op);

        // The services waiting for these outputs, or running with older values.
        let waiting = self.waiting_for_outputs(&env, &service);
        if waiting.is_empty() {
            return TfDone {
                ok: true,
                applied: true,
                message: format!("{message}{note}"),
                services: Vec::new(),
            };
        }
        let (up_tx, mut up_rx) = mpsc::channel(256);
        let opts = UpOptions {
            services: waiting.clone(),
            skip_env_hooks: true,
            keep_terraform: true,
            ..UpOptions::default()
        };
        let up = tokio::spawn(self.clone().up(env.clone(), vars, opts, None, up_tx));
        let mut result = (false, String::from("the up of its dependants ended early"));
        while let Some(ev) = up_rx.recv().await {
            if let UpEvent::Done { ok, message, .. } = ev {
                result = (ok, message);
            }
        }
        let _ = up.await;
        let services = waiting
            .iter()
            .filter_map(|n| self.shared.status_of(n))
            .collect();
        TfDone {
            ok: result.0,
            applied: true,
            message: if result.0 {
                format!("{message}; {}{note}", waiting.join(", ") + " up to date")
            } else {
                format!("{message}; but: {}{note}", result.1)
            },
            services,
        }
    }

    /// The services of this environment that depend on `service` (transitively) and
    /// that an `up` brought in: running (restarted by `up` if a value they use
    /// changed), failed, or not started because of a dependency. Services the user
    /// stopped and services never brought up stay as they are.
    fn waiting_for_outputs(&self, env: &Environment, service: &str) -> Vec<String> {
        let dependents = super::graph::dependents(env);
        let mut found = std::collections::BTreeSet::new();
        let mut stack = vec![service.to_owned()];
        while let Some(n) = stack.pop() {
            for d in dependents.get(&n).into_iter().flatten() {
                if found.insert(d.clone()) {
                    stack.push(d.clone());
                }
            }
        }
        env.services
            .iter()
            .filter(|s| found.contains(&s.name) && !self.shared.held(&s.name))
            .filter(|s| {
                self.shared.status_of(&s.name).is_some_and(|st| {
                    st.state != ServiceState::Stopped
                        || st.message.starts_with("not started: dependency")
                })
            })
            .map(|s| s.name.clone())
            .collect()
    }
}

/// ` (N lines of terraform's output were not shown: see `devenv logs SERVICE`)`.
fn lost_lines(dropped: &AtomicU64, service: &str) -> String {
    match dropped.load(Ordering::Relaxed) {
        0 => String::new(),
        n => format!(
            " ({n} line{} of terraform's output were not shown, the client was slow: see `devenv logs {service}`)",
            if n == 1 { "" } else { "s" }
        ),
    }
}
