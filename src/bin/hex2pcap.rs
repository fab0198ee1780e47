//! `hex2pcap`: see `hex2pcap --help`.
use std::process::ExitCode;

fn main() -> ExitCode {
    bpftools::cli::run("hex2pcap", || {
        // A failed run leaves standard output as it found it when it is a regular file.
        let rollback = bpftools::cli::hex2pcap::StdoutRollback::capture();
        let result = bpftools::cli::hex2pcap::main(
            std::env::args_os(),
            &mut std::io::stdin().lock(),
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        );
        if result.is_err() {
            rollback.apply();
        }
        result
    })
}
