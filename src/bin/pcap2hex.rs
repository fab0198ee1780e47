//! `pcap2hex`: see `pcap2hex --help`.
use std::process::ExitCode;

fn main() -> ExitCode {
    bpftools::cli::run("pcap2hex", || {
        bpftools::cli::pcap2hex::main(
            std::env::args_os(),
            &mut std::io::stdin().lock(),
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        )
    })
}
