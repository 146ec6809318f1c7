//! `devenv logs`: one stream from the daemon to a locked, buffered stdout, flushed
//! whenever the stream goes idle.

use std::io::BufWriter;
use std::time::SystemTime;

use devenv_api::pb::environment_service_client::EnvironmentServiceClient;
use devenv_api::pb::{
    self, log_service_client::LogServiceClient, LogRequest, LogStatsRequest, StatusRequest,
};
use tonic::transport::Channel;

use crate::cli::{LogLevelArg, LogsArgs};
use crate::context::Ctx;
use crate::error::Result;
use crate::render::logs::LogWriter;
use crate::render::time::from_system_time;
use crate::stream::next_or_idle;

const BUFFER: usize = 64 * 1024;

pub async fn run(ctx: &Ctx, args: LogsArgs) -> Result {
    let environment = Some(ctx.env_ref()?);
    if args.stats {
        return stats(ctx, environment).await;
    }
    let (tail, since) = window(args.tail, args.since, args.follow, SystemTime::now());
    if tail == Window::Nothing {
        return Ok(());
    }
    let request = LogRequest {
        environment,
        services: args.services,
        follow: args.follow,
        tail: tail.lines(),
        since: since.map(from_system_time),
        grep: args.grep.unwrap_or_default(),
        min_level: args.level.map_or(pb::LogLevel::Unspecified, api_level) as i32,
        resume_after: args.after.unwrap_or(0),
    };
    print(ctx, ctx.channel().await?, request, args.timestamps).await
}

/// `--stats`: what is retained per service, and the caps.
async fn stats(ctx: &Ctx, environment: Option<pb::EnvironmentRef>) -> Result {
    let reply = LogServiceClient::new(ctx.channel().await?)
        .stats(LogStatsRequest { environment })
        .await?
        .into_inner();
    if ctx.out.json {
        outln!("{}", crate::render::logstats::json(&reply));
    } else {
        print!("{}", crate::render::logstats::table(&reply));
    }
    Ok(())
}

/// `up --attach`: follow every requested service until interrupted.
pub async fn follow(
    ctx: &Ctx,
    channel: Channel,
    environment: Option<pb::EnvironmentRef>,
    services: Vec<String>,
) -> Result {
    let request = LogRequest {
        environment,
        services,
        follow: true,
        ..Default::default()
    };
    print(ctx, channel, request, false).await
}

async fn print(ctx: &Ctx, channel: Channel, request: LogRequest, timestamps: bool) -> Result {
    let names = if request.services.is_empty() && !ctx.out.json {
        service_names(channel.clone(), request.environment.clone()).await
    } else {
        request.services.clone()
    };
    let mut entries = LogServiceClient::new(channel)
        .stream(request)
        .await?
        .into_inner();
    let stdout = BufWriter::with_capacity(BUFFER, std::io::stdout().lock());
    let mut out = LogWriter::new(stdout, ctx.out.json, ctx.out.color, timestamps, &names);
    while let Some(entry) = next_or_idle(&mut entries, || out.flush()).await? {
        out.write(&entry)?;
    }
    out.flush()?;
    Ok(())
}

fn api_level(l: LogLevelArg) -> pb::LogLevel {
    match l {
        LogLevelArg::Trace => pb::LogLevel::Trace,
        LogLevelArg::Debug => pb::LogLevel::Debug,
        LogLevelArg::Info => pb::LogLevel::Info,
        LogLevelArg::Warn => pb::LogLevel::Warn,
        LogLevelArg::Error => pb::LogLevel::Error,
        LogLevelArg::Fatal => pb::LogLevel::Fatal,
    }
}

/// Every service of the environment, so that columns line up from the first line.
/// Best effort: on failure, columns widen as names appear.
async fn service_names(channel: Channel, environment: Option<pb::EnvironmentRef>) -> Vec<String> {
    let mut client = EnvironmentServiceClient::new(channel);
    match client.status(StatusRequest { environment }).await {
        Ok(reply) => reply
            .into_inner()
            .services
            .into_iter()
            .map(|s| s.name)
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Window {
    /// Every retained line.
    All,
    Last(u32),
    /// `--tail 0` without `--follow`.
    Nothing,
}

impl Window {
    fn lines(self) -> u32 {
        match self {
            Window::Last(n) => n,
            Window::All | Window::Nothing => 0,
        }
    }
}

/// The API reads `tail: 0` as "all retained lines"; `--tail 0` means none, which
/// with `--follow` is "only lines from now on".
fn window(
    tail: Option<u32>,
    since: Option<SystemTime>,
    follow: bool,
    now: SystemTime,
) -> (Window, Option<SystemTime>) {
    match tail {
        None => (Window::All, since),
        Some(0) if follow => (Window::All, Some(since.map_or(now, |s| s.max(now)))),
        Some(0) => (Window::Nothing, since),
        Some(n) => (Window::Last(n), since),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn tail_zero_means_none() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let earlier = SystemTime::UNIX_EPOCH + Duration::from_secs(10);
        assert_eq!(window(None, None, false, now), (Window::All, None));
        assert_eq!(
            window(Some(5), Some(earlier), true, now),
            (Window::Last(5), Some(earlier))
        );
        assert_eq!(window(Some(0), None, false, now).0, Window::Nothing);
        assert_eq!(
            window(Some(0), Some(earlier), true, now),
            (Window::All, Some(now))
        );
    }
}
