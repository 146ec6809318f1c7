//! What a real app's config needs on the first try (issue 19): env files and `.env`
//! expansion, camelCase overrides, profiles, `validate` catching what would fail, a
//! missing program failing at once, editor temp files not restarting a watched service,
//! `status` outside a project, Ctrl-C on `up`, and `init` under another project.

#[path = "../src/graph_support.rs"]
mod graph_support;

use std::path::Path;
use std::time::{Duration, Instant};

use devenv_e2e::{free_ports, locations, wait_until, TestEnv};
use graph_support::{config_head, service, system_events, try_status, Background};

const WAIT: Duration = Duration::from_secs(30);

fn write(dir: &Path, rel: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().expect("has a parent")).expect("mkdir");
    std::fs::write(&p, text).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    p
}

/// A service that records its environment in `NAME.env` and stays up.
fn env_recorder(name: &str, extra: &str) -> String {
    format!(
        "    - name: {name}\n      command: env | sort > {name}.env.tmp && mv {name}.env.tmp {name}.env && exec sleep 300\n{extra}"
    )
}

/// The `KEY=VALUE` lines a recorder wrote, once it has.
fn recorded(env: &TestEnv, name: &str) -> Vec<String> {
    let file = env.project.join(format!("{name}.env"));
    assert!(
        wait_until(WAIT, || file.is_file()),
        "{name} did not record its environment"
    );
    std::fs::read_to_string(&file)
        .expect("read recorded env")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn has(lines: &[String], want: &str) -> bool {
    lines.iter().any(|l| l == want)
}

#[test]
fn env_files_dotenv_expansion_and_camel_case_overrides() {
    let mut env = TestEnv::new();
    write(
        &env.project,
        "api.env",
        "A=from-api-env\nB=from-api-env\nC=from-api-env\n",
    );
    write(
        &env.project,
        "conf/local.env",
        "B=from-local-env\nC=from-local-env\nURL=http://${USER_NAME}@x\n",
    );
    let dotenv = write(&env.project, ".env", "ROOT=/srv\nDATA=${ROOT}/data\n");
    env.set_var("USER_NAME", "ada");
    env.set_var(
        "DEVENV_SPEC__SERVICES__API__READINESS__TIMEOUTSECONDS",
        "45",
    );
    env.write_config(&format!(
        "{}{}",
        config_head("envfiles"),
        env_recorder(
            "api",
            "      envFile: [./api.env, conf/local.env]\n      env: { C: from-env, DATA_DIR: \"${DATA}\" }\n      readiness: { exec: { command: \"test -f api.env\" }, periodSeconds: 0.1 }\n"
        )
    ));
    env.devenv_ok(&["up"]);
    let lines = recorded(&env, "api");
    for want in [
        "A=from-api-env",
        "B=from-local-env",
        "C=from-env",
        "URL=http://ada@x",
        "DATA_DIR=/srv/data",
    ] {
        assert!(has(&lines, want), "{want} missing from {lines:#?}");
    }

    let shown = env.devenv_ok(&["config", "show", "--origin"]).stdout;
    let data_line = shown
        .lines()
        .find(|l| l.contains("env.DATA_DIR = /srv/data"))
        .unwrap_or_else(|| panic!("no DATA_DIR line in\n{shown}"));
    assert!(
        data_line.contains(&format!("${{DATA}} from {}:2:1", dotenv.display())),
        "the origin should name the .env line: {data_line}"
    );
    let timeout_line = shown
        .lines()
        .find(|l| l.contains("readiness.timeoutSeconds"))
        .unwrap_or_else(|| panic!("the override did not reach timeoutSeconds:\n{shown}"));
    assert!(
        timeout_line.contains("= 45")
            && timeout_line.contains("env DEVENV_SPEC__SERVICES__API__READINESS__TIMEOUTSECONDS"),
        "{timeout_line}"
    );
    env.devenv_ok(&["down"]);

    // A missing env file is a located error, and nothing starts.
    std::fs::remove_file(env.project.join("conf/local.env")).expect("rm");
    std::fs::remove_file(env.project.join("api.env")).ok();
    let out = env.devenv(&["validate"]);
    assert_eq!(out.code, Some(2), "{out}");
    let text = out.combined();
    assert!(locations(&text, "config.yml").contains(&(9, 17)), "{out}");
    assert!(
        text.contains("env file") && text.contains("api.env does not exist"),
        "{out}"
    );
}

fn profile_config(env: &TestEnv) {
    env.write_config(&format!(
        "{}{}{}{}",
        config_head("profiles"),
        env_recorder("base", ""),
        env_recorder("debugger", "      profiles: [debug]\n"),
        env_recorder(
            "inspector",
            "      profiles: [inspect]\n      dependencies: [debugger]\n"
        ),
    ));
}

fn listed(env: &TestEnv) -> Vec<String> {
    env.status_json()["services"]
        .as_array()
        .expect("services")
        .iter()
        .map(|s| s["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn profiles_start_only_what_is_active_or_named() {
    let env = TestEnv::new();
    profile_config(&env);
    env.devenv_ok(&["up"]);
    recorded(&env, "base");
    assert!(
        !env.project.join("debugger.env").exists(),
        "debugger started without its profile"
    );
    assert_eq!(
        listed(&env),
        ["base"],
        "status shows only the active services"
    );

    env.devenv_ok(&["up", "--profile", "debug"]);
    recorded(&env, "debugger");
    assert_eq!(listed(&env), ["base", "debugger"]);
    env.devenv_ok(&["down"]);
    std::fs::remove_file(env.project.join("debugger.env")).expect("rm");

    // Named on the command line: runs whatever its profiles.
    env.devenv_ok(&["up", "debugger"]);
    recorded(&env, "debugger");
    env.devenv_ok(&["down"]);

    // A dependency outside the active profiles: an error naming both, nothing starts.
    let out = env.devenv(&["up", "inspector"]);
    assert_eq!(out.code, Some(2), "{out}");
    let text = out.combined();
    assert!(
        text.contains(
            "service `inspector` depends on `debugger`, which runs only with profile `debug`"
        ),
        "{out}"
    );
    assert!(locations(&text, "config.yml").contains(&(15, 22)), "{out}");
    assert!(!env.project.join("inspector.env").exists());

    // A misspelt profile is not silently nothing.
    let out = env.devenv(&["up", "--profile", "debgu"]);
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.combined().contains("did you mean `debug`?"), "{out}");

    // DEVENV_PROFILES works like --profile.
    let out = env.run(
        &env.bins.devenv,
        &["up"],
        devenv_e2e::RunOpts {
            env: vec![("DEVENV_PROFILES".into(), "debug,inspect".into())],
            ..Default::default()
        },
    );
    assert_eq!(out.code, Some(0), "{out}");
    recorded(&env, "inspector");
    env.devenv_ok(&["down"]);
}

#[test]
fn validate_catches_what_would_fail_each_located() {
    struct Case {
        service: &'static str,
        line: u32,
        column: u32,
        needles: &'static [&'static str],
    }
    let cases = [
        Case {
            service: "      command: run\n      workdir: ./backend\n",
            line: 9,
            column: 16,
            needles: &["workdir `./backend` does not exist"],
        },
        Case {
            service: "      command: run\n      workdir: ./api\n      watch: { paths: [./src] }\n",
            line: 10,
            column: 24,
            needles: &[
                "watch path `./src` does not exist",
                "relative watch paths start at the project directory, not at `workdir`",
                "write `./api/src`",
            ],
        },
        Case {
            service: "      image: nginx\n      dev: { sync: [{ from: ./dist, to: /app }] }\n",
            line: 9,
            column: 29,
            needles: &["sync source `./dist` does not exist"],
        },
        Case {
            service: "      command: run\n      readiness: { exec: \"pg_isready\" }\n",
            line: 9,
            column: 26,
            needles: &[
                "expected a mapping, found a string",
                "e.g. `exec: {command: \"...\"}`",
            ],
        },
    ];
    for case in cases {
        let env = TestEnv::new();
        std::fs::create_dir_all(env.project.join("api/src")).expect("mkdir");
        env.write_config(&format!(
            "{}    - name: svc\n{}",
            config_head("checks"),
            case.service
        ));
        let out = env.devenv(&["validate"]);
        assert_eq!(out.code, Some(2), "{out}");
        let text = out.combined();
        assert!(
            locations(&text, "config.yml").contains(&(case.line, case.column)),
            "expected config.yml:{}:{}\n{out}",
            case.line,
            case.column
        );
        for n in case.needles {
            assert!(text.contains(n), "lacks {n:?}\n{out}");
        }
    }

    // A readiness port the service doesn't list: valid, with a located warning.
    let env = TestEnv::new();
    env.write_config(&format!(
        "{}    - name: svc\n      command: run\n      ports: [8000]\n      readiness: {{ tcp: {{ port: 8001 }} }}\n",
        config_head("checks")
    ));
    let out = env.devenv(&["validate"]);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        locations(&out.stderr, "config.yml").contains(&(10, 33)),
        "{out}"
    );
    assert!(
        out.stderr.contains("warning: ")
            && out
                .stderr
                .contains("probed on port 8001, which is not among its ports (8000)"),
        "{out}"
    );
}

#[test]
fn a_missing_program_fails_at_once_not_after_retries() {
    for (name, command) in [
        ("exec-form", "[devenv-no-such-program, --serve]"),
        ("shell-form", "devenv-no-such-program --serve"),
    ] {
        let env = TestEnv::new();
        env.write_config(&format!(
            "{}    - name: {name}\n      command: {command}\n      restart: on-failure\n      ports: [1]\n      readiness: {{ tcp: {{ port: 1 }}, timeoutSeconds: 120 }}\n",
            config_head("missing")
        ));
        let started = Instant::now();
        let out = env.devenv(&["up"]);
        let took = started.elapsed();
        assert_eq!(out.code, Some(1), "{out}");
        eprintln!("{name}: `up` failed after {:.2}s", took.as_secs_f64());
        assert!(
            took < Duration::from_secs(15),
            "{name}: up took {took:?} to report a missing program\n{out}"
        );
        let text = out.combined();
        let why = if name == "exec-form" {
            "`devenv-no-such-program` was not found on PATH"
        } else {
            "the shell could not find or run the command; not restarting"
        };
        assert!(text.contains(why), "{out}");
        let status = env.status_json();
        assert_eq!(service(&status, name)["restarts"], 0, "{status:#}");
        assert_eq!(service(&status, name)["state"], "failed", "{status:#}");
    }
}

#[test]
fn editor_temp_files_do_not_restart_a_watched_service() {
    let env = TestEnv::new();
    let port = free_ports(1)[0];
    write(&env.project, "app/main.py", "print('v1')\n");
    env.write_config(&format!(
        "{}    - name: web\n      command: exec python3 -m http.server {port} --bind 127.0.0.1\n      workdir: ./app\n      readiness: {{ http: {{ path: /, port: {port} }}, periodSeconds: 0.1 }}\n      watch: {{ paths: [./app], action: restart }}\n",
        config_head("editors")
    ));
    env.devenv_ok(&["up"]);
    let pid = service(&env.status_json(), "web")["pid"].clone();

    // What vim, emacs and JetBrains IDEs write beside a file while saving it.
    let app = env.project.join("app");
    for temp in [
        ".main.py.swp",
        ".main.py.swx",
        "4913",
        "main.py~",
        ".#main.py",
        "main.py___jb_tmp___",
        "main.py___jb_old___",
    ] {
        write(&app, temp, "x");
    }
    std::fs::remove_file(app.join("4913")).expect("rm 4913");
    // Then the real save, which must restart it once.
    write(&app, "main.py", "print('v2')\n");
    let restarted = wait_until(WAIT, || {
        try_status(&env).is_some_and(|s| {
            let web = service(&s, "web");
            web["state"] == "ready" && web["pid"] != pid && web["restarts"] == 1
        })
    });
    let lines: Vec<String> = system_events(&env)
        .into_iter()
        .filter(|e| e.service == "web" && e.line.ends_with(": restarting"))
        .map(|e| e.line)
        .collect();
    assert!(restarted, "the save did not restart web: {lines:?}");
    assert_eq!(lines, ["watch: ./app/main.py changed: restarting"]);
    env.devenv_ok(&["down"]);
}

#[test]
fn status_outside_a_project_shows_every_environment() {
    let env = TestEnv::new();
    env.write_config(&format!(
        "{}{}",
        config_head("first"),
        env_recorder("one", "")
    ));
    env.devenv_ok(&["up"]);
    let second = env.root().join("second");
    write(
        &second,
        ".devenv/config.yml",
        &format!("{}{}", config_head("second"), env_recorder("two", "")),
    );
    let second_s = second.to_string_lossy().into_owned();
    env.devenv_ok(&["-C", &second_s, "up"]);

    let outside = env.root().join("elsewhere");
    std::fs::create_dir_all(&outside).expect("mkdir");
    let outside_s = outside.to_string_lossy().into_owned();
    for args in [&["-C", &outside_s, "status"][..], &["status", "--all"][..]] {
        let out = env.devenv_ok(args);
        for want in ["first (", "second (", "one", "two", "ready"] {
            assert!(out.stdout.contains(want), "lacks {want:?}\n{out}");
        }
    }
    let out = env.devenv_ok(&["-C", &outside_s, "--json", "status"]);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    let names: Vec<&str> = doc["environments"]
        .as_array()
        .expect("environments")
        .iter()
        .filter_map(|e| e["status"]["environment"].as_str())
        .collect();
    assert_eq!(names, ["first", "second"], "{out}");
    env.devenv_ok(&["-C", &second_s, "down"]);
    env.devenv_ok(&["down"]);
}

#[test]
fn ctrl_c_on_up_says_the_services_keep_starting() {
    let env = TestEnv::new();
    let port = free_ports(1)[0];
    env.write_config(&format!(
        "{}    - name: slow\n      command: exec sleep 300\n      readiness: {{ tcp: {{ port: {port} }}, timeoutSeconds: 120 }}\n",
        config_head("interrupt")
    ));
    let mut up = Background::spawn(&env, &["up"]);
    assert!(
        wait_until(WAIT, || try_status(&env)
            .is_some_and(|s| service(&s, "slow")["state"] == "starting")),
        "slow never started\n{}",
        up.output()
    );
    let pid = nix::unistd::Pid::from_raw(up.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT");
    let status = up.wait_exit(WAIT).expect("up should exit on Ctrl-C");
    assert_eq!(status.code(), Some(130), "{}", up.output());
    let output = up.output();
    assert!(
        output.contains("the services keep starting in the background")
            && output.contains("devenv down"),
        "{output}"
    );
    // It was only the client that stopped.
    assert_eq!(service(&env.status_json(), "slow")["state"], "starting");
    env.devenv_ok(&["down"]);
}

#[test]
fn init_refuses_to_shadow_an_enclosing_project_and_starts_no_daemon() {
    let env = TestEnv::new();
    env.write_config(&format!(
        "{}{}",
        config_head("outer"),
        env_recorder("one", "")
    ));
    let sub = env.project.join("services/api");
    std::fs::create_dir_all(&sub).expect("mkdir");
    let sub_s = sub.to_string_lossy().into_owned();

    let out = env.devenv(&["-C", &sub_s, "init"]);
    assert_eq!(out.code, Some(2), "{out}");
    assert!(
        out.stderr.contains("already covers") && out.stderr.contains("--force"),
        "{out}"
    );
    assert!(!sub.join(".devenv/config.yml").exists());

    let out = env.devenv_ok(&["-C", &sub_s, "init", "--force"]);
    assert!(sub.join(".devenv/config.yml").is_file(), "{out}");
    env.devenv_ok(&["-C", &sub_s, "validate"]);
    // validate started the daemon; init alone must not have: check on a fresh env.
    let fresh = TestEnv::new();
    fresh.devenv_ok(&["init"]);
    assert!(fresh.project.join(".devenv/config.yml").is_file());
    assert!(
        !fresh.socket.exists(),
        "init started the daemon ({} exists)",
        fresh.socket.display()
    );
}
