//! `filter`: run a classic BPF program over a capture and keep the packets it matches.

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufWriter, IsTerminal, Read, Write};
use std::process::ExitCode;

use clap::Parser;

use crate::asm::{assemble, parse_bytecode};
use crate::cli::{parse_args, CliError, Progress, EXIT_NO_MATCH, EXIT_OK};
use crate::gen::tcpdump;
use crate::insn::RawInsn;
use crate::pcap::link::{self, LINKTYPE_ETHERNET, LINKTYPE_RAW};
use crate::pcap::{linktype_field, split_linktype_field, Container, Reader, Writer, MAX_SNAPLEN};
use crate::vm::analysis::Expects;
use crate::vm::{Context, Input, Profile, Program};

const EXAMPLES: &str = "\
The program sees each frame as captured (libpcap's view: offset 0 is the link-layer header),
or with --l3 from the IP header, as iptables -m bpf sees it, whatever the link type.

Examples:
  filter -b \"$(bpfgen -o 14 dns -- '*.www.example.uk')\" < flood.pcap > hits.pcap
  filter --l3 -v -b \"$(bpfgen dns -- '*.www.example.uk')\" flood.pcapng > hits.pcap
  filter -e 'udp dst port 53' any.pcap > dns.pcap
  filter --l3 -e 'ip and udp dst port 53' vlan.pcap | filter --l3 -v -b \"$(bpfgen dns -- '*.example.uk')\" > hits.pcap
  filter -f prog.s --invert capture.pcap > rest.pcap

The output is classic pcap with the input's link type and timestamps, which tcpdump reads:
records longer than 262144 bytes are cut to that (the wire length is kept) and timestamps past
2106-02-07 (pcap's 32-bit seconds) are clamped, each with a warning. A pcapng whose interfaces
have different link types cannot be written as one pcap file: filter stops with an error at the
first packet of another link type (pcap2hex reads such files). A frame check sequence the
capture declares (pcap link-type FCS bits, pcapng if_fcslen or packet flags) is kept in the
output; with --l3 the program does not see it.

Warnings (stderr; -q silences them): a program that reads the IP header where the capture
does not have it (an iptables program, IP at 0, on a capture with a link layer and no --l3; a
program for -o 14 on Linux cooked captures, IP at 16), --l3 on a link type filter does not
understand, a program that tests only for the IP version the capture does not hold, and no
packet matched. When stderr is a terminal, progress is shown on long runs.

Exit status: 0 when a packet was kept (matched; with --invert, not matched), 1 when none was,
2 on error. -v prints how many were kept out of how many read.";

/// Run a classic BPF program over a capture and keep the packets it matches.
#[derive(Debug, Parser)]
#[command(
    name = "filter",
    version,
    about = "Run a classic BPF program over a pcap/pcapng capture and keep the matches",
    after_help = EXAMPLES
)]
struct Args {
    /// The program as bytecode text (xt_bpf 'N,c t f k,...', tcpdump -ddd, or a C array).
    #[arg(short = 'b', long, value_name = "BYTECODE", group = "program")]
    bytecode: Option<String>,
    /// The program as a bpf_asm assembly file.
    #[arg(short = 'f', long = "file", value_name = "ASMFILE", group = "program")]
    asm_file: Option<String>,
    /// The program as a tcpdump expression, compiled for the capture's link type (with
    /// --l3: for raw IP, applied from the IP header whatever the link layer, VLAN tags included).
    #[arg(short = 'e', long = "expr", value_name = "EXPR", group = "program")]
    expr: Option<String>,
    /// Hand the program each packet from its IP header (for xt_bpf programs).
    #[arg(long)]
    l3: bool,
    /// Keep the packets that do not match instead.
    #[arg(long)]
    invert: bool,
    /// Print matched/total on stderr.
    #[arg(short = 'v', long)]
    verbose: bool,
    /// No warnings (about the program, the capture or what the output had to change).
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Capture files (pcap or pcapng); stdin when none.
    files: Vec<String>,
}

struct Filter {
    program: Option<Program>,
    warnings: Warnings,
    progress: Progress,
    expr: Option<String>,
    l3: bool,
    invert: bool,
    /// Packets written: matched ones, or with --invert the others.
    kept: u64,
    total: u64,
    /// Records cut to what tcpdump reads.
    truncated: Seen,
    /// Timestamps clamped to pcap's 32-bit seconds.
    clamped: Seen,
}

/// How many packets something happened to, and the first of them.
#[derive(Debug, Default)]
struct Seen {
    count: u64,
    first: u64,
}

impl Seen {
    fn note(&mut self, packet: u64) {
        if self.count == 0 {
            self.first = packet;
        }
        self.count += 1;
    }
}

impl Filter {
    /// The program, compiled from the expression for `linktype` at the first packet it runs on.
    #[inline]
    fn program_for(&mut self, linktype: u32) -> Result<&Program, CliError> {
        if self.program.is_none() {
            self.compile(linktype)?;
        }
        Ok(self.program.as_ref().expect("compiled above"))
    }

    #[cold]
    fn compile(&mut self, linktype: u32) -> Result<(), CliError> {
        let expr = self.expr.clone().unwrap_or_default();
        let target = if self.l3 { LINKTYPE_RAW } else { linktype };
        let insns = tcpdump::compile(std::slice::from_ref(&expr), target)?;
        self.warnings.expects = Expects::of(&insns);
        self.warnings.expr = Some(expr);
        self.program = Some(Program::new(&insns, Profile::Socket)?);
        Ok(())
    }
}

/// The warnings filter gives about the program and the capture, each at most once.
#[derive(Debug, Default)]
struct Warnings {
    quiet: bool,
    expects: Expects,
    /// The IP-header offset warning was given (or cannot apply).
    offset_checked: bool,
    unsupported_warned: bool,
    /// Packets by IP version: IPv4, IPv6.
    by_version: [u64; 2],
    /// Matched packets (whatever --invert keeps).
    matched: u64,
    /// Where the program sees the IP header (0 with --l3), from the first packet that has one.
    ip_offset: Option<u32>,
    /// The tcpdump expression the program was compiled from (`-e`), if it was.
    expr: Option<String>,
}

impl Warnings {
    /// At the first packet with a network header: does the program read the IP header where
    /// this capture has it?
    #[inline]
    fn check_offset(
        &mut self,
        stderr: &mut dyn Write,
        program: &Program,
        l3: bool,
        linktype: u32,
        net_offset: usize,
    ) -> std::io::Result<()> {
        if self.offset_checked || self.quiet {
            return Ok(());
        }
        self.check_offset_now(stderr, program, l3, linktype, net_offset)
    }

    #[cold]
    fn check_offset_now(
        &mut self,
        stderr: &mut dyn Write,
        program: &Program,
        l3: bool,
        linktype: u32,
        net_offset: usize,
    ) -> std::io::Result<()> {
        self.offset_checked = true;
        let actual = if l3 { 0 } else { net_offset as u32 };
        self.ip_offset = Some(actual);
        let reads = &self.expects.ip_header_at;
        if reads.is_empty() || reads.iter().any(|&(_, k)| k == actual) {
            return Ok(());
        }
        let (index, k) = reads[0];
        let insn = crate::insn::Insn::decode(program.insns()[index]);
        if let (Some(expr), false) = (&self.expr, l3) {
            // tcpdump's own program for the link type: it is not generated with -o, and it
            // reads what tcpdump would (a VLAN tag, say, moves the IP header past it).
            return writeln!(
                stderr,
                "filter: warning: tcpdump's program for '{}' reads an IP header at offset {k} (instruction {index}: {insn}), but in this capture ({}) the first packet has it at {actual}{}: give --l3 to apply the expression from the IP header, as iptables sees packets",
                crate::asm::quote(expr),
                link::linktype_name(linktype),
                if actual == k + 4 || actual == k + 8 { " (after VLAN tags, which tcpdump matches only with 'vlan and ...')" } else { "" }
            );
        }
        let advice = if l3 {
            format!("drop --l3 (it hands the program packets from the IP header), or generate it without -o {k}")
        } else if k == 0 {
            format!(
                "give --l3 to hand it packets from the IP header, or generate it with -o {actual}"
            )
        } else {
            format!("generate it with -o {actual}, or use --l3 with a program for offset 0")
        };
        let place = if l3 {
            "with --l3 the IP header is at 0".to_string()
        } else {
            format!(
                "in this capture ({}) the IP header is at {actual}",
                link::linktype_name(linktype)
            )
        };
        writeln!(
            stderr,
            "filter: warning: the program reads an IP header at offset {k} (instruction {index}: {insn}), but {place}: {advice}"
        )
    }

    #[inline]
    fn unsupported(&mut self, stderr: &mut dyn Write, linktype: u32) -> std::io::Result<()> {
        if self.unsupported_warned || self.quiet {
            return Ok(());
        }
        self.unsupported_now(stderr, linktype)
    }

    #[cold]
    fn unsupported_now(&mut self, stderr: &mut dyn Write, linktype: u32) -> std::io::Result<()> {
        self.unsupported_warned = true;
        writeln!(
            stderr,
            "filter: warning: {} is not a link type filter understands: --l3 finds no IP header in its packets, so none can match",
            link::linktype_name(linktype)
        )
    }

    /// At the end: nothing matched, and why that may be.
    fn finish(&self, stderr: &mut dyn Write, total: u64, verbose: bool) -> std::io::Result<()> {
        if self.quiet || total == 0 || self.matched > 0 {
            return Ok(());
        }
        let [v4, v6] = self.by_version;
        let tests = self.expects.versions_at(self.ip_offset.unwrap_or(0));
        let present: Vec<u8> = [(4u8, v4), (6, v6)]
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(v, _)| *v)
            .collect();
        let wanted_present = tests.iter().any(|(v, _)| present.contains(v));
        if self.ip_offset.is_some() && !tests.is_empty() && !present.is_empty() && !wanted_present {
            let (version, index) = tests[0];
            let holds: Vec<String> = [(4u8, v4), (6, v6)]
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(v, n)| format!("{n} IPv{v}"))
                .collect();
            writeln!(
                stderr,
                "filter: warning: the program reads IPv{version} headers (instruction {index}), but the capture holds only {} packets",
                holds.join(" and ")
            )?;
        }
        if !verbose {
            writeln!(stderr, "filter: matched 0 of {total} packets")?;
        }
        Ok(())
    }
}

fn load_program(args: &Args) -> Result<Option<Vec<RawInsn>>, CliError> {
    if let Some(text) = &args.bytecode {
        return Ok(Some(parse_bytecode(text).map_err(|e| format!("-b: {e}"))?));
    }
    if let Some(path) = &args.asm_file {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read '{path}': {e}"))?;
        return Ok(Some(assemble(&text).map_err(|e| format!("{path}:{e}"))?));
    }
    Ok(None)
}

/// Runs `filter` with `args` (including the program name).
pub fn main(
    args: impl IntoIterator<Item = OsString>,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    let args: Args = match parse_args(args, stdout, stderr)? {
        Ok(args) => args,
        Err(code) => return Ok(code),
    };
    crate::cli::refuse_terminal_output(None)?;
    if args.bytecode.is_none() && args.asm_file.is_none() && args.expr.is_none() {
        return Err("no program: give one with -b BYTECODE, -f ASMFILE or -e EXPR".into());
    }
    let mut warnings = Warnings {
        quiet: args.quiet,
        ..Warnings::default()
    };
    let program = match load_program(&args)? {
        Some(insns) => {
            warnings.expects = Expects::of(&insns);
            Some(Program::new(&insns, Profile::Socket)?)
        }
        None => None,
    };
    let mut filter = Filter {
        program,
        warnings,
        progress: Progress::new("filter", !args.quiet && std::io::stderr().is_terminal()),
        expr: args.expr.clone(),
        l3: args.l3,
        invert: args.invert,
        kept: 0,
        total: 0,
        truncated: Seen::default(),
        clamped: Seen::default(),
    };
    let mut output = Output {
        sink: Some(BufWriter::with_capacity(WRITE_BUFFER, stdout)),
        writer: None,
    };
    let names: Vec<Option<&str>> = if args.files.is_empty() {
        vec![None]
    } else {
        args.files.iter().map(|f| Some(f.as_str())).collect()
    };
    let mut result = Ok(());
    for name in names {
        let outcome = match name {
            None | Some("-") => {
                filter.progress.input_size(None);
                run_one("<stdin>", &mut *stdin, &mut filter, &mut output, stderr)
            }
            Some(path) => match File::open(path) {
                Ok(file) => {
                    filter
                        .progress
                        .input_size(file.metadata().ok().map(|m| m.len()));
                    run_one(path, file, &mut filter, &mut output, stderr)
                }
                Err(e) => Err(format!("cannot open '{path}': {e}").into()),
            },
        };
        if let Err(e) = outcome {
            result = Err(e);
            break;
        }
    }
    if result.is_ok() {
        // No packet at all: still write a valid (empty) capture.
        output.start(LINKTYPE_ETHERNET, false)?;
    }
    let mut sink = match output.writer {
        Some(writer) => writer.into_inner(),
        None => output
            .sink
            .take()
            .expect("sink is kept until the writer takes it"),
    };
    sink.flush()?;
    filter.progress.finish(stderr)?;
    if result.is_ok() {
        filter.warnings.finish(stderr, filter.total, args.verbose)?;
    }
    if !args.quiet {
        if filter.truncated.count > 0 {
            writeln!(
                stderr,
                "filter: warning: {} packets longer than {MAX_SNAPLEN} bytes (the first: packet {}) were cut to {MAX_SNAPLEN}, the most tcpdump reads",
                filter.truncated.count, filter.truncated.first
            )?;
        }
        if filter.clamped.count > 0 {
            writeln!(
                stderr,
                "filter: warning: {} timestamps past pcap's 32-bit seconds (2106-02-07; the first: packet {}) were written as 4294967295.999999999",
                filter.clamped.count, filter.clamped.first
            )?;
        }
    }
    let what = if args.invert {
        "kept (not matched)"
    } else {
        "matched"
    };
    if args.verbose {
        // After an error the count covers the packets read before it; with none, the error
        // line alone says what happened.
        match (&result, filter.total) {
            (Ok(()), _) => writeln!(
                stderr,
                "filter: {what} {}/{} packets",
                filter.kept, filter.total
            )?,
            (Err(_), 0) => {}
            (Err(_), total) => writeln!(
                stderr,
                "filter: {what} {}/{} packets before the error",
                filter.kept, total
            )?,
        }
    }
    result?;
    Ok(ExitCode::from(if filter.kept > 0 {
        EXIT_OK
    } else {
        EXIT_NO_MATCH
    }))
}

/// The output buffer's size: large writes keep system calls few.
const WRITE_BUFFER: usize = 256 << 10;

/// The output: the buffered stream until the pcap header can be written, then the writer.
struct Output<'a> {
    sink: Option<BufWriter<&'a mut dyn Write>>,
    writer: Option<Writer<BufWriter<&'a mut dyn Write>>>,
}

impl<'a> Output<'a> {
    /// Writes the pcap header if it is not written yet.
    fn start(&mut self, linktype_field: u32, nanoseconds: bool) -> Result<(), CliError> {
        if self.writer.is_none() {
            let sink = self.sink.take().ok_or("output lost")?;
            self.writer = Some(Writer::new(sink, linktype_field, nanoseconds)?);
        }
        Ok(())
    }
}

/// Starts the output with the link-type `field` of packet `number` if it is not started yet;
/// refuses a packet whose link type (or FCS length) differs from the output's.
#[cold]
fn same_link_type(
    name: &str,
    number: u64,
    field: u32,
    output: &mut Output<'_>,
) -> Result<(), CliError> {
    output.start(field, true)?;
    let w = output.writer.as_mut().expect("started above");
    if field != w.linktype_field() {
        let describe = |field: u32| {
            let (linktype, fcs) = split_linktype_field(field);
            match fcs {
                0 => link::linktype_name(linktype),
                fcs => format!("{} with a {fcs}-byte FCS", link::linktype_name(linktype)),
            }
        };
        return Err(format!(
            "{name}: packet {}: {} differs from the {} of earlier packets; a pcap file holds one link type",
            number,
            describe(field),
            describe(w.linktype_field())
        )
        .into());
    }
    Ok(())
}

fn run_one<R: Read>(
    name: &str,
    input: R,
    filter: &mut Filter,
    output: &mut Output<'_>,
    stderr: &mut dyn Write,
) -> Result<(), CliError> {
    let mut reader = Reader::new(input).map_err(|e| format!("{name}: {e}"))?;
    if let Container::Pcap {
        nanoseconds,
        linktype,
        fcs_len,
        ..
    } = reader.container()
    {
        output.start(linktype_field(linktype, fcs_len), nanoseconds)?;
    }
    // The link type and FCS length (as `agreement`) last found to agree with the output's:
    // packets like it need no new check. None agrees at first.
    let mut agreed = u64::MAX;
    loop {
        let position = reader.position();
        let packet = match reader.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) => return Ok(()),
            Err(e) => return Err(format!("{name}: {e}").into()),
        };
        let agreement = u64::from(packet.linktype) << 32 | u64::from(packet.fcs_len);
        if agreement != agreed {
            let field = linktype_field(packet.linktype, packet.fcs_len);
            same_link_type(name, packet.number, field, output)?;
            agreed = agreement;
        }
        let w = output.writer.as_mut().expect("started by same_link_type");
        filter.total += 1;
        // Progress looks at the clock every 4096 packets; the others need not call it.
        if filter.total & 4095 == 0 {
            filter.progress.tick(stderr, filter.total, position)?;
        }
        // The frame check sequence is not part of the packet the kernel hands to iptables.
        let l3_frame = &packet.data[..packet.data.len().saturating_sub(packet.fcs_len as usize)];
        let net = link::network_header(packet.linktype, l3_frame);
        if let Some(net) = net {
            match net.ethertype {
                link::ETHERTYPE_IPV4 => filter.warnings.by_version[0] += 1,
                link::ETHERTYPE_IPV6 => filter.warnings.by_version[1] += 1,
                _ => {}
            }
            if let Some(program) = &filter.program {
                filter.warnings.check_offset(
                    stderr,
                    program,
                    filter.l3,
                    packet.linktype,
                    net.offset,
                )?;
            }
        } else if filter.l3 && !link::is_supported(packet.linktype) {
            filter.warnings.unsupported(stderr, packet.linktype)?;
        }
        let ctx = Context {
            protocol: net.map_or(0, |net| net.ethertype),
            ..Context::default()
        };
        let input = if filter.l3 {
            link::deployed_input(&packet).map(|(input, _)| input)
        } else {
            Some(Input {
                frame: packet.data,
                start: 0,
                net: net.map(|n| n.offset),
                link: Some(0),
                wire_len: packet.orig_len,
                ctx,
            })
        };
        let verdict = match input {
            Some(input) => filter.program_for(packet.linktype)?.run_with(&input),
            // No IP header to hand an --l3 program: it cannot match.
            None => 0,
        };
        let matched = verdict != 0;
        if matched {
            filter.warnings.matched += 1;
        }
        if matched != filter.invert {
            match w.write(packet.timestamp, packet.orig_len, packet.data) {
                Ok(written) => {
                    if written.truncated {
                        filter.truncated.note(packet.number);
                    }
                    if written.clamped {
                        filter.clamped.note(packet.number);
                    }
                }
                // A closed pipe on output stays an I/O error: the tool ends quietly.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Err(e.into()),
                Err(e) => {
                    return Err(
                        format!("{name}: packet {}: cannot write it: {e}", packet.number).into(),
                    )
                }
            }
            filter.kept += 1;
        }
    }
}
