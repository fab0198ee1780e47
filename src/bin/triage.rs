//! `triage`: what a DNS flood is, and the rules that drop it, counted on the capture.
use std::process::ExitCode;

fn main() -> ExitCode {
    bpftools::cli::run("triage", || {
        bpftools::cli::triage::main(
            std::env::args_os(),
            &mut std::io::stdin().lock(),
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        )
    })
}
