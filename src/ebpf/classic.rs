//! Classic rules at XDP: the rules the native matcher's maps cannot express (a `dns` pattern
//! with `?` or `%XX` inside a label, `dns_validate`, `suffix`, `tcpdump`, `p0f`: anything
//! `bpfgen GEN ARGS` makes), each compiled into XDP programs reached by tail calls from the
//! matcher ([`crate::ebpf::matcher`]) and from one another.
//!
//! The contract between the matcher and these programs, through the maps of
//! [`MapRole`]:
//! - The matcher, for a frame that passed its gate (UDP to port 53 of a protected address:
//!   the packets `iptables -p udp --dport 53 -m set ... dst` gives a rule), writes the best
//!   rank its lookups found ([`rank`](crate::ebpf::matcher::rank); 0 when none) at
//!   [`SCRATCH_BEST`] of the per-CPU [`MapRole::Scratch`] value, as a host-order `u32`, and
//!   tail-calls [`MapRole::Programs`]`[`[`program_slot`]`(vlan_tags, 0)]`, `vlan_tags` being
//!   the frame's 0, 1 or 2 VLAN tags (TPIDs 0x8100, 0x88a8, 0x9100).
//! - Classic rule number `index` (0-based among the classic rules, in the rule list's order)
//!   has a rank (from its order in the whole list and its action) and one program per tag
//!   count, at `program_slot(vlan_tags, index)` ([`rule_program`]). It reads the best rank;
//!   when its own rank is not higher, it skips its body (it cannot win); otherwise it runs
//!   the classic program and on a non-zero classic verdict stores its rank as the best. Then
//!   it tail-calls `program_slot(vlan_tags, index + 1)`. When that call falls through (an
//!   empty slot, the kernel's tail-call limit, or no call at all for the last possible rule,
//!   `index == MAX_CLASSIC_RULES - 1`), the program decides: best 0 -> `XDP_PASS`; otherwise
//!   [`MapRole::Counters`]`[`[`counter_index`]`(best)]` (per CPU; a lookup miss counts
//!   nothing) gets packets += 1 and bytes += `data_end - data` (two `u64` in host order,
//!   packets first), then `XDP_DROP` when the best rank's low bit is set, else `XDP_PASS`.
//!   (The scratch lookup, of key 0 in a one-entry array, cannot miss; the verifier asks for
//!   the test, and a miss would pass the frame.)
//!
//! The classic program's view: the network header, as `bpfgen` makes programs with its
//! default offset (0, for xt_bpf). A rule holds one program per family ([`ClassicRule`]): the
//! ethertype just before the network header (after the tags) picks it, 0x0800 IPv4 and
//! 0x86dd IPv6, as iptables and ip6tables each see their own family; another ethertype, a
//! frame too short to hold it, or a family the rule has no program for, is no match. The body is [`compile()`]'s program for
//! [`Target::Xdp`] with [`layout`]`(vlan_tags)` (base and network header at
//! `14 + 4 * vlan_tags`, link-layer header at 0) and [`Verdicts::Value`], every `exit` of it
//! turned into a jump to the code after the bodies, which reads the verdict in r0: the
//! compiled code uses r0-r2 and r6-r9 and the stack from r10-64 up, and loads `data` and
//! `data_end` from the context in r1 first, so the wrapper keeps the context and the scratch
//! value's address in stack slots below it and gives r1 back before each body.
//!
//! The limit: the kernel allows 33 tail calls per packet; the matcher's call to the first
//! rule and the calls from rule to rule of [`MAX_CLASSIC_RULES`] rules use 32. An `index` of
//! `MAX_CLASSIC_RULES` or more is refused ([`ClassicError::TooManyRules`]), and the rule at
//! the last index decides without a call (the slot after it belongs to the next tag count).
//! When the matcher is itself reached by tail calls (a dispatcher before it), the calls run
//! out earlier: the program whose call fails decides with the best rank so far, as if the
//! rules after it matched nothing.
//!
//! Nothing here calls bpf(2): the programs refer to their maps by [`MapRole`], and the caller
//! puts the file descriptors in with [`RuleProgram::with_map_fds`].

use thiserror::Error;

use crate::asm::quote;
use crate::ebpf::compile::{
    compile, CompileError, Compiled, Emitter, Target, Verdicts, XdpLayout, XDP_DROP, XDP_PASS,
};
use crate::ebpf::insn::{AluOp, Insn, JmpOp, Operand, Reg, Size};
use crate::ebpf::matcher::{
    counter_index, program_slot, MapRole, MAX_CLASSIC_RULES, MAX_RULES, SCRATCH_BEST, VLAN_DEPTHS,
};
use crate::gen::p0f::IpVersion;
use crate::gen::{build, GenError, GenOptions, Generator};
use crate::insn::RawInsn;

/// Ethertype of IPv4.
const ETHERTYPE_IPV4: i32 = 0x0800;
/// Ethertype of IPv6.
const ETHERTYPE_IPV6: i32 = 0x86dd;
/// The helper `bpf_map_lookup_elem`.
const BPF_FUNC_MAP_LOOKUP_ELEM: i32 = 1;
/// The helper `bpf_tail_call`.
const BPF_FUNC_TAIL_CALL: i32 = 12;

/// The decision's counter index is computed as [`counter_index`] defines it.
const _: () = assert!(counter_index(3) == MAX_RULES - 1 && counter_index(u32::MAX) == 0);

/// Stack slots of the wrapper (offsets from r10), below the compiled body's `M[]` words
/// (r10-64 .. r10-4).
const CTX_SLOT: i16 = -72;
const SCRATCH_SLOT: i16 = -80;
const KEY_SLOT: i16 = -88;

/// A classic rule: its programs, one per IP family, made for the network header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassicRule {
    /// What the rule is, for errors: its `bpfgen` arguments (`dns -- ex?mple.net`).
    pub name: String,
    /// The program for frames with ethertype 0x0800 (`None`: the rule never matches them).
    pub ipv4: Option<Vec<RawInsn>>,
    /// The program for frames with ethertype 0x86dd (`None`: the rule never matches them).
    pub ipv6: Option<Vec<RawInsn>>,
}

impl ClassicRule {
    /// The rule `bpfgen [-n] GEN ARGS` stands for, with the programs `bpfgen` makes for its
    /// default offset (the network header), for IPv4 and with `-6` for IPv6. A `p0f`
    /// signature of version 4 (6) has no IPv6 (IPv4) program; one of version `*` gets each
    /// family's own ([`crate::gen::P0fSpec::for_family`]).
    pub fn from_generator(
        generator: &Generator,
        negate: bool,
    ) -> Result<ClassicRule, ClassicError> {
        let name = std::iter::once(generator.name().to_string())
            .chain(generator.args())
            .collect::<Vec<_>>()
            .join(" ");
        let program = |inet6: bool| -> Result<Option<Vec<RawInsn>>, ClassicError> {
            let generator = match generator {
                Generator::P0f(spec) => match (spec.version, inet6) {
                    (IpVersion::V4, true) | (IpVersion::V6, false) => return Ok(None),
                    _ => Generator::P0f(spec.for_family(inet6)),
                },
                other => other.clone(),
            };
            let opts = GenOptions {
                inet6,
                negate,
                offset: 0,
            };
            build(&generator, &opts)
                .map(|generated| Some(generated.insns))
                .map_err(|source| ClassicError::Generate {
                    rule: name.clone(),
                    source,
                })
        };
        let ipv4 = program(false)?;
        let ipv6 = program(true)?;
        Ok(ClassicRule { name, ipv4, ipv6 })
    }
}

/// Why a rule's program could not be made.
#[derive(Debug, Error)]
pub enum ClassicError {
    /// The generator refused its arguments.
    #[error("rule '{}': {source}", quote(rule))]
    Generate {
        /// The rule.
        rule: String,
        /// The generator's error.
        #[source]
        source: GenError,
    },
    /// The compiler refused the rule's program for one family.
    #[error("rule '{}' ({family} program): {source}", quote(rule))]
    Compile {
        /// The rule.
        rule: String,
        /// `IPv4` or `IPv6`.
        family: &'static str,
        /// The compiler's error.
        #[source]
        source: CompileError,
    },
    /// The rule has no program for either family.
    #[error("rule '{}': no program for IPv4 nor for IPv6", quote(rule))]
    NoProgram {
        /// The rule.
        rule: String,
    },
    /// The compiled programs are too long for a jump from one of their exits to the code
    /// after them.
    #[error(
        "rule '{}': a jump over its compiled programs spans {distance} eBPF instructions, \
         more than the 32767 an eBPF jump reaches",
        quote(rule)
    )]
    TooLong {
        /// The rule.
        rule: String,
        /// The distance needed.
        distance: i64,
    },
    /// Rank 0 stands for "no rule matched".
    #[error(
        "rule '{}': rank 0 is no rule's (expected a rank from matcher::rank)",
        quote(rule)
    )]
    Rank {
        /// The rule.
        rule: String,
    },
    /// More classic rules than the tail calls reach.
    #[error(
        "rule '{}' is classic rule number {} (counting from 1): at most {MAX_CLASSIC_RULES} \
         classic rules fit the kernel's 33 tail calls per packet",
        quote(rule),
        u64::from(*index) + 1
    )]
    TooManyRules {
        /// The rule.
        rule: String,
        /// Its index among the classic rules.
        index: u32,
    },
    /// A tag count the matcher does not read.
    #[error(
        "rule '{}': {vlan_tags} VLAN tags (expected 0 to {})",
        quote(rule),
        VLAN_DEPTHS - 1
    )]
    VlanTags {
        /// The rule.
        rule: String,
        /// The count given.
        vlan_tags: u32,
    },
}

/// A rule's XDP program for one tag count, its maps still to be given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleProgram {
    /// The instructions; each map `lddw` holds -1 until [`RuleProgram::with_map_fds`].
    pub insns: Vec<Insn>,
    /// The `lddw` slots that load a map, and which ([`MapRole::Scratch`],
    /// [`MapRole::Programs`], [`MapRole::Counters`]).
    pub map_slots: Vec<(usize, MapRole)>,
}

impl RuleProgram {
    /// The instructions with each map's file descriptor in place, ready for `BPF_PROG_LOAD`.
    pub fn with_map_fds(&self, fd: impl Fn(MapRole) -> i32) -> Vec<Insn> {
        let mut insns = self.insns.clone();
        for &(slot, role) in &self.map_slots {
            insns[slot].imm = fd(role);
        }
        insns
    }
}

/// The classic program's view for a frame with `vlan_tags` tags: its offset 0 and the
/// network header at `14 + 4 * vlan_tags`, the link-layer header at 0.
pub const fn layout(vlan_tags: u32) -> XdpLayout {
    let network = 14 + 4 * vlan_tags;
    XdpLayout {
        base: network,
        network: Some(network),
        link: Some(0),
    }
}

fn imm(value: i32) -> Operand {
    Operand::Imm(value)
}

struct Gen {
    e: Emitter,
    map_slots: Vec<(usize, MapRole)>,
}

impl Gen {
    fn emit(&mut self, insn: Insn) {
        self.e.emit(insn);
    }

    fn jump(&mut self, insn: Insn, label: usize) {
        self.e.jump(insn, label, 0);
    }

    fn load_map(&mut self, dst: Reg, role: MapRole) {
        let [lo, hi] = Insn::ld_map_fd(dst, -1);
        self.map_slots.push((self.e.len(), role));
        self.emit(lo);
        self.emit(hi);
    }

    /// `r0 = bpf_map_lookup_elem(role, &u32 key at r10 + KEY_SLOT)`.
    fn lookup(&mut self, role: MapRole) {
        self.load_map(Reg::R1, role);
        self.emit(Insn::mov64_reg(Reg::R2, Reg::FP));
        self.emit(Insn::alu64(AluOp::Add, Reg::R2, imm(i32::from(KEY_SLOT))));
        self.emit(Insn::call(BPF_FUNC_MAP_LOOKUP_ELEM));
    }

    /// The compiled body, its exits turned into jumps to `done` (r0 holds the verdict there).
    fn body(&mut self, compiled: &Compiled, done: usize) {
        for insn in &compiled.insns {
            if *insn == Insn::exit() {
                self.jump(Insn::ja(0), done);
            } else {
                // Jumps inside the body keep their offsets: every slot keeps its place.
                self.emit(*insn);
            }
        }
    }
}

/// The XDP program of classic rule number `index` (0-based among the classic rules) of rank
/// `rank`, for frames with `vlan_tags` VLAN tags: the program for slot
/// [`program_slot`]`(vlan_tags, index)` (see the module docs for what it does).
pub fn rule_program(
    rule: &ClassicRule,
    rank: u32,
    vlan_tags: u32,
    index: u32,
) -> Result<RuleProgram, ClassicError> {
    let named = || rule.name.clone();
    if rank == 0 {
        return Err(ClassicError::Rank { rule: named() });
    }
    if index >= MAX_CLASSIC_RULES {
        return Err(ClassicError::TooManyRules {
            rule: named(),
            index,
        });
    }
    if vlan_tags >= VLAN_DEPTHS {
        return Err(ClassicError::VlanTags {
            rule: named(),
            vlan_tags,
        });
    }
    if rule.ipv4.is_none() && rule.ipv6.is_none() {
        return Err(ClassicError::NoProgram { rule: named() });
    }
    let layout = layout(vlan_tags);
    let mut bodies = Vec::new();
    for (family, ethertype, prog) in [
        ("IPv4", ETHERTYPE_IPV4, &rule.ipv4),
        ("IPv6", ETHERTYPE_IPV6, &rule.ipv6),
    ] {
        if let Some(prog) = prog {
            let compiled =
                compile(prog, Target::Xdp(layout), Verdicts::Value).map_err(|source| {
                    ClassicError::Compile {
                        rule: named(),
                        family,
                        source,
                    }
                })?;
            bodies.push((family, ethertype, compiled));
        }
    }

    let mut g = Gen {
        e: Emitter::default(),
        map_slots: Vec::new(),
    };
    let next = g.e.label();
    let verdict = g.e.label();
    let pass = g.e.label();

    // --- The best rank so far, from the scratch value.
    g.emit(Insn::store(Size::DW, Reg::FP, CTX_SLOT, Reg::R1));
    g.emit(Insn::store_imm(Size::W, Reg::FP, KEY_SLOT, 0));
    g.lookup(MapRole::Scratch);
    // A per-CPU array of one entry always has key 0; the verifier asks for the test.
    g.jump(Insn::jmp(JmpOp::Jeq, Reg::R0, imm(0), 0), pass);
    g.emit(Insn::store(Size::DW, Reg::FP, SCRATCH_SLOT, Reg::R0));
    g.emit(Insn::load(Size::W, Reg::R1, Reg::R0, SCRATCH_BEST));
    // Unsigned 32-bit: the rank's bits as they are.
    g.jump(Insn::jmp32(JmpOp::Jge, Reg::R1, imm(rank as i32), 0), next);

    // --- The family: the ethertype before the network header.
    g.emit(Insn::load(Size::DW, Reg::R1, Reg::FP, CTX_SLOT));
    g.emit(Insn::load(Size::W, Reg::R2, Reg::R1, 0));
    g.emit(Insn::load(Size::W, Reg::R3, Reg::R1, 4));
    g.emit(Insn::mov64_reg(Reg::R4, Reg::R2));
    g.emit(Insn::alu64(AluOp::Add, Reg::R4, imm(layout.base as i32)));
    g.jump(
        Insn::jmp(JmpOp::Jgt, Reg::R4, Operand::Reg(Reg::R3), 0),
        next,
    );
    g.emit(Insn::load(Size::H, Reg::R4, Reg::R4, -2));
    g.emit(Insn::endian(true, Reg::R4, 16));
    let starts: Vec<usize> = bodies.iter().map(|_| g.e.label()).collect();
    for ((_, ethertype, _), &start) in bodies.iter().zip(&starts) {
        g.jump(Insn::jmp32(JmpOp::Jeq, Reg::R4, imm(*ethertype), 0), start);
    }
    g.jump(Insn::ja(0), next);

    // --- The bodies; each ends at `matched` with the classic verdict in r0.
    let matched = g.e.label();
    for ((_, _, compiled), &start) in bodies.iter().zip(&starts) {
        g.e.bind(start);
        g.emit(Insn::load(Size::DW, Reg::R1, Reg::FP, CTX_SLOT));
        g.body(compiled, matched);
    }
    g.e.bind(matched);
    g.jump(Insn::jmp32(JmpOp::Jeq, Reg::R0, imm(0), 0), next);
    g.emit(Insn::load(Size::DW, Reg::R1, Reg::FP, SCRATCH_SLOT));
    g.emit(Insn::store_imm(Size::W, Reg::R1, SCRATCH_BEST, rank as i32));

    // --- The next rule; when the call falls through, this program decides.
    g.e.bind(next);
    if index + 1 < MAX_CLASSIC_RULES {
        g.emit(Insn::load(Size::DW, Reg::R1, Reg::FP, CTX_SLOT));
        g.load_map(Reg::R2, MapRole::Programs);
        g.emit(Insn::mov32_imm(Reg::R3, program_slot(vlan_tags, index + 1)));
        g.emit(Insn::call(BPF_FUNC_TAIL_CALL));
    }
    g.emit(Insn::load(Size::DW, Reg::R1, Reg::FP, SCRATCH_SLOT));
    g.emit(Insn::load(Size::W, Reg::R6, Reg::R1, SCRATCH_BEST));
    g.jump(Insn::jmp32(JmpOp::Jeq, Reg::R6, imm(0), 0), pass);
    // counter_index(best) = MAX_RULES - (best >> 1) (checked below, at compile time).
    g.emit(Insn::mov32_imm(Reg::R2, MAX_RULES));
    g.emit(Insn::alu32(AluOp::Mov, Reg::R1, Operand::Reg(Reg::R6)));
    g.emit(Insn::alu32(AluOp::Rsh, Reg::R1, imm(1)));
    g.emit(Insn::alu32(AluOp::Sub, Reg::R2, Operand::Reg(Reg::R1)));
    g.emit(Insn::store(Size::W, Reg::FP, KEY_SLOT, Reg::R2));
    g.lookup(MapRole::Counters);
    g.jump(Insn::jmp(JmpOp::Jeq, Reg::R0, imm(0), 0), verdict);
    g.emit(Insn::load(Size::DW, Reg::R1, Reg::R0, 0));
    g.emit(Insn::alu64(AluOp::Add, Reg::R1, imm(1)));
    g.emit(Insn::store(Size::DW, Reg::R0, 0, Reg::R1));
    // data_end - data: a scalar the verifier allows a privileged program.
    g.emit(Insn::load(Size::DW, Reg::R1, Reg::FP, CTX_SLOT));
    g.emit(Insn::load(Size::W, Reg::R2, Reg::R1, 0));
    g.emit(Insn::load(Size::W, Reg::R3, Reg::R1, 4));
    g.emit(Insn::alu64(AluOp::Sub, Reg::R3, Operand::Reg(Reg::R2)));
    g.emit(Insn::load(Size::DW, Reg::R1, Reg::R0, 8));
    g.emit(Insn::alu64(AluOp::Add, Reg::R1, Operand::Reg(Reg::R3)));
    g.emit(Insn::store(Size::DW, Reg::R0, 8, Reg::R1));
    g.e.bind(verdict);
    let drop = g.e.label();
    g.jump(Insn::jmp32(JmpOp::Jset, Reg::R6, imm(1), 0), drop);
    g.e.bind(pass);
    g.emit(Insn::mov32_imm(Reg::R0, XDP_PASS));
    g.emit(Insn::exit());
    g.e.bind(drop);
    g.emit(Insn::mov32_imm(Reg::R0, XDP_DROP));
    g.emit(Insn::exit());

    let map_slots = g.map_slots;
    let insns = g.e.resolve().map_err(|source| match source {
        CompileError::JumpTooFar { distance, .. } => ClassicError::TooLong {
            rule: named(),
            distance,
        },
        source => ClassicError::Compile {
            rule: named(),
            family: "IPv4/IPv6",
            source,
        },
    })?;
    Ok(RuleProgram { insns, map_slots })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asm::assemble;
    use crate::ebpf::disassemble;

    #[test]
    fn the_bodies_exits_jump_to_the_verdict_test_and_the_next_slot_is_called() {
        let rule = ClassicRule {
            name: "t".into(),
            ipv4: Some(assemble("ldb [9]\njeq #17, L1, L2\nL1: ret #65535\nL2: ret #0").unwrap()),
            ipv6: None,
        };
        let program = rule_program(&rule, 7, 1, 4).unwrap();
        let listing = disassemble(&program.insns);
        // The rank test, the IPv4 test after one tag, the next slot.
        assert!(listing.contains("if w1 >= 0x7 goto"), "{listing}");
        assert!(listing.contains("r4 += 18\n"), "{listing}");
        assert!(listing.contains("if w4 == 0x800 goto"), "{listing}");
        assert!(!listing.contains("0x86dd"), "{listing}");
        assert!(
            listing.contains(&format!("w3 = {}\n", program_slot(1, 5))),
            "{listing}"
        );
        // Each exit of the body (its two returns and the exit of a load past the end) is
        // now a jump to `if w0 == 0x0`.
        let test = program
            .insns
            .iter()
            .position(|i| *i == Insn::jmp32(JmpOp::Jeq, Reg::R0, Operand::Imm(0), i.off))
            .expect("the verdict test");
        let jumps_there = program
            .insns
            .iter()
            .enumerate()
            .filter(|(at, i)| i.code == Insn::ja(0).code && at + 1 + i.off as usize == test)
            .count();
        assert_eq!(jumps_there, 3, "{listing}");
    }
}
