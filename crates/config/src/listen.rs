//! `addr:`: where the Prometheus metrics are served, as Litestream reads it: `HOST:PORT`,
//! or `:PORT` for every interface; the port is required.

use std::fmt;

use super::error::ConfigError;

/// A listen address: host (empty for every interface) and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenAddr {
    /// A host name or IP address of this machine; empty for every interface.
    pub host: String,
    /// The TCP port (0: one the OS picks).
    pub port: u16,
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Parses `key`'s value (`:9090`, `127.0.0.1:9090`, `[::1]:9090`, `localhost:9090`).
pub(crate) fn parse(key: &str, value: &str) -> Result<ListenAddr, ConfigError> {
    let fix = format!("write {key}: \":9090\" (every interface) or {key}: \"127.0.0.1:9090\"");
    let invalid = |problem: String| ConfigError::invalid(key, problem, fix.clone());
    let (host, port) = match value.strip_prefix('[') {
        Some(rest) => {
            let (host, port) = rest
                .split_once(']')
                .ok_or_else(|| invalid(format!("missing ']' in address {value:?}")))?;
            (host, port.strip_prefix(':').unwrap_or(""))
        }
        None => match value.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => {
                return Err(invalid(format!(
                    "IPv6 address {value:?} needs brackets, e.g. \"[::1]:9090\""
                )));
            }
            Some((host, port)) => (host, port),
            None => (value, ""),
        },
    };
    if port.is_empty() {
        return Err(invalid(format!(
            "must specify port for bind address: {value:?}"
        )));
    }
    let port = port.parse::<u16>().map_err(|_| {
        invalid(format!(
            "port {port:?} of {value:?} is not a number from 0 to 65535"
        ))
    })?;
    Ok(ListenAddr {
        host: host.to_owned(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_as_litestream_reads_them() {
        let ok = |s: &str| parse("addr", s).unwrap();
        assert_eq!(
            ok(":9090"),
            ListenAddr {
                host: String::new(),
                port: 9090
            }
        );
        assert_eq!(ok("127.0.0.1:9090").host, "127.0.0.1");
        assert_eq!(ok("[::1]:9090").host, "::1");
        assert_eq!(ok("[::1]:9090").to_string(), "[::1]:9090");
        assert_eq!(ok("localhost:0").port, 0);
        for bad in [
            "9090",
            "localhost",
            "localhost:",
            ":http",
            ":70000",
            "::1:9090",
            "[::1",
        ] {
            let err = parse("addr", bad).unwrap_err().to_string();
            assert!(err.contains("addr"), "{bad}: {err}");
        }
        let err = parse("addr", "localhost").unwrap_err().to_string();
        assert!(err.contains("must specify port"), "{err}");
    }
}
