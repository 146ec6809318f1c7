//! `spec.cluster.image`: the registry that `build:` images are pushed to, so that a
//! cluster which cannot see the builder's images (any cluster but a local k3d) can
//! pull them. One registry per cluster, not per service: it is where that cluster
//! pulls from. `kube::build` pushes there and the workload is deployed by digest.
//! `build.tarball` (an OCI image layout tarball used when no builder is present) is
//! only ever pushed, so it needs a registry: checked here too.

use serde::Deserialize;

use super::check::Checker;
use super::model::Service;

/// The raw `spec.cluster.image`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawImage {
    /// `HOST[:PORT][/PATH]`: where built images are pushed.
    pub registry: Option<String>,
    /// Plain HTTP to a registry that is not on loopback.
    pub insecure: Option<bool>,
}

/// A checked `spec.cluster.image.registry`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRegistry {
    /// `host[:port]`, as image references name it.
    pub host: String,
    /// The repository path under the host (`acme/dev`), if any.
    pub path: Option<String>,
    /// `insecure: true`: plain HTTP although the host is not loopback.
    pub insecure: bool,
}

impl ImageRegistry {
    /// `localhost`, `127.0.0.0/8` or `[::1]`, any port.
    pub fn is_loopback(&self) -> bool {
        let host = match self.host.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => self.host.split(':').next().unwrap_or(""),
        };
        host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    /// Plain HTTP: only on loopback or when the config says `insecure: true`.
    pub fn plain_http(&self) -> bool {
        self.insecure || self.is_loopback()
    }

    /// `HOST[/PATH]/<env>-<service>`: the repository a service's image is pushed to.
    pub fn repository(&self, env: &str, service: &str) -> String {
        match &self.path {
            Some(p) => format!("{}/{p}/{env}-{service}", self.host),
            None => format!("{}/{env}-{service}", self.host),
        }
    }
}

const KEY: &str = "spec.cluster.image.registry";

pub(crate) fn check(c: &mut Checker<'_>, raw: Option<RawImage>) -> Option<ImageRegistry> {
    let raw = raw?;
    let insecure = raw.insecure.unwrap_or(false);
    let Some(value) = raw.registry.map(|r| r.trim().to_owned()) else {
        if raw.insecure.is_some() {
            c.error(
                "spec.cluster.image.insecure",
                "`insecure` applies to `spec.cluster.image.registry`, which is not set".into(),
                Some("e.g. `image: { registry: registry.lan:5000, insecure: true }`".into()),
            );
        }
        return None;
    };
    match parse(&value) {
        Ok((host, path)) => Some(ImageRegistry {
            host,
            path,
            insecure,
        }),
        Err((message, hint)) => {
            c.error(KEY, message, Some(hint.into()));
            None
        }
    }
}

const FORM: &str = "the form is `HOST[:PORT][/PATH]`, e.g. `127.0.0.1:5000` or `ghcr.io/acme/dev`";

/// `HOST[:PORT][/PATH]` -> (`host[:port]`, path).
fn parse(value: &str) -> Result<(String, Option<String>), (String, &'static str)> {
    if value.is_empty() {
        return Err(("the registry is empty".into(), FORM));
    }
    if let Some((scheme, _)) = value.split_once("://") {
        return Err((
            format!("`{value}` has a scheme (`{scheme}://`); the registry is named without one"),
            "write `HOST[:PORT][/PATH]`; a registry that is not on loopback speaks plain HTTP only with `insecure: true`",
        ));
    }
    if value.contains('@') {
        return Err((
            format!("`{value}` names a digest; the registry is where images go, devenv names them"),
            FORM,
        ));
    }
    let (host, path) = match value.split_once('/') {
        Some((h, p)) => (h, Some(p.trim_end_matches('/'))),
        None => (value, None),
    };
    let (name, port) = if host.starts_with('[') {
        match host.split_once("]:") {
            Some((n, p)) => (&host[..=n.len()], Some(p)),
            None => (host, None),
        }
    } else {
        match host.split_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (host, None),
        }
    };
    let name_ok = !name.is_empty()
        && (name.starts_with('[') && name.ends_with(']')
            || name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '.' || ch == '-'));
    if !name_ok {
        return Err((format!("`{name}` is not a host name"), FORM));
    }
    if let Some(port) = port {
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err((
                format!("`{port}` is not a port (1-65535) in `{value}`"),
                FORM,
            ));
        }
    }
    let path = match path {
        None | Some("") => None,
        Some(p) => {
            let component_ok = |s: &str| {
                !s.is_empty()
                    && s.chars().all(|ch| {
                        ch.is_ascii_lowercase()
                            || ch.is_ascii_digit()
                            || matches!(ch, '.' | '_' | '-')
                    })
                    && s.starts_with(|ch: char| ch.is_ascii_alphanumeric())
            };
            if let Some(bad) = p.split('/').find(|s| !component_ok(s)) {
                return Err((
                    format!(
                        "`{bad}` is not a repository path component in `{value}` (a tag goes in none: devenv tags its images itself)"
                    ),
                    "path components are lowercase letters, digits, `.`, `_` and `-`, e.g. `ghcr.io/acme/dev`",
                ));
            }
            Some(p.to_owned())
        }
    };
    Ok((host.to_owned(), path))
}

/// `build.tarball` is pushed to the registry when no builder is present: without a
/// registry it would do nothing.
pub(crate) fn check_tarballs(
    c: &mut Checker<'_>,
    services: &[(usize, Service)],
    registry: Option<&ImageRegistry>,
) {
    if registry.is_some() {
        return;
    }
    for (i, s) in services {
        if s.build.as_ref().is_some_and(|b| b.tarball.is_some()) {
            c.error(
                &format!("spec.services[{i}].build.tarball"),
                format!(
                    "`{}`'s `build.tarball` is pushed to `spec.cluster.image.registry`, which is not set",
                    s.name
                ),
                Some(
                    "set `spec.cluster: { image: { registry: HOST[:PORT] } }`, or remove `tarball`"
                        .into(),
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(host: &str) -> ImageRegistry {
        ImageRegistry {
            host: host.into(),
            path: None,
            insecure: false,
        }
    }

    #[test]
    fn parse_accepts_hosts_ports_and_paths() {
        assert_eq!(
            parse("127.0.0.1:5000").unwrap(),
            ("127.0.0.1:5000".into(), None)
        );
        assert_eq!(
            parse("ghcr.io/acme/dev/").unwrap(),
            ("ghcr.io".into(), Some("acme/dev".into()))
        );
        assert_eq!(parse("[::1]:5000").unwrap().0, "[::1]:5000");
        assert!(parse("http://127.0.0.1:5000")
            .unwrap_err()
            .0
            .contains("scheme"));
        assert!(parse("reg:99999").unwrap_err().0.contains("not a port"));
        assert!(parse("reg:0").is_err());
        assert!(parse("reg/Acme").unwrap_err().0.contains("`Acme`"));
        assert!(parse("reg/acme:v1").is_err(), "a tag is refused");
        assert!(parse("reg/app@sha256:00").unwrap_err().0.contains("digest"));
        assert!(parse("re g").is_err());
    }

    #[test]
    fn plain_http_only_on_loopback_or_when_insecure() {
        assert!(reg("127.0.0.1:5000").plain_http());
        assert!(reg("127.1.2.3").plain_http());
        assert!(reg("localhost:5000").plain_http());
        assert!(reg("[::1]:5000").plain_http());
        assert!(!reg("registry.lan:5000").plain_http());
        assert!(!reg("10.0.0.1:5000").plain_http());
        let mut r = reg("registry.lan:5000");
        r.insecure = true;
        assert!(r.plain_http());
    }

    #[test]
    fn repository_is_under_the_path() {
        assert_eq!(
            reg("127.0.0.1:5000").repository("shop", "web"),
            "127.0.0.1:5000/shop-web"
        );
        let mut r = reg("ghcr.io");
        r.path = Some("acme/dev".into());
        assert_eq!(r.repository("shop", "web"), "ghcr.io/acme/dev/shop-web");
    }
}
