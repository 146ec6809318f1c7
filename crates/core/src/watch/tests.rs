//! The watcher end to end on a real file system, with a recording stand-in for the
//! engine: what triggers, what does not, new directories, polling, `exec`, stopping.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::*;
use crate::logs::Query;

#[derive(Default)]
struct Recorder {
    restarts: Mutex<Vec<String>>,
}

impl Services for Recorder {
    fn restart(&self, service: &str) -> bool {
        self.restarts.lock().unwrap().push(service.to_owned());
        true
    }
    fn rebuild(&self, service: &str) -> bool {
        self.restart(service)
    }
    fn running(&self, _: &str) -> bool {
        true
    }
    // No status: every batch restarts (the coalescing is the engine test's business).
    fn status(&self, _: &str) -> Option<ServiceStatus> {
        None
    }
}

impl Recorder {
    fn count(&self, service: &str) -> usize {
        self.restarts
            .lock()
            .unwrap()
            .iter()
            .filter(|s| *s == service)
            .count()
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    rec: Arc<Recorder>,
    logs: LogHub,
    watcher: Option<EnvWatcher>,
}

fn restart_target(service: &str, paths: &[&Path], ignore: &[&str]) -> Target {
    Target {
        service: service.into(),
        paths: paths.iter().map(|p| p.to_path_buf()).collect(),
        ignore: ignore.iter().map(|g| g.to_string()).collect(),
        action: Action::Restart,
    }
}

impl Fixture {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            rec: Arc::default(),
            logs: LogHub::new(),
            watcher: None,
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.root().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    async fn start(&mut self, targets: Vec<Target>, options: Options) -> SetupReport {
        let ctx = Context {
            logs: self.logs.clone(),
            guardian: None,
            services: self.rec.clone(),
            options,
        };
        let w = EnvWatcher::start(self.root(), targets, ctx).unwrap();
        let report = w.ready(Duration::from_secs(10)).await.expect("set up");
        self.watcher = Some(w);
        report
    }

    fn system_lines(&self, service: &str) -> Vec<String> {
        self.logs
            .snapshot(&Query {
                services: vec![service.into()],
                ..Query::default()
            })
            .into_iter()
            .filter(|l| l.stream == Stream::System)
            .map(|l| l.text)
            .collect()
    }

    async fn wait_for(&self, what: &str, cond: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; restarts {:?}; log {:?}",
                self.rec.restarts.lock().unwrap(),
                self.logs
                    .snapshot(&Query::default())
                    .iter()
                    .map(|l| format!("{}: {}", l.service, l.text))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn restart_lines(&self, service: &str) -> Vec<String> {
        self.system_lines(service)
            .into_iter()
            .filter(|l| l.ends_with(": restarting"))
            .collect()
    }
}

use crate::logs::Stream;

#[tokio::test]
async fn a_change_restarts_and_ignored_paths_do_not() {
    let mut f = Fixture::new();
    f.write(".gitignore", "*.log\nnode_modules/\n");
    f.write("api/app.py", "v1");
    f.write("api/cache.pyc", "x");
    f.write("api/node_modules/dep/index.js", "x");
    f.write("api/deep/er/mod.py", "x");
    let api = f.root().join("api");
    let report = f
        .start(
            vec![restart_target("api", &[&api], &["*.pyc"])],
            Options::default(),
        )
        .await;
    // api, api/deep, api/deep/er: node_modules is never entered.
    assert_eq!(report.directories, 3, "{report:?}");
    assert_eq!(report.polled, 0);
    assert!(
        f.system_lines("api")
            .iter()
            .any(|l| l.starts_with("watching ./api for changes (3 directories")),
        "{:?}",
        f.system_lines("api")
    );

    // Ignored by .gitignore, by the rule's glob, inside an ignored tree, and reads.
    f.write("api/debug.log", "x");
    f.write("api/cache.pyc", "y");
    f.write("api/node_modules/dep/index.js", "y");
    let _ = std::fs::read(f.root().join("api/app.py")).unwrap();
    // Then one that counts, deep down.
    f.write("api/deep/er/mod.py", "y");
    f.wait_for("a restart", |f| f.rec.count("api") >= 1).await;
    assert_eq!(
        f.restart_lines("api"),
        ["watch: ./api/deep/er/mod.py changed: restarting"]
    );
    f.watcher.take().unwrap().stop().await;
    assert_eq!(f.rec.count("api"), 1);
}

#[tokio::test]
async fn a_burst_is_one_batch() {
    let mut f = Fixture::new();
    f.write("src/main.rs", "x");
    let src = f.root().join("src");
    f.start(
        vec![restart_target("app", &[&src], &[])],
        Options::default(),
    )
    .await;
    let writing = std::time::Instant::now();
    for i in 0..500 {
        f.write(&format!("src/gen/m{}/f{i}.rs", i % 10), "generated");
    }
    let writing = writing.elapsed();
    f.wait_for("a restart", |f| f.rec.count("app") >= 1).await;
    // Settled: one more save is one more restart, and the burst was one batch, or, when
    // the writes took longer than the debounce's 300 ms latency cap (a loaded machine),
    // at most one batch per 300 ms of writing, by design.
    let after_burst = f.rec.count("app");
    f.write("src/main.rs", "y");
    f.wait_for("the next restart", |f| f.rec.count("app") > after_burst)
        .await;
    let allowed = 2 + (writing.as_millis() / 300) as usize;
    assert!(
        after_burst <= allowed,
        "{after_burst} restarts for one burst written in {writing:?} (allowed {allowed})"
    );
    let lines = f.restart_lines("app");
    assert!(
        lines[0].contains("files changed"),
        "the burst is reported as one: {lines:?}"
    );
}

#[tokio::test]
async fn new_directories_are_watched_and_removed_ones_dropped() {
    let mut f = Fixture::new();
    f.write("w/a.txt", "x");
    f.write("w/.gitignore", "out/\n");
    let w = f.root().join("w");
    f.start(vec![restart_target("s", &[&w], &[])], Options::default())
        .await;
    std::fs::create_dir_all(f.root().join("w/new/sub")).unwrap();
    std::fs::create_dir_all(f.root().join("w/out/sub")).unwrap();
    f.wait_for("the new directory's restart", |f| f.rec.count("s") >= 1)
        .await;
    // The new directories are watched once the restart for them is seen.
    f.write("w/new/sub/b.txt", "x");
    f.wait_for("a change inside the new directory", |f| {
        f.restart_lines("s")
            .iter()
            .any(|l| l.contains("./w/new/sub/b.txt"))
    })
    .await;
    // The ignored one is not: a change there, then one that counts.
    let before = f.rec.count("s");
    f.write("w/out/sub/c.txt", "x");
    f.write("w/a.txt", "y");
    f.wait_for("the next restart", |f| f.rec.count("s") > before)
        .await;
    assert_eq!(
        f.restart_lines("s").last().unwrap(),
        "watch: ./w/a.txt changed: restarting"
    );
    std::fs::remove_dir_all(f.root().join("w/new")).unwrap();
    f.wait_for("the removal's restart", |f| {
        f.restart_lines("s").last().unwrap().contains("./w/new")
    })
    .await;
}

#[tokio::test]
async fn a_gitignore_change_applies_to_directories_already_watched() {
    let mut f = Fixture::new();
    f.write("w/gen/a.txt", "x");
    let w = f.root().join("w");
    f.start(vec![restart_target("s", &[&w], &[])], Options::default())
        .await;
    f.write("w/.gitignore", "gen/\n");
    f.wait_for("the .gitignore restart", |f| f.rec.count("s") >= 1)
        .await;
    let before = f.rec.count("s");
    f.write("w/gen/a.txt", "y");
    f.write("w/b.txt", "y");
    f.wait_for("the next restart", |f| f.rec.count("s") > before)
        .await;
    assert_eq!(
        f.restart_lines("s").last().unwrap(),
        "watch: ./w/b.txt changed: restarting"
    );
}

#[tokio::test]
async fn past_the_inotify_budget_directories_are_polled() {
    let mut f = Fixture::new();
    for d in ["a", "b/c", "b/d"] {
        f.write(&format!("w/{d}/x.txt"), "x");
    }
    let w = f.root().join("w");
    let options = Options {
        inotify_budget: Some(2),
        poll_interval: Duration::from_millis(50),
        ..Options::default()
    };
    let report = f
        .start(vec![restart_target("s", &[&w], &[])], options)
        .await;
    assert_eq!((report.inotify, report.polled), (2, 3), "{report:?}");
    assert!(
        f.system_lines("s")
            .iter()
            .any(|l| l.contains("inotify budget of 2 watches reached")
                && l.contains("polling 3 directories")),
        "{:?}",
        f.system_lines("s")
    );
    // Breadth first: the deepest directories are the polled ones.
    f.write("w/b/d/x.txt", "a longer content");
    f.wait_for("a restart from a polled directory", |f| {
        f.rec.count("s") >= 1
    })
    .await;
    assert_eq!(
        f.restart_lines("s"),
        ["watch: ./w/b/d/x.txt changed: restarting"]
    );
}

#[tokio::test]
async fn a_rule_may_name_a_single_file() {
    let mut f = Fixture::new();
    f.write("conf/app.toml", "x");
    f.write("conf/other.toml", "x");
    let file = f.root().join("conf/app.toml");
    f.start(vec![restart_target("s", &[&file], &[])], Options::default())
        .await;
    f.write("conf/other.toml", "y");
    f.write("conf/app.toml", "y");
    f.wait_for("a restart", |f| f.rec.count("s") >= 1).await;
    assert_eq!(
        f.restart_lines("s"),
        ["watch: ./conf/app.toml changed: restarting"]
    );
}

#[tokio::test]
async fn exec_runs_the_command_and_logs_its_output() {
    let mut f = Fixture::new();
    f.write("proto/a.proto", "x");
    let proto = f.root().join("proto");
    let target = Target {
        service: "gen".into(),
        paths: vec![proto],
        ignore: vec![],
        action: Action::Exec {
            command: Command::Shell("echo generated from $DEVENV_SERVICE in $(pwd)".into()),
            workdir: f.root().to_path_buf(),
            env: BTreeMap::from([("PATH".to_string(), std::env::var("PATH").unwrap())]),
        },
    };
    f.start(vec![target], Options::default()).await;
    f.write("proto/a.proto", "y");
    let want = format!("generated from in {}", f.root().display());
    f.wait_for("the command's exit", |f| {
        f.system_lines("gen")
            .iter()
            .any(|l| l.starts_with("watch: `echo") && l.contains("exited with code 0"))
    })
    .await;
    let lines = f.system_lines("gen");
    assert!(lines.contains(&want), "{lines:?}");
    assert!(
        lines.contains(&"watch: ./proto/a.proto changed: running `echo generated from $DEVENV_SERVICE in $(pwd)`".to_string()),
        "{lines:?}"
    );
    assert_eq!(f.rec.count("gen"), 0, "exec does not restart");
}

#[tokio::test]
async fn nothing_happens_after_stop() {
    let mut f = Fixture::new();
    f.write("w/a.txt", "x");
    let w = f.root().join("w");
    f.start(vec![restart_target("s", &[&w], &[])], Options::default())
        .await;
    f.watcher.take().unwrap().stop().await;
    f.write("w/a.txt", "y");
    // Prove the write would have been seen by a live watcher: start another one.
    let mut g = Fixture::new();
    std::fs::create_dir_all(g.root().join("w")).unwrap();
    let gw = g.root().join("w");
    g.start(vec![restart_target("s", &[&gw], &[])], Options::default())
        .await;
    g.write("w/a.txt", "y");
    g.wait_for("the live watcher's restart", |g| g.rec.count("s") >= 1)
        .await;
    assert_eq!(f.rec.count("s"), 0);
}
