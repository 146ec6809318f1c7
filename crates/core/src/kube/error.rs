//! Kubernetes errors as one line of cause plus a hint. kube-rs reports transport
//! failures as a chain of wrapped errors; users need the bottom of the chain and what
//! to do about it, never the stack. Callers decide by [`KubeErrorKind`], never by the
//! text.
//!
//! How a failure is classified: by type wherever kube's error types allow it — the
//! API server's answer (`kube::Error::Api`, by HTTP status), credentials
//! (`kube::Error::Auth`), TLS set-up (`kube::Error::RustlsTls`), and in the transport
//! chain `std::io::Error` kinds (refused, timed out, reset) and the timeout layers'
//! `Elapsed` (tokio's and tower's). What must stay textual, only to choose the words
//! and hint of the message (never what a caller does): a DNS failure and a
//! certificate rejected during the handshake. hyper-util's connect error
//! (`ConnectError`, "dns error") is not a public type, and getaddrinfo's failure
//! reaches us as an uncategorised `io::Error`; a rejected certificate is a
//! `rustls::Error` inside an `io::Error`, and rustls is not a dependency of ours (kube
//! brings it in), so it is recognised by its text. Both are `Unreachable` either way.

use std::error::Error as StdError;
use std::fmt;

/// A cluster problem, already explained for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeError {
    pub message: String,
    pub hint: Option<String>,
    pub kind: KubeErrorKind,
}

/// What went wrong, for callers to decide on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KubeErrorKind {
    /// The API server answered with this HTTP status.
    Api(u16),
    /// The API server was not reached (refused, timed out, no such host, TLS).
    Unreachable,
    /// No credentials for the context (an exec plugin or token file failed).
    Credentials,
    /// The cluster does not serve this apiVersion/kind (no such CRD).
    UnknownKind,
    /// Anything else: a tool (k3d, docker, helm) failed, an object is malformed.
    Other,
}

impl KubeError {
    /// An error of kind [`KubeErrorKind::Other`].
    pub fn new(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: Some(hint.into()).filter(|h: &String| !h.is_empty()),
            kind: KubeErrorKind::Other,
        }
    }

    pub fn with_kind(mut self, kind: KubeErrorKind) -> Self {
        self.kind = kind;
        self
    }

    /// The API server was not reached at all (as opposed to refusing a request).
    pub fn is_unreachable(&self) -> bool {
        self.kind == KubeErrorKind::Unreachable
    }
}

impl fmt::Display for KubeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.hint {
            Some(h) => write!(f, "{} (hint: {h})", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl StdError for KubeError {}

/// Explains an error talking to the cluster of `context`.
pub fn explain(e: &kube::Error, context: &str) -> KubeError {
    explain_in(e, context, "")
}

/// Explains an error about `what` (e.g. "Deployment api"), for messages.
pub fn explain_in(e: &kube::Error, context: &str, what: &str) -> KubeError {
    let about = if what.is_empty() {
        String::new()
    } else {
        format!("{what}: ")
    };
    match e {
        kube::Error::Api(status) => {
            let code = status.code;
            let msg = status.message.clone();
            let (message, hint) = match code {
                401 => (
                    format!("the API server of context `{context}` rejected the credentials (401 Unauthorized)"),
                    "they may have expired: log in again or refresh the kubeconfig (k3d: `k3d kubeconfig merge`)".to_owned(),
                ),
                403 => match denied_permission(&msg) {
                    Some(p) => (
                        format!(
                            "{about}forbidden: cannot {} {} in namespace {}: the Role needs verb {} on {}{}",
                            p.verb,
                            p.qualified(),
                            p.namespace,
                            p.verb,
                            p.resource,
                            if p.group.is_empty() { String::new() } else { format!(" (apiGroup {})", p.group) },
                        ),
                        "ask a cluster admin to add it to your Role (docs/rbac.md lists what devenv needs)".to_owned(),
                    ),
                    None => (
                        format!("{about}permission denied: {msg}"),
                        "ask a cluster admin for this RBAC permission, or use a context that has it".to_owned(),
                    ),
                },
                404 => (format!("{about}not found: {msg}"), String::new()),
                409 => (
                    format!("{about}conflict: {msg}"),
                    "another field manager owns these fields; remove them from the other tool or delete the object".to_owned(),
                ),
                422 | 400 => (format!("{about}rejected by the API server: {msg}"), String::new()),
                _ => (format!("{about}API server error {code}: {msg}"), String::new()),
            };
            KubeError::new(message, hint).with_kind(KubeErrorKind::Api(code))
        }
        kube::Error::Auth(inner) => KubeError::new(
            format!(
                "cannot get credentials for context `{context}`: {}",
                bottom(inner)
            ),
            "log in again, or check the kubeconfig's user (exec plugin, token file)",
        )
        .with_kind(KubeErrorKind::Credentials),
        kube::Error::RustlsTls(inner) => tls(context, &bottom(inner)),
        _ => transport(e, context),
    }
}

/// The permission an RBAC denial names. The API server's Status carries the kind
/// and group but not the verb, which only its message says
/// (`User "U" cannot VERB resource "R" in API group "G" in the namespace "N"`), so it
/// is read from there, for the wording only: a message in another shape keeps the
/// server's text, and the kind stays `Api(403)` either way.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Denied<'a> {
    pub verb: &'a str,
    pub resource: &'a str,
    pub group: &'a str,
    pub namespace: &'a str,
}

impl Denied<'_> {
    /// `statefulsets.apps`, `pods/exec`.
    fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.to_owned()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }
}

pub(crate) fn denied_permission(msg: &str) -> Option<Denied<'_>> {
    let quoted_after = |s: &'static str| -> Option<&str> {
        let rest = &msg[msg.find(s)? + s.len()..];
        rest.split('"').next()
    };
    let rest = &msg[msg.find("\" cannot ")? + "\" cannot ".len()..];
    let verb = rest.split(' ').next().filter(|v| !v.is_empty())?;
    Some(Denied {
        verb,
        resource: quoted_after(" resource \"")?,
        group: quoted_after(" in API group \"").unwrap_or(""),
        namespace: quoted_after(" in the namespace \"")?,
    })
}

/// Connection-level failures: find the innermost cause and say it plainly.
fn transport(e: &kube::Error, context: &str) -> KubeError {
    use std::io::ErrorKind;
    let mut io_kind = None;
    let mut elapsed = false;
    let mut text = Vec::new();
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            io_kind = io_kind.or(Some(io.kind()));
        }
        elapsed |=
            err.is::<tokio::time::error::Elapsed>() || err.is::<tower::timeout::error::Elapsed>();
        text.push(err.to_string().to_lowercase());
        cur = err.source();
    }
    // Textual, for the wording only (see the top of this file).
    let all = text.join(" | ");
    let cause = match io_kind {
        Some(ErrorKind::ConnectionRefused) => "connection refused".to_owned(),
        Some(ErrorKind::TimedOut) => "timed out".to_owned(),
        Some(ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted) => {
            "the connection was reset".to_owned()
        }
        _ if elapsed => "timed out".to_owned(),
        _ if all.contains("dns error") || all.contains("failed to lookup") => {
            "the server's host name does not resolve".to_owned()
        }
        _ if all.contains("certificate") && all.contains("expired") => {
            return KubeError::new(
                format!("the TLS certificate of context `{context}` has expired"),
                "refresh the kubeconfig (k3d: `k3d kubeconfig merge`)",
            )
            .with_kind(KubeErrorKind::Unreachable);
        }
        _ if all.contains("certificate") || all.contains("tls") => {
            return tls(context, &text.last().cloned().unwrap_or_default());
        }
        _ => text.last().cloned().unwrap_or_else(|| e.to_string()),
    };
    KubeError::new(
        format!("cannot reach the API server of context `{context}`: {cause}"),
        "is the cluster running? check with `devenv cluster status`",
    )
    .with_kind(KubeErrorKind::Unreachable)
}

fn tls(context: &str, cause: &str) -> KubeError {
    KubeError::new(
        format!("TLS with the API server of context `{context}` failed: {cause}"),
        "check the kubeconfig's certificate-authority data",
    )
    .with_kind(KubeErrorKind::Unreachable)
}

fn bottom(e: &(dyn StdError + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, message: &str) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            message: message.into(),
            ..Default::default()
        }))
    }

    #[test]
    fn api_errors_are_one_line_with_a_hint() {
        let e = explain(&status(401, "Unauthorized"), "dev");
        assert!(e.message.contains("rejected the credentials"), "{e}");
        assert!(e.hint.as_deref().unwrap().contains("log in again"));
        let e = explain_in(
            &status(403, "deployments.apps is forbidden: User \"bob\" cannot create resource \"deployments\""),
            "dev",
            "Deployment web",
        );
        assert!(
            e.message
                .starts_with("Deployment web: permission denied: deployments.apps is forbidden"),
            "{e}"
        );
        assert!(e.hint.as_deref().unwrap().contains("RBAC"));
        assert!(!e.to_string().contains('\n'));
        assert!(!e.is_unreachable());
        assert_eq!(e.kind, KubeErrorKind::Api(403));
    }

    #[test]
    fn an_rbac_denial_names_the_permission_the_role_needs() {
        let e = explain_in(
            &status(403, "statefulsets.apps \"ws-dev-pat\" is forbidden: User \"system:serviceaccount:team:dev\" cannot create resource \"statefulsets\" in API group \"apps\" in the namespace \"team\""),
            "dev",
            "StatefulSet ws-dev-pat",
        );
        assert_eq!(
            e.message,
            "StatefulSet ws-dev-pat: forbidden: cannot create statefulsets.apps in namespace team: the Role needs verb create on statefulsets (apiGroup apps)"
        );
        assert!(e.hint.as_deref().unwrap().contains("docs/rbac.md"));
        assert_eq!(e.kind, KubeErrorKind::Api(403));
        let e = explain(
            &status(403, "pods \"ws-0\" is forbidden: User \"u\" cannot create resource \"pods/exec\" in API group \"\" in the namespace \"team\""),
            "dev",
        );
        assert_eq!(
            e.message,
            "forbidden: cannot create pods/exec in namespace team: the Role needs verb create on pods/exec"
        );
    }

    #[test]
    fn transport_errors_name_the_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = explain(&kube::Error::Service(Box::new(io)), "dev");
        assert_eq!(
            e.message,
            "cannot reach the API server of context `dev`: connection refused"
        );
        assert!(e.is_unreachable());
        // Decided by the io::Error's kind, whatever its text.
        let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "operation failed");
        let e = explain(&kube::Error::Service(Box::new(io)), "dev");
        assert!(e.message.ends_with(": timed out"), "{e}");
        let e = explain(
            &kube::Error::Service(Box::new(tower::timeout::error::Elapsed::new())),
            "dev",
        );
        assert!(e.message.ends_with(": timed out"), "{e}");
        assert_eq!(e.kind, KubeErrorKind::Unreachable);
        // Not about the cluster: a tool, a malformed object.
        assert!(!KubeError::new("k3d failed", "").is_unreachable());
    }
}
