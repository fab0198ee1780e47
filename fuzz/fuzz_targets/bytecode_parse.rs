//! The bytecode reader never panics on any text. Whatever it accepts is written back in every
//! bytecode form and read to the identical program; when every instruction is in canonical
//! form (decoding and encoding it gives the same bits), every jump lands inside the program and
//! every scratch index is 0..15, the disassembly and the listing assemble back to it too.
#![no_main]

use bpftools::asm::{assemble, disassemble, format_program, parse_bytecode, Format};
use bpftools::insn::{Insn, BPF_MEMWORDS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(prog) = parse_bytecode(text) else {
        return;
    };
    for format in [Format::Bytecode, Format::C, Format::Dd, Format::Ddd] {
        let text = format_program(&prog, format);
        let back = parse_bytecode(&text).expect("bytecode text parses");
        assert_eq!(back, prog, "{format:?}");
    }
    let len = prog.len() as u64;
    let assemblable = prog.len() <= 4096
        && prog.iter().enumerate().all(|(pc, raw)| {
            let insn = Insn::decode(*raw);
            !matches!(insn, Insn::Raw(_))
                && insn.encode() == *raw
                && !matches!(
                    insn,
                    Insn::LoadMem(k) | Insn::LoadXMem(k) | Insn::Store(k) | Insn::StoreX(k)
                        if k >= BPF_MEMWORDS
                )
                && insn
                    .jump_targets(pc)
                    .is_none_or(|(t, f)| t < len && f < len)
        });
    // Listing and disassembly are produced for every program without panicking.
    let asm = disassemble(&prog);
    let listing = format_program(&prog, Format::Listing);
    if assemblable {
        assert_eq!(assemble(&asm).expect("disassembly assembles"), prog, "asm");
        assert_eq!(
            assemble(&listing).expect("listing assembles"),
            prog,
            "listing"
        );
    }
});
