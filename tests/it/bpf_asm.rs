//! Linux's own `bpf_asm` as the oracle of the assembler.
//!
//! `bpf_asm` is built from the kernel sources Debian ships in the `linux-source` package (a
//! tarball under /usr/src): only `tools/bpf/bpf_asm.c`, `bpf_exp.l`, `bpf_exp.y` and the two
//! uapi headers they include are extracted, and flex, bison and gcc build it as
//! `tools/bpf/Makefile` does. Extracting from the compressed tarball is the slow part, so the
//! binary is built once per tarball and kept beside the project's binaries
//! (`target/<profile>/linux-bpf_asm/<tarball>-<size>-<mtime>/bpf_asm`).
//!
//! testdata/asm/every-form.s is assembled by both, compared instruction by instruction and then
//! as text (the default `N,c t f k,...` form and `-c`). testdata/asm/extensions.s holds what
//! bpfasm reads beyond bpf_asm's syntax; every block of it must be refused by bpf_asm, so that
//! the split between the two files stays true.
//!
//! The tests are ignored by default (the oracle is a large package); asked for, they fail,
//! naming what to install, when the oracle cannot be built.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use bpftools::asm::assemble;
use bpftools::insn::{Insn, RawInsn};

use crate::common::{require, run, stderr, stdout, testdata};

const INSTALL: &str = "apt-get install linux-source flex bison gcc";

/// The files of the kernel tree bpf_asm is built from (paths below the tarball's top directory).
const SOURCES: [&str; 5] = [
    "tools/bpf/bpf_asm.c",
    "tools/bpf/bpf_exp.l",
    "tools/bpf/bpf_exp.y",
    "tools/include/uapi/linux/filter.h",
    "tools/include/uapi/linux/bpf_common.h",
];

/// The version numbers in a name like `linux-source-6.1.tar.xz`, for picking the newest.
fn version_of(name: &str) -> Vec<u32> {
    name.trim_start_matches("linux-source-")
        .split(|c: char| !c.is_ascii_digit())
        .take_while(|part| !part.is_empty())
        .filter_map(|part| part.parse().ok())
        .collect()
}

/// The newest kernel source tarball of the Debian package.
fn source_tarball() -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir("/usr/src")
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|path| {
                    let name = path.file_name().unwrap_or_default().to_string_lossy();
                    name.starts_with("linux-source-") && name.contains(".tar")
                })
                .collect()
        })
        .unwrap_or_default();
    found
        .into_iter()
        .max_by_key(|path| version_of(&path.file_name().unwrap().to_string_lossy()))
        .unwrap_or_else(|| {
            panic!(
                "this test builds Linux's bpf_asm from /usr/src/linux-source-*.tar.xz, and there is none \
                 (Debian: {INSTALL})"
            )
        })
}

/// Runs a build step; fails naming the step and what it printed.
fn step(command: &mut Command, what: &str) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Linux's bpf_asm, built from the kernel source tarball (or taken from the cache); built once
/// per test process, whichever test asks first.
fn linux_bpf_asm() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(build_linux_bpf_asm).clone()
}

fn build_linux_bpf_asm() -> PathBuf {
    let tarball = source_tarball();
    let meta = std::fs::metadata(&tarball).expect("tarball metadata");
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let name = tarball.file_name().unwrap().to_string_lossy().into_owned();
    let cache = PathBuf::from(env!("CARGO_BIN_EXE_bpfasm"))
        .parent()
        .expect("binary directory")
        .join("linux-bpf_asm");
    let home = cache.join(format!("{name}-{}-{mtime}", meta.len()));
    let binary = home.join("bpf_asm");
    if binary.exists() {
        return binary;
    }
    for (tool, package) in [
        ("tar", "tar"),
        ("xz", "xz-utils"),
        ("flex", "flex"),
        ("bison", "bison"),
        ("gcc", "gcc"),
    ] {
        require(tool, package);
    }
    let work = cache.join(format!("build-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).expect("build directory");
    // Only the files bpf_asm needs, wherever the tarball's top directory is.
    let mut tar = Command::new("tar");
    tar.arg("-x")
        .arg("-f")
        .arg(&tarball)
        .arg("-C")
        .arg(&work)
        .arg("--wildcards");
    for source in SOURCES {
        tar.arg(format!("*/{source}"));
    }
    step(
        &mut tar,
        &format!("extracting tools/bpf from {}", tarball.display()),
    );
    let top = std::fs::read_dir(&work)
        .expect("extracted tree")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .find(|path| path.join(SOURCES[0]).exists())
        .unwrap_or_else(|| panic!("{} holds no {}", tarball.display(), SOURCES[0]));
    let tools = top.join("tools/bpf");
    step(
        Command::new("bison")
            .arg("-o")
            .arg(work.join("bpf_exp.yacc.c"))
            .arg("-d")
            .arg(tools.join("bpf_exp.y")),
        "bison bpf_exp.y",
    );
    step(
        Command::new("flex")
            .arg("-o")
            .arg(work.join("bpf_exp.lex.c"))
            .arg(tools.join("bpf_exp.l")),
        "flex bpf_exp.l",
    );
    // The flags of tools/bpf/Makefile; <linux/types.h> comes from the system's headers.
    step(
        Command::new("gcc")
            .args(["-O2", "-D__EXPORTED_HEADERS__", "-I"])
            .arg(top.join("tools/include/uapi"))
            .arg("-I")
            .arg(&work)
            .arg("-o")
            .arg(work.join("bpf_asm"))
            .arg(tools.join("bpf_asm.c"))
            .arg(work.join("bpf_exp.yacc.c"))
            .arg(work.join("bpf_exp.lex.c")),
        "gcc bpf_asm",
    );
    std::fs::create_dir_all(&home).expect("cache directory");
    // A rename within one directory tree: another run sees the whole binary or none.
    std::fs::rename(work.join("bpf_asm"), &binary).expect("keep bpf_asm");
    let _ = std::fs::remove_dir_all(&work);
    binary
}

/// Runs bpf_asm (with `-c` when `c_array`) on `source` given on stdin: bpf_asm reads stdin when
/// it cannot open its argument, so the source is never named as a file.
fn run_bpf_asm(bpf_asm: &Path, source: &str, c_array: bool) -> Output {
    let mut child = Command::new(bpf_asm)
        .args(if c_array { &["-c"][..] } else { &[][..] })
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run bpf_asm");
    let mut stdin = child.stdin.take().expect("stdin");
    let data = source.as_bytes().to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait for bpf_asm");
    writer.join().expect("stdin writer");
    out
}

/// Reads bpf_asm's default output, `N,code jt jf k,...,` (read here, not with the library's
/// bytecode reader: the oracle's answer does not go through the code under test).
fn read_bpf_asm_output(text: &str) -> Vec<RawInsn> {
    let mut groups = text.trim_end().trim_end_matches(',').split(',');
    let count: usize = groups
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("bpf_asm printed no count: {text:?}"));
    let insns: Vec<RawInsn> = groups
        .map(|group| {
            let fields: Vec<u64> = group
                .split_whitespace()
                .map(|n| {
                    n.parse()
                        .unwrap_or_else(|_| panic!("bpf_asm printed {group:?}"))
                })
                .collect();
            assert_eq!(fields.len(), 4, "bpf_asm printed {group:?}");
            RawInsn::new(
                fields[0] as u16,
                fields[1] as u8,
                fields[2] as u8,
                fields[3] as u32,
            )
        })
        .collect();
    assert_eq!(
        count,
        insns.len(),
        "bpf_asm's count and instructions: {text}"
    );
    insns
}

/// The lines of an assembly file that hold an instruction (1-based number, text without label
/// and comment); every-form.s has one instruction per such line.
fn instruction_lines(source: &str) -> Vec<(usize, String)> {
    let mut lines = Vec::new();
    let mut in_block_comment = false;
    for (index, line) in source.lines().enumerate() {
        if in_block_comment {
            in_block_comment = !line.contains("*/");
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        if line.trim_start().starts_with("/*") {
            in_block_comment = !line.contains("*/");
            continue;
        }
        let code = line.split(';').next().unwrap_or_default();
        let code = match code.split_once(':') {
            Some((label, rest)) if label.chars().all(|c| c.is_alphanumeric() || c == '_') => rest,
            _ => code,
        };
        let code = code.trim();
        if !code.is_empty() {
            lines.push((index + 1, code.to_string()));
        }
    }
    lines
}

fn words(insn: RawInsn) -> String {
    format!("{} {} {} {}", insn.code, insn.jt, insn.jf, insn.k)
}

/// Asserts two texts are equal, naming the first line that differs.
fn assert_same_text(what: &str, theirs: &str, ours: &str) {
    if theirs == ours {
        return;
    }
    let (mut theirs_lines, mut ours_lines) = (theirs.split('\n'), ours.split('\n'));
    for number in 1.. {
        let (a, b) = (theirs_lines.next(), ours_lines.next());
        assert_eq!(
            a, b,
            "{what}: line {number} differs (left: bpf_asm, right: bpfasm)"
        );
        if a.is_none() {
            break;
        }
    }
    panic!("{what}: the outputs differ in line ends");
}

#[test]
#[ignore = "needs the Debian linux-source package, flex, bison and gcc (apt-get install linux-source flex bison gcc)"]
fn every_form_assembles_as_linux_bpf_asm_does() {
    let bpf_asm = linux_bpf_asm();
    let path = testdata("asm/every-form.s");
    let source = std::fs::read_to_string(&path).unwrap();
    let out = run_bpf_asm(&bpf_asm, &source, false);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "bpf_asm refuses {}: {}{}",
        path.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs_text = String::from_utf8(out.stdout).expect("bpf_asm prints ASCII");
    let theirs = read_bpf_asm_output(&theirs_text);
    let ours = assemble(&source).unwrap_or_else(|e| panic!("bpfasm: {e}"));

    let lines = instruction_lines(&source);
    assert_eq!(
        lines.len(),
        theirs.len(),
        "every-form.s holds one instruction per line; its instruction lines: {lines:?}"
    );
    for (index, (a, b)) in theirs.iter().zip(&ours).enumerate() {
        let (line, text) = &lines[index];
        assert!(
            a == b,
            "instruction {index} (every-form.s line {line}: `{text}`): bpf_asm gives {} ({}), bpfasm gives {} ({})",
            words(*a),
            Insn::decode(*a),
            words(*b),
            Insn::decode(*b)
        );
    }
    assert_eq!(
        theirs.len(),
        ours.len(),
        "bpf_asm gives {} instructions, bpfasm {}",
        theirs.len(),
        ours.len()
    );

    // The text forms too, byte for byte: the default form and the C array.
    let ours_text = run("bpfasm", &[path.to_str().unwrap()], b"");
    assert!(ours_text.status.success(), "{}", stderr(&ours_text));
    assert_same_text("default output", &theirs_text, &stdout(&ours_text));
    let theirs_c = run_bpf_asm(&bpf_asm, &source, true);
    assert!(theirs_c.status.success(), "bpf_asm -c refuses every-form.s");
    let ours_c = run("bpfasm", &["-c", path.to_str().unwrap()], b"");
    assert!(ours_c.status.success(), "{}", stderr(&ours_c));
    assert_same_text(
        "-c output",
        &String::from_utf8_lossy(&theirs_c.stdout),
        &stdout(&ours_c),
    );
}

#[test]
#[ignore = "needs the Debian linux-source package, flex, bison and gcc (apt-get install linux-source flex bison gcc)"]
fn linux_bpf_asm_refuses_every_extension_form() {
    let bpf_asm = linux_bpf_asm();
    let source = std::fs::read_to_string(testdata("asm/extensions.s")).unwrap();
    let mut checked = 0;
    for block in source.split("\n\n") {
        if instruction_lines(block).is_empty() {
            continue;
        }
        assemble(block).unwrap_or_else(|e| panic!("bpfasm refuses\n{block}\n{e}"));
        let out = run_bpf_asm(&bpf_asm, block, false);
        assert!(
            !out.status.success(),
            "bpf_asm accepts this block of extensions.s: move it to every-form.s\n{block}\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        checked += 1;
    }
    assert!(checked >= 3, "only {checked} blocks in extensions.s");
    // CRLF line ends: bpf_asm's lexer has no rule for '\r'.
    let crlf = std::fs::read_to_string(testdata("asm/every-form.s"))
        .unwrap()
        .replace('\n', "\r\n");
    let out = run_bpf_asm(&bpf_asm, &crlf, false);
    assert!(!out.status.success(), "bpf_asm accepts CRLF line ends");
}

#[test]
fn the_oracle_helpers_read_what_bpf_asm_prints() {
    // The parts of the oracle test that do not need bpf_asm, on text it printed.
    assert_eq!(
        read_bpf_asm_output("2,48 0 0 1,6 0 1 4294967295,\n"),
        vec![RawInsn::new(0x30, 0, 0, 1), RawInsn::new(6, 0, 1, u32::MAX)]
    );
    let lines = instruction_lines("# c\n/* a\n b */\n\tld #1 ; one\nl1:\tret a\n");
    assert_eq!(
        lines,
        vec![(4, "ld #1".to_string()), (5, "ret a".to_string())]
    );
    assert_eq!(version_of("linux-source-6.12.tar.xz"), vec![6, 12]);
    assert!(version_of("linux-source-6.12.tar.xz") > version_of("linux-source-6.1.tar.xz"));
}
