//! Invalid configs: `validate` and `up` exit 2 with a located error naming the key,
//! and nothing starts.

use devenv_e2e::{locations, CmdOutput, TestEnv};

/// Every service in these configs would leave a `started-NAME` file behind.
const HEAD: &str = "\
apiVersion: devenv/v1
kind: Environment
metadata:
  name: broken
spec:
  services:
";

struct Case {
    yaml: String,
    /// Expected (line, column) of the error, when exact; else a line range.
    line: std::ops::RangeInclusive<u32>,
    column: Option<u32>,
    /// Substrings the error output must all contain.
    needles: &'static [&'static str],
    /// Further checks on each command's output.
    extra: fn(&CmdOutput),
}

fn service(name: &str, extra: &str) -> String {
    format!("    - name: {name}\n      command: touch started-{name} && exec sleep 300\n{extra}")
}

/// Runs `validate` and then `up` on the case's config, checking both.
fn check(case: Case) {
    let env = TestEnv::new();
    let path = env.write_config(&case.yaml);
    for cmd in [&["validate"][..], &["up"][..]] {
        let out = env.devenv(cmd);
        let what = cmd[0];
        assert_eq!(
            out.code,
            Some(2),
            "`{what}` should exit 2 on an invalid config\n{out}"
        );
        assert_located(&out, &case, &path);
        (case.extra)(&out);
        assert_nothing_started(&env, what);
    }
}

fn assert_located(out: &CmdOutput, case: &Case, path: &std::path::Path) {
    let text = out.combined();
    let locs = locations(&text, "config.yml");
    let located = locs
        .iter()
        .any(|&(line, col)| case.line.contains(&line) && case.column.is_none_or(|c| c == col));
    assert!(
        located,
        "expected an error at config.yml:{:?}:{:?} (found {locs:?}) in\n{out}",
        case.line, case.column
    );
    assert!(
        text.contains(&path.display().to_string()) || text.contains(".devenv/config.yml"),
        "error should name the file {}\n{out}",
        path.display()
    );
    for needle in case.needles {
        assert!(
            text.contains(needle),
            "error output lacks {needle:?}\n{out}"
        );
    }
}

fn assert_nothing_started(env: &TestEnv, after: &str) {
    let started: Vec<_> = std::fs::read_dir(&env.project)
        .expect("read project dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("started-"))
        .collect();
    assert!(
        started.is_empty(),
        "after `{after}` some service ran: {started:?}"
    );
    assert!(
        env.service_pids().is_empty(),
        "after `{after}`: {:?} running",
        env.service_pids()
    );
    // Status either refuses the invalid config (2) or shows nothing running.
    let status = env.devenv(&["status", "--json"]);
    match status.code {
        Some(2) => {}
        Some(0) => {
            let v: serde_json::Value = serde_json::from_str(&status.stdout)
                .unwrap_or_else(|e| panic!("status --json is not JSON ({e})\n{status}"));
            let states = devenv_e2e::service_states(&v);
            assert!(
                states.values().all(|s| s == "stopped"),
                "after `{after}`: {states:?}"
            );
        }
        _ => panic!("status after an invalid `{after}` should exit 0 or 2\n{status}"),
    }
}

#[test]
fn yaml_syntax_error() {
    let yaml = format!(
        "{HEAD}{}    - name: b\n      command: \"unterminated\n",
        service("a", "")
    );
    // The scanner reports at the quote or at the end of input (lines 9-11).
    check(Case {
        yaml,
        line: 9..=11,
        column: None,
        needles: &[],
        extra: |_| {},
    });
}

#[test]
fn unknown_key_with_hint() {
    let yaml = format!(
        "{HEAD}{}{}",
        service("a", ""),
        service("b", "      dependecies: [a]\n")
    );
    check(Case {
        yaml,
        line: 11..=11,
        column: Some(7),
        needles: &["dependecies", "did you mean", "dependencies"],
        extra: |_| {},
    });
}

#[test]
fn dependency_cycle_shows_the_path() {
    let yaml = format!(
        "{HEAD}{}{}{}",
        service("a", "      dependencies: [b]\n"),
        service("b", "      dependencies: [a]\n"),
        service("c", ""),
    );
    check(Case {
        yaml,
        line: 7..=12,
        column: None,
        needles: &["cycle", "dependencies"],
        extra: |out| {
            let t = out.combined();
            let path = t.contains("a -> b -> a") || t.contains("b -> a -> b");
            assert!(path, "no cycle path `a -> b -> a`\n{out}");
            assert!(
                !t.contains("c ->") && !t.contains("-> c"),
                "cycle path names `c`\n{out}"
            );
        },
    });
}

#[test]
fn missing_dependency() {
    let yaml = format!("{HEAD}{}", service("a", "      dependencies: [nope]\n"));
    check(Case {
        yaml,
        line: 9..=9,
        column: None,
        needles: &["nope", "dependencies"],
        extra: |_| {},
    });
}

#[test]
fn port_out_of_range() {
    let yaml = format!("{HEAD}{}", service("a", "      ports: [70000]\n"));
    check(Case {
        yaml,
        line: 9..=9,
        column: None,
        needles: &["70000", "ports"],
        extra: |_| {},
    });
}

/// A sync deletes in its target what the local directory lacks: the container's root
/// and its system directories are refused before anything starts, and so are control
/// characters.
#[test]
fn sync_targets_at_system_directories_are_refused() {
    let cases: [(&str, &'static [&'static str]); 5] = [
        ("/", &["dev.sync[0].to", "container's root"]),
        ("/etc/", &["dev.sync[0].to", "system directory"]),
        ("//usr/.", &["dev.sync[0].to", "system directory"]),
        ("/lib64", &["dev.sync[0].to", "system directory"]),
        ("\"/app\\tx\"", &["dev.sync[0].to", "control character"]),
    ];
    for (to, needles) in cases {
        let dev = format!("      dev:\n        sync:\n          - {{ from: ., to: {to} }}\n");
        check(Case {
            yaml: format!("{HEAD}{}", service("a", &dev)),
            line: 11..=11,
            column: None,
            needles,
            extra: |_| {},
        });
    }
}
