//! `devenv logs --stats`: what the daemon retains per service, and the caps.

use devenv_api::pb;
use serde::Serialize;

use super::table;
use super::time::rfc3339;

#[derive(Serialize)]
struct StatsJson<'a> {
    services: Vec<ServiceJson<'a>>,
    /// Retention caps in bytes (0: logs in memory only).
    limits: LimitsJson,
}

#[derive(Serialize)]
struct ServiceJson<'a> {
    service: &'a str,
    disk_bytes: u64,
    /// `null`: segments written by an older version, which do not number lines.
    disk_lines: Option<u64>,
    /// RFC 3339; `null` when nothing is on disk.
    oldest: Option<String>,
    memory_lines: u64,
}

#[derive(Serialize)]
struct LimitsJson {
    segment_bytes: u64,
    service_bytes: u64,
    env_bytes: u64,
}

pub fn json(r: &pb::LogStatsResponse) -> String {
    let doc = StatsJson {
        services: r
            .services
            .iter()
            .map(|s| ServiceJson {
                service: &s.service,
                disk_bytes: s.disk_bytes,
                disk_lines: s.has_disk_lines.then_some(s.disk_lines),
                oldest: s.oldest.as_ref().map(|t| rfc3339(Some(t))),
                memory_lines: s.memory_lines,
            })
            .collect(),
        limits: LimitsJson {
            segment_bytes: r.segment_bytes,
            service_bytes: r.service_bytes,
            env_bytes: r.env_bytes,
        },
    };
    serde_json::to_string_pretty(&doc).expect("stats JSON is always serialisable")
}

pub fn table(r: &pb::LogStatsResponse) -> String {
    let rows: Vec<Vec<String>> = r
        .services
        .iter()
        .map(|s| {
            vec![
                s.service.clone(),
                bytes(s.disk_bytes),
                if s.has_disk_lines {
                    s.disk_lines.to_string()
                } else {
                    "-".into()
                },
                s.oldest
                    .as_ref()
                    .map_or_else(|| "-".into(), |t| rfc3339(Some(t))),
                s.memory_lines.to_string(),
            ]
        })
        .collect();
    let mut out = table::render(
        &["SERVICE", "ON DISK", "LINES", "OLDEST LINE", "IN MEMORY"],
        &rows,
    );
    if r.service_bytes == 0 {
        out.push_str("logs are kept in memory only (no log directory)\n");
    } else {
        out.push_str(&format!(
            "retention: {} per service, {} per environment, in segments of {}\n",
            bytes(r.service_bytes),
            bytes(r.env_bytes),
            bytes(r.segment_bytes)
        ));
    }
    out
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_and_json() {
        let r = pb::LogStatsResponse {
            services: vec![pb::ServiceLogStats {
                service: "api".into(),
                disk_bytes: 3 * 1024 * 1024,
                disk_lines: 40_000,
                has_disk_lines: true,
                oldest: Some(prost_types::Timestamp {
                    seconds: 1_700_000_000,
                    nanos: 0,
                }),
                memory_lines: 10_000,
            }],
            segment_bytes: 8 << 20,
            service_bytes: 64 << 20,
            env_bytes: 512 << 20,
        };
        assert_eq!(
            table(&r),
            "SERVICE  ON DISK  LINES  OLDEST LINE               IN MEMORY\n\
             api      3.0 MiB  40000  2023-11-14T22:13:20.000Z  10000\n\
             retention: 64.0 MiB per service, 512.0 MiB per environment, in segments of 8.0 MiB\n"
        );
        let v: serde_json::Value = serde_json::from_str(&json(&r)).unwrap();
        assert_eq!(v["services"][0]["disk_lines"], 40_000);
        assert_eq!(v["services"][0]["oldest"], "2023-11-14T22:13:20.000Z");
        assert_eq!(v["limits"]["service_bytes"], 64 << 20);
    }
}
