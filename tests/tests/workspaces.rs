//! `devenv workspace` against the real test cluster (tests/cluster): a workspace's
//! volumes survive its pod's deletion and a stop/start, it runs as uid 1000 and cannot
//! become root, its Secret's values are in its environment; idle stop fires after the
//! timeout and never while a shell is open, and a stopped workspace is not started by
//! a client coming back; two users' environments of one name live side by side in
//! their own namespaces (`spec.cluster.shared`).
//!
//! Needs KUBECONFIG pointing at the test cluster; run with `--ignored`.

use std::time::{Duration, Instant};

use devenv_e2e::kube::{env_for, kc, kc_try, kubeconfig, namespace_exists};
use devenv_e2e::{wait_until, TestEnv};
use serde_json::Value;

const BUSYBOX: &str = "devenv.test/busybox:1.35.0";

fn config(env: &str, idle: &str) -> String {
    format!(
        r#"apiVersion: devenv/v1
kind: Environment
metadata:
  name: {env}
spec:
  cluster: {{ provider: kubeconfig, shared: true }}
  secrets:
    - name: creds
      data: {{ API_TOKEN: tok-5f1e }}
  workspaces:
    - name: dev
      image: {BUSYBOX}
      secrets: [creds]
      env: {{ EDITOR: vi }}
      {idle}
      init: ["mkdir -p /workspace/src"]
      volumes:
        - {{ name: workspace, size: 16Mi }}
        - {{ name: history, size: 8Mi }}
        - {{ name: config, size: 8Mi }}
"#
    )
}

/// A test env of user `user` (DEVENV_USER) for environment `env`.
fn user_env(user: &str, env: &str, idle: &str) -> TestEnv {
    let mut t = TestEnv::new();
    t.set_var("KUBECONFIG", kubeconfig());
    t.set_var("DEVENV_USER", user);
    t.write_config(&config(env, idle));
    t
}

fn status(t: &TestEnv) -> Value {
    let out = t.devenv_ok(&["--json", "workspace", "status", "dev"]);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("status --json: {e}\n{out}"))
}

/// The command's stdout in the workspace (asserting it exits 0).
fn exec(t: &TestEnv, script: &str) -> String {
    t.devenv_ok(&["workspace", "exec", "dev", "--", "sh", "-c", script])
        .stdout
}

fn replicas(ns: &str, sts: &str) -> String {
    kc(&[
        "get",
        "statefulset",
        sts,
        "-n",
        ns,
        "-o",
        "jsonpath={.spec.replicas}",
    ])
}

/// Removes the namespace whatever the test's outcome.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = kc_try(&["delete", "namespace", &self.0, "--wait=false"]);
    }
}

#[test]
#[ignore = "needs the test cluster (tests/cluster/test.sh runs it)"]
fn k8s_workspace_keeps_its_volumes_runs_unprivileged_and_gets_its_secret() {
    let (_unused, env) = env_for("ws");
    let t = user_env("ann", &env, "");
    let ns = format!("devenv-ann-{env}");
    let _cleanup = Cleanup(ns.clone());

    let out = t.devenv_ok(&["--json", "workspace", "create", "dev"]);
    let created: Value = serde_json::from_str(&out.stdout).expect("create --json");
    assert_eq!(created["state"], "running", "{created}");
    assert_eq!(created["owner"], "ann", "{created}");
    assert_eq!(created["namespace"], ns, "{created}");
    assert_eq!(
        kc(&["get", "statefulset", "-n", &ns, "-o", "name"]).trim(),
        "statefulset.apps/ws-dev-ann"
    );
    let again = t.devenv(&["workspace", "create", "dev"]);
    assert_eq!(again.code, Some(1), "{again}");
    assert!(again.stderr.contains("already exists"), "{again}");

    // Not root, and no way to become it: uid 1000, no capabilities, no_new_privs.
    assert_eq!(exec(&t, "id -u").trim(), "1000");
    let proc_status = exec(&t, "cat /proc/self/status");
    assert!(
        proc_status.contains("NoNewPrivs:\t1"),
        "allowPrivilegeEscalation: false sets no_new_privs\n{proc_status}"
    );
    for cap in ["CapEff", "CapPrm", "CapBnd"] {
        assert!(
            proc_status.contains(&format!("{cap}:\t0000000000000000")),
            "{cap} must be empty\n{proc_status}"
        );
    }
    let su = t.devenv(&["workspace", "exec", "dev", "--", "su", "-c", "id -u"]);
    assert!(
        su.code != Some(0) || su.stdout.trim() != "0",
        "su became root: {su}"
    );
    let root_write = t.devenv(&["workspace", "exec", "dev", "--", "touch", "/etc/x"]);
    assert_ne!(root_write.code, Some(0), "read-only root: {root_write}");
    // The Secret's values and the env are in its environment; init ran.
    assert_eq!(exec(&t, "echo $API_TOKEN").trim(), "tok-5f1e");
    assert_eq!(exec(&t, "echo $EDITOR").trim(), "vi");
    exec(&t, "test -d /workspace/src");
    // The secret's value is not in what status shows.
    let st = status(&t);
    assert!(!st.to_string().contains("tok-5f1e"), "{st}");

    // A file in the workspace volume and a line in the shell history.
    exec(
        &t,
        "echo kept > /workspace/src/note && echo 'make test' >> \"$HISTFILE\"",
    );
    let pod_uid = || {
        kc(&[
            "get",
            "pod",
            "ws-dev-ann-0",
            "-n",
            &ns,
            "-o",
            "jsonpath={.metadata.uid}",
        ])
    };
    let first = pod_uid();
    kc(&["delete", "pod", "ws-dev-ann-0", "-n", &ns]);
    let back = wait_until(Duration::from_secs(180), || {
        let s = status(&t);
        s["state"] == "running"
            && kc_try(&["get", "pod", "ws-dev-ann-0", "-n", &ns, "-o", "name"])
                .status
                .success()
            && pod_uid() != first
    });
    assert!(back, "the pod did not come back: {}", status(&t));
    assert_eq!(exec(&t, "cat /workspace/src/note").trim(), "kept");
    assert_eq!(exec(&t, "cat \"$HISTFILE\"").trim(), "make test");

    // Stop keeps the volumes; a shell into a stopped workspace is refused, not a start.
    let stopped: Value =
        serde_json::from_str(&t.devenv_ok(&["--json", "workspace", "stop", "dev"]).stdout)
            .expect("stop --json");
    assert_eq!(stopped["state"], "stopped", "{stopped}");
    assert_eq!(replicas(&ns, "ws-dev-ann"), "0");
    let claims = kc(&["get", "pvc", "-n", &ns, "-o", "name"]);
    assert_eq!(claims.lines().count(), 3, "{claims}");
    let refused = t.devenv(&["workspace", "exec", "dev", "--", "true"]);
    assert_eq!(refused.code, Some(2), "{refused}");
    assert!(refused.stderr.contains("is stopped"), "{refused}");
    assert_eq!(replicas(&ns, "ws-dev-ann"), "0", "exec must not start it");
    t.devenv_ok(&["workspace", "start", "dev"]);
    assert_eq!(exec(&t, "cat /workspace/src/note").trim(), "kept");
    assert_eq!(exec(&t, "cat \"$HISTFILE\"").trim(), "make test");

    let ls: Value =
        serde_json::from_str(&t.devenv_ok(&["--json", "workspace", "ls"]).stdout).expect("ls");
    assert_eq!(ls["workspaces"][0]["state"], "running", "{ls}");

    // Delete keeps the volumes unless asked.
    let del = t.devenv_ok(&["workspace", "delete", "dev"]);
    assert!(del.stdout.contains("kept its volumes"), "{del}");
    assert_eq!(
        kc(&["get", "pvc", "-n", &ns, "-o", "name"]).lines().count(),
        3
    );
    t.devenv_ok(&["workspace", "delete", "dev", "--volumes"]);
    let gone = wait_until(Duration::from_secs(60), || {
        kc(&["get", "pvc", "-n", &ns, "-o", "name"])
            .trim()
            .is_empty()
    });
    assert!(gone, "claims left: {}", kc(&["get", "pvc", "-n", &ns]));
}

#[test]
#[ignore = "needs the test cluster (tests/cluster/test.sh runs it)"]
fn k8s_idle_stop_waits_for_open_shells_and_nothing_restarts_it() {
    let (_unused, env) = env_for("wsidle");
    let t = user_env("ann", &env, "idleTimeout: 6s");
    let ns = format!("devenv-ann-{env}");
    let _cleanup = Cleanup(ns.clone());
    t.devenv_ok(&["workspace", "create", "dev"]);
    let st = status(&t);
    assert_eq!(st["idleTimeoutSeconds"], 6, "{st}");
    assert!(st["stopsAt"].is_string(), "{st}");

    // A shell open for longer than the timeout: the workspace stays up meanwhile.
    let log = t.root().join("shell.log");
    let mut shell = t.spawn_devenv_logged(&["workspace", "exec", "dev", "--", "sleep", "30"], &log);
    let open = wait_until(Duration::from_secs(30), || status(&t)["openSessions"] == 1);
    assert!(open, "the session never showed: {}", status(&t));
    let st = status(&t);
    assert!(st["stopsAt"].is_null(), "{st}");
    assert!(
        st["idle"]
            .as_str()
            .unwrap_or("")
            .contains("not stopped while one is"),
        "{st}"
    );
    // Three timeouts with the shell open and nothing else: still running.
    let watch_until = Instant::now() + Duration::from_secs(18);
    while Instant::now() < watch_until {
        assert_eq!(
            replicas(&ns, "ws-dev-ann"),
            "1",
            "stopped with a shell open"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let ended = shell.wait().expect("wait for the shell");
    assert!(
        ended.success(),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let closed_at = Instant::now();

    // Then it stops within the timeout (+ 60 s) of the shell closing.
    let stopped = wait_until(Duration::from_secs(6 + 60), || {
        replicas(&ns, "ws-dev-ann") == "0"
    });
    assert!(stopped, "no idle stop: {}", status(&t));
    eprintln!(
        "idle stop {:.1}s after the last shell closed (idleTimeout 6s)",
        closed_at.elapsed().as_secs_f64()
    );
    let st = status(&t);
    assert_eq!(st["state"], "stopped", "{st}");
    assert_eq!(st["lastActivity"], "shell", "{st}");
    assert!(
        st["idle"]
            .as_str()
            .unwrap_or("")
            .contains("stopped for idleness"),
        "{st}"
    );

    // A client coming back does not start it.
    let again = t.devenv(&["workspace", "exec", "dev", "--", "true"]);
    assert_eq!(again.code, Some(2), "{again}");
    assert!(again.stderr.contains("stopped (idle)"), "{again}");
    let fwd = t.devenv(&["workspace", "status", "dev"]);
    assert_eq!(fwd.code, Some(0), "{fwd}");
    assert_eq!(replicas(&ns, "ws-dev-ann"), "0");
    t.devenv_ok(&["workspace", "delete", "dev", "--volumes"]);
}

#[test]
#[ignore = "needs the test cluster (tests/cluster/test.sh runs it)"]
fn k8s_two_users_with_one_environment_name_live_side_by_side() {
    let (_unused, env) = env_for("wsusers");
    let service = format!(
        r#"  services:
    - name: web
      image: {BUSYBOX}
      command: "sleep 100000"
"#
    );
    let ann = user_env("ann", &env, "");
    let bob = user_env("bob", &env, "");
    for t in [&ann, &bob] {
        t.write_config(&format!("{}{service}", config(&env, "")));
    }
    let (ns_ann, ns_bob) = (format!("devenv-ann-{env}"), format!("devenv-bob-{env}"));
    let _c1 = Cleanup(ns_ann.clone());
    let _c2 = Cleanup(ns_bob.clone());
    ann.devenv_ok(&["up"]);
    bob.devenv_ok(&["up"]);
    for ns in [&ns_ann, &ns_bob] {
        assert_eq!(
            kc(&[
                "get",
                "deployment",
                "web",
                "-n",
                ns,
                "-o",
                "jsonpath={.status.readyReplicas}"
            ]),
            "1",
            "{ns}"
        );
    }
    ann.devenv_ok(&["workspace", "create", "dev"]);
    bob.devenv_ok(&["workspace", "create", "dev"]);
    ann.devenv_ok(&[
        "workspace",
        "exec",
        "dev",
        "--",
        "sh",
        "-c",
        "echo ann > /workspace/who",
    ]);
    bob.devenv_ok(&[
        "workspace",
        "exec",
        "dev",
        "--",
        "sh",
        "-c",
        "echo bob > /workspace/who",
    ]);
    let who = |t: &TestEnv| {
        t.devenv_ok(&["workspace", "exec", "dev", "--", "cat", "/workspace/who"])
            .stdout
            .trim()
            .to_owned()
    };
    assert_eq!(who(&ann), "ann");
    assert_eq!(who(&bob), "bob");

    // Ann's down leaves Bob's environment (and her own workspace) alone.
    ann.devenv_ok(&["down"]);
    assert_eq!(
        kc(&[
            "get",
            "deployment",
            "web",
            "-n",
            &ns_bob,
            "-o",
            "jsonpath={.status.readyReplicas}"
        ]),
        "1"
    );
    assert_eq!(who(&bob), "bob");
    assert_eq!(who(&ann), "ann", "down must not take the workspace");
    assert!(
        namespace_exists(&ns_ann),
        "the workspace keeps ann's namespace"
    );
    for t in [&ann, &bob] {
        t.devenv_ok(&["workspace", "delete", "dev", "--volumes"]);
    }
    bob.devenv_ok(&["down"]);
}

/// Ends a long-running client as Ctrl-C does; true when it exited 0 within 30 s.
fn interrupt(child: &mut std::process::Child) -> bool {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return st.success();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    false
}

/// The file's content in the workspace pod, read with kubectl (not `devenv workspace
/// exec`, which is activity itself).
fn read_in_pod(ns: &str, pod: &str, path: &str) -> Option<String> {
    let out = kc_try(&["exec", "-n", ns, pod, "--", "cat", path]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
#[ignore = "needs the test cluster (tests/cluster/test.sh runs it)"]
fn k8s_workspace_sync_reaches_its_volume_and_counts_as_activity() {
    let (_unused, env) = env_for("wssync");
    let idle =
        "idleTimeout: 8s\n      sync: [{ from: ./src, to: /workspace/src, exclude: [\"*.tmp\"] }]";
    let mut t = TestEnv::new();
    t.set_var("KUBECONFIG", kubeconfig());
    t.set_var("DEVENV_USER", "ann");
    let src = t.project.join("src");
    std::fs::create_dir_all(&src).expect("mkdir src");
    std::fs::write(src.join("first.txt"), "one\n").expect("write");
    t.write_config(&config(&env, idle));
    let ns = format!("devenv-ann-{env}");
    let pod = "ws-dev-ann-0";
    let _cleanup = Cleanup(ns.clone());
    t.devenv_ok(&["workspace", "create", "dev"]);

    let log = t.root().join("sync.log");
    let mut sync = t.spawn_devenv_logged(&["workspace", "sync", "dev"], &log);
    let synced = wait_until(Duration::from_secs(60), || {
        read_in_pod(&ns, pod, "/workspace/src/first.txt").as_deref() == Some("one\n")
    });
    assert!(
        synced,
        "the initial sync did not bring first.txt: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let sync_status = t.devenv_ok(&["sync", "status"]);
    assert!(sync_status.stdout.contains(pod), "{sync_status}");

    // An edit reaches the workspace volume within the deadline; the idle timer sees it.
    std::fs::write(src.join("edit.txt"), "edited\n").expect("write");
    std::fs::write(src.join("scratch.tmp"), "excluded\n").expect("write");
    let edited_at = Instant::now();
    let arrived = wait_until(Duration::from_secs(10), || {
        read_in_pod(&ns, pod, "/workspace/src/edit.txt").as_deref() == Some("edited\n")
    });
    assert!(
        arrived,
        "the edit did not reach the pod within 10 s: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    eprintln!(
        "edit -> in the workspace volume in {} ms (polled with kubectl exec)",
        edited_at.elapsed().as_millis()
    );
    assert_eq!(
        read_in_pod(&ns, pod, "/workspace/src/scratch.tmp"),
        None,
        "excluded"
    );
    let st = status(&t);
    assert_eq!(st["lastActivity"], "sync", "{st}");

    // Edits every 2 s for three idle timeouts: never stopped meanwhile.
    let until = Instant::now() + Duration::from_secs(24);
    let mut n = 0;
    while Instant::now() < until {
        n += 1;
        std::fs::write(src.join("edit.txt"), format!("edit {n}\n")).expect("write");
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(
            replicas(&ns, "ws-dev-ann"),
            "1",
            "stopped while syncing edits: {}",
            status(&t)
        );
    }
    let last_edit = Instant::now();
    let landed = wait_until(Duration::from_secs(10), || {
        read_in_pod(&ns, pod, "/workspace/src/edit.txt") == Some(format!("edit {n}\n"))
    });
    assert!(landed, "the last edit did not land");
    // A sync with nothing to copy is no activity: it stops within the timeout (+ 60 s).
    let stopped = wait_until(Duration::from_secs(8 + 60), || {
        replicas(&ns, "ws-dev-ann") == "0"
    });
    assert!(stopped, "no idle stop after the edits: {}", status(&t));
    eprintln!(
        "idle stop {:.1}s after the last synced edit (idleTimeout 8s)",
        last_edit.elapsed().as_secs_f64()
    );
    let st = status(&t);
    assert_eq!(st["lastActivity"], "sync", "{st}");
    assert!(
        interrupt(&mut sync),
        "the sync did not end cleanly on Ctrl-C"
    );
    let out = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(out.contains("./src -> /workspace/src"), "{out}");

    // A stopped workspace is refused, not started; one without rules says how to add them.
    let refused = t.devenv(&["workspace", "sync", "dev"]);
    assert_eq!(refused.code, Some(2), "{refused}");
    assert!(refused.stderr.contains("stopped (idle)"), "{refused}");
    assert_eq!(replicas(&ns, "ws-dev-ann"), "0");
    t.devenv_ok(&["workspace", "delete", "dev", "--volumes"]);
}

#[test]
#[ignore = "needs the test cluster (tests/cluster/test.sh runs it)"]
fn k8s_workspace_ls_all_shows_volume_usage() {
    let (_unused, env) = env_for("wsusage");
    let t = user_env("ann", &env, "");
    let ns = format!("devenv-ann-{env}");
    let _cleanup = Cleanup(ns.clone());
    t.devenv_ok(&["workspace", "create", "dev"]);
    exec(
        &t,
        "dd if=/dev/urandom of=/workspace/blob bs=1048576 count=5 2>/dev/null && sync",
    );
    let five_mib = 5 * 1024 * 1024;
    let ls_all = || -> Value {
        let out = t.devenv_ok(&["--json", "workspace", "ls", "--all"]);
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("ls --all --json: {e}\n{out}"))
    };
    let used = |ls: &Value| -> Option<u64> {
        ls["workspaces"]
            .as_array()?
            .iter()
            .find(|w| w["name"] == "dev" && w["owner"] == "ann")?["volumeUsage"]
            .as_array()?
            .iter()
            .find(|u| u["claim"] == "workspace-ws-dev-ann-0")?["usedBytes"]
            .as_u64()
    };
    // The kubelet refreshes volume stats periodically (every minute by default); the
    // test cluster's local-path (hostPath) volumes have none, and are measured by du.
    let started = Instant::now();
    let seen = wait_until(Duration::from_secs(240), || {
        used(&ls_all()).is_some_and(|u| u >= five_mib)
    });
    let ls = ls_all();
    assert!(seen, "no usage >= 5 MiB within 240 s: {ls}");
    eprintln!(
        "usage {} bytes seen {:.0}s after the write",
        used(&ls).unwrap_or(0),
        started.elapsed().as_secs_f64()
    );
    let table = t.devenv_ok(&["workspace", "ls", "--all"]).stdout;
    assert!(table.contains("USED"), "{table}");
    assert!(table.contains("Mi"), "{table}");

    // A stopped workspace has no pod to measure: `-`, with the reason.
    t.devenv_ok(&["workspace", "stop", "dev"]);
    let ls = ls_all();
    let dev = &ls["workspaces"][0];
    assert_eq!(dev["volumeUsage"], serde_json::json!([]), "{ls}");
    assert!(
        dev["volumeUsageNote"]
            .as_str()
            .unwrap_or("")
            .contains("no running pod"),
        "{ls}"
    );
    let table = t.devenv_ok(&["workspace", "ls", "--all"]).stdout;
    assert!(table.contains("USED -: unknown: no running pod"), "{table}");
    t.devenv_ok(&["workspace", "delete", "dev", "--volumes"]);
}

/// An HTTP GET of `/` on 127.0.0.1:port: the response, or the error.
fn http_get(port: u16) -> Result<String, String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

#[test]
#[ignore = "needs the test cluster (tests/cluster/test.sh runs it)"]
fn k8s_workspace_forward_reaches_its_server_and_counts_as_activity() {
    let (_unused, env) = env_for("wsfwd");
    let idle = "idleTimeout: 10s\n      ports: [8080]\n      command: [\"sh\", \"-c\", \"mkdir -p /tmp/www && echo hello-ws > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www\"]";
    let t = user_env("ann", &env, idle);
    let ns = format!("devenv-ann-{env}");
    let _cleanup = Cleanup(ns.clone());
    t.devenv_ok(&["workspace", "create", "dev"]);

    let log = t.root().join("forward.log");
    let mut fwd = t.spawn_devenv_logged(&["--json", "workspace", "forward", "dev", "0:8080"], &log);
    let mut port = 0u16;
    let listening = wait_until(Duration::from_secs(30), || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let first: Option<Value> = text
            .lines()
            .next()
            .and_then(|l| serde_json::from_str(l).ok());
        if let Some(p) = first.and_then(|v| v["localPort"].as_u64()) {
            port = u16::try_from(p).expect("a port");
        }
        port != 0
    });
    assert!(
        listening,
        "no first line: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    // A request reaches the server in the workspace.
    let reply = http_get(port).unwrap_or_else(|e| panic!("GET through the forward: {e}"));
    assert!(reply.contains("hello-ws"), "{reply}");

    // Requests every 2 s for two and a half idle timeouts: never stopped meanwhile,
    // and the forward is what the idle timer saw last.
    let until = Instant::now() + Duration::from_secs(25);
    while Instant::now() < until {
        let r = http_get(port).unwrap_or_else(|e| panic!("GET: {e}"));
        assert!(r.contains("hello-ws"), "{r}");
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(
            replicas(&ns, "ws-dev-ann"),
            "1",
            "stopped while forwarding: {}",
            status(&t)
        );
    }
    let last_request = Instant::now();
    let st = status(&t);
    assert_eq!(st["lastActivity"], "port-forward", "{st}");

    // Ctrl-C ends it cleanly: exit 0, and the local port is closed.
    assert!(
        interrupt(&mut fwd),
        "the forward did not end cleanly on Ctrl-C"
    );
    let closed = wait_until(Duration::from_secs(10), || http_get(port).is_err());
    assert!(closed, "127.0.0.1:{port} still answers after Ctrl-C");

    // Without traffic it stops within the timeout (+ 60 s) of the last request.
    let stopped = wait_until(Duration::from_secs(10 + 60), || {
        replicas(&ns, "ws-dev-ann") == "0"
    });
    assert!(stopped, "no idle stop after the forward: {}", status(&t));
    eprintln!(
        "idle stop {:.1}s after the last forwarded request (idleTimeout 10s)",
        last_request.elapsed().as_secs_f64()
    );
    // A forward into the stopped workspace is refused, not a start.
    let again = t.devenv(&["workspace", "forward", "dev", "0:8080"]);
    assert_eq!(again.code, Some(2), "{again}");
    assert_eq!(replicas(&ns, "ws-dev-ann"), "0");
    t.devenv_ok(&["workspace", "delete", "dev", "--volumes"]);
}
