//! A crash does not change what the user asked for: `up` records that an environment
//! is wanted up (with what is needed to load its config again), `down` forgets it,
//! and a daemon that starts brings every wanted environment up again, in the
//! background, through the same path as `up`.

use std::sync::{Arc, Weak};

use tokio::sync::mpsc;

use super::graph;
use super::runtime::EnvRuntime;
use super::up::{satisfied, UpEvent, UpOptions};
use super::{Engine, EnvRequest};
use crate::logs::Stream;
use crate::state::{StateError, WantedRecord};
use crate::status::ServiceState;

/// What a recovered service's status and log say.
pub const RECOVERED: &str = "recovered after a daemon restart";

impl Engine {
    /// Records that the environment `env_id` is wanted up with `services` (empty:
    /// all), widening what an earlier `up` asked for. Durable before it returns.
    pub(super) fn want_up(
        &self,
        env_id: &str,
        req: &EnvRequest,
        services: &[String],
    ) -> Result<(), StateError> {
        let services = match self.state.wanted_of(env_id)? {
            Some(old) => old.merged(services),
            None => services.to_vec(),
        };
        self.state.put_wanted(&WantedRecord {
            env_id: env_id.to_string(),
            start_dir: req.start_dir.clone(),
            config_file: req.config_file.clone(),
            env_name: req.env_name.clone(),
            vars: req.vars.clone(),
            services,
        })
    }

    /// Forgets every environment wanted up: `devenv daemon stop` stops them all and
    /// the next daemon starts none.
    pub fn forget_wanted(&self) -> Result<(), StateError> {
        for rec in self.state.wanted()? {
            self.state.remove_wanted(&rec.env_id)?;
        }
        Ok(())
    }

    /// Brings every environment wanted up back up, each in a task of its own.
    pub(super) fn resume_wanted(self: &Arc<Self>) {
        let wanted = match self.state.wanted() {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(error = %e, "cannot read which environments were up; none is brought back");
                return;
            }
        };
        for rec in wanted {
            let engine = Arc::downgrade(self);
            let closing = self.closing.clone();
            self.tasks.spawn(async move {
                tokio::select! {
                    () = resume(engine, rec) => {}
                    () = closing.cancelled() => {}
                }
            });
        }
    }
}

async fn resume(engine: Weak<Engine>, rec: WantedRecord) {
    let Some(this) = engine.upgrade() else {
        return;
    };
    let known = this
        .envs
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&rec.env_id)
        .cloned();
    let req = EnvRequest {
        start_dir: rec.start_dir.clone(),
        config_file: rec.config_file.clone(),
        env_name: rec.env_name.clone(),
        vars: rec.vars.clone(),
    };
    tracing::info!(environment = %rec.env_id, "bringing back up an environment that was up before devenvd restarted");
    // Off the async workers, like every config load.
    let loaded = match this.load(&req) {
        Ok(l) => l,
        Err(errors) => {
            // The user's `up` stands (a fixed config and `devenv up` bring it back);
            // this daemon does not retry.
            let why = format!(
                "stopped: devenvd restarted and could not bring it back up: the config no longer loads: {errors}"
            );
            tracing::warn!(environment = %rec.env_id, error = %errors, "not brought back up");
            // `status` from the same place finds it despite the broken config.
            this.remember(&req, &rec.env_id);
            if let Some(rt) = known {
                for s in rt.statuses() {
                    rt.shared.update(&s.name, |s| s.message = why.clone());
                    push_log(&rt, &s.name, &why);
                }
            }
            return;
        }
    };
    if Engine::env_id(&loaded, &rec.env_name) != rec.env_id {
        // The start dir now leads elsewhere (the project moved, a config appeared).
        tracing::warn!(environment = %rec.env_id, "its config now belongs to another environment; not brought back up");
        if let Some(rt) = known {
            let why = format!(
                "stopped: devenvd restarted and could not bring it back up: {} now leads to another project",
                rec.start_dir.display()
            );
            for s in rt.statuses() {
                rt.shared.update(&s.name, |s| s.message = why.clone());
            }
        }
        return;
    }
    let rt = match this.register(&loaded, &req) {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(environment = %rec.env_id, error = %e, "not brought back up");
            return;
        }
    };
    drop(this);
    let env = Arc::new(loaded.environment);
    // Services since removed from the config are not asked for again.
    let services: Vec<String> = rec
        .services
        .iter()
        .filter(|s| env.service(s).is_some())
        .cloned()
        .collect();
    if services.is_empty() && !rec.services.is_empty() {
        tracing::info!(environment = %rec.env_id, "the services that were up are no longer configured");
        return;
    }
    let set = graph::closure(&env, &services).unwrap_or_default();
    let (tx, mut rx) = mpsc::channel(64);
    let opts = UpOptions {
        services,
        // Bring back as much as comes back; what fails says why.
        keep_going: true,
        dev: false,
        dev_session: None,
        // The recorded services are the up's selection, profiles already applied.
        profiles: Vec::new(),
    };
    let up = rt.clone().up(env.clone(), Arc::new(rec.vars), opts, tx);
    let done = async {
        let mut outcome = None;
        while let Some(ev) = rx.recv().await {
            if let UpEvent::Done { ok, message, .. } = ev {
                outcome = Some((ok, message));
            }
        }
        outcome
    };
    let ((), outcome) = tokio::join!(up, done);
    let Some((ok, message)) = outcome else {
        return;
    };
    tracing::info!(environment = %rec.env_id, ok, %message, "brought back up after a daemon restart");
    for name in &set {
        let oneshot = env.service(name).is_some_and(|s| s.oneshot);
        let Some(st) = rt.shared.status_of(name) else {
            continue;
        };
        if satisfied(oneshot, st.state) || st.state == ServiceState::Ready {
            rt.shared.update(name, |s| {
                s.message = if s.message.is_empty() {
                    RECOVERED.to_string()
                } else {
                    format!("{} ({RECOVERED})", s.message)
                };
            });
            push_log(&rt, name, RECOVERED);
        } else {
            push_log(
                &rt,
                name,
                &format!("not recovered after a daemon restart: {}", st.message),
            );
        }
    }
}

fn push_log(rt: &EnvRuntime, service: &str, line: &str) {
    let name: Arc<str> = Arc::from(service);
    rt.shared.logs.push(&name, Stream::System, line);
}
