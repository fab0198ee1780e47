//! `filter`: run a classic BPF program over a capture and keep the packets it matches.
use std::process::ExitCode;

fn main() -> ExitCode {
    bpftools::cli::run("filter", || {
        bpftools::cli::filter::main(
            std::env::args_os(),
            &mut std::io::stdin().lock(),
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        )
    })
}
