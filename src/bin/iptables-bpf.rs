//! `iptables-bpf`: generate a bash script that deploys a BPF rule with ipset and iptables.
use std::process::ExitCode;

fn main() -> ExitCode {
    bpftools::cli::run("iptables-bpf", || {
        bpftools::cli::iptables_bpf::main(
            std::env::args_os(),
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        )
    })
}
