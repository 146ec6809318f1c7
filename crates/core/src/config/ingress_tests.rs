//! `spec.networking.ingress` and a service's `ingress:`: the routes each service gets,
//! and the located errors of bad keys.

use std::path::Path;

use super::*;

const FILE: &str = "/p/.devenv/config.yml";

fn config(networking: &str, services: &str) -> String {
    format!(
        "apiVersion: devenv/v1\nkind: Environment\nmetadata:\n  name: shop\nspec:\n  cluster: {{ provider: kubeconfig }}\n{networking}  services:\n{services}"
    )
}

fn ok(networking: &str, services: &str) -> Environment {
    match load_str(Path::new(FILE), &config(networking, services)) {
        Ok(l) => l.environment,
        Err(e) => panic!("expected the config to load, got:\n{e}"),
    }
}

fn errors(networking: &str, services: &str) -> Vec<ConfigError> {
    match load_str(Path::new(FILE), &config(networking, services)) {
        Ok(l) => panic!("expected errors, loaded {:?}", l.environment),
        Err(ConfigErrors(e)) => e,
    }
}

fn one(networking: &str, services: &str) -> ConfigError {
    let mut e = errors(networking, services);
    assert_eq!(e.len(), 1, "{}", ConfigErrors(e.clone()));
    e.remove(0)
}

const TRAEFIK: &str = "  networking:\n    ingress: { class: traefik, domain: dev.example.com }\n";

const WEB: &str = "    - name: web\n      image: nginx\n      ports: [{ name: http, port: 80, targetPort: 8080 }, 9090]\n";

#[test]
fn every_kubernetes_service_with_a_port_gets_a_route_under_its_host() {
    let env = ok(
        TRAEFIK,
        &format!(
            "{WEB}    - name: worker\n      image: busybox\n    - name: db\n      type: postgresql\n      env: {{ POSTGRES_PASSWORD: x }}\n    - name: cli\n      command: sleep 1\n      ports: [7000]\n"
        ),
    );
    let web = env
        .service("web")
        .unwrap()
        .ingress
        .clone()
        .expect("a route");
    assert_eq!(
        web,
        IngressRoute {
            host: "web.shop.dev.example.com".into(),
            class: Some("traefik".into()),
            tls: IngressTls::Off,
            paths: vec!["/".into()],
            backend: "web".into(),
            port: 80,
        }
    );
    assert_eq!(web.url(), "http://web.shop.dev.example.com/");
    // No port: nothing to route to. A preset speaks its own protocol. A local
    // process has the local router.
    for name in ["worker", "db", "cli"] {
        assert_eq!(env.service(name).unwrap().ingress, None, "{name}");
    }
}

#[test]
fn a_service_chooses_its_paths_port_and_backend_or_opts_out() {
    let env = ok(
        "  networking:\n    ingress: { domain: localhost., tls: true }\n",
        &format!(
            "{WEB}      ingress: {{ paths: [/, /api], port: 9090, service: web-svc }}\n    - name: admin\n      image: nginx\n      ports: [80]\n      ingress: false\n    - name: db\n      type: redis\n      ingress: true\n"
        ),
    );
    let web = env.service("web").unwrap().ingress.clone().unwrap();
    assert_eq!(web.paths, ["/", "/api"]);
    assert_eq!(web.port, 9090);
    assert_eq!(web.backend, "web-svc");
    assert_eq!(web.class, None);
    assert_eq!(web.host, "web.shop.localhost");
    assert_eq!(web.tls, IngressTls::ControllerDefault);
    assert_eq!(web.url(), "https://web.shop.localhost/");
    assert_eq!(env.service("admin").unwrap().ingress, None);
    let db = env
        .service("db")
        .unwrap()
        .ingress
        .clone()
        .expect("asked for");
    assert_eq!(db.port, 6379);

    let env = ok(
        "  networking:\n    ingress: { tls: shop-tls }\n",
        &format!("{WEB}      ingress: {{ port: http }}\n"),
    );
    let web = env.service("web").unwrap().ingress.clone().unwrap();
    assert_eq!(web.port, 80, "a named port is its Service port");
    assert_eq!(web.tls, IngressTls::Secret("shop-tls".into()));
    assert_eq!(web.host, "web.shop.localhost", "the default domain");
}

#[test]
fn without_networking_no_service_has_a_route() {
    let env = ok("", WEB);
    assert_eq!(env.service("web").unwrap().ingress, None);
    // Opting out needs nothing.
    ok("", &format!("{WEB}      ingress: false\n"));
}

#[test]
fn bad_settings_are_located_with_a_hint() {
    let e = one(
        "  networking:\n    ingress: { class: Traefik_2, domain: localhost }\n",
        WEB,
    );
    assert_eq!(e.key, "spec.networking.ingress.class");
    assert_eq!(e.line, 8);
    assert!(
        e.message
            .contains("`Traefik_2` is not a valid IngressClass name"),
        "{e}"
    );
    assert!(e.hint.as_deref().unwrap().contains("traefik"), "{e}");

    let e = one("  networking:\n    ingress: { class: [traefik] }\n", WEB);
    assert_eq!(e.key, "spec.networking.ingress.class", "{e}");

    for domain in ["http://dev.local", "*.localhost", "dev..local", "Dev.local"] {
        let e = one(
            &format!("  networking:\n    ingress: {{ domain: \"{domain}\" }}\n"),
            WEB,
        );
        assert_eq!(e.key, "spec.networking.ingress.domain", "{domain}: {e}");
        assert!(e.message.contains("is not a DNS name"), "{e}");
        assert!(e.hint.is_some(), "{e}");
    }

    let e = one("  networking:\n    ingress: { tls: My_Cert }\n", WEB);
    assert_eq!(e.key, "spec.networking.ingress.tls");
    let e = one("  networking:\n    ingress: { tls: 3 }\n", WEB);
    assert_eq!(e.key, "spec.networking.ingress.tls", "{e}");

    let e = one("  networking:\n    ingres: {}\n", WEB);
    assert!(e.hint.as_deref().unwrap_or("").contains("ingress"), "{e}");
    let e = one("  networking:\n    ingress: { clas: traefik }\n", WEB);
    assert!(e.hint.as_deref().unwrap_or("").contains("class"), "{e}");
}

#[test]
fn bad_service_keys_are_located_with_a_hint() {
    let e = one(TRAEFIK, &format!("{WEB}      ingress: {{ port: htp }}\n"));
    assert_eq!(e.key, "spec.services[0].ingress.port");
    assert_eq!(e.line, 13);
    assert!(
        e.message
            .contains("port `htp` is not among the ports of service `web`"),
        "{e}"
    );
    assert_eq!(e.hint.as_deref(), Some("did you mean `http`?"));

    let e = one(TRAEFIK, &format!("{WEB}      ingress: {{ port: 8080 }}\n"));
    assert!(e.message.contains("port 8080 is not among"), "{e}");
    assert!(
        e.hint.as_deref().unwrap().contains("http (80), 9090"),
        "{e}"
    );

    let e = one(
        TRAEFIK,
        &format!("{WEB}      ingress: {{ paths: [api] }}\n"),
    );
    assert_eq!(e.key, "spec.services[0].ingress.paths[0]");
    assert!(e.message.contains("`api` is not a URL path"), "{e}");

    let e = one(TRAEFIK, &format!("{WEB}      ingress: {{ path: /api }}\n"));
    assert!(e.hint.as_deref().unwrap_or("").contains("paths"), "{e}");

    let e = one(TRAEFIK, &format!("{WEB}      ingress: yes please\n"));
    assert_eq!(e.key, "spec.services[0].ingress", "{e}");

    let e = one(
        TRAEFIK,
        "    - name: cli\n      command: serve\n      ports: [7000]\n      ingress: true\n",
    );
    assert_eq!(e.key, "spec.services[0].ingress");
    assert!(e.message.contains("runs locally"), "{e}");
    assert!(e.hint.as_deref().unwrap().contains("local router"), "{e}");

    let e = one(
        TRAEFIK,
        "    - name: worker\n      image: busybox\n      ingress: true\n",
    );
    assert!(e.message.contains("has no TCP port"), "{e}");

    let e = one("", &format!("{WEB}      ingress: {{ port: http }}\n"));
    assert!(
        e.message.contains("`spec.networking.ingress` is not set"),
        "{e}"
    );
    assert!(e.hint.as_deref().unwrap().contains("networking"), "{e}");
}
