//! The local presets with the real servers (PostgreSQL and Redis from the distribution;
//! scripts/install-test-tools.sh installs them): a project shaped like a real app —
//! postgres + redis with passwords, a migration oneshot, an API, a Node dev server with
//! a watch restart — brought up as
//! whoever runs the tests (root in CI: postgres then runs as an unprivileged user) and
//! as a second, unprivileged user.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use devenv_e2e::{free_ports, http_get, other_user, CmdOutput, RunOpts, TestEnv, OTHER_USER};

const DB_PASSWORD: &str = "pg-S3cret \"q\" 1";
const REDIS_PASSWORD: &str = "redis-S3cret \"x\\y";

/// The app: a migration that creates a table through psql, an API that reads it back
/// through psql, adds a row on `POST /items` (the body is its name) and counts hits in
/// redis (speaking RESP itself: no client libraries).
const MIGRATE_PY: &str = r#"
import os, subprocess, sys
sql = "CREATE TABLE IF NOT EXISTS items (id serial PRIMARY KEY, name text NOT NULL);" \
      "INSERT INTO items (name) SELECT 'caf\u00e9' WHERE NOT EXISTS (SELECT 1 FROM items);"
r = subprocess.run(["psql", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", os.environ["PGPORT"],
                    "-U", "app", "-d", "shop", "-c", sql], capture_output=True, text=True)
print(r.stdout, r.stderr)
print("migrated" if r.returncode == 0 else "migration failed")
sys.exit(r.returncode)
"#;

const API_PY: &str = r#"
import os, socket, subprocess
from http.server import BaseHTTPRequestHandler, HTTPServer

def redis(*args):
    s = socket.create_connection(("127.0.0.1", int(os.environ["REDIS_PORT"])))
    out = b""
    for cmd in [("AUTH", os.environ["REDIS_PASSWORD"]), args]:
        req = b"*%d\r\n" % len(cmd) + b"".join(b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode()) for a in cmd)
        s.sendall(req)
        out = s.recv(1024)
    s.close()
    return out.decode().strip()

class H(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/healthz":
            body = "ok"
        else:
            r = subprocess.run(["psql", "-tA", "-h", "127.0.0.1", "-p", os.environ["PGPORT"], "-U", "app",
                                "-d", "shop", "-c", "SELECT name FROM items ORDER BY id"],
                               capture_output=True, text=True)
            body = "items=%s hits=%s" % (r.stdout.strip() or r.stderr.strip(), redis("INCR", "hits"))
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def do_POST(self):
        name = self.rfile.read(int(self.headers["Content-Length"])).decode()
        # A psql variable, quoted by psql (:'name'): the name is data, never SQL.
        r = subprocess.run(["psql", "-tA", "-v", "ON_ERROR_STOP=1", "-v", "name=" + name, "-h", "127.0.0.1",
                            "-p", os.environ["PGPORT"], "-U", "app", "-d", "shop", "-f", "-"],
                           input="INSERT INTO items (name) VALUES (:'name') RETURNING id;",
                           capture_output=True, text=True)
        data = ("created id=%s" % r.stdout.strip().splitlines()[0] if r.returncode == 0 else r.stderr).encode()
        self.send_response(201 if r.returncode == 0 else 500)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *a):
        pass

print("api listening", flush=True)
HTTPServer(("127.0.0.1", int(os.environ["API_PORT"])), H).serve_forever()
"#;

/// The frontend's dev server: a page, and /api/* proxied to the API (like a Vite dev
/// server's proxy); restarted by devenv's watch rule when its sources change.
const WEB_JS: &str = r#"
const http = require("http");
const port = Number(process.env.WEB_PORT);
const api = Number(process.env.API_PORT);
http.createServer((req, res) => {
  if (req.url.startsWith("/api/")) {
    http.get({ host: "127.0.0.1", port: api, path: req.url.slice(4) }, (r) => {
      res.writeHead(r.statusCode, r.headers);
      r.pipe(res);
    }).on("error", (e) => { res.writeHead(502); res.end(String(e)); });
    return;
  }
  res.writeHead(200, { "content-type": "text/html" });
  res.end("<h1>shop</h1>");
}).listen(port, "127.0.0.1", () => console.log(`web dev server on ${port}`));
"#;

struct Ports {
    pg: u16,
    redis: u16,
    api: u16,
    web: u16,
}

fn write_project(env: &TestEnv) -> Ports {
    let p = free_ports(4);
    let ports = Ports {
        pg: p[0],
        redis: p[1],
        api: p[2],
        web: p[3],
    };
    std::fs::write(env.project.join("migrate.py"), MIGRATE_PY).unwrap();
    std::fs::create_dir_all(env.project.join("web")).unwrap();
    std::fs::write(env.project.join("web/server.js"), WEB_JS).unwrap();
    std::fs::write(env.project.join("api.py"), API_PY).unwrap();
    // Passwords from .env, as a user keeps them; with spaces, quotes and a backslash,
    // which every layer (.env, shell, redis config) has to carry through unchanged.
    std::fs::write(
        env.project.join(".env"),
        format!("DB_PASSWORD='{DB_PASSWORD}'\nREDIS_PASSWORD='{REDIS_PASSWORD}'\n"),
    )
    .unwrap();
    env.write_config(&format!(
        r#"apiVersion: devenv/v1
kind: Environment
metadata:
  name: shop
spec:
  services:
    - name: db
      type: postgresql
      ports: [{pg}]
      env:
        POSTGRES_USER: app
        POSTGRES_PASSWORD: "${{DB_PASSWORD}}"
        POSTGRES_DB: shop
    - name: cache
      type: redis
      ports: [{redis}]
      env: {{ REDIS_PASSWORD: "${{REDIS_PASSWORD}}" }}
    - name: migrate
      command: python3 -u migrate.py
      oneshot: true
      env: {{ PGPORT: "{pg}", PGPASSWORD: "${{DB_PASSWORD}}" }}
      dependencies: [db]
    - name: api
      command: exec python3 -u api.py
      ports: [{api}]
      env:
        API_PORT: "{api}"
        PGPORT: "{pg}"
        PGPASSWORD: "${{DB_PASSWORD}}"
        REDIS_PORT: "{redis}"
        REDIS_PASSWORD: "${{REDIS_PASSWORD}}"
      readiness: {{ http: {{ path: /healthz, port: {api} }} }}
      dependencies: [migrate, cache]
    - name: web
      command: exec node web/server.js
      ports: [{web}]
      env: {{ WEB_PORT: "{web}", API_PORT: "{api}" }}
      readiness: {{ http: {{ path: /, port: {web} }} }}
      watch: {{ paths: [./web], action: restart }}
      dependencies: [api]
"#,
        pg = ports.pg,
        redis = ports.redis,
        api = ports.api,
        web = ports.web,
    ));
    ports
}

/// `psql -tA` as the test process (any user: TCP with a password).
fn psql(port: u16, password: &str, sql: &str) -> std::process::Output {
    std::process::Command::new("psql")
        .args(["-tA", "-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-U", "app", "-d", "shop", "-c", sql])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .unwrap_or_else(|e| panic!("psql (postgresql-client) is needed by this test: {e}"))
}

fn query(port: u16, sql: &str) -> String {
    let out = psql(port, DB_PASSWORD, sql);
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// One RESP command on a fresh connection; the first reply line.
fn redis_cmd(port: u16, args: &[&str]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to redis");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req += &format!("${}\r\n{a}\r\n", a.len());
    }
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).trim().to_owned()
}

/// `redis-cli` (the password through REDISCLI_AUTH, not the command line): its output.
fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = std::process::Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .env("REDISCLI_AUTH", REDIS_PASSWORD)
        .output()
        .unwrap_or_else(|e| panic!("redis-cli (redis-tools) is needed by this test: {e}"));
    assert!(
        out.status.success(),
        "redis-cli {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `<data dir>/envs/<key>/presets/<service>` of the only environment.
fn preset_dir(data_dir: &Path, service: &str) -> PathBuf {
    let envs: Vec<PathBuf> = std::fs::read_dir(data_dir.join("envs"))
        .unwrap_or_else(|e| panic!("{}/envs: {e}", data_dir.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(envs.len(), 1, "one environment dir: {envs:?}");
    envs[0].join("presets").join(service)
}

/// Who runs the commands: this process's user, or another one through setpriv.
struct As<'a> {
    env: &'a TestEnv,
    uid_gid: Option<(u32, u32)>,
}

impl As<'_> {
    fn devenv(&self, args: &[&str]) -> CmdOutput {
        self.env.run(
            &self.env.bins.devenv,
            args,
            RunOpts {
                timeout: Duration::from_secs(120),
                uid_gid: self.uid_gid,
                ..RunOpts::default()
            },
        )
    }

    fn ok(&self, args: &[&str]) -> CmdOutput {
        let out = self.devenv(args);
        assert_eq!(
            out.code,
            Some(0),
            "devenv {} should succeed\n{out}",
            args.join(" ")
        );
        out
    }

    fn logs(&self, service: &str) -> String {
        self.ok(&["logs", service, "--tail", "200"]).stdout
    }
}

/// The whole story; returns the first `up`'s wall time.
fn app_story(who: &As<'_>, ports: &Ports) -> Duration {
    let env = who.env;
    let started = Instant::now();
    let up = who.devenv(&["up"]);
    let up_time = started.elapsed();
    assert_eq!(
        up.code,
        Some(0),
        "up should succeed\n{up}\n--- db log\n{}",
        who.devenv(&["logs", "db", "--tail", "50"]).stdout
    );

    // The contract: database created, UTF-8, password enforced.
    assert_eq!(query(ports.pg, "SELECT current_database()"), "shop");
    assert_eq!(query(ports.pg, "SHOW server_encoding"), "UTF8");
    assert_eq!(query(ports.pg, "SHOW lc_ctype"), "C.UTF-8");
    assert_eq!(query(ports.pg, "SELECT name FROM items"), "café");
    let wrong = psql(ports.pg, "not-the-password", "SELECT 1");
    assert!(!wrong.status.success(), "a wrong password must be refused");
    let why = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        why.contains("password authentication failed"),
        "refused for the wrong reason: {why}"
    );
    assert_eq!(
        query(
            ports.pg,
            "SELECT count(*) FROM pg_hba_file_rules WHERE auth_method = 'trust'"
        ),
        "0",
        "no trust rule in pg_hba.conf"
    );

    // Redis: nothing without the password, PONG with it.
    let noauth = redis_cmd(ports.redis, &["PING"]);
    assert!(noauth.starts_with("-NOAUTH"), "{noauth}");
    assert_eq!(
        redis_cmd(ports.redis, &["AUTH", REDIS_PASSWORD]),
        "+OK",
        "the password with quotes and a backslash is the one redis has"
    );

    // The API reads through both.
    let page = http_get(ports.api, "/items").expect("api answers");
    assert!(page.body.contains("items=café"), "{page:?}");
    assert!(page.body.contains("hits=:1"), "{page:?}");
    // The Node dev server serves its page and proxies to the API.
    let home = http_get(ports.web, "/").expect("web answers");
    assert!(home.body.contains("<h1>shop</h1>"), "{home:?}");
    let proxied = http_get(ports.web, "/api/items").expect("web proxies");
    assert!(
        proxied.body.contains("items=café") && proxied.body.contains("hits=:2"),
        "{proxied:?}"
    );
    // A row written through the API, seen by psql; the counter seen by redis-cli.
    let created = devenv_e2e::http_post(ports.api, "/items", "tea's \"pot\"").expect("api answers");
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(
        query(ports.pg, "SELECT name FROM items ORDER BY id"),
        "café\ntea's \"pot\""
    );
    assert_eq!(redis_cli(ports.redis, &["GET", "hits"]), "2");
    // A save of its source restarts it (devenv's watch rule), ready again.
    let web_pid = |who: &As<'_>| {
        let out = who.ok(&["status", "--json"]).stdout;
        let v: serde_json::Value = serde_json::from_str(&out).expect("status json");
        let web = v["services"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["name"] == "web").cloned())
            .expect("web in status");
        (web["pid"].as_u64().unwrap_or(0), web["state"].clone())
    };
    let (before, _) = web_pid(who);
    let mut source = std::fs::OpenOptions::new()
        .append(true)
        .open(env.project.join("web/server.js"))
        .unwrap();
    source.write_all(b"// edited\n").unwrap();
    drop(source);
    assert!(
        devenv_e2e::wait_until(Duration::from_secs(20), || {
            let (pid, state) = web_pid(who);
            pid != 0 && pid != before && state == "ready"
        }),
        "web was not restarted by the save"
    );
    assert!(http_get(ports.web, "/").is_some_and(|r| r.status == 200));

    // Data under the data dir, private to its owner; nothing beside the project.
    let data = preset_dir(&env.data_dir, "db");
    assert!(data.join("PG_VERSION").is_file(), "{}", data.display());
    assert!(preset_dir(&env.data_dir, "cache").is_dir());
    let beside = PathBuf::from(format!("{}#", env.project.display()));
    assert!(!beside.exists(), "{} must not exist", beside.display());
    let meta = std::fs::metadata(&data).unwrap();
    use std::os::unix::fs::MetadataExt as _;
    assert_eq!(meta.mode() & 0o777, 0o700, "the data dir is 0700");

    // Who postgres runs as: never root.
    let status = who.ok(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let pid = v["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "db")
        .and_then(|s| s["pid"].as_u64())
        .expect("db has a pid");
    let uid = proc_uid(pid as u32);
    assert_ne!(uid, 0, "postgres runs as root");
    assert_eq!(meta.uid(), uid, "the data dir belongs to the server's user");
    let db_log = who.logs("db");
    let runs_as_root = who.uid_gid.is_none() && nix::unistd::geteuid().is_root();
    if runs_as_root {
        assert!(
            db_log.contains("initdb and postgres run as user"),
            "the log says which user:\n{db_log}"
        );
    }
    assert!(
        !db_log.contains(DB_PASSWORD) && !who.logs("cache").contains(REDIS_PASSWORD),
        "no password in the logs"
    );

    // down keeps the data, up finds it; the old location is moved on start.
    let down = who.ok(&["down"]);
    assert!(down.stdout.contains("db (local data)"), "{down}");
    std::fs::create_dir_all(&beside).unwrap();
    if let Some((uid, gid)) = who.uid_gid {
        std::os::unix::fs::chown(&beside, Some(uid), Some(gid)).unwrap();
    }
    std::fs::rename(&data, beside.join("db")).unwrap();
    who.ok(&["up"]);
    // Both databases kept their data: the row the API wrote, read back through it, and
    // the counter (redis' append-only file).
    assert_eq!(redis_cli(ports.redis, &["GET", "hits"]), "2");
    let page = http_get(ports.api, "/items").expect("api answers after down and up");
    assert!(
        page.body.contains("items=café\ntea's \"pot\"") && page.body.contains("hits=:3"),
        "{page:?}"
    );
    let db_log = who.logs("db");
    assert!(
        db_log.contains("moved this preset's data from")
            && db_log.contains(&beside.display().to_string()),
        "the log says the data moved:\n{db_log}"
    );
    assert!(data.join("PG_VERSION").is_file() && !beside.exists());

    // down --volumes removes it.
    let down = who.ok(&["down", "--volumes"]);
    assert!(
        down.stdout.contains("removed the local data of cache, db"),
        "{down}"
    );
    assert!(
        !data.exists() && !preset_dir(&env.data_dir, "cache").exists(),
        "preset data is gone"
    );
    up_time
}

fn proc_uid(pid: u32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|u| u.parse().ok())
        .expect("Uid line")
}

#[test]
fn app_with_postgres_and_redis_presets() {
    let env = TestEnv::new();
    let ports = write_project(&env);
    let who = As {
        env: &env,
        uid_gid: None,
    };
    let t = app_story(&who, &ports);
    eprintln!(
        "presets: `up` of postgres + redis + migration + api + node dev server took {:.2}s (uid {})",
        t.as_secs_f64(),
        nix::unistd::geteuid()
    );
}

#[test]
#[ignore = "needs root to switch to devenv-test-other"]
fn app_with_presets_as_an_unprivileged_user() {
    let (uid, gid) = other_user("devenv");
    let env = TestEnv::new();
    let ports = write_project(&env);
    // Everything of this env (home, runtime dir, data dir, project) belongs to the user.
    let status = std::process::Command::new("chown")
        .args(["-R", &format!("{uid}:{gid}")])
        .arg(env.root())
        .status()
        .unwrap();
    assert!(status.success(), "chown the test env");
    let who = As {
        env: &env,
        uid_gid: Some((uid, gid)),
    };
    let t = app_story(&who, &ports);
    eprintln!(
        "presets: `up` of postgres + redis + migration + api + node dev server took {:.2}s (as {OTHER_USER})",
        t.as_secs_f64()
    );
    let _ = who.devenv(&["daemon", "stop"]);
}
