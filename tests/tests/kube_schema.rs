//! Issue 16's volume and port schema against the real test cluster (tests/cluster):
//! a busybox pod mounts every volume type (persistent claim with its access mode, an
//! ephemeral emptyDir with a size limit, a tmpfs that is a tmpfs in /proc/mounts, a
//! configmap whose content follows a file edit and `up`, a hostPath on the single
//! node), and a named port serves its readiness probe and its forward.
//!
//! Needs KUBECONFIG pointing at the test cluster; run with `--ignored`.

use std::path::PathBuf;
use std::time::Duration;

use devenv_e2e::kube::{env_for, kc};
use devenv_e2e::{free_ports, http_get, wait_until};

const BUSYBOX: &str = "devenv.test/busybox:1.35.0";

/// The body served through the forward, if any.
fn body(port: u16) -> Option<String> {
    http_get(port, "/")
        .filter(|r| r.status == 200)
        .map(|r| r.body.trim().to_owned())
}

#[test]
#[ignore = "needs the test cluster (tests/cluster/test.sh runs it)"]
fn k8s_every_volume_type_and_a_named_port() {
    let (t, env) = env_for("schema");
    let ns = format!("devenv-{env}");
    let port = free_ports(1)[0];
    // The test cluster has one node, this machine: a hostPath is a directory here.
    let host_dir = PathBuf::from(format!("/tmp/devenv-k8s-host-{env}"));
    std::fs::create_dir_all(&host_dir).unwrap();
    std::fs::write(host_dir.join("from-host"), "host file\n").unwrap();
    let project = t.project.clone();
    std::fs::create_dir_all(project.join("config")).unwrap();
    std::fs::write(project.join("config/app.conf"), "greeting=hello\n").unwrap();
    t.write_config(&format!(
        r#"apiVersion: devenv/v1
kind: Environment
metadata:
  name: {env}
  version: "0.1"
spec:
  cluster: {{ provider: kubeconfig }}
  volumes:
    - {{ name: data, type: persistent, size: 64Mi, accessMode: ReadWriteOnce }}
    - {{ name: scratch, type: ephemeral, size: 16Mi }}
    - {{ name: mem, type: tmpfs, size: 16Mi }}
    - {{ name: conf, type: configmap, source: ./config }}
    - {{ name: hostdir, type: host, source: {host} }}
  services:
    - name: box
      image: {BUSYBOX}
      ports: [{{ name: http, port: 80, targetPort: 8080 }}]
      readiness: {{ http: {{ path: /, port: http }} }}
      forward: ["{port}:http"]
      volumes: ["data:/data", "scratch:/scratch", "mem:/mem", "conf:/etc/app", "hostdir:/host"]
      command: 'mkdir -p /www && cat /etc/app/app.conf > /www/index.html && echo ok > /data/x && echo ok > /mem/x && echo ok > /scratch/x && cat /host/from-host > /host/seen-by-pod && exec httpd -f -p 8080 -h /www'
"#,
        host = host_dir.display()
    ));
    let up = t.devenv(&["up"]);
    assert_eq!(up.code, Some(0), "up should succeed\n{up}");

    // The named port: the forward reaches the container's 8080, the probe is on 8080.
    assert!(
        wait_until(Duration::from_secs(30), || body(port).as_deref()
            == Some("greeting=hello")),
        "the configmap's file through the forward to the named port: {:?}",
        body(port)
    );
    let get = |kind: &str, name: &str, path: &str| {
        kc(&[
            "get",
            kind,
            name,
            "-n",
            &ns,
            "-o",
            &format!("jsonpath={path}"),
        ])
    };
    let c = "{.spec.template.spec.containers[0]";
    assert_eq!(
        get(
            "deployment",
            "box",
            &format!("{c}.readinessProbe.httpGet.port}}")
        ),
        "8080"
    );
    assert_eq!(
        get("deployment", "box", &format!("{c}.ports[0].name}}")),
        "http"
    );
    assert_eq!(get("service", "box", "{.spec.ports[0].port}"), "80");
    assert_eq!(get("service", "box", "{.spec.ports[0].targetPort}"), "8080");
    assert_eq!(get("service", "box", "{.spec.ports[0].name}"), "http");

    // persistent: a bound claim with its access mode and size.
    assert_eq!(get("pvc", "data", "{.status.phase}"), "Bound");
    assert_eq!(
        get("pvc", "data", "{.spec.accessModes[0]}"),
        "ReadWriteOnce"
    );
    assert_eq!(
        get("pvc", "data", "{.spec.resources.requests.storage}"),
        "64Mi"
    );
    // ephemeral: an emptyDir with its limit; tmpfs: memory-backed, and a tmpfs in the pod.
    let vols = "{.spec.template.spec.volumes";
    assert_eq!(
        get(
            "deployment",
            "box",
            &format!("{vols}[?(@.name==\"scratch\")].emptyDir.sizeLimit}}")
        ),
        "16Mi"
    );
    assert_eq!(
        get(
            "deployment",
            "box",
            &format!("{vols}[?(@.name==\"mem\")].emptyDir.medium}}")
        ),
        "Memory"
    );
    let mounts = t.devenv_ok(&["exec", "box", "--", "cat", "/proc/mounts"]);
    let mem = mounts
        .stdout
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("/mem"))
        .unwrap_or_else(|| panic!("/mem is not mounted:\n{mounts}"));
    assert_eq!(mem.split_whitespace().nth(2), Some("tmpfs"), "{mem}");
    let files = t.devenv_ok(&[
        "exec",
        "box",
        "--",
        "cat",
        "/data/x",
        "/mem/x",
        "/scratch/x",
    ]);
    assert_eq!(files.stdout, "ok\nok\nok\n", "{files}");
    // host: the node's directory, both ways.
    assert!(
        wait_until(Duration::from_secs(10), || host_dir
            .join("seen-by-pod")
            .exists()),
        "the pod wrote into the host directory"
    );
    assert_eq!(
        std::fs::read_to_string(host_dir.join("seen-by-pod")).unwrap(),
        "host file\n"
    );

    // configmap: a file edit and `up` update the ConfigMap and roll the pod out.
    let before = get(
        "deployment",
        "box",
        "{.spec.template.metadata.annotations.devenv\\.dev/configmap-conf}",
    );
    assert_eq!(before.len(), 32, "an md5 digest: {before:?}");
    std::fs::write(project.join("config/app.conf"), "greeting=changed\n").unwrap();
    let up = t.devenv(&["up"]);
    assert_eq!(up.code, Some(0), "second up should succeed\n{up}");
    // The file's bytes, its newline included.
    assert_eq!(
        get("configmap", "conf", "{.data.app\\.conf}"),
        "greeting=changed\n"
    );
    let after = get(
        "deployment",
        "box",
        "{.spec.template.metadata.annotations.devenv\\.dev/configmap-conf}",
    );
    assert_ne!(before, after, "a new digest rolls the pods out");
    assert!(
        wait_until(Duration::from_secs(60), || body(port).as_deref()
            == Some("greeting=changed")),
        "the new content through the forward: {:?}",
        body(port)
    );

    let down = t.devenv(&["down", "--volumes"]);
    assert_eq!(down.code, Some(0), "{down}");
    let _ = std::fs::remove_dir_all(&host_dir);
}
