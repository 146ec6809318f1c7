//! `load()` against hostile and oversized input: every bomb is a located error, found
//! without materialising it, and overflowing numbers and over-long derived names are
//! config errors rather than panics later.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use super::*;

const HEAD: &str = "apiVersion: devenv/v1\nkind: Environment\nmetadata:\n  name: shop\n";

fn project(config: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join(".devenv")).expect("mkdir");
    std::fs::write(dir.path().join(".devenv/config.yml"), config).expect("write");
    dir
}

fn req(dir: &Path) -> LoadRequest {
    LoadRequest {
        start_dir: dir.to_path_buf(),
        ..LoadRequest::default()
    }
}

/// Loads, expecting errors, and checks it took no time to speak of: a bomb must be
/// refused before it is built.
fn errors(req: &LoadRequest) -> Vec<ConfigError> {
    let started = Instant::now();
    let result = load(req);
    let took = started.elapsed();
    // A guard against a quadratic blow-up (minutes), not a benchmark: ~1 s in a debug build.
    assert!(took < Duration::from_secs(30), "load took {took:?}");
    match result {
        Ok(loaded) => panic!("expected errors, loaded {:?}", loaded.environment),
        Err(ConfigErrors(errors)) => errors,
    }
}

fn has(errors: &[ConfigError], text: &str) -> ConfigError {
    errors
        .iter()
        .find(|e| e.to_string().contains(text))
        .cloned()
        .unwrap_or_else(|| panic!("no error containing {text:?} in:\n{errors:#?}"))
}

/// Nine levels of ten aliases each: 10^9 strings if expanded.
fn billion_laughs() -> String {
    let mut s = String::from("a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    for i in 1..10 {
        let p = i - 1;
        s.push_str(&format!(
            "a{i}: &a{i} [*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p}]\n"
        ));
    }
    s
}

#[test]
fn billion_laughs_is_refused_at_the_alias_that_crosses_the_limit() {
    let dir = project(&format!("{HEAD}{}", billion_laughs()));
    let e = has(&errors(&req(dir.path())), "aliases expand to more than");
    assert!(e.file.ends_with(".devenv/config.yml"), "{e}");
    assert!(e.line >= 5, "{e}");
    assert!(e.hint.is_some());
}

#[test]
fn a_big_scalar_copied_by_aliases_is_refused_by_its_bytes() {
    let big = "x".repeat(512 * 1024);
    let aliases = vec!["*big"; 20].join(", ");
    let dir = project(&format!("{HEAD}a: &big \"{big}\"\nb: [{aliases}]\n"));
    has(&errors(&req(dir.path())), "KiB of text");
}

#[test]
fn deep_nesting_is_refused_in_flow_and_block_style() {
    let depth = 100_000;
    let flow = |depth: usize| format!("{HEAD}a: {}{}\n", "[".repeat(depth), "]".repeat(depth));
    let dir = project(&flow(100));
    let e = has(&errors(&req(dir.path())), "nested more than 64 levels");
    assert_eq!((e.line, e.column), (5, 67), "{e}");
    // Far deeper, yaml-rust2's scanner stops first (it caps flow levels at 255).
    let dir = project(&flow(depth));
    let e = has(&errors(&req(dir.path())), "recursion limit exceeded");
    assert_eq!(e.line, 5, "{e}");
    // `- - - x` nests a block list per dash, all on one line.
    let block = format!("{HEAD}a:\n  {}x\n", "- ".repeat(depth));
    let dir = project(&block);
    has(&errors(&req(dir.path())), "nested more than 64 levels");
    // And by indentation, one level per line.
    let mut indented = format!("{HEAD}a:\n");
    for i in 0..200 {
        indented.push_str(&format!("{}k{i}:\n", "  ".repeat(i + 1)));
    }
    let dir = project(&indented);
    has(&errors(&req(dir.path())), "nested more than 64 levels");
}

#[test]
fn a_wide_mapping_or_too_many_nodes_is_refused() {
    let mut wide = String::from(HEAD);
    for i in 0..(limits::MAX_ENTRIES + 1) {
        wide.push_str(&format!("k{i}: 1\n"));
    }
    let dir = project(&wide);
    has(&errors(&req(dir.path())), "more than 10000 entries");

    let mut many = format!("{HEAD}x:\n");
    for _ in 0..12 {
        many.push_str(&format!("  - [{}]\n", vec!["1"; 9_000].join(",")));
    }
    let dir = project(&many);
    has(&errors(&req(dir.path())), "more than 100000 values");
}

#[test]
fn files_over_the_size_cap_are_refused_with_their_name() {
    let mut text = String::from(HEAD);
    text.push_str("# ");
    text.push_str(&"x".repeat(limits::MAX_INPUT_BYTES));
    text.push('\n');
    let dir = project(&text);
    let e = has(&errors(&req(dir.path())), "larger than 1024 KiB");
    assert!(e.file.ends_with(".devenv/config.yml"), "{e}");

    let dir = project(&format!("{HEAD}spec:\n  services: []\n"));
    std::fs::write(
        dir.path().join(".env"),
        format!("A={}\n", "x".repeat(limits::MAX_INPUT_BYTES)),
    )
    .expect("write .env");
    let e = has(&errors(&req(dir.path())), "larger than 1024 KiB");
    assert!(e.file.ends_with(".env"), "{e}");

    let dir = project(HEAD);
    std::fs::create_dir_all(dir.path().join(".devenv/environments")).expect("mkdir");
    std::fs::write(
        dir.path().join(".devenv/environments/big.yml"),
        "x".repeat(limits::MAX_INPUT_BYTES + 10),
    )
    .expect("write env file");
    let e = has(
        &errors(&LoadRequest {
            env_name: Some("big".into()),
            ..req(dir.path())
        }),
        "larger than 1024 KiB",
    );
    assert!(e.file.ends_with("big.yml"), "{e}");
}

#[test]
fn a_bomb_in_a_devenv_variable_is_refused_and_named() {
    let dir = project(HEAD);
    let vars = BTreeMap::from([(
        "DEVENV_SPEC__X".to_owned(),
        billion_laughs()
            .replace('\n', ", ")
            .trim_end_matches(", ")
            .to_owned(),
    )]);
    let vars = BTreeMap::from([(
        "DEVENV_SPEC__X".to_owned(),
        format!("{{{}}}", vars["DEVENV_SPEC__X"]),
    )]);
    let e = has(
        &errors(&LoadRequest {
            vars,
            ..req(dir.path())
        }),
        "aliases expand to more than",
    );
    assert_eq!(e.file, Path::new("$DEVENV_SPEC__X"));

    let deep = BTreeMap::from([(
        "DEVENV_SPEC__Y".to_owned(),
        format!("{}{}", "[".repeat(200), "]".repeat(200)),
    )]);
    has(
        &errors(&LoadRequest {
            vars: deep,
            ..req(dir.path())
        }),
        "nested more than 64 levels",
    );

    let huge = BTreeMap::from([(
        "DEVENV_METADATA__NAME".to_owned(),
        "a".repeat(limits::MAX_INPUT_BYTES + 1),
    )]);
    let e = has(
        &errors(&LoadRequest {
            vars: huge,
            ..req(dir.path())
        }),
        "larger than 1024 KiB",
    );
    assert_eq!(e.file, Path::new("$DEVENV_METADATA__NAME"));
}

#[test]
fn overflowing_numbers_are_located_errors() {
    let service = |extra: &str| {
        format!(
            "{HEAD}spec:\n  services:\n    - name: api\n      command: run\n      ports: [8000]\n{extra}"
        )
    };
    let cases = [
        (
            "      readiness: { tcp: {}, timeoutSeconds: 1e19 }\n",
            "timeoutSeconds",
        ),
        (
            "      readiness: { tcp: {}, periodSeconds: 1e300 }\n",
            "periodSeconds",
        ),
        (
            "      readiness: { tcp: {}, initialDelaySeconds: .inf }\n",
            "initialDelaySeconds",
        ),
        ("      forward: [\"99999999999999999999:80\"]\n", "forward"),
        (
            "      readiness: { tcp: { port: 99999999999999999999 } }\n",
            "port",
        ),
        (
            "      readiness: { tcp: {}, failureThreshold: 1e19 }\n",
            "failureThreshold",
        ),
    ];
    for (extra, key) in cases {
        let dir = project(&service(extra));
        let errs = errors(&req(dir.path()));
        let e = has(&errs, key);
        assert_eq!(e.line, 10, "{extra}: {e}");
    }
    let dir = project(&format!(
        "{HEAD}spec:\n  cluster: {{ provider: kubeconfig }}\n  services:\n    - name: web\n      image: nginx\n      replicas: 4294967295\n"
    ));
    let e = has(&errors(&req(dir.path())), "replicas");
    assert_eq!(e.line, 10, "{e}");
    let dir = project(&format!(
        "{HEAD}spec:\n  cluster: {{ provider: kubeconfig }}\n  services:\n    - name: web\n      image: nginx\n      replicas: 1e19\n"
    ));
    has(&errors(&req(dir.path())), "replicas");
}

#[test]
fn derived_kubernetes_names_must_fit() {
    let long = "a".repeat(60);
    let dir = project(&format!(
        "apiVersion: devenv/v1\nkind: Environment\nmetadata:\n  name: {long}\nspec:\n  cluster: {{ provider: kubeconfig }}\n"
    ));
    let e = has(&errors(&req(dir.path())), "derived from `metadata.name`");
    assert_eq!(e.line, 4, "{e}");
    assert!(e.hint.as_deref().is_some_and(|h| h.contains("56")), "{e}");
    // An explicit namespace lifts the constraint.
    let dir = project(&format!(
        "apiVersion: devenv/v1\nkind: Environment\nmetadata:\n  name: {long}\nspec:\n  cluster: {{ provider: kubeconfig, namespace: short }}\n"
    ));
    load(&req(dir.path())).expect("an explicit namespace fits");

    let chart = "c".repeat(54);
    let dir = project(&format!(
        "{HEAD}spec:\n  cluster: {{ provider: kubeconfig }}\n  services:\n    - name: {chart}\n      chart: ./charts/x\n"
    ));
    let e = has(&errors(&req(dir.path())), "helm release name");
    assert_eq!(e.line, 8, "{e}");
}

#[test]
fn interpolation_errors_in_secrets_echo_nothing_of_the_value() {
    let dir = project(&format!(
        "{HEAD}spec:\n  secrets:\n    - name: db\n      data: {{ password: \"${{hunter2}}\", token: \"x${{s3cr3t value}}\" }}\n"
    ));
    let errs = errors(&req(dir.path()));
    assert_eq!(errs.len(), 2, "{errs:#?}");
    for e in &errs {
        let shown = e.to_string();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
    }
}

#[test]
fn a_secret_in_a_command_line_or_probe_url_is_a_warning_that_names_only_the_secret() {
    let dir = project(&format!(
        "{HEAD}spec:\n  secrets:\n    - name: db\n      data: {{ password: \"${{PW}}\", short: \"1\" }}\n  services:\n    - name: api\n      command: \"psql --password=${{PW}} -c 1\"\n      env: {{ DB_PASSWORD: \"${{PW}}\" }}\n      ports: [8000]\n      readiness: {{ http: {{ path: \"/health?key=${{PW}}\", port: 8000 }} }}\n    - name: ok\n      command: [\"run\", \"1\"]\n"
    ));
    let loaded = load(&LoadRequest {
        vars: BTreeMap::from([("PW".to_owned(), "hunter2hunter2".to_owned())]),
        ..req(dir.path())
    })
    .expect("a warning does not make the config invalid");
    let shown: Vec<String> = loaded.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(loaded.warnings.len(), 2, "{shown:#?}");
    let command = &loaded.warnings[0];
    assert_eq!(command.key, "spec.services[0].command");
    assert_eq!(command.line, 11, "{command}");
    assert!(
        command.message.contains("secret `db.password`"),
        "{command}"
    );
    assert!(command.message.contains("a command line"), "{command}");
    assert!(command
        .hint
        .as_deref()
        .is_some_and(|h| h.contains("secrets:")));
    let probe = &loaded.warnings[1];
    assert_eq!(probe.key, "spec.services[0].readiness.http.path");
    assert!(probe.message.contains("a probe URL"), "{probe}");
    for w in &shown {
        assert!(!w.contains("hunter2"), "{w}");
    }
}

#[test]
fn load_str_checks_a_document_alone() {
    let file = Path::new("/nowhere/.devenv/config.yml");
    let loaded = load_str(
        file,
        &format!("{HEAD}spec:\n  services:\n    - name: a\n      command: run\n"),
    )
    .expect("loads");
    assert_eq!(loaded.environment.name, "shop");
    assert_eq!(
        loaded.environment.project_dir,
        Path::new("/nowhere/.devenv")
    );
    let e = load_str(file, &billion_laughs()).expect_err("bomb");
    has(&e.0, "aliases expand");
}

#[test]
fn many_secrets_against_many_values_stay_fast() {
    let n = limits::MAX_ENTRIES;
    let data: Vec<String> = (0..n).map(|i| format!("k{i}: secret-value-{i}")).collect();
    let env: Vec<String> = (0..n).map(|i| format!("V{i}: plain-value-{i}")).collect();
    let dir = project(&format!(
        "{HEAD}spec:\n  secrets:\n    - name: s\n      data: {{ {} }}\n  services:\n    - name: api\n      command: run\n      env: {{ {} }}\n",
        data.join(", "),
        env.join(", ")
    ));
    let started = Instant::now();
    let loaded = load(&req(dir.path())).expect("loads");
    let took = started.elapsed();
    // A guard against a quadratic blow-up (minutes), not a benchmark: ~1 s in a debug build.
    assert!(took < Duration::from_secs(30), "load took {took:?}");
    assert!(!loaded.merged_yaml.contains("secret-value-"));
}
