//! The assembler, disassembler and bytecode formats, through the library and `bpfasm`.

use bpftools::asm::{assemble, disassemble, format_program, parse_bytecode, Format};
use bpftools::insn::{AluOp, Insn, JumpCond, Operand, RawInsn, Size, SKF_AD_OFF};
use proptest::prelude::*;

use crate::common::{run, stderr, stdout, testdata};

/// The bytecode of testdata/asm/every-form.s, one entry per line of the file, derived by hand
/// from the opcode tables (class | size | mode, class | op | source): e.g. `ldh [%x + 5]` =
/// LD 0x00 | H 0x08 | IND 0x40 = 0x48; `jlt #2, L` = JMP 0x05 | JGE 0x30 | K = 0x35 with the
/// label in jf; `mod x` = ALU 0x04 | MOD 0x90 | X 0x08 = 0x9c. These are the values Linux's
/// bpf_asm emits for the same lines (same tables, same jt/jf conventions).
const EVERY_FORM: &[(u16, u8, u8, u32)] = &[
    (0x30, 0, 0, 1),
    (0x28, 0, 0, 2),
    (0x20, 0, 0, 3),
    (0x50, 0, 0, 4),
    (0x48, 0, 0, 5),
    (0x40, 0, 0, 6),
    (0x00, 0, 0, 7),
    (0x00, 0, 0, 8),
    (0x00, 0, 0, 9),
    (0x80, 0, 0, 0),
    (0x80, 0, 0, 0),
    (0x02, 0, 0, 0),
    (0x60, 0, 0, 0),
    (0x20, 0, 0, SKF_AD_OFF),
    (0x28, 0, 0, SKF_AD_OFF + 4),
    (0x30, 0, 0, SKF_AD_OFF + 8),
    (0x20, 0, 0, SKF_AD_OFF + 12),
    (0x20, 0, 0, SKF_AD_OFF + 16),
    (0x20, 0, 0, SKF_AD_OFF + 20),
    (0x20, 0, 0, SKF_AD_OFF + 24),
    (0x20, 0, 0, SKF_AD_OFF + 28),
    (0x20, 0, 0, SKF_AD_OFF + 32),
    (0x20, 0, 0, SKF_AD_OFF + 36),
    (0x20, 0, 0, SKF_AD_OFF + 44),
    (0x20, 0, 0, SKF_AD_OFF + 48),
    (0x20, 0, 0, SKF_AD_OFF + 48),
    (0x20, 0, 0, SKF_AD_OFF + 52),
    (0x20, 0, 0, SKF_AD_OFF + 56),
    (0x20, 0, 0, SKF_AD_OFF + 60),
    (0x01, 0, 0, 10),
    (0x01, 0, 0, 11),
    (0x01, 0, 0, 12),
    (0x81, 0, 0, 0),
    (0x81, 0, 0, 0),
    (0x03, 0, 0, 1),
    (0x61, 0, 0, 1),
    (0xb1, 0, 0, 14),
    (0xb1, 0, 0, 15),
    (0x04, 0, 0, 1),
    (0x0c, 0, 0, 0),
    (0x0c, 0, 0, 0),
    (0x14, 0, 0, 2),
    (0x1c, 0, 0, 0),
    (0x24, 0, 0, 3),
    (0x2c, 0, 0, 0),
    (0x34, 0, 0, 4),
    (0x3c, 0, 0, 0),
    (0x94, 0, 0, 5),
    (0x9c, 0, 0, 0),
    (0x54, 0, 0, 6),
    (0x5c, 0, 0, 0),
    (0x44, 0, 0, 7),
    (0x4c, 0, 0, 0),
    (0xa4, 0, 0, 8),
    (0xac, 0, 0, 0),
    (0x64, 0, 0, 9),
    (0x6c, 0, 0, 0),
    (0x74, 0, 0, 10),
    (0x7c, 0, 0, 0),
    (0x84, 0, 0, 0),
    (0x07, 0, 0, 0),
    (0x87, 0, 0, 0),
    (0x00, 0, 0, 16),
    (0x00, 0, 0, 3),
    (0x00, 0, 0, 15),
    (0x00, 0, 0, 0xffff_ffff),
    (0x05, 0, 0, 0),
    (0x05, 0, 0, 0),
    (0x15, 0, 1, 0x10),
    (0x1d, 0, 0, 0),
    (0x1d, 0, 1, 0),
    (0x15, 0, 0, 1),
    (0x1d, 0, 0, 0),
    (0x35, 0, 0, 2),
    (0x25, 0, 0, 3),
    (0x25, 0, 1, 4),
    (0x2d, 0, 0, 0),
    (0x35, 0, 1, 5),
    (0x3d, 0, 0, 0),
    (0x45, 0, 1, 6),
    (0x4d, 0, 0, 0),
    (0x16, 0, 0, 0),
    (0x16, 0, 0, 0),
    (0x0e, 0, 0, 0),
    (0x06, 0, 0, 0),
];

fn raw_list(list: &[(u16, u8, u8, u32)]) -> Vec<RawInsn> {
    list.iter()
        .map(|&(c, t, f, k)| RawInsn::new(c, t, f, k))
        .collect()
}

#[test]
fn every_mnemonic_and_operand_form_assembles_as_bpf_asm_does() {
    let source = std::fs::read_to_string(testdata("asm/every-form.s")).unwrap();
    assert_eq!(assemble(&source).unwrap(), raw_list(EVERY_FORM));
    // The same through the binary, in bpf_asm's default output format.
    let out = run(
        "bpfasm",
        &[testdata("asm/every-form.s").to_str().unwrap()],
        b"",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!("{},48 0 0 1,40 0 0 2,", EVERY_FORM.len())),
        "{text}"
    );
    assert!(text.ends_with(",6 0 0 0,\n"), "{text}");
}

/// The bytecode of testdata/asm/extensions.s (forms Linux's bpf_asm refuses, see
/// tests/it/bpf_asm.rs), derived by hand like [`EVERY_FORM`]: `ld [x+6]` = LD | W | IND = 0x40,
/// `ldb [%x+7]` = LD | B | IND = 0x50, `ret a` = RET | A = 0x16, `jeq #1, t` with `t` next =
/// JMP | JEQ | K = 0x15 with both offsets 0.
const EXTENSIONS: &[(u16, u8, u8, u32)] = &[
    (0x40, 0, 0, 6),
    (0x16, 0, 0, 0),
    (0x50, 0, 0, 7),
    (0x16, 0, 0, 0),
    (0x15, 0, 0, 1),
    (0x16, 0, 0, 0),
];

#[test]
fn extension_forms_assemble() {
    let source = std::fs::read_to_string(testdata("asm/extensions.s")).unwrap();
    assert_eq!(assemble(&source).unwrap(), raw_list(EXTENSIONS));
}

#[test]
fn crlf_input_is_accepted() {
    let source = std::fs::read_to_string(testdata("asm/every-form.s"))
        .unwrap()
        .replace('\n', "\r\n");
    assert_eq!(assemble(&source).unwrap(), raw_list(EVERY_FORM));
}

#[test]
fn tcpdump_listings_and_ddd_read_back_to_the_same_program() {
    let dir = testdata("asm/tcpdump");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("ddd") {
            continue;
        }
        let ddd = std::fs::read_to_string(&path).unwrap();
        let listing = std::fs::read_to_string(path.with_extension("d")).unwrap();
        let from_ddd = parse_bytecode(&ddd).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let from_listing = assemble(&listing).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // tcpdump leaves junk in fields some instructions ignore (e.g. k of `tax`); a listing
        // cannot show them, so compare the canonical encodings.
        let canonical: Vec<RawInsn> = from_ddd.iter().map(|r| Insn::decode(*r).encode()).collect();
        assert_eq!(from_listing, canonical, "{}", path.display());
        // Our own -ddd and listing forms of it are identical to tcpdump's.
        assert_eq!(
            format_program(&from_ddd, Format::Ddd),
            ddd,
            "{}",
            path.display()
        );
        let ours: Vec<String> = format_program(&canonical, Format::Listing)
            .lines()
            .map(str::to_string)
            .collect();
        let theirs: Vec<String> = listing.lines().map(|l| l.trim_end().to_string()).collect();
        assert_eq!(ours, theirs, "{}", path.display());
        checked += 1;
    }
    assert!(
        checked >= 10,
        "only {checked} tcpdump programs in {}",
        dir.display()
    );
}

/// Writes `source` to a temporary file and runs bpfasm on it.
fn bpfasm_file(name: &str, source: &str, extra: &[&str]) -> std::process::Output {
    let dir = std::env::temp_dir().join(format!("bpfasm-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, source).unwrap();
    let mut args: Vec<&str> = extra.to_vec();
    let path_text = path.to_str().unwrap().to_string();
    args.push(&path_text);
    run("bpfasm", &args, b"")
}

/// Checks one assembler error: exit 2, nothing on stdout, one line `bpfasm: FILE:L:C: ...`.
fn assert_asm_error(name: &str, source: &str, line: usize, col: usize, message: &str) {
    let out = bpfasm_file(name, source, &[]);
    assert_eq!(out.status.code(), Some(2), "{name}: {}", stderr(&out));
    assert!(out.stdout.is_empty(), "{name}: printed {:?}", stdout(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{name}: {err}");
    let position = format!("{name}:{line}:{col}: ");
    assert!(
        err.starts_with("bpfasm: ") && err.contains(&position),
        "{name}: want {position} in {err}"
    );
    assert!(err.contains(message), "{name}: want '{message}' in {err}");
}

#[test]
fn assembler_errors_name_the_place_and_exit_2() {
    let mut far = String::from("ld #1\njeq #1, far\n");
    far.push_str(&"ld #2\n".repeat(256));
    far.push_str("far: ret #0\n");
    assert_asm_error(
        "far.s",
        &far,
        2,
        9,
        "needs offset 256, expected at most 255",
    );
    assert_asm_error(
        "back.s",
        "top: ld #1\n  ja top\nret #0\n",
        2,
        6,
        "backwards or to itself",
    );
    assert_asm_error(
        "self.s",
        "ld #1\nl: jeq #1, l\nret #0\n",
        2,
        12,
        "backwards or to itself",
    );
    assert_asm_error(
        "unknown.s",
        "ld #1\njeq #1, nowhere\nret #0\n",
        2,
        9,
        "unknown label 'nowhere'",
    );
    assert_asm_error(
        "dup.s",
        "a: ld #1\na: ret #0\n",
        2,
        1,
        "duplicate label 'a' (first defined at 1:1)",
    );
    assert_asm_error("msh.s", "ldx 4*([14]&0xff)\nret #0\n", 1, 5, "4*([k]&0xf)");
    assert_asm_error("msh2.s", "ldx 3*([14]&0xf)\nret #0\n", 1, 5, "4*([k]&0xf)");
    assert_asm_error(
        "char.s",
        "ld #1\nret #0 $\n",
        2,
        8,
        "unexpected character '$'",
    );
    // A jump target past the end of a pasted listing points at the target.
    assert_asm_error(
        "past.d",
        "(000) ldh [12]\n(001) jeq #0x800 jt 2 jf 9\n(002) ret #0\n",
        2,
        26,
        "jump to '9' goes past the last instruction",
    );
    // Listing lines out of order would silently move every absolute jump target.
    assert_asm_error(
        "order.d",
        "(000) ldh [12]\n(001) jeq #0x800 jt 2 jf 3\n(002) ret #1\n(002) ld #1\n(003) ret #0\n",
        4,
        2,
        "listing line (002) is instruction 3",
    );
    let long = "ld #1\n".repeat(4096) + "ret #0\n";
    assert_asm_error(
        "long.s",
        &long,
        4097,
        1,
        "4097 instructions, expected at most 4096",
    );
}

#[test]
fn bytecode_errors_name_the_instruction() {
    let out = run("bpfasm", &["-d", "3,6 0 0 0,6 0 0 1,"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("instruction count 3 exceeds the 2 instructions given"),
        "{}",
        stderr(&out)
    );
    let out = run("bpfasm", &["-d", "2,6 0 0 0,6 0 x 1,"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("instruction 1: bad jf 'x'"),
        "{}",
        stderr(&out)
    );
    let out = run("bpfasm", &["-d", "-"], b"1\n6 0 0 99999999999\n");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("bad k '99999999999'"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bpfasm_converts_between_every_format() {
    let bytecode = "4,40 0 0 12,21 0 1 2048,6 0 0 65535,6 0 0 0,\n";
    for (format, expect) in [
        ("c", "{ 0x28,  0,  0, 0x0000000c },"),
        ("dd", "{ 0x28, 0, 0, 0x0000000c },"),
        ("ddd", "4\n40 0 0 12\n"),
        ("listing", "(001) jeq      #0x800           jt 2\tjf 3"),
        ("asm", "\tjneq #0x800, L3\n"),
    ] {
        let out = run(
            "bpfasm",
            &["-d", bytecode.trim_end(), "--format", format],
            b"",
        );
        assert!(out.status.success(), "{format}: {}", stderr(&out));
        let text = stdout(&out);
        assert!(text.contains(expect), "{format}: {text}");
        // And back to the same bytecode.
        let back = if format == "asm" || format == "listing" {
            run("bpfasm", &["-"], text.as_bytes())
        } else {
            run(
                "bpfasm",
                &["-d", "-", "--format", "bytecode"],
                text.as_bytes(),
            )
        };
        assert_eq!(stdout(&back), bytecode, "{format}: {}", stderr(&back));
    }
}

fn arb_operand() -> impl Strategy<Value = Operand> {
    prop_oneof![any::<u32>().prop_map(Operand::K), Just(Operand::X)]
}

fn arb_size() -> impl Strategy<Value = Size> {
    prop_oneof![Just(Size::Word), Just(Size::Half), Just(Size::Byte)]
}

/// Any instruction but a jump; offsets and constants over the whole u32 range, so ancillary,
/// SKF_NET_OFF and negative offsets are covered.
fn arb_straight() -> impl Strategy<Value = Insn> {
    let offset = prop_oneof![
        any::<u32>(),
        0u32..64,
        (0u32..64).prop_map(|n| SKF_AD_OFF + n)
    ];
    prop_oneof![
        (arb_size(), offset.clone()).prop_map(|(size, offset)| Insn::LoadAbs { size, offset }),
        (arb_size(), offset.clone()).prop_map(|(size, offset)| Insn::LoadInd { size, offset }),
        any::<u32>().prop_map(Insn::LoadImm),
        (0u32..16).prop_map(Insn::LoadMem),
        Just(Insn::LoadLen),
        any::<u32>().prop_map(Insn::LoadXImm),
        (0u32..16).prop_map(Insn::LoadXMem),
        Just(Insn::LoadXLen),
        offset.prop_map(Insn::LoadXMsh),
        (0u32..16).prop_map(Insn::Store),
        (0u32..16).prop_map(Insn::StoreX),
        (proptest::sample::select(AluOp::ALL.to_vec()), arb_operand())
            .prop_map(|(op, operand)| Insn::Alu { op, operand }),
        Just(Insn::Neg),
        Just(Insn::Tax),
        Just(Insn::Txa),
        any::<u32>().prop_map(Insn::RetK),
        Just(Insn::RetA),
        Just(Insn::RetX),
    ]
}

/// A random program whose jumps all land inside it.
fn arb_program() -> impl Strategy<Value = Vec<RawInsn>> {
    (1usize..80)
        .prop_flat_map(|len| {
            proptest::collection::vec(
                (
                    arb_straight(),
                    0u8..4,
                    arb_operand(),
                    any::<u16>(),
                    any::<u16>(),
                ),
                len,
            )
        })
        .prop_map(|slots| {
            let len = slots.len();
            slots
                .into_iter()
                .enumerate()
                .map(|(pc, (insn, kind, operand, a, b))| {
                    let room = len - pc - 1;
                    let insn = match kind {
                        _ if room == 0 => Insn::RetK(0),
                        0 => Insn::Ja(u32::from(a) % room as u32),
                        1 => Insn::Jump {
                            cond: JumpCond::ALL[usize::from(b) % 4],
                            operand,
                            jt: (usize::from(a) % room.min(256)) as u8,
                            jf: (usize::from(b) % room.min(256)) as u8,
                        },
                        _ => insn,
                    };
                    insn.encode()
                })
                .collect()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn disassembly_assembles_back_to_the_same_program(prog in arb_program()) {
        let text = disassemble(&prog);
        let back = assemble(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(back, prog);
    }

    #[test]
    fn every_text_format_reads_back_to_the_same_program(prog in arb_program()) {
        for format in [Format::Bytecode, Format::C, Format::Dd, Format::Ddd] {
            let text = format_program(&prog, format);
            prop_assert_eq!(parse_bytecode(&text).map_err(|e| TestCaseError::fail(format!("{format:?}: {e}")))?, prog.clone());
        }
        let listing = format_program(&prog, Format::Listing);
        let back = assemble(&listing).map_err(|e| TestCaseError::fail(format!("{e}\n{listing}")))?;
        prop_assert_eq!(back, prog);
    }
}

#[test]
fn bpfasm_check_and_trace() {
    let good = "ldh [12]\njeq #0x800, ip\nret #0\nip: ret #65535\n";
    let out = run(
        "bpfasm",
        &["--check", "--profile", "xt_bpf", "-"],
        good.as_bytes(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let bad = "ld M[2]\nlsh #40\nret x\n";
    let out = run("bpfasm", &["--check", "-"], bad.as_bytes());
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    for want in [
        "instruction 0 (ld M[2]): reads M[2], which is not written on every path to here",
        "instruction 1 (lsh #0x28): shift by a constant of 32 or more",
        "instruction 2 (ret x): 'ret x' is refused by the kernel",
    ] {
        assert!(err.contains(want), "missing '{want}' in {err}");
    }
    let long = "ld #1\n".repeat(64) + "ret a\n";
    let out = run(
        "bpfasm",
        &["--check", "--profile", "xt_bpf", "-"],
        long.as_bytes(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("65 instructions, the xt_bpf limit is 64"),
        "{}",
        stderr(&out)
    );
    // Trace: an Ethernet frame with the IPv4 ethertype at offset 12.
    let frame = "0000000000000000000000000800";
    let out = run("bpfasm", &["--trace", frame, "-"], good.as_bytes());
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("ldh [12]") && text.contains("A=0x00000800"),
        "{text}"
    );
    assert_eq!(
        text.lines().last().unwrap(),
        "verdict 65535 (ret at instruction 3)"
    );
    let out = run("bpfasm", &["--trace", "0000", "-"], good.as_bytes());
    assert_eq!(
        stdout(&out).lines().last().unwrap(),
        "verdict 0 (load past the end of the packet at instruction 0)"
    );
}

#[test]
fn signed_decimals_and_bare_ret_in_listings() {
    // bpf_asm reads `+5` as a number (its lexer's decimal form is [-+]?[1-9][0-9]*); the
    // expected words follow from the opcode table: ld #k = 0x00, ld [k] = 0x20, jeq #k = 0x15,
    // ret #k = 0x06.
    assert_eq!(
        assemble("ld #+5\nld [+4]\njeq #+1, l1\nl1: ret #+0\n").unwrap(),
        raw_list(&[
            (0x00, 0, 0, 5),
            (0x20, 0, 0, 4),
            (0x15, 0, 0, 1),
            (0x06, 0, 0, 0)
        ])
    );
    // `[x+4]` keeps its meaning: the + after x is the operator.
    assert_eq!(
        assemble("ld [x+4]\nret a\n").unwrap(),
        raw_list(&[(0x40, 0, 0, 4), (0x16, 0, 0, 0)])
    );
    // libpcap lists `ret a` as a bare `ret`; our listing does the same and reads back.
    let prog = assemble("(000) ld #1\n(001) ret\n").unwrap();
    assert_eq!(prog, raw_list(&[(0x00, 0, 0, 1), (0x16, 0, 0, 0)]));
    let listing = format_program(&prog, Format::Listing);
    assert!(listing.contains("(001) ret"), "{listing}");
    assert!(!listing.contains("ret a"), "{listing}");
    assert_eq!(assemble(&listing).unwrap(), prog);
    // Outside a listing, `ret` needs its operand.
    assert!(assemble("ld #1\nret\n").is_err());
}

#[test]
fn disassembly_warns_about_what_text_cannot_show() {
    // 0x08 is no classic opcode; `tax` with k = 3 and `ret #3` with jump fields carry bits the
    // assembly text does not show.
    let out = run("bpfasm", &["-d", "4,21 0 1 5,8 0 0 0,7 0 0 3,6 1 2 3"], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("instruction 1 (code 0x0008) is not a classic BPF instruction"),
        "{err}"
    );
    assert!(
        err.contains("instruction 2 (tax) is stored as 7 0 0 3")
            && err.contains("assembles to 7 0 0 0"),
        "{err}"
    );
    assert!(
        err.contains("instruction 3 (ret #3) is stored as 6 1 2 3"),
        "{err}"
    );
    // A canonical program disassembles without a word on stderr.
    let out = run("bpfasm", &["-d", "2,7 0 0 0,6 0 0 3"], b"");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        stderr(&out)
    );
}

#[test]
fn trace_says_when_ancillary_data_is_missing() {
    let dir = std::env::temp_dir().join(format!("bpfasm-anc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("anc.s");
    std::fs::write(&path, "ld proto\nld proto\nld ifidx\nret a\n").unwrap();
    let out = run("bpfasm", &["--trace", "4500", path.to_str().unwrap()], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        "bpfasm: note: ancillary loads (ifidx, proto) read 0 here: a packet given as hex has no socket metadata\n"
    );
    assert!(
        stdout(&out)
            .trim_end()
            .ends_with("verdict 0 (ret at instruction 3)"),
        "{}",
        stdout(&out)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
