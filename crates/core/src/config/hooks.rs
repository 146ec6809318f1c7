//! Hooks, raw -> checked: the environment's (`spec.hooks`) and each service's
//! (`services[].hooks`). A hook is a host command or, for a kubernetes or container
//! service, an `exec` in its container.

use std::time::Duration;

use super::check::Checker;
use super::limits;
use super::model::{
    Hook, HookRun, Hooks, OnError, RuntimeKind, ServiceHooks, DEFAULT_HOOK_TIMEOUT,
};
use super::raw::{RawHook, RawHookList, RawHooks, RawOnError, RawServiceHooks};

pub(crate) fn environment(c: &mut Checker<'_>, raw: Option<RawHooks>) -> Hooks {
    let Some(raw) = raw else {
        return Hooks::default();
    };
    let mut point = |key: &str, list: Option<RawHookList>| {
        list_of(c, &format!("spec.hooks.{key}"), list, Where::Environment)
    };
    Hooks {
        pre_up: point("preUp", raw.pre_up),
        post_up: point("postUp", raw.post_up),
        pre_down: point("preDown", raw.pre_down),
        post_down: point("postDown", raw.post_down),
    }
}

pub(crate) fn service(
    c: &mut Checker<'_>,
    path: &str,
    raw: Option<RawServiceHooks>,
    runtime: Option<RuntimeKind>,
) -> ServiceHooks {
    let Some(raw) = raw else {
        return ServiceHooks::default();
    };
    let kube = matches!(
        runtime,
        Some(RuntimeKind::Kubernetes | RuntimeKind::Container)
    );
    ServiceHooks {
        // Before the start there is no container to exec in.
        pre_start: list_of(
            c,
            &format!("{path}.preStart"),
            raw.pre_start,
            Where::BeforeStart,
        ),
        post_ready: list_of(
            c,
            &format!("{path}.postReady"),
            raw.post_ready,
            Where::Service { kube },
        ),
        pre_stop: list_of(
            c,
            &format!("{path}.preStop"),
            raw.pre_stop,
            Where::Service { kube },
        ),
    }
}

/// Where a hook runs, which decides whether `exec` is possible.
#[derive(Clone, Copy)]
enum Where {
    Environment,
    BeforeStart,
    /// `kube`: the service runs in containers (kubernetes or the container runtime).
    Service {
        kube: bool,
    },
}

fn list_of(c: &mut Checker<'_>, path: &str, raw: Option<RawHookList>, at: Where) -> Vec<Hook> {
    raw.unwrap_or_default()
        .0
        .into_iter()
        .enumerate()
        .filter_map(|(i, h)| one(c, &format!("{path}[{i}]"), h, at))
        .collect()
}

fn one(c: &mut Checker<'_>, path: &str, raw: RawHook, at: Where) -> Option<Hook> {
    let spec = match raw {
        RawHook::Command(cmd) => {
            return c.command(path, cmd).map(|cmd| Hook {
                run: HookRun::Host(cmd),
                timeout: DEFAULT_HOOK_TIMEOUT,
                on_error: OnError::Fail,
            })
        }
        RawHook::Full(spec) => spec,
    };
    let timeout = match spec.timeout_seconds {
        None => DEFAULT_HOOK_TIMEOUT,
        Some(v) if v.is_finite() && v > 0.0 && v <= limits::MAX_SECONDS => {
            Duration::from_secs_f64(v)
        }
        Some(_) => {
            c.error(
                &format!("{path}.timeoutSeconds"),
                format!(
                    "expected a number of seconds, more than 0 and at most {} (one day)",
                    limits::MAX_SECONDS
                ),
                None,
            );
            return None;
        }
    };
    let on_error = match spec.on_error {
        None | Some(RawOnError::Fail) => OnError::Fail,
        Some(RawOnError::Continue) => OnError::Continue,
    };
    let run = match (spec.command, spec.exec) {
        (Some(_), Some(_)) => {
            c.error(
                path,
                "a hook has either `command` (on the host) or `exec` (in the service's container), not both".into(),
                None,
            );
            return None;
        }
        (None, None) => {
            c.error(
                path,
                "the hook has no `command` or `exec`".into(),
                Some("add `command: ./scripts/migrate.sh` (a host command)".into()),
            );
            return None;
        }
        (Some(cmd), None) => HookRun::Host(c.command(&format!("{path}.command"), cmd)?),
        (None, Some(cmd)) => {
            let hint = match at {
                Where::Service { kube: true } => None,
                Where::Service { kube: false } => Some(
                    "`exec` runs in a kubernetes or container service's container; a local service's hook is a host `command`",
                ),
                Where::Environment => Some(
                    "an environment hook runs on the host: use `command`, or put the `exec` under a kubernetes service's `hooks`",
                ),
                Where::BeforeStart => Some(
                    "`preStart` runs before the container exists: use a host `command`, or `exec` in `postReady`",
                ),
            };
            if let Some(hint) = hint {
                c.error(
                    &format!("{path}.exec"),
                    "`exec` is not possible here".into(),
                    Some(hint.into()),
                );
                return None;
            }
            HookRun::Exec(c.command(&format!("{path}.exec"), cmd)?)
        }
    };
    Some(Hook {
        run,
        timeout,
        on_error,
    })
}
