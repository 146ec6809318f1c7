//! The Ingress of a kubernetes service (`networking.ingress`, checked into
//! `config::IngressRoute`): rendered here, applied with the service's objects by its
//! runner, and pruned by `up` when no service of the config wants it any more
//! (`prune`); `down` sweeps it with everything else labelled as the environment's.

use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, DeleteParams, ListParams};
use serde_json::{json, Value};

use super::{error, labels, selector, ClusterConn, KubeError, SERVICE_LABEL};
use crate::config::{IngressRoute, IngressTls, Service};

/// The Ingress object of `svc` in environment `env` (named like the service, labelled
/// like the other objects devenv creates), or none when it has no route.
pub fn object(env: &str, svc: &Service) -> Option<Value> {
    let route = svc.ingress.as_ref()?;
    Some(render(env, &svc.name, route))
}

fn render(env: &str, service: &str, r: &IngressRoute) -> Value {
    let paths: Vec<Value> = r
        .paths
        .iter()
        .map(|p| {
            json!({
                "path": p,
                "pathType": "Prefix",
                "backend": { "service": { "name": r.backend, "port": { "number": r.port } } },
            })
        })
        .collect();
    let mut spec = json!({
        "rules": [{ "host": r.host, "http": { "paths": paths } }],
    });
    if let Some(class) = &r.class {
        spec["ingressClassName"] = json!(class);
    }
    match &r.tls {
        IngressTls::Off => {}
        IngressTls::ControllerDefault => spec["tls"] = json!([{ "hosts": [r.host] }]),
        IngressTls::Secret(s) => spec["tls"] = json!([{ "hosts": [r.host], "secretName": s }]),
    }
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": { "name": service, "labels": labels(env, service) },
        "spec": spec,
    })
}

/// Deletes the environment's Ingresses whose service is not in `wanted` (a service
/// removed from the config, or one whose Ingress was turned off); returns their names.
pub async fn prune(kenv: &ClusterConn, wanted: &[&str]) -> Result<Vec<String>, KubeError> {
    let api: Api<Ingress> = Api::namespaced(kenv.client.clone(), &kenv.namespace);
    let list = api
        .list_metadata(&ListParams::default().labels(&selector(&kenv.env, None)))
        .await
        .map_err(|e| error::explain_in(&e, &kenv.context, "the environment's Ingresses"))?;
    let mut deleted = Vec::new();
    for item in list.items {
        let service = item
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_LABEL))
            .map(String::as_str)
            .unwrap_or_default();
        let Some(name) = item.metadata.name else {
            continue;
        };
        if wanted.contains(&service) && name == service {
            continue;
        }
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => deleted.push(name),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                return Err(error::explain_in(
                    &e,
                    &kenv.context,
                    &format!("Ingress {name}"),
                ))
            }
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(tls: IngressTls, class: Option<&str>) -> IngressRoute {
        IngressRoute {
            host: "web.shop.localhost".into(),
            class: class.map(String::from),
            tls,
            paths: vec!["/".into(), "/api".into()],
            backend: "web".into(),
            port: 8080,
        }
    }

    #[test]
    fn an_ingress_routes_each_path_to_the_service_port_under_its_host() {
        let mut svc = Service::test("web");
        svc.ingress = Some(route(IngressTls::Off, Some("traefik")));
        let o = object("shop", &svc).expect("an Ingress");
        assert_eq!(o["apiVersion"], "networking.k8s.io/v1");
        assert_eq!(o["kind"], "Ingress");
        assert_eq!(o["metadata"]["name"], "web");
        assert_eq!(
            o["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "devenv"
        );
        assert_eq!(o["metadata"]["labels"]["devenv.dev/environment"], "shop");
        assert_eq!(o["metadata"]["labels"]["devenv.dev/service"], "web");
        assert_eq!(o["spec"]["ingressClassName"], "traefik");
        let rule = &o["spec"]["rules"][0];
        assert_eq!(rule["host"], "web.shop.localhost");
        let paths = rule["http"]["paths"].as_array().unwrap();
        assert_eq!(paths.len(), 2);
        assert_eq!(paths[1]["path"], "/api");
        assert_eq!(paths[1]["pathType"], "Prefix");
        assert_eq!(paths[1]["backend"]["service"]["name"], "web");
        assert_eq!(paths[1]["backend"]["service"]["port"]["number"], 8080);
        assert!(o["spec"].get("tls").is_none(), "{o}");
        // It is a valid networking/v1 Ingress.
        let typed: Ingress = serde_json::from_value(o).unwrap();
        assert_eq!(typed.spec.unwrap().rules.unwrap().len(), 1);
    }

    #[test]
    fn tls_is_the_controllers_certificate_or_a_secret_and_no_class_is_the_default() {
        let mut svc = Service::test("web");
        svc.ingress = Some(route(IngressTls::ControllerDefault, None));
        let o = object("shop", &svc).unwrap();
        assert!(o["spec"].get("ingressClassName").is_none(), "{o}");
        assert_eq!(
            o["spec"]["tls"],
            json!([{ "hosts": ["web.shop.localhost"] }])
        );
        svc.ingress = Some(route(IngressTls::Secret("shop-tls".into()), None));
        let o = object("shop", &svc).unwrap();
        assert_eq!(
            o["spec"]["tls"],
            json!([{ "hosts": ["web.shop.localhost"], "secretName": "shop-tls" }])
        );
        svc.ingress = None;
        assert!(object("shop", &svc).is_none());
    }
}
