//! A crash does not change what the user asked for: `up` records that an environment
//! is wanted up (with what is needed to load its config again), `down` forgets it,
//! and a daemon that starts brings every wanted environment up again, in the
//! background, through the same path as `up`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Weak};

use tokio::sync::mpsc;

use super::graph;
use super::runtime::LiveEnv;
use super::up::{satisfied, UpEvent, UpOptions};
use super::{Engine, ProjectRef};
use crate::logs::Stream;
use crate::state::{StateError, WantedRecord};
use crate::status::ServiceState;

/// What a recovered service's status and log say.
pub const RECOVERED: &str = "recovered after a daemon restart";

/// Client variables kept for a recovery whether the config names them or not: what
/// devenv's own tools (kubectl, helm, k3d, docker, presets' binaries) and nearly
/// every program need to run. None of them is meant to hold a secret.
const BASICS: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TERM",
    "TMPDIR",
    "KUBECONFIG",
    "DOCKER_HOST",
    "DOCKER_CONFIG",
    "DOCKER_CONTEXT",
    "CONTAINER_HOST",
    "XDG_RUNTIME_DIR",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "XDG_CACHE_HOME",
    "XDG_STATE_HOME",
];

/// The part of the client's environment `vars` a wanted record keeps: the names the
/// config references (`${NAME}` in its files, `DEVENV_*` overrides; `None`: not
/// known, the config did not load), [`BASICS`] and `LC_*`. A recovered service runs
/// with these only: a variable it reads from the user's shell without the config
/// naming it is not there after a daemon restart (naming it in `env:`, as
/// `FOO: ${FOO}`, keeps it). The rest of the environment (tokens, cloud keys) never
/// reaches the state database.
pub(crate) fn recovery_vars(
    vars: &BTreeMap<String, String>,
    referenced: Option<&BTreeSet<String>>,
) -> BTreeMap<String, String> {
    vars.iter()
        .filter(|(k, _)| {
            BASICS.contains(&k.as_str())
                || k.starts_with("LC_")
                || k.starts_with("DEVENV_")
                || referenced.is_some_and(|r| r.contains(k.as_str()))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

impl Engine {
    /// Records that the environment `env_id` is wanted up with `services` (empty:
    /// all), widening what an earlier `up` asked for. Durable before it returns.
    /// Returns the new `up`'s id (its `post*` hooks are recorded under it).
    pub(super) fn want_up(
        &self,
        env_id: &str,
        req: &ProjectRef,
        referenced: &BTreeSet<String>,
        services: &[String],
    ) -> Result<u64, StateError> {
        let old = self.state.wanted_of(env_id)?;
        let up_id = old.as_ref().map_or(0, |o| o.up_id).wrapping_add(1).max(1);
        let (stopped, replicas) = old
            .as_ref()
            .map(|o| (o.stopped.clone(), o.replicas.clone()))
            .unwrap_or_default();
        let services = match old {
            Some(old) => old.merged(services),
            None => services.to_vec(),
        };
        self.state.put_wanted(&WantedRecord {
            env_id: env_id.to_string(),
            start_dir: req.start_dir.clone(),
            config_file: req.config_file.clone(),
            env_name: req.env_name.clone(),
            vars: recovery_vars(&req.vars, Some(referenced)),
            services,
            vars_scoped: true,
            up_id,
            post_hooks_run: Vec::new(),
            // What the user stopped and scaled stays so; `LiveEnv::up` updates it.
            stopped,
            replicas,
        })?;
        Ok(up_id)
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
    let req = ProjectRef {
        start_dir: rec.start_dir.clone(),
        config_file: rec.config_file.clone(),
        env_name: rec.env_name.clone(),
        vars: rec.vars.clone(),
    };
    tracing::info!(environment = %rec.env_id, "bringing back up an environment that was up before devenvd restarted");
    // Off the async workers, like every config load.
    let loaded = this.load(&req);
    let mut rec = rec;
    if !rec.vars_scoped {
        // A record from before: it held the client's whole environment. Keep only
        // what the config (if it loads) references.
        rec.vars = recovery_vars(&rec.vars, loaded.as_ref().ok().map(|l| &l.referenced_vars));
        rec.vars_scoped = true;
        if let Err(e) = this.state.put_wanted(&rec) {
            tracing::warn!(environment = %rec.env_id, error = %e, "cannot rewrite an old wanted record");
        }
    }
    let loaded = match loaded {
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
        // What the user stopped stays stopped.
        keep_stopped: true,
        // The same `up` again, its hooks too (see hooks.rs).
        skip_env_hooks: false,
        keep_terraform: false,
    };
    // The same `up` again (its id): its `post*` hooks that started do not run twice.
    let up = rt
        .clone()
        .up(env.clone(), Arc::new(rec.vars), opts, Some(rec.up_id), tx);
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
        if rt.stopped_by_user_or_waiting(name) {
            // Left as the user put it; its status says so.
            continue;
        }
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

fn push_log(rt: &LiveEnv, service: &str, line: &str) {
    let name: Arc<str> = Arc::from(service);
    rt.shared.logs.push(&name, Stream::System, line);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_keeps_referenced_names_and_basics_only() {
        let all: BTreeMap<String, String> = [
            ("PATH", "/bin"),
            ("HOME", "/home/u"),
            ("LC_ALL", "C"),
            ("DEVENV_E2E_ID", "x"),
            ("API_PORT", "9000"),
            ("AWS_SECRET_ACCESS_KEY", "s3cr3t"),
            ("GITHUB_TOKEN", "ghp_x"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let referenced = BTreeSet::from(["API_PORT".to_string(), "UNSET".to_string()]);
        let kept = recovery_vars(&all, Some(&referenced));
        let names: Vec<&str> = kept.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            ["API_PORT", "DEVENV_E2E_ID", "HOME", "LC_ALL", "PATH"]
        );
        // A config that does not load references nothing known.
        let kept = recovery_vars(&all, None);
        assert!(!kept.contains_key("API_PORT") && !kept.contains_key("AWS_SECRET_ACCESS_KEY"));
    }
}
