//! The quickstart example end to end: up, status, logs, down.

use std::time::Duration;

use devenv_e2e::{alive, assert_status_shape, http_get, port_open, wait_until, TestEnv};

const SERVICES: [&str; 3] = ["db", "api", "web"];

#[test]
fn quickstart_up_status_logs_down() {
    let mut env = TestEnv::new();
    let (db, api, web) = env.quickstart();

    // --- up: exits 0 once everything is ready, naming every service.
    let up = env.devenv(&["up"]);
    assert_eq!(up.code, Some(0), "up should succeed\n{up}");
    for name in SERVICES {
        assert!(
            up.combined().contains(name),
            "up output does not name {name}\n{up}"
        );
    }

    // --- status --json: documented shape, every service ready with a live pid.
    let status = env.status_json();
    assert_status_shape(&status);
    assert_eq!(status["environment"], "quickstart", "{status:#}");
    let project = std::fs::canonicalize(&env.project).expect("canonical project dir");
    let reported = status["project"].as_str().unwrap_or_default();
    assert_eq!(
        std::fs::canonicalize(reported).ok().as_deref(),
        Some(project.as_path()),
        "status.project should be the project dir\n{status:#}"
    );
    let services = status["services"].as_array().expect("services array");
    let mut names: Vec<&str> = services.iter().filter_map(|s| s["name"].as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["api", "db", "web"], "{status:#}");
    let mut pids = Vec::new();
    for (svc, port) in [("db", db), ("api", api), ("web", web)] {
        let s = services.iter().find(|s| s["name"] == svc).expect("listed");
        assert_eq!(s["state"], "ready", "{svc} should be ready\n{status:#}");
        assert_eq!(s["ready"], true, "{svc}.ready\n{status:#}");
        assert_eq!(s["runtime"], "local", "{svc}.runtime\n{status:#}");
        assert_eq!(s["restarts"], 0, "{svc}.restarts\n{status:#}");
        assert_eq!(
            s["ports"],
            serde_json::json!([port]),
            "{svc}.ports\n{status:#}"
        );
        let pid = s["pid"].as_u64().unwrap_or(0) as u32;
        assert!(
            pid > 0 && alive(pid),
            "{svc}.pid {pid} should be a live process\n{status:#}"
        );
        pids.push(pid);
    }
    let marked = env.service_pids();
    for pid in &pids {
        assert!(
            marked.contains(pid),
            "service pid {pid} carries no DEVENV_MARKER (marked processes: {marked:?})"
        );
    }

    // --- the services really answer, api really reads through db.
    assert!(port_open(db), "db does not accept connections on {db}");
    let greeting = http_get(api, "/greeting").expect("api answers");
    assert_eq!(greeting.status, 200, "{greeting:?}");
    assert!(greeting.body.contains("hello from db"), "{greeting:?}");
    let page = http_get(web, "/").expect("web answers");
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.body.contains("devenv quickstart"), "{page:?}");

    // --- logs: the request above shows up in api's log (stdout), and only api's.
    let mut last = None;
    let seen = wait_until(Duration::from_secs(10), || {
        let out = env.devenv(&["logs", "api", "--tail", "5"]);
        let hit = out.code == Some(0) && out.stdout.contains("GET /greeting -> 200");
        last = Some(out);
        hit
    });
    let logs = last.expect("ran logs");
    assert!(seen, "`logs api --tail 5` never showed the request\n{logs}");
    assert!(
        !logs.stdout.contains("db: listening") && !logs.stdout.contains("web: serving"),
        "`logs api` shows other services' lines\n{logs}"
    );
    let lines = logs.stdout.lines().filter(|l| !l.trim().is_empty()).count();
    assert!(lines <= 5, "`--tail 5` printed {lines} lines\n{logs}");
    // web logs requests on stderr: both streams are captured.
    let web_logs = env.devenv(&["logs", "web"]);
    assert_eq!(web_logs.code, Some(0), "{web_logs}");
    assert!(
        web_logs.stdout.contains("web: GET / -> 200"),
        "web's stderr not in logs\n{web_logs}"
    );

    // --- down: exits 0, everything stopped, ports closed, no process left.
    let down = env.devenv(&["down"]);
    assert_eq!(down.code, Some(0), "down should succeed\n{down}");
    let states = env.states();
    assert_eq!(
        states.len(),
        3,
        "status after down should still list the services: {states:?}"
    );
    assert!(
        states.values().all(|s| s == "stopped"),
        "after down: {states:?}"
    );
    for port in [db, api, web] {
        assert!(!port_open(port), "port {port} still answers after down");
    }
    let survivors: Vec<u32> = pids.iter().copied().filter(|p| alive(*p)).collect();
    assert!(
        survivors.is_empty(),
        "service processes survived down: {survivors:?}"
    );
    assert!(
        env.service_pids().is_empty(),
        "marked processes survived: {:?}",
        env.service_pids()
    );
}

#[test]
fn up_is_idempotent_and_status_text_names_services() {
    let mut env = TestEnv::new();
    let (_, api, _) = env.quickstart();
    env.devenv_ok(&["up"]);
    let before: Vec<u64> = pid_list(&env);

    // A second up of a running environment changes nothing.
    let again = env.devenv(&["up"]);
    assert_eq!(again.code, Some(0), "{again}");
    assert_eq!(pid_list(&env), before, "second up restarted services");
    assert_eq!(http_get(api, "/healthz").map(|r| r.status), Some(200));

    // The human table names every service with its state.
    let text = env.devenv_ok(&["status"]);
    for name in SERVICES {
        let line = text.stdout.lines().find(|l| l.contains(name));
        assert!(
            line.is_some_and(|l| l.contains("ready")),
            "no `{name} .. ready` row\n{text}"
        );
    }

    env.devenv_ok(&["down"]);
}

fn pid_list(env: &TestEnv) -> Vec<u64> {
    let status = env.status_json();
    let mut pids: Vec<u64> = status["services"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s["pid"].as_u64()).collect())
        .unwrap_or_default();
    pids.sort_unstable();
    pids
}
