//! `offset`: see `offset --help`.
use std::process::ExitCode;

fn main() -> ExitCode {
    bpftools::cli::run("offset", || {
        bpftools::cli::offset::main(
            std::env::args_os(),
            &mut std::io::stdin().lock(),
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        )
    })
}
