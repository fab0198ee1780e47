//! `parsedns`: see `parsedns --help`.
use std::process::ExitCode;

fn main() -> ExitCode {
    bpftools::cli::run("parsedns", || {
        bpftools::cli::parsedns::main(
            std::env::args_os(),
            &mut std::io::stdin().lock(),
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        )
    })
}
