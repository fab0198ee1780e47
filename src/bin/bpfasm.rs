//! `bpfasm`: assemble, disassemble, convert, check and trace classic BPF programs.
use std::process::ExitCode;

fn main() -> ExitCode {
    bpftools::cli::run("bpfasm", || {
        bpftools::cli::bpfasm::main(
            std::env::args_os(),
            &mut std::io::stdin().lock(),
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        )
    })
}
