//! Shell completion scripts and man pages, generated from the command line's definition
//! ([`crate::cli`]) so that they never disagree with what `tributary` accepts.
//!
//! Each man page is clap_mangen's sections (NAME, SYNOPSIS, DESCRIPTION, OPTIONS,
//! SUBCOMMANDS, VERSION) with the command's examples ([`cli::examples`]) as EXAMPLES,
//! where `--help` shows them last.

use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;
use roff::{Roff, roman};

use crate::cli::{self, Cli};

/// The completion script for `shell`.
///
/// A buffer rather than a writer: clap_complete panics when its writer fails (a closed
/// pipe), and the caller decides what a failed write means.
pub fn completions(shell: Shell) -> Vec<u8> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "tributary", &mut script);
    script
}

/// A subcommand that has no man page.
#[derive(Debug, thiserror::Error)]
#[error("no subcommand `{name}`; the man pages are of: {}", known.join(", "))]
pub struct UnknownSubcommand {
    pub name: String,
    /// The subcommand paths that have a page (`run`, `runs show`, ...).
    pub known: Vec<String>,
}

/// The man page of tributary (`path` empty) or of the subcommand at `path`
/// (`["run"]`: tributary-run(1); `["runs", "show"]`: tributary-runs-show(1)), as roff.
pub fn man_page(path: &[String]) -> Result<Vec<u8>, UnknownSubcommand> {
    let root = built();
    let mut command = &root;
    for name in path {
        command = command
            .find_subcommand(name)
            .ok_or_else(|| UnknownSubcommand {
                name: path.join(" "),
                known: pages(&root)
                    .into_iter()
                    .filter(|(p, _)| !p.is_empty())
                    .map(|(p, _)| p)
                    .collect(),
            })?;
    }
    Ok(render(command, &path.join(" ")))
}

/// Writes every man page into `dir` (created if missing) as `tributary.1`,
/// `tributary-run.1`, ...; returns the files written.
pub fn write_man_pages(dir: &Path) -> crate::Result<Vec<PathBuf>> {
    let failed = |path: &Path, e: std::io::Error| crate::Error::Output {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(|e| failed(dir, e))?;
    let root = built();
    let mut written = Vec::new();
    for (path, command) in pages(&root) {
        let name = command
            .get_display_name()
            .unwrap_or_else(|| command.get_name());
        let file = dir.join(format!("{name}.1"));
        std::fs::write(&file, render(command, &path)).map_err(|e| failed(&file, e))?;
        written.push(file);
    }
    Ok(written)
}

/// The command line's definition, built: each subcommand knows its page's name
/// (`tributary-run`) and how it is invoked (`tributary run`). The `help` subcommand
/// clap adds is no page of its own.
fn built() -> clap::Command {
    let mut root = Cli::command().disable_help_subcommand(true);
    root.build();
    root
}

/// Every command with a page, with its subcommand path (`""` for tributary itself), in
/// the order `--help` lists them.
fn pages(root: &clap::Command) -> Vec<(String, &clap::Command)> {
    fn walk<'a>(
        path: String,
        command: &'a clap::Command,
        out: &mut Vec<(String, &'a clap::Command)>,
    ) {
        for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
            let sub_path = if path.is_empty() {
                sub.get_name().to_string()
            } else {
                format!("{path} {}", sub.get_name())
            };
            out.push((sub_path.clone(), sub));
            walk(sub_path, sub, out);
        }
    }
    let mut out = vec![(String::new(), root)];
    walk(String::new(), root, &mut out);
    out
}

/// One page: clap_mangen's sections, then the examples of the command at `path`.
fn render(command: &clap::Command, path: &str) -> Vec<u8> {
    // Every page's footer names tributary and its version, not the subcommand.
    let man = clap_mangen::Man::new(command.clone())
        .source(format!("tributary {}", env!("CARGO_PKG_VERSION")));
    let mut page = Vec::new();
    // Writing into a Vec cannot fail.
    let mut section = |render: &dyn Fn(&mut Vec<u8>) -> std::io::Result<()>| {
        render(&mut page).expect("writing to a Vec");
    };
    section(&|w| man.render_title(w));
    section(&|w| man.render_name_section(w));
    section(&|w| man.render_synopsis_section(w));
    section(&|w| man.render_description_section(w));
    if command.get_arguments().any(|a| !a.is_hide_set()) {
        section(&|w| man.render_options_section(w));
    }
    if command.get_subcommands().any(|s| !s.is_hide_set()) {
        section(&|w| man.render_subcommands_section(w));
    }
    let examples = cli::examples(path);
    if !examples.is_empty() {
        let mut roff = Roff::default();
        roff.control("SH", ["EXAMPLES"]);
        for example in examples {
            roff.control("PP", []);
            roff.text([roman(example.does)]);
            // Indented and unfilled: each line of the command as it is typed.
            roff.control("RS", ["4"]);
            roff.control("nf", []);
            for line in example.line.lines() {
                roff.text([roman(line)]);
            }
            roff.control("fi", []);
            roff.control("RE", []);
        }
        section(&|w| roff.to_writer(w));
    }
    if command.get_version().is_some() {
        section(&|w| man.render_version_section(w));
    }
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The words of an example as the shell passes them to tributary: continuation
    /// lines joined, up to a redirection or a pipe.
    fn argv(line: &str) -> Vec<&str> {
        line.split_whitespace()
            .filter(|w| *w != "\\")
            .take_while(|w| !matches!(*w, ">" | "|"))
            .collect()
    }

    #[test]
    fn every_command_has_examples_that_parse_as_that_command() {
        let root = built();
        for (path, command) in pages(&root) {
            assert!(
                command.get_after_long_help().is_some(),
                "`tributary {path} --help` shows no examples"
            );
            let examples = cli::examples(&path);
            assert!(
                (2..=3).contains(&examples.len()),
                "`tributary {path}` has {} examples",
                examples.len()
            );
            for example in examples {
                let words = argv(example.line);
                let matches = Cli::command()
                    .try_get_matches_from(&words)
                    .unwrap_or_else(|e| panic!("{words:?}:\n{e}"));
                let mut typed = Vec::new();
                let mut m = &matches;
                while let Some((name, sub)) = m.subcommand() {
                    typed.push(name);
                    m = sub;
                }
                assert!(
                    typed.join(" ").starts_with(&path),
                    "an example of `tributary {path}` runs `tributary {}`",
                    typed.join(" ")
                );
            }
        }
    }

    #[test]
    fn each_page_is_named_after_its_command_and_ends_with_its_examples() {
        let page = |path: &[&str]| {
            let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
            String::from_utf8(man_page(&path).unwrap()).unwrap()
        };
        let top = page(&[]);
        assert!(top.contains(".TH tributary 1"), "{top}");
        assert!(top.contains("tributary\\-run(1)"), "{top}");
        let show = page(&["runs", "show"]);
        assert!(show.contains(".TH tributary-runs-show 1"), "{show}");
        assert!(
            show.contains("tributary 0."),
            "the footer names tributary: {show}"
        );
        let run = page(&["run"]);
        let examples = run.find(".SH EXAMPLES").expect("an EXAMPLES section");
        assert!(run[examples..].contains("\\-\\-partition\\-on id"), "{run}");
        assert!(run.find(".SH OPTIONS").unwrap() < examples);
    }

    #[test]
    fn an_unknown_subcommand_has_no_page() {
        let e = man_page(&["runs".into(), "nope".into()]).unwrap_err();
        assert_eq!(e.name, "runs nope");
        assert!(e.known.contains(&"runs show".to_string()), "{e}");
        assert!(!e.known.contains(&"help".to_string()), "{e}");
    }
}
