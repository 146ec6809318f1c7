//! A workspace's NetworkPolicy enforced by a real enforcer on the test cluster
//! (tests/cluster): kube-router v2.1.0's firewall, built from its Go module by
//! scripts/install-test-tools.sh and run by this test as a host process on the
//! cluster's admin kubeconfig, stopped at its end with its iptables chains and ipsets
//! removed (tests/cluster/netpol-clean.sh), even when the test fails.
//!
//! Why kube-router and not kube-network-policies v0.8.0 (SIG-Network's nfqueue
//! enforcer): the latter sends packets to user space with the nftables `queue`
//! statement, and this machine's kernel is built without it (`CONFIG_NFT_QUEUE` is not
//! set: `nft add rule ... queue num 100 bypass` fails). kube-router programs plain
//! iptables rules and ipsets, all of which the kernel has. The module registry lists
//! security reports for kube-router v2.1.0: it is used here only as a test tool, on
//! the loopback test cluster, for the length of this test.
//!
//! What is asserted, each with a real connection attempt (an HTTP GET with busybox nc, 3 s timeout):
//! before the enforcer runs a pod of another namespace reaches the workspace (the path
//! works, the policy alone enforces nothing); with it, that pod cannot reach the
//! workspace by Service or pod IP while a pod of the workspace's namespace can; the
//! workspace resolves names (egress DNS) and reaches its namespace, not a pod of
//! another namespace; a pod without a policy stays reachable from anywhere. Then the
//! enforcer is killed: the rules stay in the kernel (allowed traffic still flows, the
//! denial holds: no black hole, no opening), and the cleanup removes them all, after
//! which the other namespace reaches the workspace again.
//!
//! Needs KUBECONFIG pointing at the test cluster and root; run with `--ignored`.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use devenv_e2e::kube::{env_for, kc, kc_try, kubeconfig};
use devenv_e2e::{wait_until, workspace_root, TestEnv};

const BUSYBOX: &str = "devenv.test/busybox:1.35.0";
/// Keep in step with KUBE_ROUTER_VERSION in scripts/install-test-tools.sh.
const KUBE_ROUTER_VERSION: &str = "v2.1.0";
/// How long an enforcer may take to program its rules after a change.
const PROGRAMMED: Duration = Duration::from_secs(90);

/// The cached kube-router binary (`DEVENV_KUBE_ROUTER` overrides).
fn kube_router_binary() -> PathBuf {
    if let Ok(p) = std::env::var("DEVENV_KUBE_ROUTER") {
        return PathBuf::from(p);
    }
    let home = std::env::var("HOME").expect("HOME");
    let p = PathBuf::from(home).join(format!(
        ".cache/devenv-tools/kube-router-{KUBE_ROUTER_VERSION}/kube-router"
    ));
    assert!(
        p.exists(),
        "kube-router is not built: {} is missing; run `bash scripts/install-test-tools.sh` (it builds kube-router {KUBE_ROUTER_VERSION} from its Go module), or set DEVENV_KUBE_ROUTER",
        p.display()
    );
    p
}

/// Removes kube-router's chains, jump rules and ipsets from the host.
fn clean_netfilter() -> Output {
    Command::new("bash")
        .arg(workspace_root().join("tests/cluster/netpol-clean.sh"))
        .output()
        .expect("run tests/cluster/netpol-clean.sh")
}

/// kube-router's firewall as a host process; dropping it kills it and removes what
/// it programmed, whatever the test's outcome.
struct Enforcer {
    child: Option<Child>,
    log: PathBuf,
}

impl Enforcer {
    fn start(log: PathBuf) -> Self {
        let before = clean_netfilter();
        assert!(
            before.status.success(),
            "leftovers of an earlier enforcer could not be removed: {}",
            String::from_utf8_lossy(&before.stderr)
        );
        let node = kc(&["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"]);
        let out = File::create(&log).expect("enforcer log");
        let child = Command::new(kube_router_binary())
            .args([
                "--run-firewall",
                "--run-router=false",
                "--run-service-proxy=false",
                "--enable-ipv6=false",
                "--health-port=0",
                "--metrics-port=0",
                "--service-cluster-ip-range=10.96.0.0/16",
                "--v=2",
            ])
            .arg(format!("--kubeconfig={}", kubeconfig()))
            .arg(format!("--hostname-override={}", node.trim()))
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("start kube-router");
        Enforcer {
            child: Some(child),
            log,
        }
    }

    /// Fails the test, with the enforcer's log, if it is not running.
    fn assert_running(&mut self) {
        if let Some(c) = self.child.as_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                panic!("kube-router exited ({status}):\n{}", self.log_tail());
            }
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Kills it as a crash would (no chance to clean up).
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Enforcer {
    fn drop(&mut self) {
        self.kill();
        let out = clean_netfilter();
        if !out.status.success() {
            eprintln!(
                "netpol-clean failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// Deletes the namespaces whatever the test's outcome.
struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = kc_try(&["delete", "namespace", ns, "--wait=false"]);
        }
    }
}

/// A busybox pod in `ns` serving `body` on port 8080.
fn server_pod(ns: &str, name: &str, body: &str) {
    let script =
        format!("mkdir -p /www && echo {body} > /www/index.html && exec httpd -f -p 8080 -h /www");
    kc(&[
        "run",
        name,
        "-n",
        ns,
        &format!("--image={BUSYBOX}"),
        "--image-pull-policy=Never",
        "--restart=Never",
        "--labels=role=np-test",
        "--command",
        "--",
        "sh",
        "-c",
        &script,
    ]);
}

fn wait_ready(ns: &str, what: &str) {
    kc(&[
        "wait",
        "-n",
        ns,
        "--for=condition=Ready",
        what,
        "--timeout=180s",
    ]);
}

fn pod_ip(ns: &str, pod: &str) -> String {
    kc(&[
        "get",
        "pod",
        pod,
        "-n",
        ns,
        "-o",
        "jsonpath={.status.podIP}",
    ])
    .trim()
    .to_owned()
}

/// The shell line of one real HTTP attempt at `addr` ("IP PORT"): busybox nc with a
/// 3 s timeout (busybox-static's wget crashes in its static glibc resolver, even for
/// an address).
fn http_get(addr: &str) -> String {
    format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {addr}")
}

/// The body of an HTTP 200, or the failure.
fn body(code: Option<i32>, stdout: &str, stderr: &str) -> Result<String, String> {
    if code == Some(0) && stdout.starts_with("HTTP/1.") && stdout.contains(" 200 ") {
        Ok(stdout.lines().last().unwrap_or_default().trim().to_owned())
    } else {
        Err(format!("exit {code:?}: {}{}", stdout.trim(), stderr.trim()))
    }
}

/// One real HTTP attempt from inside `pod` at `addr`: the body, or the failure.
fn fetch_from_pod(ns: &str, pod: &str, addr: &str) -> Result<String, String> {
    let out = kc_try(&["exec", "-n", ns, pod, "--", "sh", "-c", &http_get(addr)]);
    body(
        out.status.code(),
        &String::from_utf8_lossy(&out.stdout),
        &String::from_utf8_lossy(&out.stderr),
    )
}

/// The same attempt from inside the workspace, through `devenv workspace exec`.
fn fetch_from_workspace(t: &TestEnv, addr: &str) -> Result<String, String> {
    let out = t.devenv(&[
        "workspace",
        "exec",
        "dev",
        "--",
        "sh",
        "-c",
        &http_get(addr),
    ]);
    body(out.code, &out.stdout, &out.stderr)
}

/// Polls (deadline [`PROGRAMMED`]) until `attempt` gives `want`; the last outcome
/// otherwise, for the failure message.
fn until(
    want: bool,
    mut attempt: impl FnMut() -> Result<String, String>,
) -> Result<(), Result<String, String>> {
    let mut last = Err("never tried".to_owned());
    if wait_until(PROGRAMMED, || {
        last = attempt();
        last.is_ok() == want
    }) {
        Ok(())
    } else {
        Err(last)
    }
}

#[test]
#[ignore = "needs the test cluster and root (tests/cluster/test.sh runs it)"]
fn k8s_a_workspace_is_reached_from_its_namespace_only_with_an_enforcer() {
    let (mut t, env) = env_for("np");
    let user = "nina";
    t.set_var("DEVENV_USER", user);
    let ns = format!("devenv-{user}-{env}");
    let other = format!("np-other-{}", std::process::id());
    let _namespaces = Namespaces(vec![ns.clone(), other.clone()]);
    t.write_config(&format!(
        r#"apiVersion: devenv/v1
kind: Environment
metadata:
  name: {env}
spec:
  cluster: {{ provider: kubeconfig, shared: true }}
  workspaces:
    - name: dev
      image: {BUSYBOX}
      command: ["sh", "-c", "echo ws-reached > /tmp/index.html && exec httpd -f -p 8080 -h /tmp"]
      ports: [8080]
      idleTimeout: none
      volumes:
        - {{ name: workspace, size: 8Mi }}
        - {{ name: history, size: 8Mi }}
        - {{ name: config, size: 8Mi }}
"#
    ));
    t.devenv_ok(&["workspace", "create", "dev"]);
    let sts = format!("ws-dev-{user}");
    // devenv wrote the workspace's policy.
    let types = kc(&[
        "get",
        "networkpolicy",
        &sts,
        "-n",
        &ns,
        "-o",
        "jsonpath={.spec.policyTypes}",
    ]);
    assert!(
        types.contains("Ingress") && types.contains("Egress"),
        "{types}"
    );

    kc(&["create", "namespace", &other]);
    server_pod(&ns, "peer", "peer-reached");
    server_pod(&other, "outsider", "outsider-reached");
    wait_ready(&ns, "pod/peer");
    wait_ready(&other, "pod/outsider");

    // By address: busybox-static resolves names only in nslookup (its own resolver),
    // which asserts DNS below.
    let cluster_ip = kc(&[
        "get",
        "service",
        &sts,
        "-n",
        &ns,
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    let ws_svc = format!("{} 8080", cluster_ip.trim());
    let ws_pod = format!("{} 8080", pod_ip(&ns, &format!("{sts}-0")));
    let outsider = format!("{} 8080", pod_ip(&other, "outsider"));
    let peer = format!("{} 8080", pod_ip(&ns, "peer"));

    // Without an enforcer the policy is only an object: the other namespace gets in
    // (which also proves the path: pod, Service, DNS and the server all work).
    if let Err(last) = until(true, || fetch_from_pod(&other, "outsider", &ws_svc)) {
        panic!("before the enforcer, the other namespace should reach {ws_svc}: {last:?}");
    }

    let log = t.root().join("kube-router.log");
    let mut enforcer = Enforcer::start(log);

    // The other namespace is refused, by Service and by pod IP, once the rules are in.
    if let Err(last) = until(false, || fetch_from_pod(&other, "outsider", &ws_svc)) {
        enforcer.assert_running();
        panic!(
            "with the enforcer, {other}/outsider still reaches the workspace ({ws_svc}): {last:?}\n{}",
            enforcer.log_tail()
        );
    }
    enforcer.assert_running();
    let denied = fetch_from_pod(&other, "outsider", &ws_pod);
    assert!(
        denied.is_err(),
        "{other}/outsider reaches the workspace's pod IP {ws_pod}: {denied:?}"
    );

    // The workspace's own namespace still gets in.
    let same = fetch_from_pod(&ns, "peer", &ws_svc);
    assert_eq!(
        same.as_deref(),
        Ok("ws-reached"),
        "a pod of {ns} must reach the workspace"
    );
    // Egress: DNS resolves, the namespace is reachable, another namespace is not.
    let dns = t.devenv(&[
        "workspace",
        "exec",
        "dev",
        "--",
        "nslookup",
        "kubernetes.default.svc.cluster.local",
    ]);
    // busybox's nslookup also asks for AAAA, which has no answer here: the A record
    // (the API server's ClusterIP) in its output is the evidence, not its exit code.
    assert!(
        dns.stdout.contains("Address: 10.96.0.1"),
        "DNS from the workspace: {dns}"
    );
    assert_eq!(
        fetch_from_workspace(&t, &peer).as_deref(),
        Ok("peer-reached"),
        "the workspace must reach its namespace"
    );
    let out_of_ns = fetch_from_workspace(&t, &outsider);
    assert!(
        out_of_ns.is_err(),
        "the workspace reaches a pod of another namespace ({outsider}): {out_of_ns:?}"
    );
    // A pod no policy selects is unaffected: the other namespace reaches `peer`.
    assert_eq!(
        fetch_from_pod(&other, "outsider", &peer).as_deref(),
        Ok("peer-reached"),
        "a pod without a policy must stay reachable"
    );
    enforcer.assert_running();

    // A dying enforcer: its rules stay in the kernel, so nothing opens and nothing
    // allowed is black-holed.
    enforcer.kill();
    assert_eq!(
        fetch_from_pod(&ns, "peer", &ws_svc).as_deref(),
        Ok("ws-reached"),
        "after the enforcer died, allowed traffic must still flow"
    );
    assert!(
        fetch_from_pod(&other, "outsider", &ws_svc).is_err(),
        "after the enforcer died, the denial must hold until the rules are removed"
    );

    // Stopped and cleaned: nothing of it is left, and the policy enforces nothing again.
    drop(enforcer);
    let after = clean_netfilter();
    assert!(
        after.status.success(),
        "kube-router left rules or sets behind: {}",
        String::from_utf8_lossy(&after.stderr)
    );
    if let Err(last) = until(true, || fetch_from_pod(&other, "outsider", &ws_svc)) {
        panic!("after the cleanup, the other namespace should reach {ws_svc} again: {last:?}");
    }

    t.devenv_ok(&["workspace", "delete", "dev", "--volumes"]);
    let left = kc(&["get", "networkpolicy", "-n", &ns, "-o", "name"]);
    assert!(
        left.trim().is_empty(),
        "workspace delete must remove its NetworkPolicy: {left}"
    );
}
