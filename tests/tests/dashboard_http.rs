//! The dashboard's HTTP side against a real devenvd: the token -> cookie exchange,
//! the Host/Origin/session rules on real requests, a real gRPC-web call, the health
//! endpoints following a real `up`, and a taken port.

use std::time::Duration;

use devenv_api::pb;
use devenv_e2e::web::{self, grpc_web_call, grpc_web_parse, login, request};
use devenv_e2e::{port_open, wait_until, TestEnv};
use prost::Message as _;
use serde_json::Value;

const VERSION: &str = "/devenv.v1.DaemonService/Version";

#[test]
fn without_the_session_nothing_is_served_and_the_token_buys_an_httponly_strict_cookie() {
    let env = TestEnv::new();
    env.devenv_ok(&["daemon", "start"]);
    let d = env.dashboard();
    let host = d.host();
    assert!(d
        .url
        .starts_with(&format!("http://127.0.0.1:{}/auth?token=", d.port)));

    // No cookie: 401 and an empty body, on the page and on the API.
    let css = bundle_css();
    for path in ["/", css.as_str(), "/nope"] {
        let r = request(d.port, "GET", path, &[("Host", &host)], b"");
        assert_eq!(r.status, 401, "GET {path}: {r:?}");
        assert!(r.body.is_empty(), "GET {path} leaks a body: {:?}", r.text());
    }
    let origin = d.origin();
    let r = request(
        d.port,
        "POST",
        VERSION,
        &[
            ("Host", &host),
            ("Origin", &origin),
            ("Content-Type", "application/grpc-web+proto"),
        ],
        &web::grpc_web_frame(&[]),
    );
    assert_eq!(r.status, 401, "gRPC-web without cookie: {r:?}");
    assert!(r.body.is_empty());

    // A wrong token, and a forged cookie, are refused alike.
    let r = request(d.port, "GET", "/auth?token=0000", &[("Host", &host)], b"");
    assert_eq!(r.status, 401, "wrong token: {r:?}");
    assert!(r.body.is_empty() && r.header("set-cookie").is_none());
    let r = request(d.port, "GET", "/auth", &[("Host", &host)], b"");
    assert_eq!(r.status, 401, "no token: {r:?}");
    let forged = format!("devenv_session={}", &d.auth_path()["/auth?token=".len()..]);
    let r = request(
        d.port,
        "GET",
        "/",
        &[("Host", &host), ("Cookie", &forged)],
        b"",
    );
    assert_eq!(r.status, 401, "the token is not the session: {r:?}");

    // The exchange: 303 to / with an HttpOnly, SameSite=Strict session cookie.
    let r = request(d.port, "GET", &d.auth_path(), &[("Host", &host)], b"");
    assert_eq!(r.status, 303, "{r:?}");
    assert_eq!(r.header("location"), Some("/"));
    let set = r.header("set-cookie").expect("Set-Cookie");
    let attrs: Vec<&str> = set.split(';').map(str::trim).collect();
    assert!(attrs[0].starts_with("devenv_session="), "{set}");
    assert!(attrs.contains(&"HttpOnly"), "{set}");
    assert!(attrs.contains(&"SameSite=Strict"), "{set}");
    assert!(attrs.contains(&"Path=/"), "{set}");
    let cookie = attrs[0].to_string();

    // With it: the page, under a strict policy.
    let r = request(
        d.port,
        "GET",
        "/",
        &[("Host", &host), ("Cookie", &cookie)],
        b"",
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.text().contains("<html"), "{}", r.text());
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    assert!(r
        .header("content-security-policy")
        .is_some_and(|c| c.starts_with("default-src 'self'")));
    assert!(r
        .header("content-type")
        .unwrap_or("")
        .starts_with("text/html"));
    let localhost = format!("localhost:{}", d.port);
    let r = request(
        d.port,
        "GET",
        &css,
        &[("Host", &localhost), ("Cookie", &cookie)],
        b"",
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r
        .header("content-type")
        .unwrap_or("")
        .starts_with("text/css"));
}

/// `/assets/<name>.css` of the embedded bundle (its name carries a content hash).
fn bundle_css() -> String {
    let dir = devenv_e2e::workspace_root().join("crates/devenvd/dashboard/assets");
    let name = std::fs::read_dir(&dir)
        .expect("the dashboard bundle directory")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .find(|n| n.ends_with(".css"))
        .expect("a stylesheet in the bundle");
    format!("/assets/{name}")
}

#[test]
fn host_and_origin_are_checked_and_grpc_web_works_with_cookie_and_origin() {
    let env = TestEnv::new();
    env.devenv_ok(&["daemon", "start"]);
    let d = env.dashboard();
    let cookie = login(&d);
    let host = d.host();
    let origin = d.origin();

    // DNS rebinding: a foreign Host is refused everywhere, health included.
    for path in ["/", "/healthz", "/readyz", &d.auth_path()] {
        let r = request(
            d.port,
            "GET",
            path,
            &[("Host", "evil.example:80"), ("Cookie", &cookie)],
            b"",
        );
        assert_eq!(r.status, 403, "GET {path} with a foreign Host: {r:?}");
        assert!(r.body.is_empty());
    }
    let r = request(
        d.port,
        "GET",
        "/healthz",
        &[("Host", &format!("evil.example:{}", d.port))],
        b"",
    );
    assert_eq!(r.status, 403, "{r:?}");

    // Health: no session needed, nothing but status and version.
    let r = request(d.port, "GET", "/healthz", &[("Host", &host)], b"");
    assert_eq!(r.status, 200, "{r:?}");
    let v: Value = serde_json::from_slice(&r.body).expect("healthz is JSON");
    assert_eq!(v["status"], "ok");
    assert!(v["version"].as_str().is_some_and(|s| !s.is_empty()), "{v}");

    let frame = web::grpc_web_frame(&[]);
    let grpc = |extra: &[(&str, &str)]| {
        let mut h = vec![
            ("Host", host.as_str()),
            ("Cookie", cookie.as_str()),
            ("Content-Type", "application/grpc-web+proto"),
        ];
        h.extend_from_slice(extra);
        request(d.port, "POST", VERSION, &h, &frame)
    };
    // A foreign Origin, or none, on a POST: 403 even with the session cookie.
    for o in ["http://evil.example", "null", "http://127.0.0.1:1"] {
        let r = grpc(&[("Origin", o)]);
        assert_eq!(r.status, 403, "Origin {o}: {r:?}");
        assert!(r.body.is_empty());
    }
    let r = grpc(&[]);
    assert_eq!(r.status, 403, "no Origin: {r:?}");

    // The page's call: cookie + Origin. Framed by hand, decoded with the API's types.
    let r = grpc(&[("Origin", &origin)]);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/grpc-web")));
    let (messages, trailers) = grpc_web_parse(&r.body);
    assert!(
        trailers.contains(&("grpc-status".into(), "0".into())),
        "{trailers:?}"
    );
    assert_eq!(messages.len(), 1, "{trailers:?}");
    let version = pb::VersionResponse::decode(messages[0].as_slice()).expect("VersionResponse");
    assert_eq!(version.protocol_version, devenv_api::PROTOCOL_VERSION);
    assert_eq!(version.pid, env.daemon_pid());

    // Environments are there too (the same services as the socket).
    let r = grpc_web_call(&d, &cookie, "/devenv.v1.EnvironmentService/List", &[]);
    let (messages, trailers) = grpc_web_parse(&r.body);
    assert!(
        trailers.contains(&("grpc-status".into(), "0".into())),
        "{r:?}"
    );
    pb::ListResponse::decode(messages[0].as_slice()).expect("ListResponse");

    // The token and Shutdown are for the socket only: not even routed over HTTP.
    for path in [
        "/devenv.v1.DaemonService/Dashboard",
        "/devenv.v1.DaemonService/Shutdown",
    ] {
        let r = grpc_web_call(&d, &cookie, path, &[]);
        assert_eq!(r.status, 404, "{path}: {r:?}");
        assert!(!r.text().contains("token"), "{path}: {}", r.text());
    }
    // Still running, still the same daemon.
    assert_eq!(env.daemon_pid(), version.pid);
}

#[test]
fn readyz_reports_a_service_the_user_stopped_and_what_waits_for_it() {
    let mut env = TestEnv::new();
    env.quickstart();
    env.devenv_ok(&["up"]);
    let d = env.dashboard();
    let host = d.host();
    let readyz = |q: &str| {
        let r = request(
            d.port,
            "GET",
            &format!("/readyz{q}"),
            &[("Host", &host)],
            b"",
        );
        let v: Value = serde_json::from_slice(&r.body).expect("readyz is JSON");
        (r.status, v)
    };
    let service = |v: &Value, name: &str| {
        v["environments"][0]["services"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {v}"))
    };
    let (code, v) = readyz("?env=quickstart");
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        v["environments"][0]["stoppedByUser"],
        serde_json::json!([]),
        "{v}"
    );

    env.devenv_ok(&["stop", "db"]);
    // Not ready: what the config says is not served (api and web wait), but said
    // to be a stop by the user, not a failure.
    let (code, v) = readyz("?env=quickstart");
    assert_eq!(code, 503, "{v}");
    assert_eq!(v["ready"], false, "{v}");
    assert_eq!(
        v["environments"][0]["stoppedByUser"],
        serde_json::json!(["db"]),
        "{v}"
    );
    let db = service(&v, "db");
    assert_eq!(db["state"], "stopped", "{v}");
    assert_eq!(db["stoppedByUser"], true, "{v}");
    for waiting in ["api", "web"] {
        let s = service(&v, waiting);
        assert_eq!(s["state"], "pending", "{v}");
        assert_eq!(s["waitingFor"], "db", "{v}");
        assert!(s.get("stoppedByUser").is_none(), "{v}");
    }
    // A monitor that should not page for a deliberate stop.
    let (code, v) = readyz("?env=quickstart&stopped=ok");
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["ready"], true, "{v}");

    // Started again: ready, nothing stopped.
    env.devenv_ok(&["start", "db"]);
    let (code, v) = readyz("?env=quickstart");
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        v["environments"][0]["stoppedByUser"],
        serde_json::json!([]),
        "{v}"
    );
    assert!(service(&v, "db").get("stoppedByUser").is_none(), "{v}");
    env.devenv_ok(&["down"]);
}

#[test]
fn readyz_turns_200_when_the_quickstart_is_ready_and_tells_no_paths() {
    let mut env = TestEnv::new();
    let (_, api_port, _) = env.quickstart();
    env.devenv_ok(&["daemon", "start"]);
    let d = env.dashboard();
    let host = d.host();
    let readyz = |q: &str| {
        request(
            d.port,
            "GET",
            &format!("/readyz{q}"),
            &[("Host", &host)],
            b"",
        )
    };

    let r = readyz("?env=quickstart");
    assert_eq!(r.status, 503, "before up: {r:?}");
    let v: Value = serde_json::from_slice(&r.body).expect("readyz is JSON");
    assert_eq!(v["ready"], false);

    let mut up = env.spawn_devenv(&["up"]);
    // Polled, not slept: 503 until every service is ready, then 200.
    let ready = wait_until(Duration::from_secs(90), || {
        readyz("?env=quickstart").status == 200
    });
    let status = up.wait().expect("wait for devenv up");
    assert!(ready, "readyz never became 200");
    assert!(status.success(), "devenv up failed");

    let r = readyz("?env=quickstart");
    let v: Value = serde_json::from_slice(&r.body).expect("readyz is JSON");
    assert_eq!(v["ready"], true, "{v}");
    let services = v["environments"][0]["services"]
        .as_array()
        .expect("services");
    assert_eq!(services.len(), 3, "{v}");
    assert!(services.iter().all(|s| s["state"] == "ready"), "{v}");
    // Names and states only: no project path, home, token or config values.
    let text = r.text();
    for secret in [
        env.project.display().to_string(),
        env.home.display().to_string(),
        d.auth_path()["/auth?token=".len()..].to_string(),
    ] {
        assert!(!text.contains(&secret), "readyz leaks {secret:?}: {text}");
    }
    // Without `env`: every running environment, the same answer.
    assert_eq!(readyz("").status, 200);
    assert_eq!(readyz("?env=nope").status, 503);

    // Down from the shell, up again from the page: its Up carries no client_env, so
    // the daemon uses the shell's (the QUICKSTART_*_PORT variables pick the ports).
    env.devenv_ok(&["down"]);
    assert_eq!(readyz("?env=quickstart").status, 503);
    assert!(!port_open(api_port));
    let cookie = login(&d);
    let list = grpc_web_call(&d, &cookie, "/devenv.v1.EnvironmentService/List", &[]);
    let (messages, _) = grpc_web_parse(&list.body);
    let listed = pb::ListResponse::decode(messages[0].as_slice()).expect("ListResponse");
    let summary = listed
        .environments
        .iter()
        .find(|e| e.name == "quickstart")
        .expect("quickstart listed");
    let up = pb::UpRequest {
        environment: Some(pb::EnvironmentRef {
            project_dir: summary.project.clone(),
            env: summary.env.clone(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let r = grpc_web_call(
        &d,
        &cookie,
        "/devenv.v1.EnvironmentService/Up",
        &up.encode_to_vec(),
    );
    let (messages, trailers) = grpc_web_parse(&r.body);
    assert!(
        trailers.contains(&("grpc-status".into(), "0".into())),
        "{trailers:?}"
    );
    let last =
        pb::UpEvent::decode(messages.last().expect("Up events").as_slice()).expect("UpEvent");
    match last.event {
        Some(pb::up_event::Event::Result(res)) => assert!(res.ok, "{res:?}"),
        other => panic!("Up from the page did not finish: {other:?}"),
    }
    assert_eq!(readyz("?env=quickstart").status, 200);
    assert!(
        port_open(api_port),
        "api is not on the shell's QUICKSTART_API_PORT"
    );
    env.devenv_ok(&["down"]);
}

#[test]
fn a_taken_port_leaves_the_daemon_serving_its_socket_and_dashboard_says_why() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port to take");
    let port = holder.local_addr().expect("local addr").port();
    let mut env = TestEnv::new();
    env.set_var("DEVENV_DASHBOARD_PORT", port);
    env.devenv_ok(&["daemon", "start"]);

    let out = env.devenv(&["dashboard", "--no-open"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stdout.is_empty(), "{out}");
    let me = format!("pid {}", std::process::id());
    for want in [
        &format!("port {port} on 127.0.0.1"),
        "taken by",
        me.as_str(),
        "--dashboard-port",
        "dashboard.port",
    ] {
        assert!(out.stderr.contains(want), "missing {want:?}\n{out}");
    }
    let status = env.devenv_ok(&["daemon", "status"]);
    assert!(status.stdout.contains("dashboard off:"), "{status}");
    assert!(status.stdout.contains(&me), "{status}");
    // The socket side is unaffected.
    env.devenv_ok(&["ls"]);
    drop(holder);
}

#[test]
fn daemon_status_shows_the_address_but_never_the_token() {
    let env = TestEnv::new();
    env.devenv_ok(&["daemon", "start"]);
    let d = env.dashboard();
    let token = &d.auth_path()["/auth?token=".len()..];
    let out = env.devenv_ok(&["daemon", "status"]);
    assert!(
        out.stdout
            .contains(&format!("http://127.0.0.1:{}/", d.port)),
        "{out}"
    );
    let json = env.devenv_ok(&["daemon", "status", "--json"]);
    for o in [&out, &json] {
        assert!(!o.stdout.contains(token), "status shows the token\n{o}");
    }
    let v: Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(
        v["dashboard"]["url"],
        format!("http://127.0.0.1:{}/", d.port),
        "{v}"
    );
}

#[test]
fn an_open_page_stays_logged_in_across_a_daemon_restart_on_its_port() {
    use std::os::unix::fs::PermissionsExt as _;
    let mut env = TestEnv::new();
    let port = devenv_e2e::free_ports(1)[0];
    env.set_var("DEVENV_DASHBOARD_PORT", port);
    env.devenv_ok(&["daemon", "start"]);
    let before = env.dashboard();
    assert_eq!(before.port, port);
    let cookie = login(&before);

    env.devenv_ok(&["daemon", "stop"]);
    env.devenv_ok(&["daemon", "start"]);
    let after = env.dashboard();
    assert_eq!(after.port, port);
    assert_ne!(
        after.auth_path(),
        before.auth_path(),
        "the login token is new with every start"
    );
    let host = after.host();
    let r = request(
        port,
        "GET",
        "/",
        &[("Host", &host), ("Cookie", &cookie)],
        b"",
    );
    assert_eq!(r.status, 200, "the page's cookie after the restart: {r:?}");
    let r = request(port, "GET", &before.auth_path(), &[("Host", &host)], b"");
    assert_eq!(r.status, 401, "the old login URL: {r:?}");
    let kept = env.data_dir.join("dashboard-session");
    let mode = std::fs::metadata(&kept)
        .unwrap_or_else(|e| panic!("{}: {e}", kept.display()))
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{}", kept.display());
}

#[test]
fn the_config_file_can_turn_it_off_and_a_broken_one_is_located() {
    let mut env = TestEnv::new();
    // An empty value is no value: the file decides.
    env.set_var("DEVENV_DASHBOARD_PORT", "");
    let file = env.home.join(".config/devenv/devenvd.yml");
    std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");

    std::fs::write(&file, "dashboard:\n  port: 70000\n").expect("write config");
    env.devenv_ok(&["daemon", "start"]);
    let out = env.devenv(&["dashboard", "--no-open"]);
    assert_eq!(out.code, Some(1), "{out}");
    let located = format!("{}:2:", file.display());
    assert!(out.stderr.contains(&located), "want {located}\n{out}");
    // The socket side does not care.
    env.devenv_ok(&["ls"]);
    env.devenv_ok(&["daemon", "stop"]);

    std::fs::write(&file, "dashboard:\n  enabled: false\n").expect("write config");
    env.devenv_ok(&["daemon", "start"]);
    let out = env.devenv(&["dashboard", "--json", "--no-open"]);
    assert_eq!(out.code, Some(1), "{out}");
    let v: Value = serde_json::from_str(&out.stdout).expect("JSON even when off");
    assert!(v["url"].is_null(), "{v}");
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("dashboard.enabled: false")),
        "{v}"
    );
    let status = env.devenv_ok(&["daemon", "status"]);
    assert!(status.stdout.contains("dashboard off:"), "{status}");
}

#[test]
fn devenv_dashboard_hands_the_url_to_the_opener_or_says_it_could_not() {
    use std::os::unix::fs::PermissionsExt as _;
    let mut env = TestEnv::new();
    // The desktop's opener, recording what it was given (this machine has no desktop).
    let bin = env.root().join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir bin");
    let opened = env.root().join("opened");
    let opener = bin.join(if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    });
    std::fs::write(
        &opener,
        format!(
            "#!/bin/sh\nprintf '%s' \"$1\" > {}.tmp && mv {0}.tmp {0}\n",
            opened.display()
        ),
    )
    .expect("write opener");
    std::fs::set_permissions(&opener, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    env.set_var("PATH", &path);
    let out = env.devenv_ok(&["dashboard"]);
    let url = out.stdout.trim().to_string();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.contains("/auth?token="),
        "{out}"
    );
    assert!(
        wait_until(Duration::from_secs(10), || opened.exists()),
        "the opener was not run\n{out}"
    );
    assert_eq!(std::fs::read_to_string(&opened).expect("read"), url);

    // No opener at all: the URL is still printed, and the CLI says why nothing opened.
    let empty = env.root().join("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    env.set_var("PATH", empty.display());
    let out = env.devenv_ok(&["dashboard"]);
    assert_eq!(out.stdout.trim(), url, "{out}");
    assert!(out.stderr.contains("could not open a browser"), "{out}");
}
