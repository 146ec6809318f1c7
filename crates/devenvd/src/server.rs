//! Daemon lifecycle: bind, serve, and one shutdown path with a grace deadline.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use devenv_api::pb;
use devenv_api::{Env as _, Paths, ProcessEnv};
use devenv_core::engine::{Engine, EngineOptions};
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;

use crate::args::Args;
use crate::{listener, router, rpc, settings, web};

/// How long open streams (e.g. `logs -f`) get to end after shutdown starts.
const DRAIN: Duration = Duration::from_secs(2);

pub async fn run(args: Args, activation_fds: i32) -> anyhow::Result<()> {
    let mut paths = Paths::resolve_with(&ProcessEnv, args.socket.clone())?;
    if let Some(d) = &args.data_dir {
        paths.data_dir = d.clone();
    }
    devenv_api::ensure_private_dir(&paths.data_dir)?;
    devenv_api::ensure_private_dir(&paths.tmp_dir())?;
    let (listener, socket_guard) = listener::bind(&paths, activation_fds)?;

    let exe = std::env::current_exe().context("locating the devenvd binary")?;
    let engine = Engine::start(EngineOptions {
        state_dir: paths.state_dir(),
        guardian_exe: exe,
        log_dir: paths.data_dir.join("logs"),
        tmp_dir: paths.tmp_dir(),
    })?;

    let shutdown = CancellationToken::new();
    let signals = tokio::spawn(watch_signals(shutdown.clone()));

    let (health, health_service) = tonic_health::server::health_reporter();
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let (dashboard, dashboard_listener) = web::bind(
        &dashboard_wanted(&args),
        &paths.data_dir.join(web::auth::SESSION_FILE),
    );
    if let web::Dashboard::Off(why) = &dashboard {
        tracing::warn!("{why}");
    }

    // One instance of each service, shared by the socket and the dashboard.
    let daemon = Arc::new(rpc::daemon::Daemon {
        started_at: SystemTime::now(),
        data_dir: paths.data_dir.display().to_string(),
        log_file: args
            .log_file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        shutdown: shutdown.clone(),
        engine: engine.clone(),
        dashboard,
    });
    let (router_state, router_listener) =
        router::bind((!args.no_router).then(|| args.router_port.unwrap_or(router::DEFAULT_PORT)));
    match &router_state {
        router::RouterState::Off(why) => tracing::warn!("{why}"),
        router::RouterState::Serving { port } => {
            tracing::info!("local router serving http://SERVICE.ENV.localhost:{port}/");
        }
    }
    let router_server = router_listener
        .map(|l| tokio::spawn(router::serve(l, engine.clone(), shutdown.clone(), DRAIN)));
    let environments = Arc::new(rpc::environment::Environments {
        engine: engine.clone(),
        router: router_state.clone(),
    });
    let services = Arc::new(rpc::service::Services {
        engine: engine.clone(),
        router: router_state,
    });
    let logs = Arc::new(rpc::logs::Logs {
        engine: engine.clone(),
    });
    let forwards = Arc::new(rpc::forward::Forwards {
        engine: engine.clone(),
    });
    let syncs = Arc::new(rpc::sync::Syncs {
        engine: engine.clone(),
    });
    let clusters = Arc::new(rpc::cluster::Clusters::new(engine.clone()));
    let workspaces = Arc::new(rpc::workspace::Workspaces {
        engine: engine.clone(),
    });
    // Socket only: restore stops and replaces an environment's data.
    let snapshots = Arc::new(rpc::snapshot::Snapshots {
        engine: engine.clone(),
    });
    // Socket only: a bidirectional stream (not gRPC-web), and apply changes real
    // resources.
    let terraform = Arc::new(rpc::terraform::Terraform {
        engine: engine.clone(),
    });
    use pb::cluster_service_server::ClusterServiceServer;
    use pb::daemon_service_server::DaemonServiceServer;
    use pb::environment_service_server::EnvironmentServiceServer;
    use pb::forward_service_server::ForwardServiceServer;
    use pb::log_service_server::LogServiceServer;
    use pb::service_service_server::ServiceServiceServer;
    use pb::snapshot_service_server::SnapshotServiceServer;
    use pb::sync_service_server::SyncServiceServer;
    use pb::terraform_service_server::TerraformServiceServer;
    use pb::workspace_service_server::WorkspaceServiceServer;
    health
        .set_serving::<DaemonServiceServer<rpc::daemon::Daemon>>()
        .await;
    health
        .set_serving::<EnvironmentServiceServer<rpc::environment::Environments>>()
        .await;
    health
        .set_serving::<ServiceServiceServer<rpc::service::Services>>()
        .await;
    health
        .set_serving::<LogServiceServer<rpc::logs::Logs>>()
        .await;
    health
        .set_serving::<ForwardServiceServer<rpc::forward::Forwards>>()
        .await;
    health
        .set_serving::<ClusterServiceServer<rpc::cluster::Clusters>>()
        .await;
    health
        .set_serving::<SyncServiceServer<rpc::sync::Syncs>>()
        .await;
    health
        .set_serving::<WorkspaceServiceServer<rpc::workspace::Workspaces>>()
        .await;
    health
        .set_serving::<SnapshotServiceServer<rpc::snapshot::Snapshots>>()
        .await;
    health
        .set_serving::<TerraformServiceServer<rpc::terraform::Terraform>>()
        .await;

    let router = Server::builder()
        .layer(rpc::span::RpcSpanLayer)
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .add_service(DaemonServiceServer::from_arc(daemon.clone()))
        .add_service(EnvironmentServiceServer::from_arc(environments.clone()))
        .add_service(ServiceServiceServer::from_arc(services.clone()))
        .add_service(LogServiceServer::from_arc(logs.clone()))
        .add_service(ForwardServiceServer::from_arc(forwards.clone()))
        .add_service(SyncServiceServer::from_arc(syncs.clone()))
        .add_service(ClusterServiceServer::from_arc(clusters.clone()))
        .add_service(WorkspaceServiceServer::from_arc(workspaces.clone()))
        .add_service(SnapshotServiceServer::from_arc(snapshots))
        .add_service(TerraformServiceServer::from_arc(terraform));

    // The dashboard: every devenv.v1 service, but of DaemonService only Version
    // (Dashboard hands out the token and Shutdown stops everything: socket only).
    let web_server = dashboard_listener.map(|bound| {
        use tonic::server::NamedService;
        let api = web::Api {
            grpc: tonic::service::Routes::new(DaemonServiceServer::from_arc(daemon))
                .add_service(EnvironmentServiceServer::from_arc(environments))
                .add_service(ServiceServiceServer::from_arc(services))
                .add_service(LogServiceServer::from_arc(logs))
                .add_service(ForwardServiceServer::from_arc(forwards))
                .add_service(SyncServiceServer::from_arc(syncs))
                .add_service(ClusterServiceServer::from_arc(clusters))
                .add_service(WorkspaceServiceServer::from_arc(workspaces)),
            services: vec![
                EnvironmentServiceServer::<rpc::environment::Environments>::NAME,
                ServiceServiceServer::<rpc::service::Services>::NAME,
                LogServiceServer::<rpc::logs::Logs>::NAME,
                ForwardServiceServer::<rpc::forward::Forwards>::NAME,
                SyncServiceServer::<rpc::sync::Syncs>::NAME,
                ClusterServiceServer::<rpc::cluster::Clusters>::NAME,
                WorkspaceServiceServer::<rpc::workspace::Workspaces>::NAME,
            ],
            methods: vec!["devenv.v1.DaemonService/Version"],
        };
        tokio::spawn(web::serve(bound, engine.clone(), api, shutdown.clone()))
    });

    tracing::info!(socket = %paths.socket.display(), pid = std::process::id(), version = devenv_api::VERSION, "devenvd serving");
    let stop = shutdown.clone();
    let serve = router.serve_with_incoming_shutdown(listener::incoming(listener), async move {
        stop.cancelled().await
    });
    tokio::pin!(serve);
    // Once shutdown starts, the server stops accepting while services stop (in
    // reverse dependency order), so an `up` still streaming gets its final word.
    // Streams that never end on their own (`logs -f`) get DRAIN after that.
    let deadline = Duration::from_secs(args.shutdown_timeout);
    let stopping = async {
        shutdown.cancelled().await;
        health
            .set_not_serving::<DaemonServiceServer<rpc::daemon::Daemon>>()
            .await;
        stop_everything(&engine, deadline).await;
    };
    tokio::pin!(stopping);
    tokio::select! {
        r = &mut serve => {
            if r.is_err() {
                // The server failed on its own: still stop everything before exiting.
                shutdown.cancel();
            }
            stopping.await;
            r.context("serving the API")?;
        }
        () = &mut stopping => {
            if tokio::time::timeout(DRAIN, &mut serve).await.is_err() {
                tracing::info!("closing streams still open after {DRAIN:?}");
            }
        }
    }
    if let Some(mut web) = web_server {
        // Stopped accepting when shutdown started; streams still open get DRAIN.
        match tokio::time::timeout(DRAIN, &mut web).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::error!("dashboard: {e}"),
            Ok(Err(e)) => tracing::error!("dashboard task: {e}"),
            Err(_) => web.abort(),
        }
    }
    if let Some(mut r) = router_server {
        // Stopped accepting when shutdown started; it gives open connections DRAIN.
        match tokio::time::timeout(DRAIN * 2, &mut r).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::error!("router: {e}"),
            Ok(Err(e)) => tracing::error!("router task: {e}"),
            Err(_) => r.abort(),
        }
    }
    drop(socket_guard);
    signals.abort();
    tracing::info!("devenvd stopped");
    Ok(())
}

/// Whether and where to serve the dashboard, from the flags and devenvd's config file.
fn dashboard_wanted(args: &Args) -> web::Wanted {
    let file = settings::path(&ProcessEnv, args.config.as_deref());
    let loaded = match &file {
        Some(f) => settings::load(f, args.config.is_some()),
        None => Ok(settings::Settings::default()),
    };
    let file = file.unwrap_or_else(|| "$XDG_CONFIG_HOME/devenv/devenvd.yml".into());
    let port = match (args.dashboard_port, ProcessEnv.var("DEVENV_DASHBOARD_PORT")) {
        (Some(p), _) => Some(p),
        (None, Some(v)) => match v.parse::<u16>() {
            Ok(p) => Some(p),
            Err(_) if args.no_dashboard => None,
            Err(_) => {
                return web::Wanted::Disabled(format!(
                    "the dashboard is unavailable: DEVENV_DASHBOARD_PORT={v:?} is not a port \
                     (0-65535; 0: any free port); fix it and restart devenvd"
                ))
            }
        },
        (None, None) => None,
    };
    settings::dashboard(args.no_dashboard, port, loaded, file)
}

async fn stop_everything(engine: &Arc<Engine>, deadline: Duration) {
    tracing::info!("stopping services (deadline {deadline:?})");
    engine.shutdown(deadline).await;
}

/// First SIGTERM/SIGINT starts a graceful shutdown; a second one exits at once
/// (the guardian then kills what is still running).
async fn watch_signals(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    let mut seen = 0;
    loop {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        seen += 1;
        if seen == 1 {
            tracing::info!("signal received: shutting down (again to force)");
            shutdown.cancel();
        } else {
            tracing::warn!("second signal: exiting now");
            std::process::exit(130);
        }
    }
}
