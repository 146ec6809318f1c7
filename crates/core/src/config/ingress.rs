//! `spec.networking.ingress` and a service's `ingress:` key: a URL for every
//! kubernetes service through the cluster's ingress controller. The raw shapes, the
//! checked [`IngressRoute`] each service gets, and the checks; the Ingress object is
//! rendered by `kube::ingress`.
//!
//! With `networking.ingress` set, every kubernetes service with a TCP port gets an
//! Ingress for `SERVICE.ENV.DOMAIN` (presets, which speak their own protocols, only
//! when their `ingress:` asks for one). A service's `ingress:` is `false` (none),
//! `true`, or `{paths, port, service}`.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use super::check::Checker;
use super::model::{PortSpec, Protocol, RuntimeKind, Service};
use super::raw::{RawPortRef, Strings};

/// The domain when `networking.ingress` names none: `*.localhost` resolves to
/// loopback in browsers and curl, and k3d publishes its Traefik there.
pub const DEFAULT_DOMAIN: &str = "localhost";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawNetworking {
    pub ingress: Option<RawIngress>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawIngress {
    /// The IngressClass (`ingressClassName`); none: the cluster's default class.
    pub class: Option<String>,
    pub domain: Option<String>,
    /// `false`, `true` (the controller's default certificate) or a Secret's name.
    pub tls: Option<RawTls>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RawTls {
    Flag(bool),
    Secret(String),
}

impl<'de> Deserialize<'de> for RawTls {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawTls;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`true`, `false` or the name of a TLS Secret")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawTls, E> {
                Ok(RawTls::Flag(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawTls, E> {
                Ok(RawTls::Secret(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A service's `ingress:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RawServiceIngress {
    Flag(bool),
    Spec(RawServiceIngressSpec),
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawServiceIngressSpec {
    /// Path prefixes routed to the service; default `/`.
    pub paths: Option<Strings>,
    /// One of the service's ports, by name or number; default its first TCP port.
    pub port: Option<RawPortRef>,
    /// The Kubernetes Service the Ingress points at; default the service's name (the
    /// Service devenv creates for `image:` services).
    pub service: Option<String>,
}

impl<'de> Deserialize<'de> for RawServiceIngress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawServiceIngress;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`true`, `false` or `{paths, port, service}`")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawServiceIngress, E> {
                Ok(RawServiceIngress::Flag(v))
            }
            fn visit_map<A: de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<RawServiceIngress, A::Error> {
                RawServiceIngressSpec::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawServiceIngress::Spec)
            }
        }
        d.deserialize_any(V)
    }
}

/// TLS of the Ingresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngressTls {
    Off,
    /// TLS with the controller's default certificate (no `secretName`).
    ControllerDefault,
    /// TLS with the certificate in this Secret of the environment's namespace.
    Secret(String),
}

/// The Ingress a kubernetes service gets: everything needed to render it, so a change
/// of `networking.ingress` is a change of the service (which `up` applies again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressRoute {
    /// `SERVICE.ENV.DOMAIN`.
    pub host: String,
    pub class: Option<String>,
    pub tls: IngressTls,
    /// Path prefixes, each starting with `/`.
    pub paths: Vec<String>,
    /// The Kubernetes Service the paths lead to, and its port.
    pub backend: String,
    pub port: u16,
}

impl IngressRoute {
    /// `http://HOST/` (`https` with TLS): the service's URL.
    pub fn url(&self) -> String {
        let scheme = match self.tls {
            IngressTls::Off => "http",
            _ => "https",
        };
        format!("{scheme}://{}/", self.host)
    }
}

/// A DNS subdomain (RFC 1123): dot-separated labels, at most 253 characters.
fn is_dns_name(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(super::names::is_label)
}

struct Settings {
    class: Option<String>,
    domain: String,
    tls: IngressTls,
}

fn settings(c: &mut Checker<'_>, raw: RawIngress) -> Option<Settings> {
    let before = c.errors.len();
    let at = "spec.networking.ingress";
    if let Some(class) = &raw.class {
        if !is_dns_name(class) {
            c.error(
                &format!("{at}.class"),
                format!("`{class}` is not a valid IngressClass name"),
                Some("the name of an IngressClass of the cluster (lowercase letters, digits, `-`, `.`), e.g. `traefik` or `nginx`; leave it out for the cluster's default class".into()),
            );
        }
    }
    let domain = raw
        .domain
        .map(|d| d.trim_end_matches('.').to_owned())
        .unwrap_or_else(|| DEFAULT_DOMAIN.to_owned());
    if !is_dns_name(&domain) {
        c.error(
            &format!("{at}.domain"),
            format!("`{domain}` is not a DNS name"),
            Some("lowercase labels of letters, digits and `-`, separated by dots, e.g. `localhost` or `dev.example.com`; no scheme, port or `*`".into()),
        );
    }
    let tls = match raw.tls {
        None | Some(RawTls::Flag(false)) => IngressTls::Off,
        Some(RawTls::Flag(true)) => IngressTls::ControllerDefault,
        Some(RawTls::Secret(s)) if is_dns_name(&s) => IngressTls::Secret(s),
        Some(RawTls::Secret(s)) => {
            c.error(
                &format!("{at}.tls"),
                format!("`{s}` is not a valid Secret name"),
                Some("`true` for the controller's default certificate, `false`, or the name of a `kubernetes.io/tls` Secret in the environment's namespace".into()),
            );
            IngressTls::Off
        }
    };
    (c.errors.len() == before).then_some(Settings {
        class: raw.class,
        domain,
        tls,
    })
}

/// Checks `spec.networking` and the services' `ingress:` keys (`keys[i]` belongs to
/// `spec.services[i]`), and gives each kubernetes service its route.
pub(crate) fn apply(
    c: &mut Checker<'_>,
    networking: Option<RawNetworking>,
    env_name: Option<&str>,
    services: &mut [(usize, Service)],
    keys: &[(usize, Option<RawServiceIngress>)],
) {
    let settings = networking
        .and_then(|n| n.ingress)
        .and_then(|raw| settings(c, raw));
    for (i, svc) in services.iter_mut() {
        let key = keys
            .iter()
            .find(|(k, _)| k == i)
            .and_then(|(_, k)| k.clone());
        let path = format!("spec.services[{i}].ingress");
        if let Some(route) = route(c, &path, svc, key, settings.as_ref(), env_name) {
            svc.ingress = Some(route);
        }
    }
}

fn route(
    c: &mut Checker<'_>,
    path: &str,
    svc: &Service,
    key: Option<RawServiceIngress>,
    settings: Option<&Settings>,
    env_name: Option<&str>,
) -> Option<IngressRoute> {
    let spec = match key {
        Some(RawServiceIngress::Flag(false)) => return None,
        Some(RawServiceIngress::Flag(true)) => Some(RawServiceIngressSpec {
            paths: None,
            port: None,
            service: None,
        }),
        Some(RawServiceIngress::Spec(s)) => Some(s),
        None => None,
    };
    let asked = spec.is_some();
    if asked {
        match svc.runtime {
            RuntimeKind::Kubernetes => {}
            RuntimeKind::Local => {
                c.error(
                    path,
                    format!("service `{}` runs locally: an Ingress routes to pods in a cluster", svc.name),
                    Some("remove `ingress`: the local router gives a local service its URL, `http://SERVICE.ENV.localhost:7480/`".into()),
                );
                return None;
            }
            other => {
                c.error(
                    path,
                    format!(
                        "service `{}` runs as a {} service: only kubernetes services get an Ingress",
                        svc.name,
                        other.as_str()
                    ),
                    Some("remove `ingress`".into()),
                );
                return None;
            }
        }
    }
    let Some(settings) = settings else {
        if asked {
            c.error(
                path,
                format!(
                    "service `{}` asks for an Ingress, and `spec.networking.ingress` is not set",
                    svc.name
                ),
                Some(
                    "add `spec.networking: { ingress: { class: traefik, domain: localhost } }`"
                        .into(),
                ),
            );
        }
        return None;
    };
    if svc.runtime != RuntimeKind::Kubernetes || (svc.preset.is_some() && !asked) {
        return None;
    }
    let spec = spec.unwrap_or(RawServiceIngressSpec {
        paths: None,
        port: None,
        service: None,
    });
    // A preset's port is filled in after the checks (`preset::apply_all`).
    let port_specs = match svc.preset {
        Some(p) if svc.port_specs.is_empty() => {
            vec![PortSpec::number(super::preset::default_port(p))]
        }
        _ => svc.port_specs.clone(),
    };
    let tcp = |p: &&PortSpec| p.protocol == Protocol::Tcp;
    let port = match &spec.port {
        None => match port_specs.iter().find(tcp) {
            Some(p) => p.port,
            None if asked => {
                c.error(
                    path,
                    format!(
                        "service `{}` has no TCP port for its Ingress to reach",
                        svc.name
                    ),
                    Some("add `ports: [8080]` to the service, or `ingress: false`".into()),
                );
                return None;
            }
            // No ports: nothing to route to, no Ingress.
            None => return None,
        },
        Some(r) => {
            let found = match r {
                RawPortRef::Number(n) => port_specs.iter().find(|p| i64::from(p.port) == *n),
                RawPortRef::Name(n) => port_specs
                    .iter()
                    .find(|p| p.name.as_deref() == Some(n.as_str())),
            };
            let known = port_specs
                .iter()
                .map(|p| match &p.name {
                    Some(n) => format!("{n} ({})", p.port),
                    None => p.port.to_string(),
                })
                .collect::<Vec<_>>()
                .join(", ");
            match found {
                Some(p) if p.protocol == Protocol::Tcp => p.port,
                Some(p) => {
                    c.error(
                        &format!("{path}.port"),
                        format!(
                            "port {} of service `{}` is {}: an Ingress carries HTTP over TCP",
                            p.port,
                            svc.name,
                            p.protocol.as_str()
                        ),
                        None,
                    );
                    return None;
                }
                None => {
                    let what = match r {
                        RawPortRef::Number(n) => n.to_string(),
                        RawPortRef::Name(n) => format!("`{n}`"),
                    };
                    let names = port_specs.iter().filter_map(|p| p.name.as_deref());
                    let hint = match r {
                        RawPortRef::Name(n) => super::suggest::closest(n, names)
                            .map(|s| format!("did you mean `{s}`?")),
                        RawPortRef::Number(_) => None,
                    };
                    let hint = hint.or_else(|| {
                        Some(if known.is_empty() {
                            "the service has no `ports`".to_owned()
                        } else {
                            format!("one of its ports: {known}")
                        })
                    });
                    c.error(
                        &format!("{path}.port"),
                        format!(
                            "port {what} is not among the ports of service `{}`",
                            svc.name
                        ),
                        hint,
                    );
                    return None;
                }
            }
        }
    };
    let paths = spec.paths.map(|p| p.0).unwrap_or_default();
    let mut ok = true;
    for (j, p) in paths.iter().enumerate() {
        if !p.starts_with('/') || p.chars().any(|ch| ch.is_whitespace() || ch.is_control()) {
            c.error(
                &format!("{path}.paths[{j}]"),
                format!("`{p}` is not a URL path"),
                Some("a path prefix starting with `/`, e.g. `/api`".into()),
            );
            ok = false;
        }
    }
    let backend = spec.service.unwrap_or_else(|| svc.name.clone());
    if !super::names::is_label(&backend) {
        c.error(
            &format!("{path}.service"),
            format!("`{backend}` is not a valid Service name"),
            Some(super::names::label_hint(&backend)),
        );
        ok = false;
    }
    let host = format!("{}.{}.{}", svc.name, env_name?, settings.domain);
    if host.len() > 253 {
        c.error(
            path,
            format!("the host `{host}` is longer than 253 characters"),
            Some("shorten the domain, the service's name or `metadata.name`".into()),
        );
        ok = false;
    }
    ok.then(|| IngressRoute {
        host,
        class: settings.class.clone(),
        tls: settings.tls.clone(),
        paths: if paths.is_empty() {
            vec!["/".into()]
        } else {
            paths
        },
        backend,
        port,
    })
}
