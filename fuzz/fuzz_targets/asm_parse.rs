//! The assembler never panics on any text, and whatever it accepts comes back identical from
//! every text format: disassembly and listing through the assembler, the bytecode forms
//! through the bytecode reader.
#![no_main]

use bpftools::asm::{assemble, disassemble, format_program, parse_bytecode, Format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(prog) = assemble(text) else {
        return;
    };
    let again = assemble(&disassemble(&prog)).expect("disassembly assembles");
    assert_eq!(again, prog, "disassemble -> assemble");
    let listing = format_program(&prog, Format::Listing);
    assert_eq!(
        assemble(&listing).expect("listing assembles"),
        prog,
        "listing"
    );
    for format in [Format::Bytecode, Format::C, Format::Dd, Format::Ddd] {
        let text = format_program(&prog, format);
        let back = parse_bytecode(&text).expect("bytecode text parses");
        assert_eq!(back, prog, "{format:?}");
    }
});
