//! `$VAR` / `${VAR}` expansion over the config text, exactly as Go's `os.Expand`
//! (which Litestream applies to the whole file before parsing it).

/// Expands `$NAME`, `${NAME}` and Go's special one-character names (`$1`, `$$`, `$*`, …)
/// with `lookup`; unset variables become empty strings. Collects a warning for each
/// distinct unset variable referenced outside a comment line.
pub(crate) fn expand(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    warnings: &mut Vec<String>,
) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut unset: Vec<String> = Vec::new();
    let mut copied = 0; // bytes[..copied] are already in `out` (or consumed)
    let mut j = 0;
    while j < bytes.len() {
        if bytes[j] == b'$' && j + 1 < bytes.len() {
            out.push_str(&text[copied..j]);
            let (name, width) = shell_name(&text[j + 1..]);
            match name {
                // Bad syntax such as "${}" or an unclosed "${": the characters are eaten.
                None if width > 0 => {}
                // A lone "$" followed by no name is kept.
                None => out.push('$'),
                Some(name) => match lookup(name) {
                    Some(value) => out.push_str(&value),
                    None => {
                        let identifier = name
                            .bytes()
                            .next()
                            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
                        if identifier && !in_comment(text, j) && !unset.iter().any(|u| u == name) {
                            unset.push(name.to_owned());
                        }
                    }
                },
            }
            j += width;
            copied = j + 1;
        }
        j += 1;
    }
    out.push_str(&text[copied.min(text.len())..]);
    for name in unset {
        warnings.push(format!(
            "environment variable {name} is not set; ${name} was replaced by an empty string \
             (set it, or run with -no-expand-env to keep a literal $)"
        ));
    }
    out
}

/// Go's `getShellName`: the variable name after a `$`, and how many bytes it spans.
fn shell_name(s: &str) -> (Option<&str>, usize) {
    let bytes = s.as_bytes();
    if bytes[0] == b'{' {
        if bytes.len() > 2 && is_special(bytes[1]) && bytes[2] == b'}' {
            return (Some(&s[1..2]), 3);
        }
        return match s[1..].find('}') {
            Some(0) => (None, 2),
            Some(i) => (Some(&s[1..i + 1]), i + 2),
            None => (None, 1),
        };
    }
    if is_special(bytes[0]) {
        return (Some(&s[0..1]), 1);
    }
    let n = bytes
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
        .count();
    if n == 0 {
        (None, 0)
    } else {
        (Some(&s[..n]), n)
    }
}

fn is_special(b: u8) -> bool {
    matches!(b, b'*' | b'#' | b'$' | b'@' | b'!' | b'?' | b'-') || b.is_ascii_digit()
}

/// Whether byte `at` is on a line whose first non-blank character is `#`.
fn in_comment(text: &str, at: usize) -> bool {
    let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    text[start..at].trim_start().starts_with('#')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> (String, Vec<String>) {
        let lookup = |k: &str| match k {
            "BUCKET" => Some("my-bucket".to_owned()),
            "EMPTY" => Some(String::new()),
            "A_1" => Some("x".to_owned()),
            "PID" => Some("42".to_owned()),
            _ => None,
        };
        let mut warnings = Vec::new();
        let out = expand(text, &lookup, &mut warnings);
        (out, warnings)
    }

    #[test]
    fn expands_like_go_os_expand() {
        for (input, want) in [
            ("s3://$BUCKET/db", "s3://my-bucket/db"),
            ("s3://${BUCKET}/db", "s3://my-bucket/db"),
            ("${BUCKET}x$BUCKET", "my-bucketxmy-bucket"),
            ("$A_1.", "x."),
            ("[$EMPTY]", "[]"),
            ("pid-$PID", "pid-42"),
            ("cost: 5$", "cost: 5$"),
            ("a $ b", "a $ b"),
            ("a$$b", "ab"),
            ("a$1b", "ab"),
            ("a${}b", "ab"),
            ("a${B", "aB"),
            ("a${1}b", "ab"),
            ("p@$$w0rd", "p@w0rd"),
            ("ünï$BUCKET©", "ünïmy-bucket©"),
            ("no dollars", "no dollars"),
        ] {
            assert_eq!(run(input).0, want, "{input:?}");
        }
    }

    #[test]
    fn warns_once_per_unset_variable_outside_comments() {
        let (out, warnings) =
            run("# uses $IN_COMMENT\nkey: $MISSING\nother: ${MISSING}\n  # $ALSO_COMMENT\nx: $1\n");
        assert_eq!(out, "# uses \nkey: \nother: \n  # \nx: \n");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("MISSING is not set"), "{warnings:?}");
        assert!(warnings[0].contains("-no-expand-env"), "{warnings:?}");
    }
}
