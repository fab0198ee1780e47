//! `xdp-bpf`: deploy DNS flood rules at XDP, one eBPF program whose rules live in maps.
use std::process::ExitCode;

fn main() -> ExitCode {
    bpftools::cli::run("xdp-bpf", || {
        bpftools::cli::xdp_bpf::main(
            std::env::args_os(),
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        )
    })
}
