//! Go-style flags on top of clap.
//!
//! Litestream parses its command line with Go's `flag` package, so its users write
//! `-config x.yml`, `-txid=0000000000000003` and `-if-db-not-exists` with one dash, and
//! Go accepts `--config` and `-once=false` too. clap only knows `--long` and `-s`, so
//! [`go_style`] rewrites the command line before clap sees it:
//!
//! * `-word`, `-word=value`, `--word=value` become `--word…` when `word` is a long flag
//!   of the command being parsed (anything else is left alone, so clap still reports
//!   unknown flags and `-h`, `-o`, `-f` stay short flags);
//! * a flag that takes a value is joined with the next token (`-o x` → `-o=x`,
//!   `-exec -v` → `--exec=-v`), because Go always takes the next token as the value,
//!   even one starting with a dash;
//! * boolean flags accept Go's `=true` / `=false` spellings (`-once=false` drops the
//!   flag).
//!
//! The set of known flags comes from clap's own command definition, so it cannot drift
//! from the flags the commands really have.

use std::ffi::OsString;

use clap::{ArgAction, Command};

/// Rewrites `argv` (program name first) so clap parses Go-style flags as Litestream
/// does. `cmd` is the root command; subcommand names select whose flags apply.
pub fn go_style<I, T>(argv: I, cmd: &Command) -> Vec<OsString>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    // `build` adds the generated `--help`/`--version` flags so `-help` is known too.
    let mut root = cmd.clone();
    root.build();
    let mut argv = argv.into_iter().map(Into::into);
    let mut out: Vec<OsString> = argv.next().into_iter().collect();
    let mut current: &Command = &root;
    let mut literal = false;

    while let Some(token) = argv.next() {
        let text = match token.to_str() {
            Some(t) if !literal => t.to_owned(),
            _ => {
                out.push(token);
                continue;
            }
        };
        if text == "--" {
            // Everything after `--` is positional, for Go and clap alike.
            literal = true;
            out.push(token);
            continue;
        }
        let Some(body) = text.strip_prefix('-').filter(|b| !b.is_empty()) else {
            // A positional: it may name the subcommand whose flags apply from here on.
            if let Some(sub) = current.find_subcommand(&text) {
                current = sub;
            }
            out.push(token);
            continue;
        };
        let body = body.to_owned();
        rewrite_flag(current, token, &text, &body, &mut argv, &mut out);
    }
    out
}

/// Rewrites one flag token (`text`, without its first dash: `body`) for clap, taking
/// its value from `argv` when Go would.
fn rewrite_flag(
    current: &Command,
    token: OsString,
    text: &str,
    body: &str,
    argv: &mut impl Iterator<Item = OsString>,
    out: &mut Vec<OsString>,
) {
    let double = body.starts_with('-');
    let body = body.strip_prefix('-').unwrap_or(body);
    let (name, value) = match body.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (body, None),
    };

    // A one-letter flag after one dash is a clap short flag (`-o`, `-h`, `-f`).
    if !double && let Some(short) = single_char(name) {
        let arg = current
            .get_arguments()
            .find(|a| a.get_short() == Some(short));
        match arg {
            Some(arg) if value.is_none() && arg.get_action().takes_values() => {
                out.push(join_value(text, argv.next()));
            }
            _ => out.push(token),
        }
        return;
    }

    let arg = current.get_arguments().find(|a| {
        a.get_long() == Some(name)
            || a.get_all_aliases()
                .is_some_and(|aliases| aliases.contains(&name))
    });
    let Some(arg) = arg else {
        out.push(token);
        return;
    };
    let long = format!("--{}", arg.get_long().unwrap_or(name));
    if arg.get_action().takes_values() {
        match value {
            Some(v) => out.push(format!("{long}={v}").into()),
            None => out.push(join_value(&long, argv.next())),
        }
    } else if matches!(arg.get_action(), ArgAction::SetTrue) {
        match value.map(parse_go_bool) {
            None | Some(Some(true)) => out.push(long.into()),
            Some(Some(false)) => {}
            // Not a Go boolean: keep the value so clap reports it.
            Some(None) => out.push(format!("{long}={}", value.unwrap_or_default()).into()),
        }
    } else {
        // --help, --version: no value.
        out.push(long.into());
    }
}

fn single_char(name: &str) -> Option<char> {
    let mut chars = name.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Some(c),
        _ => None,
    }
}

/// `flag=value`, or the flag alone (clap then says the value is missing).
fn join_value(flag: &str, value: Option<OsString>) -> OsString {
    match value {
        Some(v) => {
            let mut joined = OsString::from(format!("{flag}="));
            joined.push(v);
            joined
        }
        None => OsString::from(flag),
    }
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use clap::{Arg, ArgAction, Command};

    use super::*;

    fn cli() -> Command {
        Command::new("tideline")
            .version("1")
            .subcommand(
                Command::new("restore")
                    .arg(Arg::new("o").short('o'))
                    .arg(
                        Arg::new("follow")
                            .short('f')
                            .long("follow")
                            .action(ArgAction::SetTrue),
                    )
                    .arg(Arg::new("txid").long("txid"))
                    .arg(Arg::new("config").long("config"))
                    .arg(
                        Arg::new("if-db-not-exists")
                            .long("if-db-not-exists")
                            .action(ArgAction::SetTrue),
                    )
                    .arg(Arg::new("target")),
            )
            .subcommand(
                Command::new("replicate")
                    .arg(Arg::new("exec").long("exec"))
                    .arg(Arg::new("once").long("once").action(ArgAction::SetTrue))
                    .arg(Arg::new("db")),
            )
    }

    fn rewrite(args: &[&str]) -> Vec<String> {
        let mut argv = vec!["tideline"];
        argv.extend_from_slice(args);
        go_style(argv, &cli())
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect::<Vec<_>>()[1..]
            .to_vec()
    }

    #[test]
    fn single_dash_long_flags_get_two_dashes() {
        assert_eq!(
            rewrite(&["restore", "-config", "x.yml", "-if-db-not-exists", "db"]),
            ["restore", "--config=x.yml", "--if-db-not-exists", "db"]
        );
        assert_eq!(
            rewrite(&["restore", "-txid=0000000000000003", "db"]),
            ["restore", "--txid=0000000000000003", "db"]
        );
    }

    #[test]
    fn double_dash_flags_are_kept_and_values_joined() {
        assert_eq!(
            rewrite(&[
                "restore",
                "--txid",
                "0000000000000003",
                "--if-db-not-exists",
                "db"
            ]),
            [
                "restore",
                "--txid=0000000000000003",
                "--if-db-not-exists",
                "db"
            ]
        );
        assert_eq!(
            rewrite(&["restore", "--txid=ab", "db"]),
            ["restore", "--txid=ab", "db"]
        );
    }

    #[test]
    fn short_flags_stay_short() {
        assert_eq!(
            rewrite(&["restore", "-o", "out.db", "-f", "-h"]),
            ["restore", "-o=out.db", "-f", "-h"]
        );
        assert_eq!(rewrite(&["restore", "-o=out.db"]), ["restore", "-o=out.db"]);
        assert_eq!(rewrite(&["restore", "-oout.db"]), ["restore", "-oout.db"]);
    }

    #[test]
    fn values_starting_with_a_dash_are_values() {
        assert_eq!(
            rewrite(&["replicate", "-exec", "-once", "db"]),
            ["replicate", "--exec=-once", "db"]
        );
        assert_eq!(
            rewrite(&["restore", "-o", "-config"]),
            ["restore", "-o=-config"]
        );
    }

    #[test]
    fn go_booleans() {
        assert_eq!(
            rewrite(&["replicate", "-once=true", "db"]),
            ["replicate", "--once", "db"]
        );
        assert_eq!(
            rewrite(&["replicate", "-once=false", "db"]),
            ["replicate", "db"]
        );
        assert_eq!(
            rewrite(&["replicate", "--once=0", "db"]),
            ["replicate", "db"]
        );
        assert_eq!(
            rewrite(&["replicate", "-once=maybe"]),
            ["replicate", "--once=maybe"]
        );
    }

    #[test]
    fn flags_are_those_of_the_chosen_subcommand() {
        // -once is a replicate flag, not a restore flag: left for clap to reject.
        assert_eq!(
            rewrite(&["restore", "-once", "db"]),
            ["restore", "-once", "db"]
        );
        assert_eq!(
            rewrite(&["replicate", "-txid", "db"]),
            ["replicate", "-txid", "db"]
        );
        // Unknown flags are untouched.
        assert_eq!(rewrite(&["restore", "-bogus"]), ["restore", "-bogus"]);
    }

    #[test]
    fn help_and_version() {
        assert_eq!(rewrite(&["-help"]), ["--help"]);
        assert_eq!(rewrite(&["-version"]), ["--version"]);
        assert_eq!(rewrite(&["restore", "-help"]), ["restore", "--help"]);
    }

    #[test]
    fn after_double_dash_nothing_is_rewritten() {
        assert_eq!(
            rewrite(&["restore", "--", "-config"]),
            ["restore", "--", "-config"]
        );
        // A lone dash is a positional.
        assert_eq!(rewrite(&["restore", "-"]), ["restore", "-"]);
    }

    #[test]
    fn a_missing_value_is_left_for_clap_to_report() {
        assert_eq!(rewrite(&["restore", "-txid"]), ["restore", "--txid"]);
        assert_eq!(rewrite(&["restore", "-o"]), ["restore", "-o"]);
    }
}
