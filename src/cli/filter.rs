//! `filter`: run a classic BPF program over a capture and keep the packets it matches.

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::process::ExitCode;

use clap::Parser;

use crate::asm::{assemble, parse_bytecode};
use crate::cli::{parse_args, CliError, EXIT_NO_MATCH, EXIT_OK};
use crate::gen::tcpdump;
use crate::insn::RawInsn;
use crate::pcap::link::{self, LINKTYPE_ETHERNET, LINKTYPE_RAW};
use crate::pcap::{linktype_field, split_linktype_field, Container, Reader, Writer, MAX_SNAPLEN};
use crate::vm::{Context, Input, Profile, Program};

const EXAMPLES: &str = "\
The program sees each frame as captured (libpcap's view: offset 0 is the link-layer header),
or with --l3 from the IP header, as iptables -m bpf sees it, whatever the link type.

Examples:
  filter -b \"$(bpfgen -o 14 dns -- '*.www.example.uk')\" < flood.pcap > hits.pcap
  filter --l3 -v -b \"$(bpfgen dns -- '*.www.example.uk')\" flood.pcapng > hits.pcap
  filter -e 'udp dst port 53' any.pcap > dns.pcap
  filter -f prog.s --invert capture.pcap > rest.pcap

The output is classic pcap with the input's link type and timestamps, which tcpdump reads:
records longer than 262144 bytes are cut to that (the wire length is kept) and timestamps past
2106-02-07 (pcap's 32-bit seconds) are clamped, each with a warning. A pcapng whose interfaces
have different link types cannot be written as one pcap file: filter stops with an error at the
first packet of another link type (pcap2hex reads such files). A frame check sequence the
capture declares (pcap link-type FCS bits, pcapng if_fcslen or packet flags) is kept in the
output; with --l3 the program does not see it.

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
    /// The program as a tcpdump expression, compiled for the capture's link type.
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
    fn program_for(&mut self, linktype: u32) -> Result<&Program, CliError> {
        if self.program.is_none() {
            let expr = self.expr.clone().unwrap_or_default();
            let target = if self.l3 { LINKTYPE_RAW } else { linktype };
            let insns = tcpdump::compile(std::slice::from_ref(&expr), target)?;
            self.program = Some(Program::new(&insns, Profile::Socket)?);
        }
        Ok(self.program.as_ref().expect("compiled above"))
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
    if args.bytecode.is_none() && args.asm_file.is_none() && args.expr.is_none() {
        return Err("no program: give one with -b BYTECODE, -f ASMFILE or -e EXPR".into());
    }
    let program = match load_program(&args)? {
        Some(insns) => Some(Program::new(&insns, Profile::Socket)?),
        None => None,
    };
    let mut filter = Filter {
        program,
        expr: args.expr.clone(),
        l3: args.l3,
        invert: args.invert,
        kept: 0,
        total: 0,
        truncated: Seen::default(),
        clamped: Seen::default(),
    };
    let mut output = Output {
        sink: Some(BufWriter::with_capacity(1 << 16, stdout)),
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
            None | Some("-") => run_one("<stdin>", &mut *stdin, &mut filter, &mut output),
            Some(path) => match File::open(path) {
                Ok(file) => run_one(path, file, &mut filter, &mut output),
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

fn run_one<R: Read>(
    name: &str,
    input: R,
    filter: &mut Filter,
    output: &mut Output<'_>,
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
    loop {
        let packet = match reader.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) => return Ok(()),
            Err(e) => return Err(format!("{name}: {e}").into()),
        };
        let field = linktype_field(packet.linktype, packet.fcs_len);
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
                packet.number,
                describe(field),
                describe(w.linktype_field())
            )
            .into());
        }
        filter.total += 1;
        // The frame check sequence is not part of the packet the kernel hands to iptables.
        let l3_frame = &packet.data[..packet.data.len().saturating_sub(packet.fcs_len as usize)];
        let net = link::network_header(packet.linktype, l3_frame);
        let mut ctx = Context::default();
        if let Some(net) = net {
            ctx.protocol = net.ethertype;
        }
        let input = if filter.l3 {
            net.map(|net| Input {
                frame: l3_frame,
                start: net.offset,
                net: Some(net.offset),
                link: Some(0),
                wire_len: packet
                    .orig_len
                    .saturating_sub(packet.fcs_len)
                    .saturating_sub(net.offset as u32),
                ctx,
            })
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
