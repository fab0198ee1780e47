//! `bpfgen`: generate classic BPF programs that match packet floods.
use std::process::ExitCode;

fn main() -> ExitCode {
    bpftools::cli::run("bpfgen", || {
        bpftools::cli::bpfgen::main(
            std::env::args_os(),
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        )
    })
}
