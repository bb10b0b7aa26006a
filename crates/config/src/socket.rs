//! `socket:`: the control socket (`enabled`, `path`, `permissions`) that `tideline
//! start`, `stop`, `register`, `unregister`, `list` and `info` talk to, with
//! Litestream's defaults.

use std::path::PathBuf;

use serde_yaml_ng::Value;

use super::error::ConfigError;

/// Litestream's default socket path (also the commands' default `-socket`).
pub const DEFAULT_SOCKET_PATH: &str = "/var/run/litestream.sock";
/// Litestream's default permissions: the owner only.
pub const DEFAULT_SOCKET_PERMISSIONS: u32 = 0o600;

/// An enabled control socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketConfig {
    /// Where the Unix socket is created.
    pub path: PathBuf,
    /// Its file mode (e.g. `0o660` to let a group in).
    pub permissions: u32,
}

/// The socket from its section; `None` unless `enabled: true`.
pub(crate) fn build(
    enabled: Option<bool>,
    path: Option<String>,
    permissions: Option<&Value>,
    resolve: impl Fn(&str) -> Result<PathBuf, ConfigError>,
) -> Result<Option<SocketConfig>, ConfigError> {
    if enabled != Some(true) {
        return Ok(None);
    }
    let path = match path.filter(|p| !p.is_empty()) {
        Some(p) => resolve(&p)?,
        None => PathBuf::from(DEFAULT_SOCKET_PATH),
    };
    let permissions = match permissions {
        None => DEFAULT_SOCKET_PERMISSIONS,
        Some(v) => mode(v)?,
    };
    Ok(Some(SocketConfig { path, permissions }))
}

/// A file mode as written: `0600` (which YAML reads as the number 600, so its digits
/// are taken as octal, as Go's YAML reads it), `"0660"`, `0o660`, or a decimal
/// number that is not made of octal digits (`384`).
fn mode(v: &Value) -> Result<u32, ConfigError> {
    let invalid = || {
        ConfigError::invalid(
            "socket.permissions",
            format!("{} is not a file mode", yaml_text(v)),
            "write an octal mode such as 0600 (owner only) or 0660 (owner and group)",
        )
    };
    let digits = match v {
        Value::Number(n) => n.as_u64().ok_or_else(invalid)?.to_string(),
        Value::String(s) => s.trim_start_matches("0o").to_owned(),
        _ => return Err(invalid()),
    };
    let parsed = if digits.chars().all(|c| ('0'..='7').contains(&c)) {
        u32::from_str_radix(&digits, 8).ok()
    } else if matches!(v, Value::Number(_)) {
        digits.parse().ok()
    } else {
        None
    };
    parsed.filter(|m| *m <= 0o777).ok_or_else(invalid)
}

fn yaml_text(v: &Value) -> String {
    serde_yaml_ng::to_string(v)
        .map(|t| t.trim().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(n: u64) -> Value {
        Value::Number(n.into())
    }

    #[test]
    fn modes_as_litestream_configs_write_them() {
        assert_eq!(mode(&num(600)).unwrap(), 0o600);
        assert_eq!(mode(&num(660)).unwrap(), 0o660);
        assert_eq!(mode(&num(384)).unwrap(), 0o600);
        assert_eq!(mode(&Value::String("0660".into())).unwrap(), 0o660);
        assert_eq!(mode(&Value::String("0o640".into())).unwrap(), 0o640);
        for bad in [Value::String("rw".into()), num(7777), Value::Bool(true)] {
            let err = mode(&bad).unwrap_err().to_string();
            assert!(err.contains("socket.permissions"), "{err}");
        }
    }

    #[test]
    fn off_unless_enabled() {
        let resolve = |p: &str| Ok(PathBuf::from(p));
        assert_eq!(build(None, Some("/s".into()), None, resolve).unwrap(), None);
        let on = build(Some(true), None, None, resolve).unwrap().unwrap();
        assert_eq!(on.path, PathBuf::from(DEFAULT_SOCKET_PATH));
        assert_eq!(on.permissions, 0o600);
    }
}
