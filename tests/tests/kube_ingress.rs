//! `networking.ingress` against the real test cluster (tests/cluster) and a real ingress
//! controller: Traefik v3.6.12 (built from its Go module by
//! scripts/install-test-tools.sh) runs as a host process with its kubernetes ingress
//! provider, like the cluster's other components; the host routes to the pod CIDR
//! (cni0), so Traefik reaches pods directly. `up` creates an Ingress per service as
//! specified, an HTTP request to Traefik with `Host: SERVICE.ENV.localhost` reaches the
//! pod, turning a service's ingress off prunes its Ingress on the next `up`, and `down`
//! removes the rest.
//!
//! Needs KUBECONFIG pointing at the test cluster; run with `--ignored`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use devenv_e2e::kube::{env_for, kc, kc_try, kubeconfig};
use devenv_e2e::{free_ports, wait_until};

const BUSYBOX: &str = "devenv.test/busybox:1.35.0";
/// The Traefik release scripts/install-test-tools.sh builds (keep the two in step).
const TRAEFIK_VERSION: &str = "v3.6.12";

/// The cached Traefik binary (`DEVENV_TRAEFIK` overrides).
fn traefik_binary() -> PathBuf {
    if let Ok(p) = std::env::var("DEVENV_TRAEFIK") {
        return PathBuf::from(p);
    }
    let home = std::env::var("HOME").expect("HOME");
    let p = PathBuf::from(home).join(format!(
        ".cache/devenv-tools/traefik-{TRAEFIK_VERSION}/traefik"
    ));
    assert!(
        p.exists(),
        "Traefik is not built: {} is missing; run `bash scripts/install-test-tools.sh` (it builds Traefik {TRAEFIK_VERSION} from its Go module), or set DEVENV_TRAEFIK",
        p.display()
    );
    p
}

/// Traefik on 127.0.0.1:`port`, watching the Ingresses of `class` in `namespace`;
/// killed (and reaped) when dropped.
struct Traefik {
    child: Child,
    log: PathBuf,
}

impl Traefik {
    fn start(port: u16, class: &str, namespace: &str, log: PathBuf) -> Self {
        let out = std::fs::File::create(&log).expect("create traefik's log");
        let err = out.try_clone().unwrap();
        let child = Command::new(traefik_binary())
            .args([
                &format!("--entrypoints.web.address=127.0.0.1:{port}"),
                "--providers.kubernetesingress=true",
                &format!("--providers.kubernetesingress.ingressclass={class}"),
                &format!("--providers.kubernetesingress.namespaces={namespace}"),
                "--global.checknewversion=false",
                "--global.sendanonymoususage=false",
                "--log.level=INFO",
            ])
            // Its kubernetes provider reads the cluster's address and credentials from
            // the kubeconfig KUBECONFIG names (the test cluster's admin config).
            .env("KUBECONFIG", kubeconfig())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start traefik");
        Self { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Traefik {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The cluster-scoped IngressClass of this run (Traefik's controller name), deleted
/// when dropped.
struct IngressClass(String);

impl IngressClass {
    fn create(name: &str, dir: &std::path::Path) -> Self {
        let file = dir.join("ingressclass.yaml");
        std::fs::write(
            &file,
            format!(
                "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: {name}\nspec:\n  controller: traefik.io/ingress-controller\n"
            ),
        )
        .unwrap();
        kc(&["apply", "-f", &file.display().to_string()]);
        Self(name.to_owned())
    }
}

impl Drop for IngressClass {
    fn drop(&mut self) {
        let _ = kc_try(&["delete", "ingressclass", &self.0, "--ignore-not-found"]);
    }
}

/// `GET path` with `Host: host` to 127.0.0.1:`port`: (status, body), or none when the
/// connection fails.
fn get(port: u16, host: &str, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let status = raw.split(' ').nth(1)?.parse().ok()?;
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.trim().to_owned())?;
    Some((status, body))
}

fn config(env: &str, class: &str, api_ingress: &str) -> String {
    format!(
        r#"apiVersion: devenv/v1
kind: Environment
metadata:
  name: {env}
spec:
  cluster: {{ provider: kubeconfig }}
  networking:
    ingress: {{ class: {class}, domain: localhost }}
  services:
    - name: web
      image: {BUSYBOX}
      ports: [{{ name: http, port: 80, targetPort: 8080 }}]
      readiness: {{ http: {{ path: /, port: http }} }}
      command: 'mkdir -p /www && echo hello from web > /www/index.html && exec httpd -f -p 8080 -h /www'
    - name: api
      image: {BUSYBOX}
      ports: [9090, {{ name: http, port: 81, targetPort: 8081 }}]
      readiness: {{ http: {{ path: /api/, port: http }} }}
      command: 'mkdir -p /www/api && echo hello from api > /www/api/index.html && exec httpd -f -p 8081 -h /www'
      ingress: {api_ingress}
"#
    )
}

#[test]
#[ignore = "needs the test cluster (tests/cluster/test.sh runs it) and Traefik (scripts/install-test-tools.sh)"]
fn k8s_ingress_objects_route_through_a_real_controller_and_are_pruned_and_removed() {
    let (t, env) = env_for("ingress");
    let ns = format!("devenv-{env}");
    let class = format!("traefik-{env}");
    let _class = IngressClass::create(&class, &t.project);
    let port = free_ports(1)[0];
    let traefik = Traefik::start(port, &class, &ns, t.project.join("traefik.log"));

    t.write_config(&config(&env, &class, "{ paths: [/api], port: http }"));
    let up = t.devenv(&["up"]);
    assert_eq!(up.code, Some(0), "up should succeed\n{up}");

    // The objects, as specified.
    let ingress = |name: &str| -> serde_json::Value {
        serde_json::from_str(&kc(&["get", "ingress", name, "-n", &ns, "-o", "json"])).unwrap()
    };
    let web = ingress("web");
    assert_eq!(web["spec"]["ingressClassName"], class.as_str(), "{web}");
    let labels = &web["metadata"]["labels"];
    assert_eq!(labels["app.kubernetes.io/managed-by"], "devenv", "{web}");
    assert_eq!(labels["devenv.dev/environment"], env.as_str(), "{web}");
    assert_eq!(labels["devenv.dev/service"], "web", "{web}");
    let web_host = format!("web.{env}.localhost");
    let rule = &web["spec"]["rules"][0];
    assert_eq!(rule["host"], web_host.as_str(), "{web}");
    let path = &rule["http"]["paths"][0];
    assert_eq!(path["path"], "/", "{web}");
    assert_eq!(path["pathType"], "Prefix", "{web}");
    assert_eq!(path["backend"]["service"]["name"], "web", "{web}");
    assert_eq!(path["backend"]["service"]["port"]["number"], 80, "{web}");
    assert!(web["spec"].get("tls").is_none(), "{web}");
    let api = ingress("api");
    let api_host = format!("api.{env}.localhost");
    let path = &api["spec"]["rules"][0]["http"]["paths"][0];
    assert_eq!(api["spec"]["rules"][0]["host"], api_host.as_str(), "{api}");
    assert_eq!(path["path"], "/api", "{api}");
    assert_eq!(
        path["backend"]["service"]["port"]["number"], 81,
        "the named port's Service port: {api}"
    );

    // The URL in status is the Ingress's.
    let status = t.status_json();
    let url_of = |name: &str| {
        status["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .map(|s| s["url"].clone())
    };
    assert_eq!(
        url_of("web"),
        Some(serde_json::json!(format!("http://{web_host}/"))),
        "{status}"
    );

    // Through the controller, by host name, to the pods.
    let mut last = None;
    let reached = wait_until(Duration::from_secs(90), || {
        last = get(port, &web_host, "/");
        last.as_ref()
            .is_some_and(|(s, b)| *s == 200 && b == "hello from web")
    });
    assert!(
        reached,
        "GET / with Host {web_host} through Traefik: {last:?}\ntraefik's log:\n{}",
        traefik.log()
    );
    let reached = wait_until(Duration::from_secs(60), || {
        last = get(port, &api_host, "/api/");
        last.as_ref()
            .is_some_and(|(s, b)| *s == 200 && b == "hello from api")
    });
    assert!(
        reached,
        "GET /api/ with Host {api_host}: {last:?}\ntraefik's log:\n{}",
        traefik.log()
    );
    // Only the paths the service gave are routed; an unknown host is not.
    assert_eq!(get(port, &api_host, "/").map(|r| r.0), Some(404));
    assert_eq!(
        get(port, &format!("nope.{env}.localhost"), "/").map(|r| r.0),
        Some(404)
    );

    // Turned off: the next `up` prunes its Ingress, and the controller stops routing.
    t.write_config(&config(&env, &class, "false"));
    let up = t.devenv(&["up"]);
    assert_eq!(up.code, Some(0), "second up should succeed\n{up}");
    let names = kc(&["get", "ingress", "-n", &ns, "-o", "name"]);
    assert_eq!(
        names.lines().collect::<Vec<_>>(),
        ["ingress.networking.k8s.io/web"],
        "api's Ingress is pruned, web's kept"
    );
    assert!(
        wait_until(Duration::from_secs(30), || get(port, &api_host, "/api/")
            .is_some_and(|r| r.0 == 404)),
        "api is no longer routed: {:?}",
        get(port, &api_host, "/api/")
    );
    let status = t.status_json();
    let api_url = status["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "api")
        .map(|s| s["url"].clone());
    assert_eq!(
        api_url,
        Some(serde_json::Value::Null),
        "no Ingress and no forward: no URL\n{status}"
    );

    // `down` removes the rest.
    let down = t.devenv(&["down"]);
    assert_eq!(down.code, Some(0), "{down}");
    let left = kc(&[
        "get",
        "ingress",
        "--all-namespaces",
        "-l",
        &format!("app.kubernetes.io/managed-by=devenv,devenv.dev/environment={env}"),
        "-o",
        "name",
    ]);
    assert_eq!(left.trim(), "", "Ingresses left after down");
    assert!(
        wait_until(Duration::from_secs(30), || get(port, &web_host, "/")
            .is_some_and(|r| r.0 == 404)),
        "web is no longer routed after down"
    );
}
