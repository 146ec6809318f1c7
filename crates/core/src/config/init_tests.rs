//! `devenv init`'s layout detection on small fixture trees: each written config loads,
//! with the command, port and readiness the project's tooling implies.

use std::path::Path;

use super::{init_template, load, Command, LoadRequest, Probe, Service};

fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

/// Detects, writes the config and loads it as `devenv validate` would.
fn detected(files: &[(&str, &str)]) -> (&'static str, Vec<Service>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text) in files {
        write(dir.path(), name, text);
    }
    let (yaml, kind) = init_template(dir.path());
    write(dir.path(), ".devenv/config.yml", &yaml);
    let req = LoadRequest {
        start_dir: dir.path().to_path_buf(),
        ..LoadRequest::default()
    };
    match load(&req) {
        Ok(l) => (kind, l.environment.services, dir),
        Err(e) => panic!("the config does not load:\n{e}\n---\n{yaml}"),
    }
}

fn shell(s: &Service) -> &str {
    match &s.command {
        Some(Command::Shell(c)) => c,
        other => panic!("not a shell command: {other:?}"),
    }
}

fn tcp(s: &Service) -> (String, u16) {
    match s.readiness.as_ref().map(|r| &r.probe) {
        Some(Probe::Tcp { host, port }) => (host.clone(), *port),
        other => panic!("not a tcp probe: {other:?}"),
    }
}

#[test]
fn node_projects_run_by_their_package_manager_with_the_dev_servers_port() {
    let vite = r#"{"scripts": {"dev": "vite", "build": "vite build"}, "devDependencies": {"vite": "^5.0.0"}}"#;
    let (kind, s, _d) = detected(&[("package.json", vite), ("pnpm-lock.yaml", "")]);
    assert_eq!(kind, "node");
    assert_eq!(shell(&s[0]), "pnpm run dev");
    assert_eq!(s[0].ports, [5173]);
    assert_eq!(tcp(&s[0]), ("localhost".into(), 5173));

    let next = r#"{"scripts": {"dev": "next dev -p 4000"}, "dependencies": {"next": "14"}}"#;
    let (_, s, _d) = detected(&[("package.json", next), ("yarn.lock", "")]);
    assert_eq!(shell(&s[0]), "yarn dev");
    assert_eq!(
        s[0].ports,
        [4000],
        "the script's port wins over next's 3000"
    );

    let bun = r#"{"scripts": {"start": "bun server.ts"}}"#;
    let (_, s, _d) = detected(&[("package.json", bun), ("bun.lockb", "")]);
    assert_eq!(shell(&s[0]), "bun run start");
    assert!(s[0].ports.is_empty() && s[0].readiness.is_none());

    let (_, s, _d) = detected(&[("package.json", "{}"), ("package-lock.json", "{}")]);
    assert_eq!(shell(&s[0]), "npm start");

    let pm = r#"{"packageManager": "pnpm@9.1.0", "scripts": {"dev": "astro dev"}, "dependencies": {"astro": "4"}}"#;
    let (_, s, _d) = detected(&[("package.json", pm)]);
    assert_eq!(shell(&s[0]), "pnpm run dev");
    assert_eq!(s[0].ports, [4321]);
}

#[test]
fn python_projects_run_by_uv_poetry_or_pip_with_their_framework() {
    let (kind, s, _d) = detected(&[
        (
            "pyproject.toml",
            "[project]\nname = \"svc\"\ndependencies = [\"fastapi>=0.110\", \"uvicorn[standard]\"]\n",
        ),
        ("uv.lock", ""),
        ("main.py", "from fastapi import FastAPI\napp = FastAPI()\n"),
    ]);
    assert_eq!(kind, "python");
    assert_eq!(s[0].name, "api");
    assert_eq!(
        shell(&s[0]),
        "uv run uvicorn main:app --reload --host 127.0.0.1 --port 8000"
    );
    assert_eq!(tcp(&s[0]), ("127.0.0.1".into(), 8000));

    let (_, s, _d) = detected(&[
        (
            "pyproject.toml",
            "[tool.poetry]\nname = \"site\"\n[tool.poetry.dependencies]\nflask = \"^3.0\"\n",
        ),
        ("app.py", "from flask import Flask\napp = Flask(__name__)\n"),
    ]);
    assert_eq!(
        shell(&s[0]),
        "poetry run flask --app app run --host 127.0.0.1 --port 5000"
    );
    assert_eq!(s[0].ports, [5000]);

    let (_, s, _d) = detected(&[
        ("requirements.txt", "Django==5.0\npsycopg[binary]\n"),
        ("manage.py", ""),
    ]);
    assert_eq!(s[0].name, "web");
    assert_eq!(shell(&s[0]), "python3 manage.py runserver 127.0.0.1:8000");

    let (_, s, _d) = detected(&[("requirements.txt", "requests\n"), ("main.py", "")]);
    assert_eq!(shell(&s[0]), "python3 -m main");
    assert!(s[0].ports.is_empty());
}

#[test]
fn a_frontend_and_a_backend_directory_become_two_services_in_order() {
    let (kind, s, dir) = detected(&[
        (
            "backend/pyproject.toml",
            "[project]\ndependencies = [\"fastapi\"]\n",
        ),
        ("backend/uv.lock", ""),
        ("backend/app/main.py", ""),
        (
            "frontend/package.json",
            r#"{"scripts": {"dev": "vite"}, "devDependencies": {"vite": "5"}}"#,
        ),
        ("frontend/pnpm-lock.yaml", ""),
    ]);
    assert_eq!(kind, "multi-service");
    let names: Vec<&str> = s.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["backend", "frontend"]);
    assert_eq!(
        shell(&s[0]),
        "uv run uvicorn app.main:app --reload --host 127.0.0.1 --port 8000"
    );
    assert!(s[0].workdir.ends_with("backend"), "{:?}", s[0].workdir);
    assert_eq!(shell(&s[1]), "pnpm run dev");
    assert_eq!(s[1].ports, [5173]);
    assert_eq!(
        s[1].dependencies,
        ["backend"],
        "the frontend waits for the api"
    );
    drop(dir);
}
