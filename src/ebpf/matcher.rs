//! The native DNS matcher: one XDP program for any number of `dns` patterns, deciding by map
//! lookups instead of comparing the name pattern by pattern; the patterns the maps cannot
//! express run after it as compiled classic programs, by tail calls. The same matcher is
//! also a socket filter for `iptables -m bpf` ([`socket_program`], see *The socket filter*
//! below).
//!
//! What the program does with a frame ([`program`]), in order:
//!
//! 1. **The gate**: it takes the packets an `iptables -p udp --dport 53 -m set --match-set
//!    SET dst` rule hands its program. Any other frame passes (`XDP_PASS`) at once: no tail
//!    call, no counter.
//!    - Ethernet with up to two VLAN tags (TPIDs 0x8100, 0x88a8, 0x9100, as the capture
//!      reader knows them); the tag count (0, 1, 2) is kept for the hook.
//!    - IPv4: version 4, any header length (IHL >= 5), protocol UDP, fragment offset 0 (a
//!      later fragment passes: `--dport` never matches one).
//!    - IPv6: version 6, then the extension headers as ip6tables walks them to find UDP:
//!      hop-by-hop (0), routing (43) and destination options (60), of (length + 1) * 8
//!      bytes; authentication (51), of (length + 2) * 4 bytes; fragment (44), 8 bytes, and
//!      the frame passes when its offset is not 0. Any other next header (TCP, ESP, no next
//!      header, ...) passes, and so does a header without its first 8 bytes in the frame or
//!      one past [`MAX_HEADER_OFFSET`]. At most [`GATE_EXT_HEADERS`] headers are walked:
//!      when one more extension header follows them, the frame is taken through the gate
//!      without reading further (UDP, the port and the DNS header unseen), with the first
//!      rule's rank (see 2). That is the one place the gate can take a frame iptables would
//!      not hand over (not UDP to port 53, behind more than [`GATE_EXT_HEADERS`] extension
//!      headers); the `dns` programs would match it.
//!    - A whole UDP header with destination port 53.
//!    - The destination address in [`MapRole::Addr4`] / [`MapRole::Addr6`]: an LPM trie
//!      lookup of the whole address (key [`crate::ebpf::sys::lpm_key`]`(32 | 128, address)`,
//!      built on the stack); a miss passes. `0.0.0.0/0` and `::/0` protect every address.
//! 2. **The native rank** of a frame through the gate (0 = no rule): what the chain of `dns`
//!    programs gives it, rule by rule, with the same default IPv6 walk as theirs (two
//!    extension headers of the kinds 0, 43, 44 and 60, [`IPV6_EXTENSION_HEADERS`]):
//!    - an authentication header among the first three headers: they match nothing, rank 0;
//!    - past [`GATE_EXT_HEADERS`] (see 1): the first rule's rank;
//!    - otherwise a frame with a whole DNS header is read, whatever its flags and counts say
//!      (the `dns` programs read neither QR nor QDCOUNT: a response or a message without a
//!      question sent to port 53 is matched by its name as they match it); a DNS header cut
//!      short gives rank 0;
//!    - a query behind a third extension header of the walked kinds (the programs then
//!      match whatever follows): the first rule's rank, the value of the key of
//!      [`KeyKind::First`] in [`MapRole::Names`] (the highest rank in the maps);
//!    - any other query: its first question's name, by the lookups below.
//!
//!    The name is copied, label by label, into a fixed 256-byte key in a per-CPU scratch map
//!    ([`MapRole::Scratch`]), with ASCII letters folded to lower case when the matcher
//!    ignores case ([`MatcherOptions::ignore_case`]). The loop reads at most 255 bytes,
//!    labels of 1 to 63 bytes; a compression pointer, a longer label, a name longer than 255
//!    bytes or the packet's end stops it. Lookups, all in hash maps keyed by [`Key`] (a kind
//!    byte, a length byte, the wire bytes without the root, zeros after):
//!    - at every label boundary, including the start and the root, the name's prefix up to
//!      it ([`KeyKind::Prefix`], for `lit.lit.**`; the empty prefix is `**`), in
//!      [`MapRole::Names`];
//!    - once the name is whole, the name ([`KeyKind::Exact`]) in [`MapRole::Names`], and
//!      the name after its first label ([`KeyKind::Suffix`], for `*.lit` and `*{m-n}.lit`)
//!      in [`MapRole::Suffixes`], whose value holds one rank per length of that first label.
//!
//!    A lookup costs about as much as hashing its 256-byte key, and most of them cannot
//!    hit: a list without `lit.lit.**` rules has no prefix key at all. So the program skips
//!    the lookups the maps say cannot hit ([`Skips`], the one value of [`MapRole::Lengths`],
//!    copied into the scratch value once per frame): a prefix lookup at offset `n` when no
//!    prefix key has `n` wire bytes, the exact lookup when there is no exact key, the suffix
//!    lookup when there is no suffix key. A bit set means "skip": the value the kernel
//!    creates (all zeros) skips nothing, so maps filled without it give today's verdicts;
//!    a skip bit set where a key exists would lose that key's rule, so whoever changes the
//!    maps live clears a bit before writing the key it covers and sets it only after the
//!    last such key is deleted ([`Skips::of`]).
//!
//!    Keys start and end at label boundaries, so a rule never matches across one
//!    (`xwww.example.net` is not under `www.example.net`). Each value is a rank ([`rank`]):
//!    rules of lower order rank higher, and the lowest bit is the action; the rank is the
//!    highest over the lookups made. That is the chain mode's rule: in order, the first match
//!    decides.
//! 3. **The hook**, for every frame through the gate: the rank is stored at [`SCRATCH_BEST`]
//!    in the scratch value (a `u32`), then `bpf_tail_call(ctx, Programs,
//!    program_slot(tags, 0))` ([`program_slot`], [`MapRole::Programs`]) runs the first
//!    classic rule compiled for the frame's tag count. Each classic rule raises the rank at
//!    [`SCRATCH_BEST`] to its own when it matches with a higher one and tail-calls the slot
//!    after its own; the program that finds its next slot empty (the call returns) decides.
//! 4. **The decision** ([`decision`]: the same code ends the matcher and each classic rule):
//!    when the rank is not 0, the rule's per-CPU counter in [`MapRole::Counters`], at
//!    [`counter_index`]`(rank)` (its order), gets one packet and the frame's length
//!    (`data_end - data`) in bytes; then `XDP_DROP` when the rank's lowest bit is set
//!    ([`Action::Drop`]), else `XDP_PASS`.
//!
//! This is exactly what the `dns` generator's programs match, rule by rule, for the queries
//! the program reads: prefixes are looked up before the bytes after them are read, as the
//! classic programs stop comparing at `**`, so a `**` rule matches a name cut short or ending
//! in a compression pointer after its prefix, as they do.
//!
//! Map contents come from [`MapContents::new`] (orders 0, 1, ... in list order),
//! [`MapContents::with_orders`] (explicit orders: a rule's keys and rank depend only on its
//! own pattern, order and action, so adding or removing one rule live leaves the others'
//! alone) or [`MapContents::split`] (a mixed list: the rules the maps cannot express become
//! [`ClassicRule`]s). Patterns are those of the `dns` generator, parsed by
//! [`crate::gen::dns::parse_pattern`], in the forms the maps express: all literal labels;
//! one `*` or `*{m-n}` first label over literal labels; literal labels then `**`. Refused
//! with [`RuleError::Unsupported`] (those need the compiled classic program): `?`, `%XX`
//! inside a label, a `*` label after the first, `*` with `**`. Case folding is one setting
//! for the program and its maps, like `-i` for a generated program.
//!
//! # The socket filter
//!
//! [`socket_program`] is the matcher as a `BPF_PROG_TYPE_SOCKET_FILTER` program, for hosts
//! that keep iptables: `iptables -p udp --dport 53 -m bpf --object-pinned PIN -j DROP` (and
//! the same with ip6tables) runs the pinned program on each packet the rule's own matches
//! let through, and drops it when the program returns anything but 0. The program is the
//! XDP one, generated from the same code ([`Variant`]), with three differences:
//!
//! - **The packet**: the skb from its network header (iptables has no link layer to show,
//!   and the kernel has taken VLAN tags off already). A socket filter cannot read the packet
//!   in place, so the program first copies it, up to [`PACKET_SIZE`] bytes, with one
//!   `bpf_skb_load_bytes` into a per-CPU [`MapRole::Packet`] value (works on non-linear
//!   skbs, such as a reassembled datagram), then runs the XDP parse on the copy, the end of
//!   the copy standing for `data_end`. The parse never reads or tests a byte past
//!   [`PACKET_SIZE`] (its offsets are masked for the verifier, which proves every access
//!   inside the map value), so a longer packet gets the verdict its whole would. An empty
//!   packet passes. The family comes from `skb->protocol` (`ETH_P_IP`, `ETH_P_IPV6`), then
//!   the version nibble is checked as in the XDP gate; [`MAX_HEADER_OFFSET`] counts from the
//!   network header.
//! - **No hook**: classic rules do not run after it (no tail call, no [`MapRole::Programs`]):
//!   a rule list for it must be one the maps express whole ([`MapContents::new`],
//!   [`MapContents::with_orders`]); what [`MapContents::split`] leaves as
//!   [`ClassicRule`]s cannot be deployed with it. It decides right after the lookups.
//! - **The decision**: the same counters ([`decision`]'s code), the bytes being `skb->len`
//!   (the packet from its network header); then [`SOCKET_MATCH`] when the best rank's action
//!   is drop, else [`SOCKET_NO_MATCH`] (also for every packet the gate does not take).
//!
//! Its maps are [`MapRole::SOCKET_FILTER`]. Like the XDP program it keeps its state in
//! per-CPU values between helper calls: both assume one run at a time per CPU, which holds
//! where the kernel runs them in softirq (XDP; iptables' INPUT for packets received from a
//! device or the loopback). Where a task could be preempted in the middle of a run (OUTPUT,
//! on a kernel with full preemption), another run on the same CPU could overwrite them: the
//! rule is meant for INPUT.
//!
//! Nothing here calls bpf(2): the program refers to its maps by [`MapRole`], and the caller
//! puts the file descriptors in with [`MatcherProgram::with_map_fds`].

use std::collections::BTreeMap;

use thiserror::Error;

use crate::asm::quote;
use crate::ebpf::compile::{Emitter, XDP_DROP, XDP_PASS};
use crate::ebpf::insn::{AluOp, Insn, JmpOp, Operand, Reg, Size};
use crate::gen::dns::{parse_pattern, Part, PatternError, IPV6_EXTENSION_HEADERS, MAX_LABEL};

/// The bytes of a key ([`Key`]).
pub const KEY_SIZE: usize = 256;
/// The bytes of a [`MapRole::Lengths`] value ([`Skips`]): 256 bits by prefix length, the
/// flags byte ([`SKIP_EXACT`], [`SKIP_SUFFIX`]), zeros.
pub const LENGTHS_SIZE: u32 = 40;
/// The offset of the flags byte in a [`Skips`] value.
pub const SKIP_FLAGS: usize = 32;
/// [`Skips`] flag: no [`KeyKind::Exact`] key in [`MapRole::Names`], the exact lookup is
/// skipped.
pub const SKIP_EXACT: u8 = 1;
/// [`Skips`] flag: no key in [`MapRole::Suffixes`], the suffix lookup is skipped.
pub const SKIP_SUFFIX: u8 = 2;
/// The longest name the keys hold: 255 bytes on the wire, less the root's.
pub const MAX_KEY_NAME: usize = KEY_SIZE - 2;
/// The number of ranks in a suffix value, indexed by the first label's length (0 unused).
pub const SUFFIX_RANKS: usize = 64;

/// `BPF_MAP_TYPE_HASH`.
pub const BPF_MAP_TYPE_HASH: u32 = 1;
/// `BPF_MAP_TYPE_ARRAY`.
pub const BPF_MAP_TYPE_ARRAY: u32 = 2;
/// `BPF_MAP_TYPE_PROG_ARRAY`.
pub const BPF_MAP_TYPE_PROG_ARRAY: u32 = 3;
/// `BPF_MAP_TYPE_PERCPU_ARRAY`.
pub const BPF_MAP_TYPE_PERCPU_ARRAY: u32 = 6;
/// `BPF_MAP_TYPE_LPM_TRIE`.
pub const BPF_MAP_TYPE_LPM_TRIE: u32 = 11;
/// `BPF_F_NO_PREALLOC`: elements allocated as they are added (an LPM trie requires it; the
/// name maps use it so that a large capacity costs nothing until it is used).
pub const BPF_F_NO_PREALLOC: u32 = 1;

/// The most classic rules (run as compiled programs by tail calls) a rule list may have:
/// the kernel allows 33 tail calls per packet, one goes from the matcher to the first.
pub const MAX_CLASSIC_RULES: u32 = 32;
/// The VLAN tag counts the matcher reads (0, 1, 2): each classic rule is compiled once per
/// count, for the network header at 14, 18 and 22 bytes.
pub const VLAN_DEPTHS: u32 = 3;
/// The slot in [`MapRole::Programs`] of classic rule `index` (0 = the first classic rule in
/// the list's order) compiled for `vlan_tags` tags: `vlan_tags * MAX_CLASSIC_RULES + index`.
/// The matcher tail-calls slot `vlan_tags * MAX_CLASSIC_RULES` (the first rule for the
/// frame's tag count); rule `index` tail-calls the slot after its own; an empty slot ends
/// the chain, and the program that found it decides.
pub const fn program_slot(vlan_tags: u32, index: u32) -> u32 {
    vlan_tags * MAX_CLASSIC_RULES + index
}

/// A [`MapRole::Counters`] value, per CPU: packets then bytes (the frame's length), each
/// a `u64` in host order, of the rule that decided.
pub const COUNTER_SIZE: u32 = 16;

/// The [`MapRole::Counters`] index of the rule of rank `rank`: its order in the list (0 =
/// first), `MAX_RULES - (rank >> 1)`.
pub const fn counter_index(rank: u32) -> u32 {
    MAX_RULES - (rank >> 1)
}

/// A [`MapRole::Addr4`] / [`MapRole::Addr6`] value: one byte, 1 (any present key protects
/// its prefix; the value is not read).
pub const ADDR_VALUE_SIZE: u32 = 1;
/// The helper `bpf_map_lookup_elem`.
const BPF_FUNC_MAP_LOOKUP_ELEM: i32 = 1;
/// The helper `bpf_tail_call`.
const BPF_FUNC_TAIL_CALL: i32 = 12;
/// The helper `bpf_skb_load_bytes`.
const BPF_FUNC_SKB_LOAD_BYTES: i32 = 26;

/// The IPv6 extension headers the gate walks looking for UDP (hop-by-hop, routing,
/// destination options, a first fragment, authentication): a frame with more is taken as
/// one the rules see, decided by the first rule (see the module docs).
pub const GATE_EXT_HEADERS: usize = 8;
/// The offset from the frame's start past which the gate stops reading headers (the frame
/// passes): offsets stay in a range the verifier can bound. The XDP program counts it from
/// the frame's start, the socket filter ([`socket_program`]) from the network header.
pub const MAX_HEADER_OFFSET: u32 = 0x3fff;

/// The bytes of the socket filter's copy of the packet ([`MapRole::Packet`]): the furthest
/// the parse reaches, a header at [`MAX_HEADER_OFFSET`], the UDP and DNS headers after it
/// (20 bytes) and a name of 255 bytes, rounded up to 8. A longer packet is copied up to
/// here: no read and no bounds test of the program goes further, so the rest cannot change
/// its verdict.
pub const PACKET_SIZE: u32 = (MAX_HEADER_OFFSET + 20 + 255 + 7) & !7;
// The copy's length goes through a u16 ([`COPIED`]); a per-CPU value holds at most 32 KiB.
const _: () = assert!(PACKET_SIZE <= 32 << 10);

/// What the socket filter ([`socket_program`]) returns for a packet whose best rule drops
/// it: `xt_bpf` matches on any value but 0, and the rule's target (`-j DROP`) acts.
pub const SOCKET_MATCH: u32 = 1;
/// What the socket filter returns for any other packet: the `xt_bpf` rule does not match.
pub const SOCKET_NO_MATCH: u32 = 0;

/// Scratch value layout: the name's key, the suffix key, the state words.
const NAME_KEY: i16 = 0;
const SUFFIX_KEY: i16 = 264;
const STATE: i16 = 528;
/// State words (private to the matcher): the offset of the header being read (`u16`, from
/// the frame's start; the UDP header's once the gate has found it), four bytes written zero,
/// a byte of ones, the mode bits, a word of ones, the VLAN tag count; in the socket filter,
/// the copy's length.
const OFF: i16 = STATE;
const ZEROS: i16 = STATE + 2;
const BYTE_ONES: i16 = STATE + 6;
const MODE: i16 = STATE + 7;
const WORD_ONES: i16 = STATE + 8;
const TAGS: i16 = STATE + 12;
/// The socket filter's copy length (`u16`), written and read back once at the start.
const COPIED: i16 = STATE + 14;
/// Mode bits: the `dns` programs' walk ended on an extension header (the first rule
/// decides); they refuse the frame (no rule matches); the gate could not see past its walk.
const MODE_FIRST: i32 = 1;
const MODE_NONE: i32 = 2;
const MODE_BLIND: i32 = 4;
/// The offset in the scratch value of the best rank so far (`u32`, host order), which the
/// matcher writes before it tail-calls the first classic rule and each classic rule reads,
/// raises when it matches with a higher rank, and passes on.
pub const SCRATCH_BEST: i16 = 544;
/// The offset in the scratch value of the frame's copy of the [`Skips`].
const SKIPS: i16 = 552;
/// Scratch bytes: the suffix key's writes reach `SUFFIX_KEY + 2 + 255`; the state words
/// after, then the best rank ([`SCRATCH_BEST`]), 4 spare bytes and the copy of the
/// [`Skips`] ([`LENGTHS_SIZE`] bytes).
pub const SCRATCH_SIZE: u32 = SKIPS as u32 + LENGTHS_SIZE;

/// What a key holds (its first byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum KeyKind {
    /// A whole name (without its root), for all-literal patterns.
    Exact = 1,
    /// The labels a name starts with, for `lit.lit.**` (none for `**`).
    Prefix = 2,
    /// A name after its first label, for `*.lit` and `*{m-n}.lit`.
    Suffix = 3,
    /// No name (the key's length is 0): the rank of the list's first rule, which decides a
    /// query behind more IPv6 extension headers than the `dns` programs walk (they match
    /// it whatever its name).
    First = 4,
}

/// A map key: kind, length of the wire bytes, the wire bytes (length-prefixed labels, no
/// root), zeros up to [`KEY_SIZE`].
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(pub [u8; KEY_SIZE]);

impl Key {
    /// The key of `kind` for the wire bytes `labels` (length-prefixed labels, no root);
    /// `None` past [`MAX_KEY_NAME`] bytes.
    pub fn new(kind: KeyKind, labels: &[u8]) -> Option<Key> {
        if labels.len() > MAX_KEY_NAME {
            return None;
        }
        let mut key = [0u8; KEY_SIZE];
        key[0] = kind as u8;
        key[1] = labels.len() as u8;
        key[2..2 + labels.len()].copy_from_slice(labels);
        Some(Key(key))
    }

    /// The key for a name the parser or the model bounded to 255 bytes on the wire.
    fn bounded(kind: KeyKind, labels: &[u8]) -> Key {
        Key::new(kind, labels).expect("names are at most 255 bytes on the wire, root included")
    }

    /// The kind byte.
    pub fn kind(&self) -> u8 {
        self.0[0]
    }

    /// The wire bytes the key holds.
    pub fn labels(&self) -> &[u8] {
        &self.0[2..2 + usize::from(self.0[1])]
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Key({}, {:?})",
            self.0[0],
            self.labels().escape_ascii().to_string()
        )
    }
}

/// What a rule does with the queries it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Let them through (and stop looking at later rules).
    Accept,
    /// Drop them.
    Drop,
}

/// The rank of the rule at `order` (0 = first) with `action`: higher for earlier rules, the
/// lowest bit set for [`Action::Drop`]; 0 is "no rule". `None` past the 2^31 - 2 rules ranks
/// can tell apart.
pub fn rank(order: usize, action: Action) -> Option<u32> {
    let order = u32::try_from(order).ok().filter(|&o| o < MAX_RULES)?;
    Some(((MAX_RULES - order) << 1) | u32::from(action == Action::Drop))
}

/// The most rules a rule list may have (ranks are 31 bits).
pub const MAX_RULES: u32 = (1 << 31) - 1;

/// The action a rank stands for; `None` for 0 (no rule matched).
pub fn action_of(rank: u32) -> Option<Action> {
    match rank {
        0 => None,
        r if r & 1 == 1 => Some(Action::Drop),
        _ => Some(Action::Accept),
    }
}

/// Why a pattern cannot go into the maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsupported {
    /// `?` inside a label.
    AnyCharacter,
    /// `%XX` inside a label.
    Escape,
    /// A `*` or `*{m-n}` label that is not the first.
    WildcardNotFirst,
    /// A `*` label together with `**`.
    WildcardAndAnySuffix,
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Unsupported::AnyCharacter => "'?' inside a label",
            Unsupported::Escape => "'%XX' inside a label",
            Unsupported::WildcardNotFirst => "a '*' label after the first (or more than one)",
            Unsupported::WildcardAndAnySuffix => "a '*' label together with '**'",
        })
    }
}

/// Why a rule list cannot become map contents.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RuleError {
    /// The pattern is not valid in the `dns` pattern language.
    #[error(transparent)]
    Pattern(#[from] PatternError),
    /// Valid, but not a form the maps express: it needs the compiled classic program.
    #[error(
        "pattern '{}': {what} cannot be matched by map lookups (expected literal labels, \
         one '*' or '*{{m-n}}' first label over literal labels, or literal labels then '**')",
        quote(pattern)
    )]
    Unsupported {
        /// The pattern as given.
        pattern: String,
        /// What in it.
        what: Unsupported,
    },
    /// More rules than ranks.
    #[error("{count} rules: at most {MAX_RULES} fit the ranks")]
    TooManyRules {
        /// The number given.
        count: usize,
    },
    /// An explicit order past the ranks.
    #[error("rule order {order}: orders go from 0 to {}", MAX_RULES - 1)]
    OrderTooLarge {
        /// The order given.
        order: u32,
    },
    /// Two rules with the same explicit order: their ranks would be the same.
    #[error("rule order {order} is given to two rules: each rule needs its own order")]
    DuplicateOrder {
        /// The order given twice.
        order: u32,
    },
    /// More rules the maps cannot express than tail calls can run.
    #[error(
        "{count} rules need their compiled classic program: at most {MAX_CLASSIC_RULES} \
         can run after the map lookups"
    )]
    TooManyClassicRules {
        /// The number of such rules.
        count: usize,
    },
}

/// The matcher's one setting, shared by the program and its map contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MatcherOptions {
    /// Fold ASCII letters to lower case in names and patterns (the generators' `-i`).
    pub ignore_case: bool,
}

/// The contents of the lookup maps for a rule list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MapContents {
    /// [`MapRole::Names`]: exact names and prefixes, with their rank.
    pub names: BTreeMap<Key, u32>,
    /// [`MapRole::Suffixes`]: names after the first label, with a rank per first-label
    /// length.
    pub suffixes: BTreeMap<Key, [u32; SUFFIX_RANKS]>,
}

/// The one value of [`MapRole::Lengths`]: which lookups the program skips because no key
/// can answer them (see the module docs). Bit `n % 8` of byte `n / 8` (`n` = 0..=255) is
/// set when no [`KeyKind::Prefix`] key of `n` wire bytes is in [`MapRole::Names`]; the byte
/// at [`SKIP_FLAGS`] holds [`SKIP_EXACT`] and [`SKIP_SUFFIX`]. All zeros (what the kernel
/// creates) skips nothing.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Skips(pub [u8; LENGTHS_SIZE as usize]);

impl Skips {
    /// The skips for maps holding exactly the keys `names` ([`MapRole::Names`]) and
    /// `suffixes` ([`MapRole::Suffixes`]).
    pub fn of<'a>(
        names: impl IntoIterator<Item = &'a Key>,
        suffixes: impl IntoIterator<Item = &'a Key>,
    ) -> Skips {
        let mut prefixes = [false; 256];
        let mut exact = false;
        for key in names {
            if key.kind() == KeyKind::Prefix as u8 {
                prefixes[usize::from(key.0[1])] = true;
            } else if key.kind() == KeyKind::Exact as u8 {
                exact = true;
            }
        }
        let suffix = suffixes.into_iter().next().is_some();
        Skips::new(|n| prefixes[usize::from(n)], exact, suffix)
    }

    /// The skips for maps with a [`KeyKind::Prefix`] key of `n` wire bytes when
    /// `has_prefix(n)`, an exact key when `has_exact`, a suffix key when `has_suffix`.
    pub fn new(has_prefix: impl Fn(u8) -> bool, has_exact: bool, has_suffix: bool) -> Skips {
        let mut value = [0u8; LENGTHS_SIZE as usize];
        for n in 0..=255u8 {
            if !has_prefix(n) {
                value[usize::from(n / 8)] |= 1 << (n % 8);
            }
        }
        if !has_exact {
            value[SKIP_FLAGS] |= SKIP_EXACT;
        }
        if !has_suffix {
            value[SKIP_FLAGS] |= SKIP_SUFFIX;
        }
        Skips(value)
    }

    /// Whether the prefix lookup at offset `length` of the name is skipped.
    pub fn skips_prefix(&self, length: u8) -> bool {
        self.0[usize::from(length / 8)] & (1 << (length % 8)) != 0
    }

    /// Whether the exact lookup is skipped.
    pub fn skips_exact(&self) -> bool {
        self.0[SKIP_FLAGS] & SKIP_EXACT != 0
    }

    /// Whether the suffix lookup is skipped.
    pub fn skips_suffix(&self) -> bool {
        self.0[SKIP_FLAGS] & SKIP_SUFFIX != 0
    }
}

impl std::fmt::Debug for Skips {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let looked: Vec<u8> = (0..=255u8).filter(|&n| !self.skips_prefix(n)).collect();
        f.debug_struct("Skips")
            .field("prefix_lengths_looked_up", &looked)
            .field("exact", &!self.skips_exact())
            .field("suffix", &!self.skips_suffix())
            .finish()
    }
}

/// The form a pattern takes in the maps.
enum Form {
    Exact(Vec<u8>),
    Prefix(Vec<u8>),
    Suffix { labels: Vec<u8>, min: u8, max: u8 },
}

fn form(text: &str, options: MatcherOptions) -> Result<Form, RuleError> {
    let pattern = parse_pattern(text, options.ignore_case)?;
    let unsupported = |what| RuleError::Unsupported {
        pattern: text.to_string(),
        what,
    };
    let trimmed = text.trim_matches('.');
    if trimmed.split('.').any(|label| label.contains('%')) {
        return Err(unsupported(Unsupported::Escape));
    }
    let mut wire = Vec::new();
    let mut first = None;
    let mut any_suffix = false;
    for (index, part) in pattern.parts.iter().enumerate() {
        match part {
            Part::Literal(bytes) => {
                if bytes.iter().any(|b| b.mask == 0xff) {
                    return Err(unsupported(Unsupported::AnyCharacter));
                }
                wire.push(bytes.len() as u8);
                // Under ignore_case letters come lower case (with the 0x20 bit as the mask).
                wire.extend(bytes.iter().map(|b| b.value));
            }
            Part::Any(bounds) if index == 0 => {
                first = Some(bounds.map_or((1, MAX_LABEL), |b| (b.min, b.max)));
            }
            Part::Any(_) => return Err(unsupported(Unsupported::WildcardNotFirst)),
            Part::AnySuffix => any_suffix = true,
        }
    }
    Ok(match (first, any_suffix) {
        (Some(_), true) => return Err(unsupported(Unsupported::WildcardAndAnySuffix)),
        (Some((min, max)), false) => Form::Suffix {
            labels: wire,
            min,
            max,
        },
        (None, true) => Form::Prefix(wire),
        (None, false) => Form::Exact(wire),
    })
}

/// A rule the maps cannot express, which runs as its compiled classic program
/// ([`MapContents::split`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassicRule {
    /// Its explicit order in the list.
    pub order: u32,
    /// Its action.
    pub action: Action,
    /// Its rank ([`rank`] of its order and action), which its program raises the best rank
    /// to when it matches.
    pub rank: u32,
    /// The pattern as given.
    pub pattern: String,
    /// Why the maps cannot express it.
    pub why: Unsupported,
}

/// A rule list split between the maps and the classic programs ([`MapContents::split`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SplitRules {
    /// The map contents of the rules the maps express.
    pub contents: MapContents,
    /// The others, by order: the `index` of [`program_slot`] is the place in this list.
    pub classic: Vec<ClassicRule>,
}

impl MapContents {
    /// The map contents for `rules`, in order (the first match decides): the rule at index
    /// `i` has order `i`. A pattern the maps cannot express is refused, named in the error.
    pub fn new<S: AsRef<str>>(
        rules: &[(Action, S)],
        options: MatcherOptions,
    ) -> Result<MapContents, RuleError> {
        if rules.len() > MAX_RULES as usize {
            return Err(RuleError::TooManyRules { count: rules.len() });
        }
        let ordered: Vec<(u32, Action, &str)> = rules
            .iter()
            .enumerate()
            .map(|(order, (action, text))| (order as u32, *action, text.as_ref()))
            .collect();
        MapContents::with_orders(&ordered, options)
    }

    /// The map contents for rules with explicit orders (0 = first; gaps are fine): a rule's
    /// rank depends only on its own order and action, so adding or removing one rule changes
    /// no other rule's keys or ranks (only the [`KeyKind::First`] key follows the lowest
    /// order). A pattern the maps cannot express is refused, named in the error; so are an
    /// order past [`MAX_RULES`] - 1 and an order given twice.
    pub fn with_orders<S: AsRef<str>>(
        rules: &[(u32, Action, S)],
        options: MatcherOptions,
    ) -> Result<MapContents, RuleError> {
        check_orders(rules)?;
        let mut out = MapContents::default();
        for (order, action, text) in rules {
            out.add(*order, *action, form(text.as_ref(), options)?);
        }
        Ok(out)
    }

    /// Splits a mixed rule list: the rules the maps express go into the map contents, those
    /// that are valid patterns but [`RuleError::Unsupported`] by the maps become
    /// [`ClassicRule`]s, by order. Refused: a pattern that is not valid, an order past
    /// [`MAX_RULES`] - 1 or given twice, more than [`MAX_CLASSIC_RULES`] classic rules.
    pub fn split<S: AsRef<str>>(
        rules: &[(u32, Action, S)],
        options: MatcherOptions,
    ) -> Result<SplitRules, RuleError> {
        check_orders(rules)?;
        let mut out = SplitRules::default();
        for (order, action, text) in rules {
            match form(text.as_ref(), options) {
                Ok(form) => out.contents.add(*order, *action, form),
                Err(RuleError::Unsupported { pattern, what }) => out.classic.push(ClassicRule {
                    order: *order,
                    action: *action,
                    rank: rank(*order as usize, *action)
                        .ok_or(RuleError::OrderTooLarge { order: *order })?,
                    pattern,
                    why: what,
                }),
                Err(other) => return Err(other),
            }
        }
        if out.classic.len() > MAX_CLASSIC_RULES as usize {
            return Err(RuleError::TooManyClassicRules {
                count: out.classic.len(),
            });
        }
        out.classic.sort_by_key(|rule| rule.order);
        Ok(out)
    }

    /// Adds one rule of a checked order.
    fn add(&mut self, order: u32, action: Action, form: Form) {
        let rank = rank(order as usize, action).expect("orders are checked below MAX_RULES");
        let mut raise = |key: Key| {
            let slot = self.names.entry(key).or_insert(0);
            *slot = (*slot).max(rank);
        };
        raise(Key::bounded(KeyKind::First, &[]));
        match form {
            Form::Exact(labels) => raise(Key::bounded(KeyKind::Exact, &labels)),
            Form::Prefix(labels) => raise(Key::bounded(KeyKind::Prefix, &labels)),
            Form::Suffix { labels, min, max } => {
                let ranks = self
                    .suffixes
                    .entry(Key::bounded(KeyKind::Suffix, &labels))
                    .or_insert([0; SUFFIX_RANKS]);
                for slot in &mut ranks[usize::from(min)..=usize::from(max)] {
                    *slot = (*slot).max(rank);
                }
            }
        }
    }

    /// The [`MapRole::Lengths`] value for these contents: the lookups no key can answer.
    pub fn skips(&self) -> Skips {
        Skips::of(self.names.keys(), self.suffixes.keys())
    }

    /// The rank of the first rule (the highest), 0 without rules: what the program gives a
    /// query whose name the `dns` programs do not reach (see the module docs).
    pub fn first_rank(&self) -> u32 {
        self.names
            .get(&Key::bounded(KeyKind::First, &[]))
            .copied()
            .unwrap_or(0)
    }

    /// The rank map lookups give `name` (wire form with its root; letters already folded when
    /// the matcher ignores case), as the program computes it: the Rust model of the program's
    /// decision, for tests and for tools that explain a verdict.
    pub fn decide(&self, name: &[u8]) -> u32 {
        let mut best = 0;
        let mut pos = 0;
        let mut first_label = None;
        loop {
            if pos >= 255 {
                return best;
            }
            if let Some(&r) = self.names.get(&Key::bounded(KeyKind::Prefix, &name[..pos])) {
                best = best.max(r);
            }
            let Some(&len) = name.get(pos) else {
                return best;
            };
            if len == 0 {
                break;
            }
            if len > MAX_LABEL || pos + 1 + usize::from(len) > name.len() {
                return best;
            }
            first_label.get_or_insert(pos + 1 + usize::from(len));
            pos += 1 + usize::from(len);
        }
        if let Some(&r) = self.names.get(&Key::bounded(KeyKind::Exact, &name[..pos])) {
            best = best.max(r);
        }
        if let Some(start) = first_label {
            if let Some(ranks) = self
                .suffixes
                .get(&Key::bounded(KeyKind::Suffix, &name[start..pos]))
            {
                best = best.max(ranks[usize::from(name[0])]);
            }
        }
        best
    }
}

/// Orders below [`MAX_RULES`], each given once.
fn check_orders<S>(rules: &[(u32, Action, S)]) -> Result<(), RuleError> {
    let mut seen = std::collections::BTreeSet::new();
    for (order, _, _) in rules {
        if *order >= MAX_RULES {
            return Err(RuleError::OrderTooLarge { order: *order });
        }
        if !seen.insert(*order) {
            return Err(RuleError::DuplicateOrder { order: *order });
        }
    }
    Ok(())
}

/// The bytes of a suffix value as the map stores them (host byte order).
pub fn suffix_value_bytes(ranks: &[u32; SUFFIX_RANKS]) -> Vec<u8> {
    ranks.iter().flat_map(|r| r.to_ne_bytes()).collect()
}

/// The maps a matcher program uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MapRole {
    /// Hash map, [`Key`] -> `u32` rank: exact names, prefixes, and the first rule's rank
    /// ([`KeyKind::First`]).
    Names,
    /// Hash map, [`Key`] -> `[u32; 64]` ranks by first-label length: suffixes.
    Suffixes,
    /// Array of one [`LENGTHS_SIZE`]-byte value at key 0 (a `u32`): the [`Skips`], the
    /// lookups no key of the two maps above can answer (all zeros: none skipped).
    Lengths,
    /// Per-CPU array of one [`SCRATCH_SIZE`]-byte value: the keys being built, the best rank
    /// carried across tail calls.
    Scratch,
    /// LPM trie, [`crate::ebpf::sys::lpm_key`] of an IPv4 prefix -> 1: the protected
    /// destinations (a frame to any other address passes). `0.0.0.0/0` protects all.
    Addr4,
    /// LPM trie as [`MapRole::Addr4`], for IPv6 (`::/0` protects all).
    Addr6,
    /// Per-CPU array indexed by [`counter_index`]: [`COUNTER_SIZE`] bytes of packets and bytes
    /// per rule, counted for the rule whose rank decided.
    Counters,
    /// Program array of the classic rules' compiled programs, at [`program_slot`].
    Programs,
    /// Per-CPU array of one [`PACKET_SIZE`]-byte value: the socket filter's copy of the
    /// packet from its network header ([`socket_program`]; the XDP program reads the frame
    /// in place and has no such map).
    Packet,
}

/// How to create a map for `BPF_MAP_CREATE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapSpec {
    /// Which map.
    pub role: MapRole,
    /// `BPF_MAP_TYPE_*`.
    pub map_type: u32,
    /// `map_flags` (`BPF_F_NO_PREALLOC` for the hash maps and the tries).
    pub flags: u32,
    /// Key bytes.
    pub key_size: u32,
    /// Value bytes.
    pub value_size: u32,
    /// Entries.
    pub max_entries: u32,
}

impl MapRole {
    /// Every role of the XDP program ([`program`]) and its classic rules, in the order
    /// [`MatcherProgram::with_map_fds`] is usually given them ([`MapRole::Packet`] is the
    /// socket filter's alone: [`Variant::roles`]).
    pub const ALL: [MapRole; 8] = [
        MapRole::Names,
        MapRole::Suffixes,
        MapRole::Lengths,
        MapRole::Scratch,
        MapRole::Addr4,
        MapRole::Addr6,
        MapRole::Counters,
        MapRole::Programs,
    ];

    /// Every role of the socket filter ([`socket_program`]): those of [`MapRole::ALL`]
    /// without [`MapRole::Programs`] (no classic rule runs after it), then
    /// [`MapRole::Packet`].
    pub const SOCKET_FILTER: [MapRole; 8] = [
        MapRole::Names,
        MapRole::Suffixes,
        MapRole::Lengths,
        MapRole::Scratch,
        MapRole::Addr4,
        MapRole::Addr6,
        MapRole::Counters,
        MapRole::Packet,
    ];

    /// The map's name under bpffs and for the kernel.
    pub const fn name(self) -> &'static str {
        match self {
            MapRole::Names => "names",
            MapRole::Suffixes => "suffixes",
            MapRole::Lengths => "lengths",
            MapRole::Scratch => "scratch",
            MapRole::Addr4 => "addr4",
            MapRole::Addr6 => "addr6",
            MapRole::Counters => "counters",
            MapRole::Programs => "programs",
            MapRole::Packet => "packet",
        }
    }

    /// The map's shape; `capacity` is the entries of the lookup maps, of the address tries
    /// and the rule slots of the counters.
    pub const fn spec(self, capacity: u32) -> MapSpec {
        let no_prealloc = BPF_F_NO_PREALLOC;
        let (map_type, key_size, value_size, max_entries, flags) = match self {
            MapRole::Names => (BPF_MAP_TYPE_HASH, KEY_SIZE as u32, 4, capacity, no_prealloc),
            MapRole::Suffixes => (
                BPF_MAP_TYPE_HASH,
                KEY_SIZE as u32,
                4 * SUFFIX_RANKS as u32,
                capacity,
                no_prealloc,
            ),
            MapRole::Lengths => (BPF_MAP_TYPE_ARRAY, 4, LENGTHS_SIZE, 1, 0),
            MapRole::Scratch => (BPF_MAP_TYPE_PERCPU_ARRAY, 4, SCRATCH_SIZE, 1, 0),
            MapRole::Addr4 => (
                BPF_MAP_TYPE_LPM_TRIE,
                8,
                ADDR_VALUE_SIZE,
                capacity,
                no_prealloc,
            ),
            MapRole::Addr6 => (
                BPF_MAP_TYPE_LPM_TRIE,
                20,
                ADDR_VALUE_SIZE,
                capacity,
                no_prealloc,
            ),
            MapRole::Counters => (BPF_MAP_TYPE_PERCPU_ARRAY, 4, COUNTER_SIZE, capacity, 0),
            MapRole::Programs => (
                BPF_MAP_TYPE_PROG_ARRAY,
                4,
                4,
                VLAN_DEPTHS * MAX_CLASSIC_RULES,
                0,
            ),
            MapRole::Packet => (BPF_MAP_TYPE_PERCPU_ARRAY, 4, PACKET_SIZE, 1, 0),
        };
        MapSpec {
            role: self,
            map_type,
            key_size,
            value_size,
            max_entries,
            flags,
        }
    }
}

/// eBPF code with its map loads still to be given: the matcher's XDP program
/// ([`program`]) or the decision that ends every program of a deployment ([`decision`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatcherProgram {
    /// The instructions; each map `lddw` holds -1 until [`MatcherProgram::with_map_fds`].
    pub insns: Vec<Insn>,
    /// The `lddw` slots that load a map, and which.
    pub map_slots: Vec<(usize, MapRole)>,
}

impl MatcherProgram {
    /// The instructions with each map's file descriptor in place, ready for `BPF_PROG_LOAD`.
    pub fn with_map_fds(&self, fd: impl Fn(MapRole) -> i32) -> Vec<Insn> {
        let mut insns = self.insns.clone();
        for &(slot, role) in &self.map_slots {
            insns[slot].imm = fd(role);
        }
        insns
    }
}

/// Where a matcher program runs: how it reaches the packet, what it returns, and whether
/// classic rules run after it. The gate (from the network header on), the name loop, the
/// lookups, the ranks and the counters are the same code in both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variant {
    /// `BPF_PROG_TYPE_XDP` ([`program`]): the frame from its Ethernet header, read in place;
    /// the tail-call hook; `XDP_DROP` / `XDP_PASS`.
    Xdp,
    /// `BPF_PROG_TYPE_SOCKET_FILTER` ([`socket_program`]), what `iptables -m bpf
    /// --object-pinned` runs: the packet from its network header, copied first; no hook;
    /// [`SOCKET_MATCH`] / [`SOCKET_NO_MATCH`].
    SocketFilter,
}

impl Variant {
    /// The maps the variant's program refers to ([`MatcherProgram::map_slots`] names no
    /// other).
    pub const fn roles(self) -> &'static [MapRole] {
        match self {
            Variant::Xdp => &MapRole::ALL,
            Variant::SocketFilter => &MapRole::SOCKET_FILTER,
        }
    }

    /// The variant's program: [`program`] or [`socket_program`].
    pub fn program(self, options: MatcherOptions) -> MatcherProgram {
        generate(self, options)
    }

    /// What the program returns for a packet that passes, and for one the rules drop.
    pub const fn verdicts(self) -> (u32, u32) {
        match self {
            Variant::Xdp => (XDP_PASS, XDP_DROP),
            Variant::SocketFilter => (SOCKET_NO_MATCH, SOCKET_MATCH),
        }
    }
}

/// Stack slots (offsets from r10).
const CTX: i16 = -8;
const FRAME_LEN: i16 = -16;
const REMAINING: i16 = -24;
const SUFFIX_LEN: i16 = -32;
const BEST: i16 = -40;
const LABELS: i16 = -48;
const BYTE_MASK: i16 = -56;
const WORD_MASK: i16 = -64;
/// A `u32` map key: the scratch value's index, then the counter's.
const MAP_KEY: i16 = -72;
/// An address trie's key: the prefix length, then 4 or 16 address bytes.
const ADDR_KEY: i16 = -96;

/// Registers kept across helper calls.
const SCRATCH: Reg = Reg::R6;
/// The frame's start, then (in the name loop) the name's.
const DATA: Reg = Reg::R7;
const NAME: Reg = Reg::R7;
const DATA_END: Reg = Reg::R8;
/// The network header until the gate is passed, then the offset in the name.
const L3: Reg = Reg::R9;
const POS: Reg = Reg::R9;

struct Gen {
    e: Emitter,
    map_slots: Vec<(usize, MapRole)>,
}

fn imm(value: i32) -> Operand {
    Operand::Imm(value)
}

impl Gen {
    fn new() -> Gen {
        Gen {
            e: Emitter::default(),
            map_slots: Vec::new(),
        }
    }

    fn finish(self) -> MatcherProgram {
        // The code's shape does not depend on its input: its jumps (a few hundred
        // instructions) always fit.
        let insns = self.e.resolve().expect("the matcher's jumps fit 16 bits");
        MatcherProgram {
            insns,
            map_slots: self.map_slots,
        }
    }

    fn emit(&mut self, insn: Insn) {
        self.e.emit(insn);
    }

    fn jump(&mut self, op: JmpOp, reg: Reg, operand: Operand, label: usize) {
        self.e.jump(Insn::jmp(op, reg, operand, 0), label, 0);
    }

    fn goto(&mut self, label: usize) {
        self.e.jump(Insn::ja(0), label, 0);
    }

    fn load_map(&mut self, dst: Reg, role: MapRole) {
        let [lo, hi] = Insn::ld_map_fd(dst, -1);
        self.map_slots.push((self.e.len(), role));
        self.emit(lo);
        self.emit(hi);
    }

    /// `dst = ptr + size_after`, then to `fail` when that is past `data_end`.
    fn check_room(&mut self, dst: Reg, ptr: Reg, size_after: i32, fail: usize) {
        self.emit(Insn::mov64_reg(dst, ptr));
        self.emit(Insn::alu64(AluOp::Add, dst, imm(size_after)));
        self.jump(JmpOp::Jgt, dst, Operand::Reg(DATA_END), fail);
    }

    /// `dst = be16 *(ptr + off)` in host order.
    fn load_be16(&mut self, dst: Reg, ptr: Reg, off: i16) {
        self.emit(Insn::load(Size::H, dst, ptr, off));
        self.emit(Insn::endian(true, dst, 16));
    }

    /// Looks up the key at `SCRATCH + key_at` in `role`; to `miss` when absent, else r0 is
    /// the value.
    fn lookup(&mut self, role: MapRole, key_at: i16, miss: usize) {
        self.load_map(Reg::R1, role);
        self.emit(Insn::mov64_reg(Reg::R2, SCRATCH));
        if key_at != 0 {
            self.emit(Insn::alu64(AluOp::Add, Reg::R2, imm(i32::from(key_at))));
        }
        self.emit(Insn::call(BPF_FUNC_MAP_LOOKUP_ELEM));
        self.jump(JmpOp::Jeq, Reg::R0, imm(0), miss);
    }

    /// Looks up the key at `r10 + key_at` in `role`; to `miss` when absent, else r0 is the
    /// value.
    fn lookup_stack(&mut self, role: MapRole, key_at: i16, miss: usize) {
        self.load_map(Reg::R1, role);
        self.emit(Insn::mov64_reg(Reg::R2, Reg::FP));
        self.emit(Insn::alu64(AluOp::Add, Reg::R2, imm(i32::from(key_at))));
        self.emit(Insn::call(BPF_FUNC_MAP_LOOKUP_ELEM));
        self.jump(JmpOp::Jeq, Reg::R0, imm(0), miss);
    }

    /// Sets `bits` in the scratch's mode byte (clobbers r1).
    fn set_mode(&mut self, bits: i32) {
        self.emit(Insn::load(Size::B, Reg::R1, SCRATCH, MODE));
        self.emit(Insn::alu64(AluOp::Or, Reg::R1, imm(bits)));
        self.emit(Insn::store(Size::B, SCRATCH, MODE, Reg::R1));
    }

    /// `dst` = the frame's start + the offset kept in the scratch (clobbers r1). Read back
    /// from the map value, the offset is one the verifier cannot tell apart on the paths that
    /// stored it (one per header layout): the code after is checked once for all of them.
    fn header_at_off(&mut self, dst: Reg) {
        self.emit(Insn::load(Size::H, Reg::R1, SCRATCH, OFF));
        self.emit(Insn::alu64(
            AluOp::And,
            Reg::R1,
            imm(MAX_HEADER_OFFSET as i32),
        ));
        self.emit(Insn::mov64_reg(dst, DATA));
        self.emit(Insn::alu64(AluOp::Add, dst, Operand::Reg(Reg::R1)));
    }

    /// The socket filter's packet (r1 is free, the scratch value in place): the packet from
    /// its network header copied into the [`MapRole::Packet`] value, `DATA` its start,
    /// `DATA_END` the end of the copy, `FRAME_LEN` the packet's length (`skb->len`), then
    /// what the gate needs: r4 = the protocol (`skb->protocol`, the EtherType the packet came
    /// with), r5 = 0 (no link layer), no tags. To `pass` for an empty packet.
    ///
    /// A socket filter cannot read the packet in place, and its legacy loads (`ld_abs`,
    /// `ld_ind`) end the program with 0 past the end, where the name loop must decide with
    /// what it has: one `bpf_skb_load_bytes` of the first [`PACKET_SIZE`] bytes at most lets
    /// the XDP code run unchanged, every access bounded in the map value by the masks it
    /// already has.
    fn socket_packet(&mut self, pass: usize) {
        self.emit(Insn::store_imm(Size::B, SCRATCH, MODE, 0));
        self.emit(Insn::store_imm(Size::B, SCRATCH, TAGS, 0));
        self.lookup_stack(MapRole::Packet, MAP_KEY, pass);
        self.emit(Insn::mov64_reg(DATA, Reg::R0));
        self.emit(Insn::load(Size::DW, Reg::R1, Reg::FP, CTX));
        // skb->len, the first word of struct __sk_buff.
        self.emit(Insn::load(Size::W, Reg::R4, Reg::R1, 0));
        self.emit(Insn::store(Size::DW, Reg::FP, FRAME_LEN, Reg::R4));
        let fits = self.e.label();
        self.jump(JmpOp::Jle, Reg::R4, imm(PACKET_SIZE as i32), fits);
        self.emit(Insn::mov32_imm(Reg::R4, PACKET_SIZE));
        self.e.bind(fits);
        // Written and read back, the length is one value the verifier cannot tell apart on
        // the two paths (the packet longer than the copy or not): the program after it,
        // whose end pointer it makes, is checked once. The two jumps after it never go to
        // `pass` at run time; they give the verifier the bounds the helper (1 byte at least)
        // and the end pointer (inside the value) need.
        self.emit(Insn::store(Size::H, SCRATCH, COPIED, Reg::R4));
        self.emit(Insn::load(Size::H, Reg::R4, SCRATCH, COPIED));
        self.jump(JmpOp::Jgt, Reg::R4, imm(PACKET_SIZE as i32), pass);
        self.jump(JmpOp::Jlt, Reg::R4, imm(1), pass);
        self.emit(Insn::mov64_reg(DATA_END, DATA));
        self.emit(Insn::alu64(AluOp::Add, DATA_END, Operand::Reg(Reg::R4)));
        // bpf_skb_load_bytes(skb, 0, data, length): 0, or an error (and the copy zeroed).
        self.emit(Insn::mov32_imm(Reg::R2, 0));
        self.emit(Insn::mov64_reg(Reg::R3, DATA));
        self.emit(Insn::call(BPF_FUNC_SKB_LOAD_BYTES));
        self.jump(JmpOp::Jne, Reg::R0, imm(0), pass);
        self.emit(Insn::load(Size::DW, Reg::R1, Reg::FP, CTX));
        // skb->protocol (struct __sk_buff, offset 16): a big-endian u16 in a u32.
        self.emit(Insn::load(Size::W, Reg::R4, Reg::R1, 16));
        self.emit(Insn::endian(true, Reg::R4, 16));
        self.emit(Insn::mov32_imm(Reg::R5, 0));
    }

    /// best = max(best, *(u32 *)(r0 + 0)).
    fn keep_best(&mut self) {
        let done = self.e.label();
        self.emit(Insn::load(Size::W, Reg::R1, Reg::R0, 0));
        self.emit(Insn::load(Size::DW, Reg::R2, Reg::FP, BEST));
        self.jump(JmpOp::Jle, Reg::R1, Operand::Reg(Reg::R2), done);
        // The compare told the verifier that the new best is above the old one: AND-ed with
        // a word of ones it only knows as a word, the best is again "any u32" on every path,
        // and the final test of it (== 0) never looks decided.
        self.emit(Insn::load(Size::DW, Reg::R2, Reg::FP, WORD_MASK));
        self.emit(Insn::alu64(AluOp::And, Reg::R1, Operand::Reg(Reg::R2)));
        self.emit(Insn::store(Size::DW, Reg::FP, BEST, Reg::R1));
        self.e.bind(done);
    }

    /// The decision ([`decision`]): r6 = the best rank, r7 = the frame's length; the
    /// verdicts of `variant`.
    fn decision(&mut self, key_at: i16, variant: Variant) {
        let (pass_value, drop_value) = variant.verdicts();
        let pass = self.e.label();
        let verdict = self.e.label();
        let drop = self.e.label();
        self.jump(JmpOp::Jeq, Reg::R6, imm(0), pass);
        // counter_index(best) = MAX_RULES - (best >> 1): the rule's order.
        self.emit(Insn::mov64_reg(Reg::R1, Reg::R6));
        self.emit(Insn::alu64(AluOp::Rsh, Reg::R1, imm(1)));
        self.emit(Insn::mov32_imm(Reg::R2, MAX_RULES));
        self.emit(Insn::alu32(AluOp::Sub, Reg::R2, Operand::Reg(Reg::R1)));
        self.emit(Insn::store(Size::W, Reg::FP, key_at, Reg::R2));
        self.lookup_stack(MapRole::Counters, key_at, verdict);
        // A per-CPU value: no other CPU writes it, plain adds are exact.
        self.emit(Insn::load(Size::DW, Reg::R1, Reg::R0, 0));
        self.emit(Insn::alu64(AluOp::Add, Reg::R1, imm(1)));
        self.emit(Insn::store(Size::DW, Reg::R0, 0, Reg::R1));
        self.emit(Insn::load(Size::DW, Reg::R1, Reg::R0, 8));
        self.emit(Insn::alu64(AluOp::Add, Reg::R1, Operand::Reg(Reg::R7)));
        self.emit(Insn::store(Size::DW, Reg::R0, 8, Reg::R1));
        self.e.bind(verdict);
        self.jump(JmpOp::Jset, Reg::R6, imm(1), drop);
        self.e.bind(pass);
        self.emit(Insn::mov32_imm(Reg::R0, pass_value));
        self.emit(Insn::exit());
        self.e.bind(drop);
        self.emit(Insn::mov32_imm(Reg::R0, drop_value));
        self.emit(Insn::exit());
    }
}

/// The decision every program of a deployment ends with, the matcher's and each classic
/// rule's (when the next slot of [`MapRole::Programs`] is empty): its contract.
///
/// On entry r6 holds the best rank (a `u32`, zero-extended) and r7 the frame's length in
/// bytes (`data_end - data`). When the rank is not 0, the [`MapRole::Counters`] element at
/// [`counter_index`]`(rank)` (this CPU's) gets 1 added to its packets and the length to its
/// bytes (nothing when the lookup misses); then the program returns `XDP_DROP` when the
/// rank's lowest bit is set, else `XDP_PASS`. The code writes the `u32` key at `r10 + key_at`
/// (a 4-byte aligned stack slot it may overwrite), clobbers r0-r5, and ends in `exit` on
/// every path. Append the instructions at the end of a program (their jumps are relative)
/// and give the map its descriptor at the `map_slots` (shifted by where they go).
pub fn decision(key_at: i16) -> MatcherProgram {
    let mut g = Gen::new();
    g.decision(key_at, Variant::Xdp);
    g.finish()
}

/// The matcher's XDP program (see the module docs). The same program serves any rule list:
/// only the maps change.
pub fn program(options: MatcherOptions) -> MatcherProgram {
    generate(Variant::Xdp, options)
}

/// The matcher as a `BPF_PROG_TYPE_SOCKET_FILTER` program, for `iptables -p udp --dport 53
/// -m bpf --object-pinned PIN -j DROP` (see the module docs, *The socket filter*): the XDP
/// program's gate from the network header on, its ranks and counters; it returns
/// [`SOCKET_MATCH`] when the best rule drops the packet, else [`SOCKET_NO_MATCH`]. Classic
/// rules do not run after it (it has no hook and no [`MapRole::Programs`]): its rule lists
/// are the ones [`MapContents::new`] and [`MapContents::with_orders`] accept. Its maps are
/// [`MapRole::SOCKET_FILTER`].
pub fn socket_program(options: MatcherOptions) -> MatcherProgram {
    generate(Variant::SocketFilter, options)
}

/// The program of `variant`: one body, with the packet reached, the hook and the verdicts of
/// the variant. The XDP program is the matcher as it was before the socket filter existed,
/// instruction for instruction.
fn generate(variant: Variant, options: MatcherOptions) -> MatcherProgram {
    let (pass_value, _) = variant.verdicts();
    let mut g = Gen::new();
    // Not a frame the rules see.
    let pass = g.e.label();
    // A frame the rules see, with its best rank at BEST / 0.
    let gated = g.e.label();
    let unmatched = g.e.label();
    let hook = g.e.label();

    // --- The context (kept for the tail call), the scratch value, the frame.
    g.emit(Insn::store(Size::DW, Reg::FP, CTX, Reg::R1));
    g.emit(Insn::store_imm(Size::W, Reg::FP, MAP_KEY, 0));
    g.lookup_stack(MapRole::Scratch, MAP_KEY, pass);
    g.emit(Insn::mov64_reg(SCRATCH, Reg::R0));
    let l3 = g.e.label();
    match variant {
        Variant::Xdp => {
            g.emit(Insn::load(Size::DW, Reg::R1, Reg::FP, CTX));
            g.emit(Insn::load(Size::W, DATA, Reg::R1, 0));
            g.emit(Insn::load(Size::W, DATA_END, Reg::R1, 4));
            g.emit(Insn::mov64_reg(Reg::R1, DATA_END));
            g.emit(Insn::alu64(AluOp::Sub, Reg::R1, Operand::Reg(DATA)));
            g.emit(Insn::store(Size::DW, Reg::FP, FRAME_LEN, Reg::R1));
            g.emit(Insn::store_imm(Size::B, SCRATCH, MODE, 0));

            // --- Link layer: r4 = the EtherType, r5 = the header's length, the tag count kept.
            g.check_room(Reg::R3, DATA, 14, pass);
            g.load_be16(Reg::R4, DATA, 12);
            g.emit(Insn::mov32_imm(Reg::R5, 14));
            g.emit(Insn::store_imm(Size::B, SCRATCH, TAGS, 0));
            for tag in 0..2i16 {
                let tagged = g.e.label();
                for tpid in [0x8100, 0x88a8] {
                    g.jump(JmpOp::Jeq, Reg::R4, imm(tpid), tagged);
                }
                g.jump(JmpOp::Jne, Reg::R4, imm(0x9100), l3);
                g.e.bind(tagged);
                let end = 14 + 4 * (tag + 1);
                g.check_room(Reg::R3, DATA, i32::from(end), pass);
                g.load_be16(Reg::R4, DATA, end - 2);
                g.emit(Insn::mov32_imm(Reg::R5, end as u32));
                g.emit(Insn::store_imm(Size::B, SCRATCH, TAGS, i32::from(tag + 1)));
            }
        }
        Variant::SocketFilter => g.socket_packet(pass),
    }
    g.e.bind(l3);
    g.emit(Insn::mov64_reg(Reg::R3, DATA));
    g.emit(Insn::alu64(AluOp::Add, Reg::R3, Operand::Reg(Reg::R5)));
    let ipv4 = g.e.label();
    let ipv6 = g.e.label();
    g.jump(JmpOp::Jeq, Reg::R4, imm(0x0800), ipv4);
    g.jump(JmpOp::Jeq, Reg::R4, imm(0x86dd), ipv6);
    g.goto(pass);

    // --- IPv4: any header length, UDP, the first fragment, port 53, a protected address.
    g.e.bind(ipv4);
    g.check_room(Reg::R4, Reg::R3, 20, pass);
    g.emit(Insn::mov64_reg(L3, Reg::R3));
    g.emit(Insn::load(Size::B, Reg::R4, Reg::R3, 0));
    g.emit(Insn::mov64_reg(Reg::R0, Reg::R4));
    g.emit(Insn::alu64(AluOp::Rsh, Reg::R0, imm(4)));
    g.jump(JmpOp::Jne, Reg::R0, imm(4), pass);
    g.emit(Insn::alu64(AluOp::And, Reg::R4, imm(0x0f)));
    g.emit(Insn::alu64(AluOp::Lsh, Reg::R4, imm(2)));
    g.jump(JmpOp::Jlt, Reg::R4, imm(20), pass);
    g.emit(Insn::load(Size::B, Reg::R0, Reg::R3, 9));
    g.jump(JmpOp::Jne, Reg::R0, imm(17), pass);
    // Only the first fragment (offset 0) carries the UDP header.
    g.load_be16(Reg::R0, Reg::R3, 6);
    g.emit(Insn::alu64(AluOp::And, Reg::R0, imm(0x1fff)));
    g.jump(JmpOp::Jne, Reg::R0, imm(0), pass);
    // The UDP header's offset: link layer + IPv4 header (at most 22 + 60).
    g.emit(Insn::mov64_reg(Reg::R1, Reg::R5));
    g.emit(Insn::alu64(AluOp::Add, Reg::R1, Operand::Reg(Reg::R4)));
    g.emit(Insn::store(Size::H, SCRATCH, OFF, Reg::R1));
    g.emit(Insn::alu64(AluOp::Add, Reg::R3, Operand::Reg(Reg::R4)));
    g.check_room(Reg::R2, Reg::R3, 8, pass);
    g.load_be16(Reg::R2, Reg::R3, 2);
    g.jump(JmpOp::Jne, Reg::R2, imm(53), pass);
    g.emit(Insn::store_imm(Size::W, Reg::FP, ADDR_KEY, 32));
    g.emit(Insn::load(Size::W, Reg::R1, L3, 16));
    g.emit(Insn::store(Size::W, Reg::FP, ADDR_KEY + 4, Reg::R1));
    g.lookup_stack(MapRole::Addr4, ADDR_KEY, pass);
    g.goto(gated);

    // --- IPv6: the extension headers to UDP, port 53, a protected address.
    g.e.bind(ipv6);
    g.check_room(Reg::R4, Reg::R3, 40, pass);
    g.emit(Insn::mov64_reg(L3, Reg::R3));
    g.emit(Insn::load(Size::B, Reg::R4, Reg::R3, 0));
    g.emit(Insn::alu64(AluOp::Rsh, Reg::R4, imm(4)));
    g.jump(JmpOp::Jne, Reg::R4, imm(6), pass);
    g.emit(Insn::load(Size::B, Reg::R4, Reg::R3, 6));
    g.emit(Insn::mov64_reg(Reg::R1, Reg::R5));
    g.emit(Insn::alu64(AluOp::Add, Reg::R1, imm(40)));
    g.emit(Insn::store(Size::H, SCRATCH, OFF, Reg::R1));
    let udp6 = g.e.label();
    let addr6 = g.e.label();
    let blind = g.e.label();
    // Header `position` (0 = what the fixed header names) of type r4, at OFF.
    for position in 0..=GATE_EXT_HEADERS {
        g.header_at_off(Reg::R3);
        g.jump(JmpOp::Jeq, Reg::R4, imm(17), udp6);
        if position == GATE_EXT_HEADERS {
            for header in [0, 43, 44, 51, 60] {
                g.jump(JmpOp::Jeq, Reg::R4, imm(header), blind);
            }
            g.goto(pass);
            break;
        }
        let options_header = g.e.label();
        let fragment = g.e.label();
        let auth = g.e.label();
        let advance = g.e.label();
        let next = g.e.label();
        // The `dns` programs walk two headers of the kinds 0, 43, 44 and 60, then match
        // whatever follows one more of them: authentication before that is refused.
        let refused = (position <= IPV6_EXTENSION_HEADERS).then(|| g.e.label());
        g.jump(JmpOp::Jeq, Reg::R4, imm(51), refused.unwrap_or(auth));
        g.jump(JmpOp::Jeq, Reg::R4, imm(44), fragment);
        g.jump(JmpOp::Jeq, Reg::R4, imm(0), options_header);
        g.jump(JmpOp::Jeq, Reg::R4, imm(43), options_header);
        g.jump(JmpOp::Jne, Reg::R4, imm(60), pass);
        g.e.bind(options_header);
        g.check_room(Reg::R2, Reg::R3, 8, pass);
        g.emit(Insn::load(Size::B, Reg::R0, Reg::R3, 1));
        g.emit(Insn::alu64(AluOp::Lsh, Reg::R0, imm(3)));
        g.emit(Insn::alu64(AluOp::Add, Reg::R0, imm(8)));
        g.goto(advance);
        g.e.bind(fragment);
        g.check_room(Reg::R2, Reg::R3, 8, pass);
        g.load_be16(Reg::R0, Reg::R3, 2);
        g.emit(Insn::alu64(AluOp::And, Reg::R0, imm(0xfff8)));
        g.jump(JmpOp::Jne, Reg::R0, imm(0), pass);
        g.emit(Insn::mov32_imm(Reg::R0, 8));
        g.goto(advance);
        if let Some(refused) = refused {
            g.e.bind(refused);
            g.set_mode(MODE_NONE);
        }
        g.e.bind(auth);
        g.check_room(Reg::R2, Reg::R3, 8, pass);
        g.emit(Insn::load(Size::B, Reg::R0, Reg::R3, 1));
        g.emit(Insn::alu64(AluOp::Add, Reg::R0, imm(2)));
        g.emit(Insn::alu64(AluOp::Lsh, Reg::R0, imm(2)));
        g.goto(next);
        g.e.bind(advance);
        if position == IPV6_EXTENSION_HEADERS {
            g.set_mode(MODE_FIRST);
        }
        g.e.bind(next);
        // r0 = the header's length; its first byte is the type of the one after it.
        g.emit(Insn::load(Size::B, Reg::R4, Reg::R3, 0));
        g.emit(Insn::load(Size::H, Reg::R1, SCRATCH, OFF));
        g.emit(Insn::alu64(AluOp::Add, Reg::R1, Operand::Reg(Reg::R0)));
        g.jump(JmpOp::Jgt, Reg::R1, imm(MAX_HEADER_OFFSET as i32), pass);
        g.emit(Insn::store(Size::H, SCRATCH, OFF, Reg::R1));
    }
    g.e.bind(blind);
    g.set_mode(MODE_BLIND | MODE_FIRST);
    g.goto(addr6);
    g.e.bind(udp6);
    g.check_room(Reg::R2, Reg::R3, 8, pass);
    g.load_be16(Reg::R2, Reg::R3, 2);
    g.jump(JmpOp::Jne, Reg::R2, imm(53), pass);
    g.e.bind(addr6);
    g.emit(Insn::store_imm(Size::W, Reg::FP, ADDR_KEY, 128));
    for word in 0..4 {
        g.emit(Insn::load(Size::W, Reg::R1, L3, 24 + 4 * word));
        g.emit(Insn::store(
            Size::W,
            Reg::FP,
            ADDR_KEY + 4 + 4 * word,
            Reg::R1,
        ));
    }
    g.lookup_stack(MapRole::Addr6, ADDR_KEY, pass);

    // --- Through the gate: any message with a whole DNS header is read (as the `dns`
    // programs, which read neither QR nor QDCOUNT).
    g.e.bind(gated);
    let prepare = g.e.label();
    g.emit(Insn::load(Size::B, Reg::R1, SCRATCH, MODE));
    g.jump(JmpOp::Jset, Reg::R1, imm(MODE_NONE), unmatched);
    g.jump(JmpOp::Jset, Reg::R1, imm(MODE_BLIND), prepare);
    g.header_at_off(Reg::R3);
    // UDP header (8) and DNS header (12).
    g.check_room(Reg::R2, Reg::R3, 20, unmatched);

    // --- The skips copied from their map (none skipped without the value), the keys
    // zeroed, the loop's state.
    g.e.bind(prepare);
    let no_skips = g.e.label();
    let skips_copied = g.e.label();
    g.emit(Insn::store_imm(Size::W, Reg::FP, MAP_KEY, 0));
    g.lookup_stack(MapRole::Lengths, MAP_KEY, no_skips);
    for off in (0..LENGTHS_SIZE as i16).step_by(8) {
        g.emit(Insn::load(Size::DW, Reg::R1, Reg::R0, off));
        g.emit(Insn::store(Size::DW, SCRATCH, SKIPS + off, Reg::R1));
    }
    g.goto(skips_copied);
    g.e.bind(no_skips);
    for off in (0..LENGTHS_SIZE as i16).step_by(8) {
        g.emit(Insn::store_imm(Size::DW, SCRATCH, SKIPS + off, 0));
    }
    g.e.bind(skips_copied);
    for off in (0..STATE).step_by(8) {
        g.emit(Insn::store_imm(Size::DW, SCRATCH, off, 0));
    }
    g.emit(Insn::store_imm(Size::H, SCRATCH, ZEROS, 0));
    g.emit(Insn::store_imm(Size::H, SCRATCH, ZEROS + 2, 0));
    // The loop's state starts from bytes read back from the map value (all zero): the
    // verifier then sees values it cannot tell apart on the paths that reach the loop (one
    // per header layout), and checks the loop once.
    for (slot, at) in [(REMAINING, 0), (SUFFIX_LEN, 1), (BEST, 2), (LABELS, 3)] {
        g.emit(Insn::load(Size::B, Reg::R1, SCRATCH, ZEROS + at));
        g.emit(Insn::store(Size::DW, Reg::FP, slot, Reg::R1));
    }
    // 0xff, which the verifier only knows as a byte: AND-ed into the label counters, it keeps
    // their ranges what they are at the start (0..=255), so that no later test of them looks
    // decided to the verifier, which would then tell apart (and check again) every value.
    g.emit(Insn::store_imm(Size::B, SCRATCH, BYTE_ONES, 0xff));
    g.emit(Insn::load(Size::B, Reg::R1, SCRATCH, BYTE_ONES));
    g.emit(Insn::store(Size::DW, Reg::FP, BYTE_MASK, Reg::R1));
    g.emit(Insn::store_imm(Size::W, SCRATCH, WORD_ONES, -1));
    g.emit(Insn::load(Size::W, Reg::R1, SCRATCH, WORD_ONES));
    g.emit(Insn::store(Size::DW, Reg::FP, WORD_MASK, Reg::R1));
    let first = g.e.label();
    g.emit(Insn::load(Size::B, Reg::R1, SCRATCH, MODE));
    g.jump(JmpOp::Jset, Reg::R1, imm(MODE_FIRST), first);
    // r7 = the name: the UDP header's offset (read back, as above) + 8 + 12.
    g.emit(Insn::load(Size::H, POS, SCRATCH, OFF));
    g.emit(Insn::alu64(AluOp::And, POS, imm(MAX_HEADER_OFFSET as i32)));
    g.emit(Insn::alu64(AluOp::Add, POS, imm(20)));
    g.emit(Insn::alu64(AluOp::Add, NAME, Operand::Reg(POS)));
    g.emit(Insn::mov32_imm(POS, 0));

    // --- The name, one byte per turn (r9 = its offset in the name).
    let top = g.e.label();
    let character = g.e.label();
    let store = g.e.label();
    let next = g.e.label();
    let whole = g.e.label();
    g.e.bind(top);
    g.jump(JmpOp::Jge, POS, imm(255), hook);
    g.emit(Insn::load(Size::DW, Reg::R1, Reg::FP, REMAINING));
    g.jump(JmpOp::Jne, Reg::R1, imm(0), character);
    // A label boundary: first the prefix up to here (unless no prefix key has this length:
    // bit r9 of the skips, r9 < 255 here), then the length byte.
    let length = g.e.label();
    g.emit(Insn::mov64_reg(Reg::R1, POS));
    g.emit(Insn::alu64(AluOp::Rsh, Reg::R1, imm(3)));
    g.emit(Insn::alu64(AluOp::Add, Reg::R1, Operand::Reg(SCRATCH)));
    g.emit(Insn::load(Size::B, Reg::R1, Reg::R1, SKIPS));
    g.emit(Insn::mov64_reg(Reg::R2, POS));
    g.emit(Insn::alu64(AluOp::And, Reg::R2, imm(7)));
    g.emit(Insn::alu64(AluOp::Rsh, Reg::R1, Operand::Reg(Reg::R2)));
    g.jump(JmpOp::Jset, Reg::R1, imm(1), length);
    g.emit(Insn::store_imm(
        Size::B,
        SCRATCH,
        NAME_KEY,
        KeyKind::Prefix as i32,
    ));
    g.emit(Insn::store(Size::B, SCRATCH, NAME_KEY + 1, POS));
    g.lookup(MapRole::Names, NAME_KEY, length);
    g.keep_best();
    g.e.bind(length);
    g.emit(Insn::mov64_reg(Reg::R1, NAME));
    g.emit(Insn::alu64(AluOp::Add, Reg::R1, Operand::Reg(POS)));
    g.check_room(Reg::R2, Reg::R1, 1, hook);
    g.emit(Insn::load(Size::B, Reg::R1, Reg::R1, 0));
    g.jump(JmpOp::Jeq, Reg::R1, imm(0), whole);
    // A compression pointer or a label too long: the name ends here for the rules.
    g.jump(JmpOp::Jgt, Reg::R1, imm(i32::from(MAX_LABEL)), hook);
    g.emit(Insn::load(Size::DW, Reg::R3, Reg::FP, BYTE_MASK));
    g.emit(Insn::mov64_reg(Reg::R2, Reg::R1));
    g.emit(Insn::alu64(AluOp::And, Reg::R2, Operand::Reg(Reg::R3)));
    g.emit(Insn::store(Size::DW, Reg::FP, REMAINING, Reg::R2));
    g.emit(Insn::load(Size::DW, Reg::R2, Reg::FP, LABELS));
    g.emit(Insn::alu64(AluOp::Add, Reg::R2, imm(1)));
    g.emit(Insn::alu64(AluOp::And, Reg::R2, Operand::Reg(Reg::R3)));
    g.emit(Insn::store(Size::DW, Reg::FP, LABELS, Reg::R2));
    g.goto(store);

    g.e.bind(character);
    g.emit(Insn::alu64(AluOp::Sub, Reg::R1, imm(1)));
    g.emit(Insn::store(Size::DW, Reg::FP, REMAINING, Reg::R1));
    g.emit(Insn::mov64_reg(Reg::R1, NAME));
    g.emit(Insn::alu64(AluOp::Add, Reg::R1, Operand::Reg(POS)));
    g.check_room(Reg::R2, Reg::R1, 1, hook);
    g.emit(Insn::load(Size::B, Reg::R1, Reg::R1, 0));
    if options.ignore_case {
        g.jump(JmpOp::Jlt, Reg::R1, imm(i32::from(b'A')), store);
        g.jump(JmpOp::Jgt, Reg::R1, imm(i32::from(b'Z')), store);
        g.emit(Insn::alu64(AluOp::Or, Reg::R1, imm(0x20)));
    }

    g.e.bind(store);
    g.emit(Insn::mov64_reg(Reg::R2, SCRATCH));
    g.emit(Insn::alu64(AluOp::Add, Reg::R2, Operand::Reg(POS)));
    g.emit(Insn::store(Size::B, Reg::R2, NAME_KEY + 2, Reg::R1));
    // From the second label's length byte on, the byte is also the suffix key's.
    g.emit(Insn::load(Size::DW, Reg::R2, Reg::FP, LABELS));
    g.jump(JmpOp::Jlt, Reg::R2, imm(2), next);
    g.emit(Insn::load(Size::DW, Reg::R2, Reg::FP, SUFFIX_LEN));
    g.emit(Insn::mov64_reg(Reg::R3, SCRATCH));
    g.emit(Insn::alu64(AluOp::Add, Reg::R3, Operand::Reg(Reg::R2)));
    g.emit(Insn::store(Size::B, Reg::R3, SUFFIX_KEY + 2, Reg::R1));
    // Kept within 0..=255 on every path, so that the verifier's views of it stay the same.
    g.emit(Insn::alu64(AluOp::Add, Reg::R2, imm(1)));
    g.emit(Insn::alu64(AluOp::And, Reg::R2, imm(0xff)));
    g.emit(Insn::store(Size::DW, Reg::FP, SUFFIX_LEN, Reg::R2));
    g.e.bind(next);
    g.emit(Insn::alu64(AluOp::Add, POS, imm(1)));
    g.goto(top);

    // --- A whole name of r9 bytes before its root: the exact and suffix lookups, each
    // unless its map has no key of its kind.
    g.e.bind(whole);
    let suffix = g.e.label();
    g.emit(Insn::load(
        Size::B,
        Reg::R1,
        SCRATCH,
        SKIPS + SKIP_FLAGS as i16,
    ));
    g.jump(JmpOp::Jset, Reg::R1, imm(i32::from(SKIP_EXACT)), suffix);
    g.emit(Insn::store_imm(
        Size::B,
        SCRATCH,
        NAME_KEY,
        KeyKind::Exact as i32,
    ));
    g.emit(Insn::store(Size::B, SCRATCH, NAME_KEY + 1, POS));
    g.lookup(MapRole::Names, NAME_KEY, suffix);
    g.keep_best();
    g.e.bind(suffix);
    g.emit(Insn::load(Size::DW, Reg::R1, Reg::FP, LABELS));
    g.jump(JmpOp::Jeq, Reg::R1, imm(0), hook);
    g.emit(Insn::load(
        Size::B,
        Reg::R1,
        SCRATCH,
        SKIPS + SKIP_FLAGS as i16,
    ));
    g.jump(JmpOp::Jset, Reg::R1, imm(i32::from(SKIP_SUFFIX)), hook);
    g.emit(Insn::store_imm(
        Size::B,
        SCRATCH,
        SUFFIX_KEY,
        KeyKind::Suffix as i32,
    ));
    g.emit(Insn::load(Size::DW, Reg::R1, Reg::FP, SUFFIX_LEN));
    g.emit(Insn::store(Size::B, SCRATCH, SUFFIX_KEY + 1, Reg::R1));
    g.lookup(MapRole::Suffixes, SUFFIX_KEY, hook);
    // The rank for the first label's length (the name's first byte).
    g.emit(Insn::load(Size::B, Reg::R1, SCRATCH, NAME_KEY + 2));
    g.emit(Insn::alu64(AluOp::And, Reg::R1, imm(i32::from(MAX_LABEL))));
    g.emit(Insn::alu64(AluOp::Lsh, Reg::R1, imm(2)));
    g.emit(Insn::alu64(AluOp::Add, Reg::R0, Operand::Reg(Reg::R1)));
    g.keep_best();
    g.goto(hook);

    // --- No name to read: the first rule's rank (the key of no name, zeroed above).
    g.e.bind(first);
    g.emit(Insn::store_imm(
        Size::B,
        SCRATCH,
        NAME_KEY,
        KeyKind::First as i32,
    ));
    g.lookup(MapRole::Names, NAME_KEY, hook);
    g.keep_best();
    g.goto(hook);

    g.e.bind(unmatched);
    g.emit(Insn::store_imm(Size::DW, Reg::FP, BEST, 0));

    // --- The hook: the best rank into the scratch, then the first classic rule for the
    // frame's tag count; an empty slot falls through to the decision. The socket filter has
    // no classic rules after it: it decides at once.
    g.e.bind(hook);
    if variant == Variant::SocketFilter {
        g.emit(Insn::load(Size::DW, Reg::R6, Reg::FP, BEST));
        g.emit(Insn::load(Size::DW, Reg::R7, Reg::FP, FRAME_LEN));
        g.decision(MAP_KEY, variant);
        g.e.bind(pass);
        g.emit(Insn::mov32_imm(Reg::R0, pass_value));
        g.emit(Insn::exit());
        return g.finish();
    }
    g.emit(Insn::load(Size::DW, Reg::R1, Reg::FP, BEST));
    g.emit(Insn::store(Size::W, SCRATCH, SCRATCH_BEST, Reg::R1));
    // program_slot(tags, 0), from a byte read back: the verifier takes any slot.
    g.emit(Insn::load(Size::B, Reg::R3, SCRATCH, TAGS));
    g.emit(Insn::alu64(
        AluOp::Mul,
        Reg::R3,
        imm(MAX_CLASSIC_RULES as i32),
    ));
    g.emit(Insn::load(Size::DW, Reg::R1, Reg::FP, CTX));
    g.load_map(Reg::R2, MapRole::Programs);
    g.emit(Insn::call(BPF_FUNC_TAIL_CALL));
    g.emit(Insn::load(Size::DW, Reg::R6, Reg::FP, BEST));
    g.emit(Insn::load(Size::DW, Reg::R7, Reg::FP, FRAME_LEN));
    g.decision(MAP_KEY, variant);

    g.e.bind(pass);
    g.emit(Insn::mov32_imm(Reg::R0, pass_value));
    g.emit(Insn::exit());
    g.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_loads_are_marked_and_take_their_descriptors() {
        let program = program(MatcherOptions { ignore_case: true });
        assert_eq!(program.insns.last(), Some(&Insn::exit()));
        let roles: Vec<MapRole> = program.map_slots.iter().map(|&(_, role)| role).collect();
        assert_eq!(
            roles,
            [
                MapRole::Scratch,
                MapRole::Addr4,
                MapRole::Addr6,
                MapRole::Lengths,
                MapRole::Names,
                MapRole::Names,
                MapRole::Suffixes,
                MapRole::Names,
                MapRole::Programs,
                MapRole::Counters,
            ]
        );
        let insns = program.with_map_fds(|role| 10 + role as i32);
        for &(slot, role) in &program.map_slots {
            assert!(insns[slot].is_lddw());
            assert_eq!(insns[slot].src, Reg(crate::ebpf::insn::BPF_PSEUDO_MAP_FD));
            assert_eq!(insns[slot].imm, 10 + role as i32);
        }
        // Folding letters costs three instructions.
        let plain = super::program(MatcherOptions::default());
        assert_eq!(plain.insns.len() + 3, program.insns.len());
    }

    #[test]
    fn the_socket_filter_copies_the_packet_and_has_no_hook() {
        let program = socket_program(MatcherOptions { ignore_case: true });
        let roles: Vec<MapRole> = program.map_slots.iter().map(|&(_, role)| role).collect();
        assert_eq!(
            roles,
            [
                MapRole::Scratch,
                MapRole::Packet,
                MapRole::Addr4,
                MapRole::Addr6,
                MapRole::Lengths,
                MapRole::Names,
                MapRole::Names,
                MapRole::Suffixes,
                MapRole::Names,
                MapRole::Counters,
            ]
        );
        assert!(roles
            .iter()
            .all(|role| MapRole::SOCKET_FILTER.contains(role)));
        let calls: Vec<i32> = program
            .insns
            .iter()
            .filter(|insn| insn.code == Insn::call(0).code)
            .map(|insn| insn.imm)
            .collect();
        assert!(!calls.contains(&BPF_FUNC_TAIL_CALL));
        assert_eq!(
            calls
                .iter()
                .filter(|&&c| c == BPF_FUNC_SKB_LOAD_BYTES)
                .count(),
            1
        );
        assert_eq!(program.insns.last(), Some(&Insn::exit()));
    }
}
