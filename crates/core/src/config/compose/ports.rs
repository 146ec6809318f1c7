//! Compose's short port syntax: `[HOST_IP:][HOST:]CONTAINER[/PROTOCOL]`, with ranges.

/// Most ports one range may expand to: far above a real range, small enough to write.
const MAX_RANGE: usize = 100;

/// The published side of a port.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Published {
    /// A variable reference kept as written (devenv rewritten): `${WEB_PORT:-8080}`.
    Kept(String),
    Range(Vec<u16>),
}

#[derive(Debug, PartialEq, Eq)]
pub(super) struct Short {
    pub target: Vec<u16>,
    pub published: Option<Vec<u16>>,
    pub host_ip: Option<String>,
    pub protocol: Option<String>,
}

/// `8000` or `8000-8005`.
pub(super) fn parse_range(text: &str) -> Result<Vec<u16>, String> {
    let port = |s: &str| {
        s.trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("`{s}` is not a port (1-65535)"))
    };
    match text.split_once('-') {
        None => Ok(vec![port(text)?]),
        Some((a, b)) => {
            let (a, b) = (port(a)?, port(b)?);
            if a > b {
                return Err(format!("port range `{text}` runs backwards"));
            }
            if usize::from(b - a) >= MAX_RANGE {
                return Err(format!(
                    "port range `{text}` holds more than {MAX_RANGE} ports"
                ));
            }
            Ok((a..=b).collect())
        }
    }
}

pub(super) fn parse_short(text: &str) -> Result<Short, String> {
    let (spec, protocol) = match text.rsplit_once('/') {
        Some((s, p)) => (s, Some(p.to_owned())),
        None => (text, None),
    };
    let (host_ip, rest) = match spec.strip_prefix('[') {
        Some(v6) => {
            let (ip, rest) = v6
                .split_once("]:")
                .ok_or_else(|| format!("`{text}` has an unclosed `[`"))?;
            (Some(ip.to_owned()), rest)
        }
        None => (None, spec),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (ip, published, target) = match parts[..] {
        [target] => (None, None, target),
        [published, target] => (None, Some(published), target),
        [ip, published, target] => (Some(ip.to_owned()), Some(published), target),
        _ => return Err(format!("`{text}` is not a port mapping")),
    };
    if host_ip.is_some() && ip.is_some() {
        return Err(format!("`{text}` is not a port mapping"));
    }
    let host_ip = host_ip.or(ip);
    // With a host IP alone the published port is `` (any free port): the container port
    // is reached on the network only.
    let published = match published.filter(|p| !p.is_empty()) {
        None => None,
        Some(p) => Some(parse_range(p)?),
    };
    Ok(Short {
        target: parse_range(target)?,
        published,
        host_ip,
        protocol,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_syntax() {
        let s = parse_short("8080:80").unwrap();
        assert_eq!((s.target, s.published), (vec![80], Some(vec![8080])));
        let s = parse_short("127.0.0.1:5433:5432/tcp").unwrap();
        assert_eq!(s.host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(s.protocol.as_deref(), Some("tcp"));
        assert_eq!(s.published, Some(vec![5433]));
        let s = parse_short("[::1]:6000:6001").unwrap();
        assert_eq!(s.host_ip.as_deref(), Some("::1"));
        assert_eq!(s.target, vec![6001]);
        let s = parse_short("3000").unwrap();
        assert_eq!((s.target, s.published), (vec![3000], None));
        let s = parse_short("9000-9002:9000-9002").unwrap();
        assert_eq!(s.target, vec![9000, 9001, 9002]);
        let s = parse_short("127.0.0.1::80").unwrap();
        assert_eq!(s.published, None);
        assert!(parse_short("80:http").is_err());
        assert!(parse_short("0").is_err());
        assert!(parse_short("1-60000").is_err());
        assert!(parse_short("1:2:3:4").is_err());
    }
}
