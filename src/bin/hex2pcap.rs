//! `hex2pcap`: see `hex2pcap --help`.
use std::process::ExitCode;

fn main() -> ExitCode {
    bpftools::cli::run("hex2pcap", || {
        bpftools::cli::hex2pcap::main(
            std::env::args_os(),
            &mut std::io::stdin().lock(),
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        )
    })
}
