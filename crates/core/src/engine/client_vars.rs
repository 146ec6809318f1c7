//! A client that cannot send its process environment (the dashboard page: a browser
//! has none to send) gets the one the last `up` (or down, restart) of that
//! environment came with, so `${VAR}` interpolation, DEVENV_* overrides, the user's
//! config layer (found through HOME) and the services' environment are what the
//! user's shell gave them. Kept in memory: after a daemon restart, environments
//! brought back up (recovery.rs) have theirs again; others get theirs at the next
//! `up` from a shell.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{Engine, ProjectRef};

/// What a request from a shell said besides where the project is.
#[derive(Debug, Clone)]
struct ClientContext {
    vars: BTreeMap<String, String>,
    config_file: Option<PathBuf>,
}

/// The last shell context per (project dir, environment name): what the page knows
/// of an environment (`EnvironmentService.List`). One entry per environment the
/// daemon registered, so bounded by those.
#[derive(Debug, Default)]
pub(super) struct ClientContexts(Mutex<HashMap<(PathBuf, Option<String>), ClientContext>>);

impl ClientContexts {
    /// Called for every request that registers the environment at `project_dir`.
    pub(super) fn remember(&self, project_dir: &Path, req: &ProjectRef) {
        if req.vars.is_empty() {
            return;
        }
        self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(
            (project_dir.to_path_buf(), req.env_name.clone()),
            ClientContext {
                vars: req.vars.clone(),
                config_file: req.config_file.clone(),
            },
        );
    }

    fn fill(&self, req: &mut ProjectRef) {
        if !req.vars.is_empty() {
            return;
        }
        let key = (req.start_dir.clone(), req.env_name.clone());
        let known = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned();
        if let Some(ctx) = known {
            req.vars = ctx.vars;
            if req.config_file.is_none() {
                req.config_file = ctx.config_file;
            }
        }
    }
}

impl Engine {
    /// Gives a request without client variables the variables (and the `-f` config
    /// file, unless it names one) of the last request from a shell for the
    /// environment whose project dir is its start dir. Requests with variables, and
    /// environments no shell has asked for since the daemon started, are left alone.
    pub fn fill_client_env(&self, req: &mut ProjectRef) {
        self.clients.fill(req);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_request_gets_the_last_shell_context_of_its_environment() {
        let engine = ClientContexts::default();
        let project = PathBuf::from("/p");
        let shell = ProjectRef {
            start_dir: project.join("sub"),
            config_file: Some(project.join("other.yml")),
            env_name: Some("ci".into()),
            vars: BTreeMap::from([("HOME".to_string(), "/h".to_string())]),
        };
        engine.remember(&project, &shell);
        let mut page = ProjectRef {
            start_dir: project.clone(),
            env_name: Some("ci".into()),
            ..Default::default()
        };
        engine.fill(&mut page);
        assert_eq!(page.vars, shell.vars);
        assert_eq!(page.config_file, shell.config_file);

        // Another environment name of the same project: nothing known.
        let mut other = ProjectRef {
            start_dir: project.clone(),
            ..Default::default()
        };
        engine.fill(&mut other);
        assert!(other.vars.is_empty());
        // A request with its own variables keeps them.
        let mut own = ProjectRef {
            start_dir: project.clone(),
            env_name: Some("ci".into()),
            vars: BTreeMap::from([("A".to_string(), "1".to_string())]),
            ..Default::default()
        };
        engine.fill(&mut own);
        assert_eq!(own.vars.len(), 1);
        assert_eq!(own.config_file, None);
        // An empty request does not overwrite what a shell said.
        engine.remember(&project, &page_like(&project));
        let mut again = page_like(&project);
        engine.fill(&mut again);
        assert_eq!(again.vars, shell.vars);
    }

    fn page_like(project: &std::path::Path) -> ProjectRef {
        ProjectRef {
            start_dir: project.to_path_buf(),
            env_name: Some("ci".into()),
            ..Default::default()
        }
    }
}
