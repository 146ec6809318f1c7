//! Hostile configs against the real daemon: bombs of several shapes (nested aliases,
//! deep flow and block nesting, huge files, a huge .env, bombs in `DEVENV_*` variables,
//! overflowing numbers) through `devenv validate`, `up` and `config show`. Each must be
//! a clear config error (exit 2), and the daemon that runs everyone's services must not
//! notice: same pid, still answering, an unrelated environment's service still running
//! with the same pid, and its peak memory bounded. As root, the daemon runs in a
//! memory-limited cgroup (v1 or v2) for the bombs, so a regression is an OOM kill rather
//! than a slow machine.

use std::path::{Path, PathBuf};
use std::time::Duration;

use devenv_e2e::{alive, read_hwm_kib, wait_until, CmdOutput, RunOpts, TestEnv};

/// Peak daemon memory (VmHWM) allowed across the whole run.
const MAX_HWM_MIB: u64 = 300;
/// The cgroup's hard limit: far above what a bounded daemon uses.
const CGROUP_LIMIT_MIB: u64 = 512;
const MIB: usize = 1024 * 1024;

const HEAD: &str = "apiVersion: devenv/v1\nkind: Environment\nmetadata:\n  name: bomb\n";

/// Nine levels of ten aliases: 10^9 strings if anything expanded it.
fn laughs(separator: &str) -> String {
    let mut s = String::from("a0: &a0 [lol,lol,lol,lol,lol,lol,lol,lol,lol,lol]");
    for i in 1..10 {
        let p = i - 1;
        let refs = vec![format!("*a{p}"); 10].join(",");
        s.push_str(&format!("{separator}a{i}: &a{i} [{refs}]"));
    }
    s
}

struct Bomb {
    name: &'static str,
    /// The project's config file.
    config: String,
    /// Other files of the project (relative path, content).
    files: Vec<(&'static str, String)>,
    /// Extra variables for the CLI (travel to the daemon in the request).
    vars: Vec<(String, String)>,
    /// What the error must say.
    needle: &'static str,
}

fn bombs() -> Vec<Bomb> {
    let service =
        "spec:\n  services:\n    - name: api\n      command: exec sleep 300\n      ports: [8000]\n";
    let bomb = |name, config: String, needle| Bomb {
        name,
        config,
        files: Vec::new(),
        vars: Vec::new(),
        needle,
    };
    let mut huge = format!("{HEAD}{service}# ");
    huge.push_str(&"x".repeat(2 * MIB));
    let mut wide = format!("{HEAD}x:\n");
    for i in 0..20_000 {
        wide.push_str(&format!("  k{i}: v\n"));
    }
    vec![
        bomb(
            "billion laughs",
            format!("{HEAD}{}\n", laughs("\n")),
            "aliases expand to more than",
        ),
        bomb(
            "aliases of a big string",
            format!(
                "{HEAD}big: &big \"{}\"\ncopies: [{}]\n",
                "x".repeat(MIB - 4096),
                vec!["*big"; 64].join(",")
            ),
            "KiB of text",
        ),
        bomb(
            "deep flow nesting",
            format!("{HEAD}x: {}{}\n", "[".repeat(200_000), "]".repeat(200_000)),
            "invalid YAML: recursion limit exceeded",
        ),
        bomb(
            "flow nesting past the depth cap",
            format!("{HEAD}x: {}{}\n", "{a: ".repeat(100), "}".repeat(100)),
            "nested more than 64 levels",
        ),
        bomb(
            "deep block nesting on one line",
            format!("{HEAD}x:\n  {}y\n", "- ".repeat(400_000)),
            "nested more than 64 levels",
        ),
        bomb(
            "deep block nesting by indentation",
            {
                let mut s = format!("{HEAD}x:\n");
                for i in 0..300 {
                    s.push_str(&format!("{}k{i}:\n", " ".repeat(i + 2)));
                }
                s
            },
            "nested more than 64 levels",
        ),
        bomb("huge file", huge, "larger than 1024 KiB"),
        bomb("wide mapping", wide, "more than 10000 entries"),
        Bomb {
            name: "huge .env",
            config: format!("{HEAD}{service}"),
            files: vec![(".env", format!("A={}\n", "x".repeat(2 * MIB)))],
            vars: Vec::new(),
            needle: "larger than 1024 KiB",
        },
        Bomb {
            name: "billion laughs in a DEVENV_ variable",
            config: format!("{HEAD}{service}"),
            files: Vec::new(),
            vars: vec![(
                "DEVENV_SPEC__EXTRA".into(),
                format!("{{{}}}", laughs(", ")),
            )],
            needle: "aliases expand to more than",
        },
        Bomb {
            name: "deep nesting in a DEVENV_ variable",
            config: format!("{HEAD}{service}"),
            files: Vec::new(),
            vars: vec![(
                "DEVENV_SPEC__EXTRA".into(),
                format!("{}{}", "[".repeat(100), "]".repeat(100)),
            )],
            needle: "nested more than 64 levels",
        },
        Bomb {
            name: "interpolation amplification",
            config: format!(
                "{HEAD}{service}      env: {{ {} }}\n",
                (0..64)
                    .map(|i| format!("V{i}: \"${{BIG}}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            files: Vec::new(),
            vars: vec![("BIG".into(), "x".repeat(100 * 1024))],
            needle: "interpolation expands the config to more than",
        },
        bomb(
            "timeoutSeconds: 1e19",
            format!("{HEAD}{service}      readiness: {{ tcp: {{}}, timeoutSeconds: 1e19 }}\n"),
            "timeoutSeconds: expected a number of seconds",
        ),
        bomb(
            "periodSeconds: 1e300",
            format!("{HEAD}{service}      readiness: {{ tcp: {{}}, periodSeconds: 1e300 }}\n"),
            "periodSeconds: expected a number of seconds",
        ),
        bomb(
            "port overflowing i64",
            format!("{HEAD}{service}      readiness: {{ tcp: {{ port: 99999999999999999999 }} }}\n"),
            "port",
        ),
        bomb(
            "replicas: 1e19",
            format!(
                "{HEAD}spec:\n  cluster: {{ provider: kubeconfig }}\n  services:\n    - name: web\n      image: nginx\n      replicas: 1e19\n"
            ),
            "replicas",
        ),
        bomb(
            "replicas past i32",
            format!(
                "{HEAD}spec:\n  cluster: {{ provider: kubeconfig }}\n  services:\n    - name: web\n      image: nginx\n      replicas: 4294967295\n"
            ),
            "`replicas` must be at most 2147483647",
        ),
        bomb(
            "namespace name too long",
            format!(
                "apiVersion: devenv/v1\nkind: Environment\nmetadata:\n  name: {}\nspec:\n  cluster: {{ provider: kubeconfig }}\n",
                "n".repeat(60)
            ),
            "derived from `metadata.name`",
        ),
    ]
}

/// A memory cgroup of our own below this process's, holding the daemon. `None` (with the
/// reason printed) where the machine does not allow one; VmHWM is the evidence then.
struct MemCgroup {
    dir: PathBuf,
    /// v1: `memory.limit_in_bytes`; v2: `memory.max`.
    v2: bool,
}

impl MemCgroup {
    fn create(name: &str, limit: u64) -> Result<Self, String> {
        let own = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| e.to_string())?;
        let v1 = own
            .lines()
            .find_map(|l| l.split_once(":memory:").map(|(_, p)| p));
        let (base, v2) = match v1 {
            Some(path) => (
                PathBuf::from("/sys/fs/cgroup/memory").join(path.trim_start_matches('/')),
                false,
            ),
            None => {
                let path = own
                    .lines()
                    .find_map(|l| l.strip_prefix("0::"))
                    .ok_or("no memory cgroup in /proc/self/cgroup")?;
                (
                    PathBuf::from("/sys/fs/cgroup").join(path.trim_start_matches('/')),
                    true,
                )
            }
        };
        let dir = base.join(name);
        std::fs::create_dir(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        let cg = Self { dir, v2 };
        let (file, value) = if v2 {
            ("memory.max", limit.to_string())
        } else {
            ("memory.limit_in_bytes", limit.to_string())
        };
        cg.write(file, &value)?;
        if !v2 {
            // With swap accounting, swap counts too; absent without it.
            let _ = cg.write("memory.memsw.limit_in_bytes", &value);
        } else {
            let _ = cg.write("memory.swap.max", "0");
        }
        Ok(cg)
    }

    fn write(&self, file: &str, value: &str) -> Result<(), String> {
        std::fs::write(self.dir.join(file), value)
            .map_err(|e| format!("write {value} to {}: {e}", self.dir.join(file).display()))
    }

    fn add(&self, pid: u32) -> Result<(), String> {
        self.write("cgroup.procs", &pid.to_string())
    }

    fn peak_mib(&self) -> Option<u64> {
        let file = if self.v2 {
            "memory.peak"
        } else {
            "memory.max_usage_in_bytes"
        };
        let text = std::fs::read_to_string(self.dir.join(file)).ok()?;
        text.trim().parse::<u64>().ok().map(|b| b / (1024 * 1024))
    }

    fn oom_kills(&self) -> u64 {
        let file = if self.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        std::fs::read_to_string(self.dir.join(file))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for MemCgroup {
    fn drop(&mut self) {
        // Empty once the daemon is gone (TestEnv's Drop runs first: declared later).
        let _ = wait_until(Duration::from_secs(10), || {
            std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists()
        });
    }
}

fn write_project(dir: &Path, bomb: &Bomb) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join(".devenv")).expect("mkdir bomb project");
    std::fs::write(dir.join(".devenv/config.yml"), &bomb.config).expect("write bomb config");
    for (rel, text) in &bomb.files {
        std::fs::write(dir.join(rel), text).expect("write bomb file");
    }
}

fn assert_refused(out: &CmdOutput, bomb: &Bomb) {
    assert_eq!(
        out.code,
        Some(2),
        "{}: expected a config error (exit 2)\n{out}",
        bomb.name
    );
    let text = out.combined();
    assert!(
        text.contains(bomb.needle),
        "{}: the error should say {:?}\n{out}",
        bomb.name,
        bomb.needle
    );
    assert!(
        text.contains("config.yml") || text.contains(".env") || text.contains("$DEVENV_"),
        "{}: the error should name where the input came from\n{out}",
        bomb.name
    );
    assert!(
        !text.contains("transport error"),
        "{}: the daemon must answer\n{out}",
        bomb.name
    );
}

#[test]
fn config_bombs_leave_the_daemon_and_other_environments_untouched() {
    let env = TestEnv::new();
    // The unrelated environment: one local service, started before the bombs.
    env.write_config(
        "apiVersion: devenv/v1\nkind: Environment\nmetadata:\n  name: bystander\nspec:\n  services:\n    - name: sleeper\n      command: exec sleep 600\n",
    );
    env.devenv_ok(&["up"]);
    let status = env.status_json();
    let sleeper = status["services"][0]["pid"]
        .as_u64()
        .and_then(|p| u32::try_from(p).ok())
        .unwrap_or_else(|| panic!("the bystander's service has a pid: {status}"));
    let daemon = env.daemon_pid();
    let hwm_before = read_hwm_kib(daemon).expect("daemon VmHWM") / 1024;

    let cgroup = if nix::unistd::Uid::effective().is_root() {
        MemCgroup::create(
            &format!("devenv-adversarial-{}", std::process::id()),
            CGROUP_LIMIT_MIB * 1024 * 1024,
        )
        .and_then(|cg| cg.add(daemon).map(|()| cg))
    } else {
        Err("not root".into())
    };
    match &cgroup {
        Ok(cg) => eprintln!(
            "daemon {daemon} runs in memory cgroup {} (limit {CGROUP_LIMIT_MIB} MiB)",
            cg.dir.display()
        ),
        Err(reason) => {
            eprintln!("no memory cgroup ({reason}): VmHWM is the evidence of bounded memory")
        }
    }

    let bomb_dir = env.root().join("bomb");
    let bomb_dir_arg = bomb_dir.display().to_string();
    let bombs = bombs();
    let mut tried = 0;
    for bomb in &bombs {
        write_project(&bomb_dir, bomb);
        for cmd in [&["validate"][..], &["up"][..], &["config", "show"][..]] {
            let mut args = vec!["-C", bomb_dir_arg.as_str()];
            args.extend_from_slice(cmd);
            let opts = RunOpts {
                timeout: Duration::from_secs(60),
                env: bomb.vars.clone(),
                ..RunOpts::default()
            };
            let out = env.run(&env.bins.devenv, &args, opts);
            assert_refused(&out, bomb);
            eprintln!(
                "{:<40} {:<12} {:>7.0?}",
                bomb.name,
                cmd.join(" "),
                out.elapsed
            );
            tried += 1;
            assert!(
                alive(daemon),
                "the daemon died on `{}` of {}",
                cmd.join(" "),
                bomb.name
            );
        }
    }

    // The daemon answers Version, is the same process, and the bystander runs on.
    assert_eq!(env.daemon_pid(), daemon, "the daemon was replaced");
    assert!(alive(sleeper), "the bystander's service {sleeper} died");
    let status = env.status_json();
    assert_eq!(
        status["services"][0]["pid"].as_u64(),
        Some(u64::from(sleeper)),
        "{status}"
    );
    assert_eq!(status["services"][0]["state"], "ready", "{status}");
    // Nothing of the bombs was started.
    let names: Vec<String> = env
        .devenv_ok(&["ls", "--json"])
        .stdout
        .lines()
        .filter(|l| l.contains("\"bomb\""))
        .map(str::to_owned)
        .collect();
    assert!(
        names.is_empty(),
        "a bomb environment was registered: {names:?}"
    );

    let hwm = read_hwm_kib(daemon).expect("daemon VmHWM") / 1024;
    let cgroup_note = match &cgroup {
        Ok(cg) => {
            assert_eq!(cg.oom_kills(), 0, "the cgroup's OOM killer fired");
            format!(
                ", cgroup peak {} MiB of {CGROUP_LIMIT_MIB} MiB",
                cg.peak_mib().unwrap_or(0)
            )
        }
        Err(_) => String::new(),
    };
    eprintln!(
        "{tried} bad inputs ({} bombs x validate/up/config show), 0 daemon deaths; daemon VmHWM {hwm_before} MiB before, {hwm} MiB after{cgroup_note}",
        bombs.len()
    );
    assert!(
        hwm < MAX_HWM_MIB,
        "daemon peak RSS {hwm} MiB exceeds {MAX_HWM_MIB} MiB"
    );
    env.devenv_ok(&["down"]);
    drop(env);
    drop(cgroup);
}

#[test]
fn validate_warns_when_a_secret_would_land_in_argv_without_showing_it() {
    let mut env = TestEnv::new();
    env.set_var("DB_PASSWORD", "correct-horse-battery");
    env.write_config(&format!(
        "{HEAD}spec:\n  secrets:\n    - name: db\n      data: {{ password: \"${{DB_PASSWORD}}\" }}\n  services:\n    - name: api\n      command: \"psql --password=${{DB_PASSWORD}}\"\n"
    ));
    let out = env.devenv_ok(&["validate"]);
    assert!(
        out.stderr.contains("warning: ")
            && out.stderr.contains("spec.services[0].command")
            && out.stderr.contains("secret `db.password`")
            && out.stderr.contains("/proc/PID/cmdline"),
        "validate should warn about the secret in the command line\n{out}"
    );
    assert!(
        !out.combined().contains("correct-horse-battery"),
        "the warning must not show the secret\n{out}"
    );
    let json = env.devenv_ok(&["validate", "--json"]);
    assert!(json.stdout.contains("\"warnings\""), "{json}");
    assert!(!json.stdout.contains("correct-horse-battery"), "{json}");
}
