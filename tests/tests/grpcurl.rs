//! The API is usable with nothing but grpcurl: reflection, health, plain calls.

use std::path::PathBuf;

use devenv_e2e::{find_grpcurl, CmdOutput, RunOpts, TestEnv};

fn grpcurl() -> PathBuf {
    find_grpcurl().unwrap_or_else(|reason| panic!("{reason}"))
}

fn call(env: &TestEnv, args: &[&str]) -> CmdOutput {
    let socket = env.socket.to_str().expect("utf-8 socket path");
    let mut full = vec!["-plaintext", "-unix"];
    // grpcurl wants its flags before the address.
    let (flags, rest): (Vec<&str>, Vec<&str>) = split_flags(args);
    full.extend(flags);
    full.push(socket);
    full.extend(rest);
    env.run(&grpcurl(), &full, RunOpts::default())
}

/// `-d '{}'` style flags go before the address, the rest after it.
fn split_flags<'a>(args: &[&'a str]) -> (Vec<&'a str>, Vec<&'a str>) {
    let mut flags = Vec::new();
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if *a == "-d" {
            flags.push(*a);
            flags.extend(it.next());
        } else {
            rest.push(*a);
        }
    }
    (flags, rest)
}

fn started() -> TestEnv {
    let env = TestEnv::new();
    env.devenv_ok(&["daemon", "start"]);
    env
}

#[test]
fn reflection_lists_every_service() {
    let env = started();
    let out = call(&env, &["list"]);
    assert_eq!(out.code, Some(0), "{out}");
    let services: Vec<&str> = out.stdout.lines().map(str::trim).collect();
    for want in [
        "devenv.v1.DaemonService",
        "devenv.v1.EnvironmentService",
        "devenv.v1.ServiceService",
        "devenv.v1.LogService",
        "devenv.v1.ForwardService",
        "devenv.v1.ClusterService",
        "devenv.v1.SnapshotService",
        "devenv.v1.TerraformService",
        "grpc.health.v1.Health",
    ] {
        assert!(services.contains(&want), "`list` lacks {want}\n{out}");
    }
    assert!(
        services.iter().any(|s| s.starts_with("grpc.reflection.")),
        "`list` lacks the reflection service\n{out}"
    );
}

#[test]
fn describe_daemon_service() {
    let env = started();
    let out = call(&env, &["describe", "devenv.v1.DaemonService"]);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stdout.contains("rpc Version"), "{out}");
    assert!(out.stdout.contains("rpc Shutdown"), "{out}");
    let msg = call(&env, &["describe", "devenv.v1.VersionResponse"]);
    assert_eq!(msg.code, Some(0), "{msg}");
    assert!(msg.stdout.contains("daemon_version"), "{msg}");
}

#[test]
fn version_call_returns_json() {
    let env = started();
    let out = call(&env, &["-d", "{}", "devenv.v1.DaemonService/Version"]);
    assert_eq!(out.code, Some(0), "{out}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("Version did not return JSON ({e})\n{out}"));
    let version = v["daemonVersion"].as_str().unwrap_or_default();
    assert!(!version.is_empty(), "no daemonVersion\n{out}");
    assert_eq!(v["protocolVersion"], 1, "{out}");
    assert_eq!(
        v["pid"].as_u64(),
        Some(u64::from(env.daemon_pid())),
        "{out}"
    );
}

#[test]
fn health_check_is_serving() {
    let env = started();
    let out = call(&env, &["grpc.health.v1.Health/Check"]);
    assert_eq!(out.code, Some(0), "{out}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("Check did not return JSON ({e})\n{out}"));
    assert_eq!(v["status"], "SERVING", "{out}");
}
