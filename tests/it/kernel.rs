//! The running Linux kernel as the oracle for the validator and the interpreter.
//!
//! - Accept/reject: 10,000 random programs (valid and invalid, biased to the rules' edges) are
//!   attached with `SO_ATTACH_FILTER` to a UDP socket (no privilege needed) and the kernel's
//!   answer is compared with `vm::validate`.
//! - Verdicts (root only: ignored unless asked for, and then failing without root): in a network namespace made for the test, an AF_PACKET `SOCK_DGRAM`
//!   socket on `lo` (programs see packets from the network header, as with xt_bpf) runs random
//!   valid programs on real UDP packets (IPv4 and IPv6, DNS queries and random payloads). An
//!   unfiltered AF_PACKET socket records the exact frames; the interpreter runs on those and
//!   must predict, for every frame and direction, whether it is delivered and how many bytes
//!   are kept (min(verdict, length)).

use std::fs::File;
use std::io;
use std::mem::size_of;
use std::net::UdpSocket;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::Command;
use std::time::{Duration, Instant};

use bpftools::asm::disassemble;
use bpftools::insn::{Ancillary, RawInsn};
use bpftools::vm::{validate, Context, Input, Profile, Program};

use crate::common::require_root;
use crate::randprog::{program, Mix};
use crate::rng::Rng;

/// Attaches `prog` to `fd`; Ok when the kernel accepts it.
fn attach(fd: RawFd, prog: &[RawInsn]) -> io::Result<()> {
    let mut filter: Vec<libc::sock_filter> = prog
        .iter()
        .map(|r| libc::sock_filter {
            code: r.code,
            jt: r.jt,
            jf: r.jf,
            k: r.k,
        })
        .collect();
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: if filter.is_empty() {
            std::ptr::NonNull::dangling().as_ptr()
        } else {
            filter.as_mut_ptr()
        },
    };
    // A length that does not fit in u16 cannot even be described to the kernel.
    if prog.len() > u16::MAX as usize {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: fprog is a live sock_fprog whose pointer and length describe `filter`, which
    // outlives the call (for an empty program the length is 0 and nothing is read); the kernel
    // copies the program before returning.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            &fprog as *const libc::sock_fprog as *const libc::c_void,
            size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[test]
fn validator_agrees_with_the_kernel_on_10000_random_programs() {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("udp socket");
    let mut rng = Rng::new(0x5eed_0001);
    let (mut accepted, mut rejected) = (0, 0);
    let mut disagreements = Vec::new();
    for case in 0..10_000 {
        let mix = Mix {
            invalid: case % 2 == 0,
            ancillary: true,
        };
        let prog = program(&mut rng, mix);
        let kernel = attach(socket.as_raw_fd(), &prog);
        let ours = validate(&prog, Profile::Socket);
        match (&kernel, &ours) {
            (Ok(()), Ok(())) => accepted += 1,
            (Err(_), Err(_)) => rejected += 1,
            _ => disagreements.push(format!(
                "case {case}: kernel {:?}, validator {:?}\n{}",
                kernel.as_ref().map_err(|e| e.to_string()),
                ours.as_ref().map_err(|e| e.to_string()),
                disassemble(&prog)
            )),
        }
    }
    eprintln!(
        "kernel oracle: {accepted} accepted and {rejected} rejected by both, {} disagreements",
        disagreements.len()
    );
    assert!(
        disagreements.is_empty(),
        "{}",
        disagreements[..disagreements.len().min(5)].join("\n")
    );
    assert!(
        accepted > 2000 && rejected > 2000,
        "too one-sided: {accepted} accepted, {rejected} rejected"
    );
}

/// A network namespace that is deleted when dropped, even when the test fails.
pub(crate) struct Netns(pub(crate) String);

impl Netns {
    pub(crate) fn new(name: &str) -> Netns {
        let _ = Command::new("ip").args(["netns", "del", name]).status();
        let ok = Command::new("ip")
            .args(["netns", "add", name])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "ip netns add {name} failed");
        let ns = Netns(name.to_string());
        let up = Command::new("ip")
            .args(["netns", "exec", name, "ip", "link", "set", "lo", "up"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(up, "cannot bring lo up in {name}");
        ns
    }

    /// Moves the calling thread into the namespace.
    fn enter(&self) {
        let file = File::open(format!("/var/run/netns/{}", self.0)).expect("netns file");
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// An AF_PACKET socket on `lo` (ifindex 1 in a new namespace).
fn packet_socket(kind: libc::c_int) -> OwnedFd {
    let protocol = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: socket(2) takes no pointers; the result is checked below.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            kind | libc::SOCK_NONBLOCK,
            i32::from(protocol),
        )
    };
    assert!(fd >= 0, "AF_PACKET socket: {}", io::Error::last_os_error());
    // SAFETY: fd was just returned by socket(2), is valid and owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_ll is plain old data; all zeroes is a valid value.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = protocol;
    addr.sll_ifindex = 1;
    // SAFETY: addr is a live sockaddr_ll and the length passed is its size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &addr as *const libc::sockaddr_ll as *const libc::sockaddr,
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "bind AF_PACKET: {}", io::Error::last_os_error());
    fd
}

/// Receives every queued packet: (length before any truncation by the reader, packet type, bytes).
fn drain(fd: RawFd, wait: Duration) -> Vec<(usize, u8, Vec<u8>)> {
    drain_until(fd, usize::MAX, wait)
}

/// Like [`drain`], but returns as soon as `want` packets have arrived.
fn drain_until(fd: RawFd, want: usize, wait: Duration) -> Vec<(usize, u8, Vec<u8>)> {
    let mut out = Vec::new();
    let deadline = Instant::now() + wait;
    let mut buf = vec![0u8; 70000];
    loop {
        // SAFETY: sockaddr_ll is plain old data; all zeroes is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut addr_len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: buf is a live buffer of buf.len() bytes; addr and addr_len are live and
        // addr_len holds addr's size, as recvfrom(2) requires.
        let n = unsafe {
            libc::recvfrom(
                fd,
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                libc::MSG_TRUNC,
                &mut addr as *mut libc::sockaddr_ll as *mut libc::sockaddr,
                &mut addr_len,
            )
        };
        if n >= 0 {
            let n = n as usize;
            out.push((n, addr.sll_pkttype, buf[..n.min(buf.len())].to_vec()));
            if out.len() >= want {
                return out;
            }
            continue;
        }
        if Instant::now() >= deadline {
            return out;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Test payloads: real DNS queries from the captures' flood and random bytes of many lengths.
fn payloads(rng: &mut Rng) -> Vec<Vec<u8>> {
    let mut out = vec![Vec::new(), vec![0u8; 1]];
    let query = simple_dns_query("abcdefgh.www.example.net");
    out.push(query);
    out.push(simple_dns_query("WWW.EXAMPLE.NET"));
    for _ in 0..6 {
        let len = rng.below(300) as usize;
        out.push((0..len).map(|_| rng.next() as u8).collect());
    }
    out
}

fn simple_dns_query(name: &str) -> Vec<u8> {
    let mut packet = simple_dns::Packet::new_query(0x1234);
    packet.questions.push(simple_dns::Question::new(
        simple_dns::Name::new_unchecked(name),
        simple_dns::TYPE::A.into(),
        simple_dns::CLASS::IN.into(),
        false,
    ));
    packet.build_bytes_vec().expect("query")
}

/// The ancillary fields whose kernel values on `lo` are known and fixed.
const PREDICTABLE: [Ancillary; 9] = [
    Ancillary::Protocol,
    Ancillary::PktType,
    Ancillary::IfIndex,
    Ancillary::HaType,
    Ancillary::Mark,
    Ancillary::NlAttr,
    Ancillary::NlAttrNest,
    Ancillary::AluXorX,
    Ancillary::VlanTagPresent,
];

fn uses_unpredictable_ancillary(prog: &[RawInsn]) -> bool {
    prog.iter().any(|r| {
        matches!(r.code, 0x20 | 0x28 | 0x30)
            && Ancillary::from_offset(r.k).is_some_and(|a| !PREDICTABLE.contains(&a))
    })
}

#[test]
#[ignore = "needs root (network namespace, AF_PACKET)"]
fn interpreter_verdicts_agree_with_the_kernel_on_real_packets() {
    require_root("network namespace, AF_PACKET");
    let ns = Netns::new(&format!("bpftools-vm-{}", std::process::id()));
    let name = ns.0.clone();
    let handle = std::thread::spawn(move || {
        let ns = Netns(name);
        ns.enter();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(verdicts_in_namespace));
        // The namespace is deleted by the outer guard; do not delete it twice.
        std::mem::forget(ns);
        result
    });
    let result = handle.join().expect("thread");
    drop(ns);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

fn verdicts_in_namespace() {
    let receiver4 = UdpSocket::bind("127.0.0.1:5353").expect("udp receiver");
    let receiver6 = UdpSocket::bind("[::1]:5353").ok();
    let sender4 = UdpSocket::bind("127.0.0.1:0").expect("udp sender");
    let sender6 = UdpSocket::bind("[::1]:0").ok();
    let raw = packet_socket(libc::SOCK_RAW);
    let filtered = packet_socket(libc::SOCK_DGRAM);
    let mut rng = Rng::new(0x5eed_0002);
    let (mut programs, mut frames, mut delivered) = (0, 0, 0);
    let mut disagreements = Vec::new();
    while programs < 300 {
        let prog = program(
            &mut rng,
            Mix {
                invalid: false,
                ancillary: true,
            },
        );
        if validate(&prog, Profile::Socket).is_err() || uses_unpredictable_ancillary(&prog) {
            continue;
        }
        let vm = Program::new(&prog, Profile::Socket).expect("valid");
        attach(filtered.as_raw_fd(), &prog)
            .expect("kernel accepts a program the validator accepts");
        drain(filtered.as_raw_fd(), Duration::ZERO);
        drain(raw.as_raw_fd(), Duration::ZERO);
        programs += 1;
        for payload in payloads(&mut rng) {
            let v6 = rng.chance(30) && sender6.is_some() && receiver6.is_some();
            if v6 {
                sender6
                    .as_ref()
                    .unwrap()
                    .send_to(&payload, "[::1]:5353")
                    .expect("send6");
            } else {
                sender4.send_to(&payload, "127.0.0.1:5353").expect("send4");
            }
            // On lo every datagram is seen twice (outgoing, then received); wait for both even on
            // a loaded machine, then collect what the filtered socket was given meanwhile.
            let seen = drain_until(raw.as_raw_fd(), 2, Duration::from_millis(500));
            let got = drain(filtered.as_raw_fd(), Duration::from_millis(2));
            let mut want = Vec::new();
            for (_, pkttype, frame) in &seen {
                if frame.len() < 14 {
                    continue;
                }
                frames += 1;
                let ctx = Context {
                    protocol: u16::from_be_bytes([frame[12], frame[13]]),
                    pkt_type: u32::from(*pkttype),
                    ifindex: 1,
                    hatype: 772,
                    ..Context::default()
                };
                let input = Input {
                    frame,
                    start: 14,
                    net: Some(14),
                    link: Some(0),
                    wire_len: (frame.len() - 14) as u32,
                    ctx,
                };
                let verdict = vm.run_with(&input);
                if verdict != 0 {
                    want.push((*pkttype, (verdict as usize).min(frame.len() - 14)));
                }
            }
            let mut have: Vec<(u8, usize)> = got
                .iter()
                .map(|(len, pkttype, _)| (*pkttype, *len))
                .collect();
            want.sort();
            have.sort();
            delivered += have.len();
            if want != have {
                disagreements.push(format!(
                    "payload of {} bytes over IPv{}: interpreter {want:?}, kernel {have:?}\n{}",
                    payload.len(),
                    if v6 { 6 } else { 4 },
                    disassemble(&prog)
                ));
            }
        }
    }
    drop(receiver4);
    eprintln!(
        "kernel verdicts: {programs} programs, {frames} frames, {delivered} delivered, {} disagreements",
        disagreements.len()
    );
    assert!(
        disagreements.is_empty(),
        "{}",
        disagreements[..disagreements.len().min(3)].join("\n")
    );
    assert!(
        delivered > 100,
        "too few deliveries ({delivered}) to say anything"
    );
}

// The kernel's classic BPF on frames of choice, the oracle of tests/it/ebpf.rs.

/// The end of the veth pair of [`in_veth_namespace`] that frames are sent out of.
pub(crate) const VETH_TAP: &str = "bpftap";
/// Its peer, which takes the frames in and drops them (it has no address, IPv6 is off).
const VETH_PEER: &str = "bpfpeer";

/// Runs `body` on a thread inside a network namespace made for it, which holds an up veth
/// pair ([`VETH_TAP`] and its peer, MTU 9000) and nothing that sends packets of its own (no
/// address, IPv6 off); the namespace is deleted afterwards, also when `body` panics (the
/// panic is then the caller's).
pub(crate) fn in_veth_namespace<T: Send>(tag: &str, body: impl FnOnce() -> T + Send) -> T {
    let ns = Netns::new(&format!("bpftools-{tag}-{}", std::process::id()));
    let run = |args: &[&str]| {
        let ok = Command::new("ip")
            .args(["netns", "exec", &ns.0])
            .args(args)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "in {}: `{}` failed", ns.0, args.join(" "));
    };
    // Off before the links exist: neither end ever sends a solicitation or a report.
    if std::path::Path::new("/proc/sys/net/ipv6").exists() {
        run(&[
            "sysctl",
            "-q",
            "-w",
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ]);
    }
    run(&[
        "ip", "link", "add", VETH_TAP, "mtu", "9000", "type", "veth", "peer", "name", VETH_PEER,
        "mtu", "9000",
    ]);
    run(&["ip", "link", "set", VETH_PEER, "up"]);
    run(&["ip", "link", "set", VETH_TAP, "up"]);
    let result = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                ns.enter();
                body()
            })
            .join()
    });
    drop(ns);
    result.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Where the kernel is told a sent frame's network header starts, through the protocol
/// given with it (`sockaddr_ll.sll_protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Header {
    /// Protocol 0: the kernel reads the Ethernet type itself and, on an Ethernet device,
    /// puts the network header after the VLAN tags (802.1Q, 802.1ad) it can read whole.
    Parsed,
    /// The protocol given (not a VLAN type): the network header is right after the 14-byte
    /// Ethernet header, tags or not.
    AfterEthernet(u16),
}

/// What the kernel's classic program did with one frame, in the two views of the tap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClassicRun {
    /// Where the kernel put the network header (offset 0 of the `SOCK_DGRAM` view), as the
    /// socket keeping everything saw it.
    pub(crate) network: usize,
    /// The bytes kept by the program run from the network header (`SOCK_DGRAM`): `None`
    /// when it dropped the frame (verdict 0), else min(verdict, length from the network
    /// header).
    pub(crate) network_view: Option<usize>,
    /// The same from the link-layer header (`SOCK_RAW`): min(verdict, frame length).
    pub(crate) link_view: Option<usize>,
}

/// The kernel's classic BPF on frames of choice: the program attached with
/// `SO_ATTACH_FILTER` to two AF_PACKET sockets bound to [`VETH_TAP`] (`SOCK_DGRAM`: the
/// program sees the frame from its network header, as xt_bpf does; `SOCK_RAW`: from its
/// link-layer header), frames sent out of the interface by a third socket. A veth has no
/// queue, so the taps see an outgoing frame within the `sendto` call: when it returns, a
/// frame the program kept is in the sockets' queues, truncated to min(verdict, length), and
/// a frame it dropped is nowhere. A fourth socket, `SOCK_DGRAM` keeping everything, must
/// have the frame every time (else the run is an error, not a drop) and says where the
/// kernel put the network header.
///
/// A packet socket runs the program on the frame from offset 0 to the end (`skb->len` is the
/// length from offset 0) and keeps min(verdict, length) bytes when the verdict is not 0: a
/// frame with nothing after offset 0 is delivered empty when the verdict is not 0.
pub(crate) struct ClassicTap {
    ifindex: i32,
    sender: OwnedFd,
    witness: OwnedFd,
    network_view: OwnedFd,
    link_view: OwnedFd,
    buf: Vec<u8>,
}

impl ClassicTap {
    /// The sockets on [`VETH_TAP`] of the calling thread's namespace.
    pub(crate) fn new() -> io::Result<ClassicTap> {
        let ifindex = bpftools::ebpf::sys::ifindex(VETH_TAP).map_err(io::Error::other)? as i32;
        let witness = tap_socket(libc::SOCK_DGRAM, Some(ifindex))?;
        // Without a program a packet socket's verdict is the length itself: 0, a drop, for a
        // frame with nothing after its network header. `ret #-1` keeps every frame.
        attach(witness.as_raw_fd(), &[RawInsn::new(0x06, 0, 0, u32::MAX)])?;
        Ok(ClassicTap {
            ifindex,
            sender: tap_socket(libc::SOCK_RAW, None)?,
            witness,
            network_view: tap_socket(libc::SOCK_DGRAM, Some(ifindex))?,
            link_view: tap_socket(libc::SOCK_RAW, Some(ifindex))?,
            buf: vec![0u8; 70000],
        })
    }

    /// Attaches `prog` to both filtered sockets (replacing the program before it).
    pub(crate) fn attach(&self, prog: &[RawInsn]) -> io::Result<()> {
        attach(self.network_view.as_raw_fd(), prog)?;
        attach(self.link_view.as_raw_fd(), prog)
    }

    /// Sends `frame` (from its Ethernet header) out of the tap and reads what each socket
    /// got. Anything but the frame itself in a queue is an error.
    pub(crate) fn run(&mut self, frame: &[u8], header: Header) -> io::Result<ClassicRun> {
        // SAFETY: sockaddr_ll is plain old data; all zeroes is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_ifindex = self.ifindex;
        addr.sll_protocol = match header {
            Header::Parsed => 0,
            Header::AfterEthernet(ethertype) => ethertype.to_be(),
        };
        // SAFETY: `frame` is live for frame.len() bytes and `addr` is a live sockaddr_ll of
        // the size passed; sendto(2) only reads them.
        let sent = unsafe {
            libc::sendto(
                self.sender.as_raw_fd(),
                frame.as_ptr() as *const libc::c_void,
                frame.len(),
                0,
                &addr as *const libc::sockaddr_ll as *const libc::sockaddr,
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        if sent as usize != frame.len() {
            return Err(io::Error::other(format!(
                "sent {sent} of {} bytes",
                frame.len()
            )));
        }
        let Some(whole) = self.take(self.witness.as_raw_fd(), frame, |len| frame.len() - len)?
        else {
            return Err(io::Error::other(
                "the socket keeping every frame did not get it within the send",
            ));
        };
        let network = frame.len() - whole;
        let network_view = self.take(self.network_view.as_raw_fd(), frame, |_| network)?;
        let link_view = self.take(self.link_view.as_raw_fd(), frame, |_| 0)?;
        Ok(ClassicRun {
            network,
            network_view,
            link_view,
        })
    }

    /// Empties the queue of `fd`: the length of the one outgoing packet found there, which
    /// must be `frame`'s bytes from `start(length)` on (truncated), if any.
    fn take(
        &mut self,
        fd: RawFd,
        frame: &[u8],
        start: impl Fn(usize) -> usize,
    ) -> io::Result<Option<usize>> {
        let mut found = None;
        while let Some((len, pkttype)) = receive(fd, &mut self.buf)? {
            let at = start(len.min(frame.len()));
            let expected = frame.get(at..).and_then(|rest| rest.get(..len));
            if found.is_some()
                || pkttype != libc::PACKET_OUTGOING
                || expected != Some(&self.buf[..len])
            {
                return Err(io::Error::other(format!(
                    "an unexpected packet of {len} bytes (type {pkttype}) on the tap"
                )));
            }
            found = Some(len);
        }
        Ok(found)
    }
}

/// A non-blocking AF_PACKET socket of `kind` for every protocol, bound to `ifindex`; with
/// none, a socket that only sends (protocol 0 receives nothing).
fn tap_socket(kind: libc::c_int, ifindex: Option<i32>) -> io::Result<OwnedFd> {
    // Protocol 0 first: a socket of protocol ETH_P_ALL would see every interface's packets
    // until it is bound to one.
    // SAFETY: socket(2) takes no pointers; the result is checked below.
    let fd = unsafe { libc::socket(libc::AF_PACKET, kind | libc::SOCK_NONBLOCK, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by socket(2), is valid and owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    if let Some(ifindex) = ifindex {
        // SAFETY: sockaddr_ll is plain old data; all zeroes is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        addr.sll_ifindex = ifindex;
        // SAFETY: addr is a live sockaddr_ll and the length passed is its size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &addr as *const libc::sockaddr_ll as *const libc::sockaddr,
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(fd)
}

/// One packet from a non-blocking packet socket: (its length, kept bytes in `buf`; its
/// packet type), or `None` when the queue is empty.
fn receive(fd: RawFd, buf: &mut [u8]) -> io::Result<Option<(usize, u8)>> {
    // SAFETY: sockaddr_ll is plain old data; all zeroes is a valid value.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    let mut addr_len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: buf is a live buffer of buf.len() bytes; addr and addr_len are live and
    // addr_len holds addr's size, as recvfrom(2) requires.
    let n = unsafe {
        libc::recvfrom(
            fd,
            buf.as_mut_ptr() as *mut libc::c_void,
            buf.len(),
            libc::MSG_TRUNC,
            &mut addr as *mut libc::sockaddr_ll as *mut libc::sockaddr,
            &mut addr_len,
        )
    };
    if n >= 0 {
        return Ok(Some(((n as usize).min(buf.len()), addr.sll_pkttype)));
    }
    let error = io::Error::last_os_error();
    if error.kind() == io::ErrorKind::WouldBlock {
        Ok(None)
    } else {
        Err(error)
    }
}
