//! `build:` for container services on a real Docker engine: the image is built from a
//! Dockerfile whose base is the locally imported busybox image, with build args and
//! a `.dockerignore`; an unchanged `up` does not build again, an edit of the context
//! rebuilds and replaces the container, an ignored file's edit does not, and a broken
//! Dockerfile fails `up` with the engine's reason and the build's last lines.

use std::process::Command;

use devenv_e2e::docker::{busybox_image, containers_of, EngineCleanup};
use devenv_e2e::TestEnv;

/// Removes the images built for the environment `env_name` (tags `devenv.local/<env>-*`).
struct ImageCleanup(String);

impl Drop for ImageCleanup {
    fn drop(&mut self) {
        for tag in built_images(&self.0) {
            let _ = Command::new("docker").args(["rmi", "-f", &tag]).output();
        }
    }
}

fn built_images(env_name: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args([
            "images",
            "--format",
            "{{.Repository}}:{{.Tag}}",
            &format!("devenv.local/{env_name}-app"),
        ])
        .output()
        .expect("docker images");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .filter(|l| !l.is_empty())
        .collect()
}

fn write_app(env: &TestEnv, name: &str, dockerfile: &str) {
    let app = env.project.join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("Dockerfile"), dockerfile).unwrap();
    std::fs::write(app.join(".dockerignore"), "notes.txt\n").unwrap();
    env.write_config(&format!(
        r#"apiVersion: devenv/v1
kind: Environment
metadata:
  name: {name}
spec:
  services:
    - name: app
      build: {{ context: ./app, args: {{ GREETING: hello }}, target: run }}
      readiness: {{ log: {{ pattern: app-up }} }}
"#
    ));
}

fn dockerfile(image: &str) -> String {
    format!(
        "FROM {image} AS base\n\
         ARG GREETING=none\n\
         RUN echo built-with-$GREETING > /arg.txt\n\
         FROM base AS run\n\
         COPY msg.txt /msg.txt\n\
         CMD [\"sh\", \"-c\", \"cat /msg.txt /arg.txt; ls /notes.txt 2>/dev/null || echo no-notes; echo app-up; exec sleep 100000\"]\n\
         FROM base AS unused\n\
         RUN exit 9\n"
    )
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[test]
#[ignore = "needs a Docker engine: CI runs the ignored set as root, dockerd started by scripts/install-test-tools.sh"]
fn build_once_rebuild_on_edit_and_fail_with_the_reason() {
    let image = busybox_image();
    let name = format!("cbuild-{}", std::process::id());
    let _cleanup = EngineCleanup(name.clone());
    let _images = ImageCleanup(name.clone());
    let env = TestEnv::new();
    write_app(&env, &name, &dockerfile(image));
    let app = env.project.join("app");
    std::fs::write(app.join("msg.txt"), "message-v1\n").unwrap();
    std::fs::write(app.join("notes.txt"), "ignored\n").unwrap();

    env.devenv_ok(&["up"]);
    assert_eq!(env.states()["app"], "ready");
    let logs = env.devenv_ok(&["logs", "app"]).stdout;
    for want in [
        "message-v1",
        "built-with-hello",
        "no-notes",
        "building devenv.local/",
        "Step 1/",
    ] {
        assert!(logs.contains(want), "missing {want}:\n{logs}");
    }
    assert!(
        !logs.contains("exit 9"),
        "the target stage stops the build before `unused`:\n{logs}"
    );
    assert_eq!(built_images(&name).len(), 1);
    let first = containers_of(&name);
    assert_eq!(first.len(), 1);

    // Unchanged, and then only an ignored file changed: no build, same container.
    env.devenv_ok(&["up"]);
    std::fs::write(app.join("notes.txt"), "still ignored\n").unwrap();
    env.devenv_ok(&["up"]);
    let logs = env.devenv_ok(&["logs", "app"]).stdout;
    assert_eq!(count(&logs, "building devenv.local/"), 1, "{logs}");
    assert_eq!(containers_of(&name), first, "the container was replaced");

    // An edit in the context: rebuilt, and the container replaced.
    std::fs::write(app.join("msg.txt"), "message-v2\n").unwrap();
    env.devenv_ok(&["up"]);
    let logs = env.devenv_ok(&["logs", "app"]).stdout;
    assert_eq!(count(&logs, "building devenv.local/"), 2, "{logs}");
    assert!(logs.contains("message-v2"), "{logs}");
    assert_ne!(containers_of(&name), first);
    assert_eq!(env.states()["app"], "ready");

    // A broken Dockerfile: `up` fails naming the service, the Dockerfile and the
    // engine's reason, with the build's last lines.
    std::fs::write(
        app.join("Dockerfile"),
        format!("FROM {image} AS run\nRUN echo about-to-fail && exit 3\n"),
    )
    .unwrap();
    let out = env.devenv(&["up"]);
    assert_eq!(out.code, Some(1), "{out}");
    let text = out.combined();
    assert!(
        text.contains("cannot build the image of `app`") && text.contains("app/Dockerfile"),
        "{out}"
    );
    assert!(text.contains("returned a non-zero code: 3"), "{out}");
    assert!(
        text.contains("about-to-fail"),
        "the build's last lines: {out}"
    );
    assert_eq!(env.states()["app"], "failed");

    env.devenv_ok(&["down"]);
    assert!(containers_of(&name).is_empty());
}

/// The logs of `service` (all lines, as `devenv logs` prints them).
fn logs_of(env: &TestEnv, service: &str) -> String {
    env.devenv_ok(&["logs", service]).stdout
}

/// Polls until `cond(logs of app, status of app)`; panics with both when it never holds.
fn wait_for(env: &TestEnv, what: &str, mut cond: impl FnMut(&str, &serde_json::Value) -> bool) {
    let mut last = (String::new(), serde_json::Value::Null);
    let ok = devenv_e2e::wait_until(std::time::Duration::from_secs(120), || {
        let status = env.status_json();
        let app = status["services"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["name"] == "app"))
            .cloned()
            .unwrap_or_default();
        last = (logs_of(env, "app"), app);
        cond(&last.0, &last.1)
    });
    assert!(
        ok,
        "{what}: never happened\nstatus: {:#}\nlogs:\n{}",
        last.1, last.0
    );
}

#[test]
#[ignore = "needs a Docker engine: CI runs the ignored set as root, dockerd started by scripts/install-test-tools.sh"]
fn watch_rebuilds_and_replaces_and_a_failed_build_keeps_the_old_container() {
    let image = busybox_image();
    let name = format!("cwatch-{}", std::process::id());
    let _cleanup = EngineCleanup(name.clone());
    let _images = ImageCleanup(name.clone());
    let env = TestEnv::new();
    let app = env.project.join("app");
    std::fs::create_dir_all(&app).unwrap();
    let good = format!(
        "FROM {image}\nCOPY msg.txt /msg.txt\nCMD [\"sh\", \"-c\", \"cat /msg.txt; echo app-up; exec sleep 100000\"]\n"
    );
    std::fs::write(app.join("Dockerfile"), &good).unwrap();
    std::fs::write(app.join(".dockerignore"), "notes.txt\n").unwrap();
    std::fs::write(app.join("msg.txt"), "message-v1\n").unwrap();
    env.write_config(&format!(
        r#"apiVersion: devenv/v1
kind: Environment
metadata:
  name: {name}
spec:
  services:
    - name: app
      build: {{ context: ./app }}
      readiness: {{ log: {{ pattern: app-up }} }}
      watch: {{}}
"#
    ));
    env.devenv_ok(&["up"]);
    assert_eq!(env.states()["app"], "ready");
    let first = containers_of(&name);
    assert_eq!(first.len(), 1);

    // An edit in the context: rebuilt, the container replaced, ready again.
    std::fs::write(app.join("msg.txt"), "message-v2\n").unwrap();
    wait_for(&env, "rebuild and replace after an edit", |logs, app| {
        logs.contains("message-v2") && app["state"] == "ready"
    });
    let logs = logs_of(&env, "app");
    for want in [
        "watch: ./app/msg.txt changed: rebuilding the image",
        "Step 2/5 : COPY msg.txt /msg.txt",
        ": replacing the container",
    ] {
        assert!(logs.contains(want), "missing {want}:\n{logs}");
    }
    let second = containers_of(&name);
    assert_eq!(second.len(), 1, "one container after the replacement");
    assert_ne!(second, first, "the container was not replaced");
    assert_eq!(count(&logs, "building devenv.local/"), 2, "{logs}");

    // A file the build does not send (.dockerignore): built to the same tag, kept.
    std::fs::write(app.join("notes.txt"), "ignored\n").unwrap();
    wait_for(&env, "an unchanged image keeps the container", |logs, _| {
        logs.contains("the image is unchanged")
    });
    assert_eq!(containers_of(&name), second);

    // A broken build: the old container goes on running, and the status says so.
    std::fs::write(
        app.join("Dockerfile"),
        format!("FROM {image}\nRUN echo about-to-fail && exit 3\n"),
    )
    .unwrap();
    wait_for(&env, "a failed rebuild is reported", |logs, app| {
        logs.contains("the rebuild failed; the container keeps running the previous image")
            && app["message"]
                .as_str()
                .is_some_and(|m| m.contains("returned a non-zero code: 3"))
    });
    assert_eq!(containers_of(&name), second, "a failed build replaced it");
    assert_eq!(env.states()["app"], "ready");
    let out = env.devenv_ok(&["exec", "app", "--", "cat", "/msg.txt"]);
    assert_eq!(out.stdout.trim(), "message-v2", "{out}");

    // Fixed: built and replaced again.
    std::fs::write(app.join("msg.txt"), "message-v3\n").unwrap();
    std::fs::write(app.join("Dockerfile"), &good).unwrap();
    wait_for(&env, "rebuild after the fix", |logs, app| {
        logs.contains("message-v3") && app["state"] == "ready"
    });
    let third = containers_of(&name);
    assert_eq!(third.len(), 1);
    assert_ne!(third, second);

    env.devenv_ok(&["down"]);
    assert!(containers_of(&name).is_empty());
}
