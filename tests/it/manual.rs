//! Shell completions, man pages and the examples that end each `--help`, as the binary
//! prints them and as bash and groff read them.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::harness::{stderr, stdout, succeeded, tributary};

/// Every subcommand, as `tributary SUBCOMMAND` takes it.
const SUBCOMMANDS: &[&str] = &[
    "run",
    "plan",
    "demo",
    "runs",
    "check",
    "backfill",
    "finish",
    "snapshot",
    "completions",
    "man",
];

/// `program`, failing loudly with how to install it when it is missing.
fn tool(program: &str, package: &str) -> Command {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .expect("sh runs");
    assert!(
        found.status.success(),
        "`{program}` is needed to check what tributary generates: apt-get install {package}"
    );
    Command::new(program)
}

/// Runs `cmd` with `input` on its stdin, to its end.
fn with_stdin(mut cmd: Command, input: &[u8]) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the tool starts");
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn completions_for_every_shell_name_the_subcommands_and_their_flags() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let script = succeeded(&tributary(&["completions", shell]));
        assert!(!script.trim().is_empty(), "{shell}: an empty script");
        for word in SUBCOMMANDS
            .iter()
            .chain(&["partition-on", "shards", "from"])
        {
            assert!(script.contains(word), "{shell}: no `{word}` in\n{script}");
        }
    }
    let bash = succeeded(&tributary(&["completions", "bash"]));
    assert!(bash.contains("--partition-on"), "{bash}");
    assert!(bash.contains("complete -F _tributary"), "{bash}");
}

#[test]
fn the_bash_script_is_valid_bash_and_completes_subcommands_and_flags() {
    let script = succeeded(&tributary(&["completions", "bash"]));
    let check = with_stdin(
        {
            let mut bash = tool("bash", "bash");
            bash.arg("-n");
            bash
        },
        script.as_bytes(),
    );
    assert!(check.status.success(), "bash -n: {}", stderr(&check));
    assert_eq!(stderr(&check), "");

    // Completing as bash-completion would: the words so far, the cursor on the last.
    let complete = |words: &str| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tributary.bash");
        std::fs::write(&path, &script).unwrap();
        let words_vec: Vec<&str> = words.split(' ').collect();
        let (cur, prev) = (
            words_vec[words_vec.len() - 1],
            words_vec[words_vec.len() - 2],
        );
        let out = tool("bash", "bash")
            .arg("-c")
            .arg(format!(
                "source {}; COMP_WORDS=({words}); COMP_CWORD={}; _tributary tributary '{cur}' '{prev}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
                path.display(),
                words_vec.len() - 1
            ))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    assert_eq!(complete("tributary ba"), "backfill\n");
    assert_eq!(
        complete("tributary run --partition"),
        "--partition-on\n--partitions\n--partition-by\n"
    );
    assert_eq!(complete("tributary completions z"), "zsh\n");
}

/// `page` as groff renders it, with warnings on; it must render without any. The line
/// length is wide so that no word is hyphenated or split across lines.
fn rendered(page: &str) -> String {
    let mut groff = tool("groff", "groff-base");
    groff.args(["-man", "-Tutf8", "-ww", "-rLL=200n", "-P-cbou"]);
    let out = with_stdin(groff, page.as_bytes());
    assert!(out.status.success(), "groff: {}", stderr(&out));
    assert_eq!(stderr(&out), "", "groff warned about\n{page}");
    stdout(&out)
}

#[test]
fn man_pages_render_without_warnings_and_list_the_subcommands() {
    let top = rendered(&succeeded(&tributary(&["man"])));
    for sub in SUBCOMMANDS {
        assert!(
            top.contains(&format!("tributary-{sub}(1)")),
            "{sub}:\n{top}"
        );
    }
    assert!(top.contains("EXAMPLES"), "{top}");

    let run = rendered(&succeeded(&tributary(&["man", "run"])));
    assert!(run.starts_with("tributary-run(1)"), "{run}");
    for text in [
        "--shards <SHARDS.toml>",
        "--partition-on <COLUMN>",
        "EXAMPLES",
    ] {
        assert!(run.contains(text), "no `{text}` in\n{run}");
    }
    let examples = &run[run.find("EXAMPLES").unwrap()..];
    assert!(
        examples.contains("tributary run --job nightly.toml"),
        "{run}"
    );

    for sub in &SUBCOMMANDS[1..] {
        let page = rendered(&succeeded(&tributary(&["man", sub])));
        assert!(page.starts_with(&format!("tributary-{sub}(1)")), "{page}");
        assert!(page.contains(&format!("tributary {sub}")), "{page}");
    }
    let show = rendered(&succeeded(&tributary(&["man", "runs", "show"])));
    assert!(show.starts_with("tributary-runs-show(1)"), "{show}");
}

#[test]
fn man_dir_writes_every_page_and_an_unknown_subcommand_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("man/man1");
    let listed = succeeded(&tributary(&["man", "--dir", target.to_str().unwrap()]));
    let mut expected = vec![
        "tributary.1".to_string(),
        "tributary-runs-show.1".into(),
        "tributary-snapshot-export.1".into(),
    ];
    expected.extend(SUBCOMMANDS.iter().map(|s| format!("tributary-{s}.1")));
    for name in &expected {
        let path = target.join(name);
        assert!(path.is_file(), "no {name} in {listed}");
        rendered(&std::fs::read_to_string(&path).unwrap());
    }
    assert_eq!(listed.lines().count(), expected.len(), "{listed}");

    let out = tributary(&["man", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no subcommand `nope`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn every_long_help_ends_with_examples_of_its_subcommand() {
    let run = succeeded(&tributary(&["run", "--help"]));
    let run = run.trim_end();
    assert!(
        run.ends_with("--partition-on id --partitions 8"),
        "run --help ends otherwise:\n{run}"
    );
    let examples = &run[run.rfind("Examples:").expect("an Examples section")..];
    assert!(run.find("Options:").unwrap() < run.rfind("Examples:").unwrap());
    for example in [
        "tributary run queries/orders.sql --shards shards.toml -o orders.parquet",
        "tributary run --job nightly.toml",
        "--partition-on id --partitions 8",
    ] {
        assert!(examples.contains(example), "no `{example}` in\n{examples}");
    }
    for sub in SUBCOMMANDS
        .iter()
        .copied()
        .chain(["runs show", "snapshot export"])
    {
        let mut args: Vec<&str> = sub.split(' ').collect();
        args.push("--help");
        let help = succeeded(&tributary(&args));
        let examples = &help[help.rfind("\nExamples:\n").unwrap_or_else(|| {
            panic!("`{sub} --help` has no examples:\n{help}");
        })..];
        assert!(
            examples.contains(&format!("tributary {sub}")),
            "{sub}:\n{examples}"
        );
    }
}

#[test]
fn a_reader_that_closed_its_end_is_no_failure() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let status = crate::harness::bin()
        .args(["completions", "powershell"])
        .stdout(writer)
        .status()
        .unwrap();
    assert!(status.success(), "{status}");
}
