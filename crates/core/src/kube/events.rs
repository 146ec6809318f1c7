//! What a workload's controller could not do, from its Events: a StatefulSet whose pod
//! the API server refuses (a LimitRange's max, a ResourceQuota, an admission policy)
//! has no status condition saying so, only `FailedCreate` warnings, and would
//! otherwise be waited for until a deadline.

use futures::StreamExt;
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::Api;
use kube::runtime::{watcher, WatchStreamExt};

use super::ClusterConn;

/// The message of the first `FailedCreate` event about `kind/name` that happened at
/// or after `since` (second precision, as Events are written); pending until there is
/// one. A watch error is retried with backoff.
pub async fn failed_create(conn: &ClusterConn, kind: &str, name: &str, since: Timestamp) -> String {
    let events: Api<Event> = Api::namespaced(conn.client.clone(), &conn.namespace);
    let cfg = watcher::Config::default().fields(&format!(
        "involvedObject.kind={kind},involvedObject.name={name},reason=FailedCreate"
    ));
    let since = since - SignedDuration::from_secs(1);
    let mut stream = std::pin::pin!(watcher(events, cfg).default_backoff());
    while let Some(ev) = stream.next().await {
        let e = match ev {
            Ok(watcher::Event::Apply(e) | watcher::Event::InitApply(e)) => e,
            Ok(_) => continue,
            Err(err) => {
                tracing::debug!(error = %err, object = %name, "event watch error (retrying)");
                continue;
            }
        };
        let when = e
            .last_timestamp
            .as_ref()
            .or(e.first_timestamp.as_ref())
            .map(|t| t.0)
            .or(e.event_time.as_ref().map(|t| t.0));
        if when.is_some_and(|t| t >= since) {
            return e.message.unwrap_or_else(|| "(no message)".into());
        }
    }
    std::future::pending().await
}

/// The part of a controller's FailedCreate message a person needs: the API server's
/// answer after `error: ` ("create Pod ws-0 in StatefulSet ws failed error: pods
/// \"ws-0\" is forbidden: ...").
pub fn refusal(message: &str) -> &str {
    message
        .split_once(" failed error: ")
        .map_or(message, |(_, why)| why)
        .trim()
}

#[cfg(test)]
mod tests {
    #[test]
    fn refusal_is_the_servers_answer() {
        assert_eq!(
            super::refusal("create Pod ws-0 in StatefulSet ws failed error: pods \"ws-0\" is forbidden: maximum memory usage per Container is 64Mi, but limit is 128Mi"),
            "pods \"ws-0\" is forbidden: maximum memory usage per Container is 64Mi, but limit is 128Mi"
        );
        assert_eq!(super::refusal("something else"), "something else");
    }
}
