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
