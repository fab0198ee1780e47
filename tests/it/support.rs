//! Shell completions and manual pages (`TOOL --generate KIND`) for every tool, checked by the
//! shells and by groff themselves.

use std::process::Command;

use crate::common::{bin, require, run, stderr, stdout};

/// Every binary of the crate (one per file in src/bin).
fn tools() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/bin");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("src/bin")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "rs"))
        .map(|path| path.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.len() >= 7, "{names:?}");
    names
}

/// Writes `TOOL --generate kind` to a file and checks it with `checker ARGS FILE`.
fn check_generated(kind: &str, checker: &str, checker_args: &[&str]) {
    let dir = std::env::temp_dir().join(format!("bpftools-support-{}-{kind}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for tool in tools() {
        let out = run(&tool, &["--generate", kind], b"");
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{tool} --generate {kind}: {}",
            stderr(&out)
        );
        assert!(
            stdout(&out).contains(&tool),
            "{tool} --generate {kind} does not name the tool"
        );
        let file = dir.join(format!("{tool}.{kind}"));
        std::fs::write(&file, &out.stdout).unwrap();
        let checked = Command::new(checker)
            .args(checker_args)
            .arg(&file)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {checker}: {e}"));
        assert!(
            checked.status.success() && checked.stderr.is_empty(),
            "{checker} on {tool} --generate {kind}: {}",
            String::from_utf8_lossy(&checked.stderr)
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bash_completions_are_valid_bash() {
    check_generated("complete-bash", "bash", &["-n"]);
}

#[test]
fn bash_completion_offers_the_generators() {
    // Load bpfgen's completion and ask it what follows `bpfgen -o 14 `.
    let script = run("bpfgen", &["--generate", "complete-bash"], b"");
    let probe = format!(
        "{}\nCOMP_WORDS=(bpfgen -o 14 d); COMP_CWORD=3; COMP_LINE='bpfgen -o 14 d'; \
         COMP_POINT=${{#COMP_LINE}}; _bpfgen bpfgen d 14; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        stdout(&script)
    );
    let out = Command::new("bash").args(["-c", &probe]).output().unwrap();
    let words = String::from_utf8_lossy(&out.stdout);
    assert!(
        words.lines().any(|w| w == "dns") && words.lines().any(|w| w == "dns_validate"),
        "completions: {words:?} {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[ignore = "needs zsh and fish (apt-get install zsh fish)"]
fn zsh_and_fish_completions_parse() {
    check_generated("complete-zsh", "zsh", &["-n"]);
    check_generated("complete-fish", "fish", &["--no-execute"]);
}

#[test]
fn manual_pages_render_without_warnings() {
    require("groff", "groff");
    check_generated("man", "groff", &["-man", "-Tutf8", "-z", "-ww"]);
    let out = run("bpfgen", &["--generate", "man"], b"");
    let page = stdout(&out);
    assert!(page.contains(".TH bpfgen 1"), "{page}");
    assert!(page.contains(r"\-\-offset"), "{page}");
}

#[test]
fn generate_is_exclusive_and_checked() {
    let out = run("bpfgen", &["--generate", "nroff"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("possible values"), "{}", stderr(&out));
    let out = run("filter", &["--generate", "man", "-b", "1,6 0 0 0"], b"");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(bin("filter").exists());
}

#[test]
fn manual_pages_cover_the_generators_and_name_no_missing_page() {
    for tool in ["bpfgen", "iptables-bpf"] {
        let out = run(tool, &["--generate", "man"], b"");
        let page = stdout(&out);
        assert!(
            !page.contains(r"\-dns(1)"),
            "{tool}: a page that is not shipped"
        );
        assert!(!page.contains("(1)"), "{tool}: refers to another page");
        for generator in ["dns", "dns_validate", "suffix", "tcpdump", "p0f"] {
            assert!(
                page.contains(&format!(".SH \"GENERATOR {generator}\"")),
                "{tool}: no section for {generator}"
            );
        }
        // The pattern syntax, from `bpfgen dns --help`.
        assert!(page.contains(r"*{3\-10}.example.com"), "{tool}");
        assert!(page.contains("One name per pattern"), "{tool}");
    }
}
