//! XDP on an interface through rtnetlink: attach, replace, detach, query.
//!
//! Requests are `RTM_SETLINK` with a nested `IFLA_XDP` (`IFLA_XDP_FD`, `IFLA_XDP_FLAGS`,
//! `IFLA_XDP_EXPECTED_FD`) and `RTM_GETLINK`, whose answer's `IFLA_XDP` says what is attached
//! (`IFLA_XDP_ATTACHED`, `IFLA_XDP_PROG_ID` and the per-mode ids). Messages are written and
//! read here, in the layouts of `include/uapi/linux/netlink.h`, `rtnetlink.h` and
//! `if_link.h`, on a `NETLINK_ROUTE` socket of the calling thread's network namespace, with
//! extended acknowledgements on so that a refusal carries the kernel's reason.
//!
//! What is checked: every answer's lengths before a field is read (a malformed answer is
//! [`SysError::NetlinkAnswer`], never a panic), that an answer is to the request sent
//! (sequence number).

use std::ffi::CString;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use super::bpf::Program;
use super::SysError;

const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_SETLINK: u16 = 19;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_CAPPED: u16 = 0x100;
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;
const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;
const SOL_NETLINK: libc::c_int = 270;
const NETLINK_CAP_ACK: libc::c_int = 10;
const NETLINK_EXT_ACK: libc::c_int = 11;

const IFLA_EXT_MASK: u16 = 29;
const RTEXT_FILTER_SKIP_STATS: u32 = 1 << 3;
const IFLA_XDP: u16 = 43;
const IFLA_XDP_FD: u16 = 1;
const IFLA_XDP_ATTACHED: u16 = 2;
const IFLA_XDP_FLAGS: u16 = 3;
const IFLA_XDP_PROG_ID: u16 = 4;
const IFLA_XDP_DRV_PROG_ID: u16 = 5;
const IFLA_XDP_SKB_PROG_ID: u16 = 6;
const IFLA_XDP_HW_PROG_ID: u16 = 7;
const IFLA_XDP_EXPECTED_FD: u16 = 8;

const XDP_FLAGS_UPDATE_IF_NOEXIST: u32 = 1;
const XDP_FLAGS_SKB_MODE: u32 = 2;
const XDP_FLAGS_DRV_MODE: u32 = 4;
const XDP_FLAGS_HW_MODE: u32 = 8;
const XDP_FLAGS_REPLACE: u32 = 16;

const NLMSG_HDRLEN: usize = 16;
const IFINFOMSG_LEN: usize = 16;

/// Where an XDP program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpMode {
    /// In the driver, before an skb exists (`XDP_FLAGS_DRV_MODE`).
    Native,
    /// In the stack, after the skb is built (`XDP_FLAGS_SKB_MODE`): any interface, slower.
    Generic,
    /// On the NIC (`XDP_FLAGS_HW_MODE`).
    Offload,
}

impl XdpMode {
    fn flag(self) -> u32 {
        match self {
            XdpMode::Native => XDP_FLAGS_DRV_MODE,
            XdpMode::Generic => XDP_FLAGS_SKB_MODE,
            XdpMode::Offload => XDP_FLAGS_HW_MODE,
        }
    }

    fn word(self) -> &'static str {
        match self {
            XdpMode::Native => "native",
            XdpMode::Generic => "generic",
            XdpMode::Offload => "offload",
        }
    }
}

/// What [`attach_xdp`] did.
#[derive(Debug)]
pub struct XdpAttachment {
    /// The mode the program runs in.
    pub mode: XdpMode,
    /// When native mode was tried and refused (so the program runs generic): the refusal, for
    /// the caller to report.
    pub native_refused: Option<SysError>,
}

/// What is attached to an interface at XDP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XdpAttached {
    /// Nothing.
    None,
    /// One program, in one mode.
    One {
        /// The mode.
        mode: XdpMode,
        /// The program's id.
        prog_id: u32,
    },
    /// Programs in more than one mode (`XDP_ATTACHED_MULTI`), by mode.
    Multi {
        /// The native program's id.
        native: Option<u32>,
        /// The generic program's id.
        generic: Option<u32>,
        /// The offloaded program's id.
        offload: Option<u32>,
    },
}

impl XdpAttached {
    /// The id of the program attached in `mode`.
    pub fn prog_id(&self, mode: XdpMode) -> Option<u32> {
        match *self {
            XdpAttached::None => None,
            XdpAttached::One { mode: m, prog_id } => (m == mode).then_some(prog_id),
            XdpAttached::Multi {
                native,
                generic,
                offload,
            } => match mode {
                XdpMode::Native => native,
                XdpMode::Generic => generic,
                XdpMode::Offload => offload,
            },
        }
    }
}

/// The index of the interface named `name` (if_nametoindex(3)).
pub fn ifindex(name: &str) -> Result<u32, SysError> {
    let c_name = CString::new(name).map_err(|_| SysError::Name {
        what: "interface name",
        name: name.to_string(),
        why: "it contains a NUL byte",
    })?;
    // SAFETY: `c_name` is a NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
    if index == 0 {
        return Err(SysError::NoInterface {
            name: name.to_string(),
            source: io::Error::last_os_error(),
        });
    }
    Ok(index)
}

/// Attaches `program` at XDP on interface `ifindex` when no program is attached there
/// (`XDP_FLAGS_UPDATE_IF_NOEXIST`: EBUSY otherwise; see [`replace_xdp`]).
///
/// With `mode` `None`, native mode is tried first and, when the driver refuses it (EOPNOTSUPP
/// and the like; not when a program is already attached or permission is missing), generic
/// mode: the result says which, and why native was refused.
pub fn attach_xdp(
    ifindex: u32,
    program: &Program,
    mode: Option<XdpMode>,
) -> Result<XdpAttachment, SysError> {
    let fd = program.as_fd().as_raw_fd();
    let set = |mode: XdpMode| {
        set_xdp(
            ifindex,
            &format!("RTM_SETLINK IFLA_XDP {}", mode.word()),
            fd,
            XDP_FLAGS_UPDATE_IF_NOEXIST | mode.flag(),
            None,
        )
    };
    if let Some(mode) = mode {
        set(mode)?;
        return Ok(XdpAttachment {
            mode,
            native_refused: None,
        });
    }
    match set(XdpMode::Native) {
        Ok(()) => Ok(XdpAttachment {
            mode: XdpMode::Native,
            native_refused: None,
        }),
        Err(refusal) if native_unsupported(&refusal) => {
            set(XdpMode::Generic)?;
            Ok(XdpAttachment {
                mode: XdpMode::Generic,
                native_refused: Some(refusal),
            })
        }
        Err(other) => Err(other),
    }
}

/// Whether a refused native attach means the driver cannot run the program natively (the
/// errnos drivers and the core return for that: no `ndo_bpf`, an MTU or a feature native XDP
/// cannot take).
fn native_unsupported(error: &SysError) -> bool {
    matches!(
        error.errno(),
        Some(libc::EOPNOTSUPP | libc::EINVAL | libc::ERANGE | 524)
    )
}

/// Replaces `old` by `new` at XDP on `ifindex` in `mode`, in one step: the interface runs one
/// or the other for every packet.
///
/// Where the kernel knows `XDP_FLAGS_REPLACE` (5.7 and later) it also checks that `old` is
/// the program attached (EEXIST otherwise) and the result is `true`. An older kernel refuses
/// the flag with EINVAL; then the attached program's id is compared with `old`'s here and the
/// swap made without the kernel's check (still one step for packets), and the result is
/// `false`.
pub fn replace_xdp(
    ifindex: u32,
    new: &Program,
    old: &Program,
    mode: XdpMode,
) -> Result<bool, SysError> {
    let request = format!("RTM_SETLINK IFLA_XDP {} replace", mode.word());
    let new_fd = new.as_fd().as_raw_fd();
    let checked = set_xdp(
        ifindex,
        &request,
        new_fd,
        XDP_FLAGS_REPLACE | mode.flag(),
        Some(old.as_fd().as_raw_fd()),
    );
    match checked {
        Ok(()) => Ok(true),
        Err(error) if error.errno() == Some(libc::EINVAL) => {
            if query_xdp(ifindex)?.prog_id(mode) != Some(old.id()?) {
                return Err(SysError::Netlink {
                    request,
                    ifindex,
                    source: io::Error::from_raw_os_error(libc::EEXIST),
                    message: Some("the program attached is not the one to replace".into()),
                });
            }
            set_xdp(ifindex, &request, new_fd, mode.flag(), None)?;
            Ok(false)
        }
        Err(other) => Err(other),
    }
}

/// Detaches the program attached at XDP on `ifindex` in `mode`; with `expected`, only if it is
/// that program (EEXIST otherwise, on kernels with `XDP_FLAGS_REPLACE`). Detaching where
/// nothing is attached succeeds.
pub fn detach_xdp(ifindex: u32, mode: XdpMode, expected: Option<&Program>) -> Result<(), SysError> {
    let expected_fd = expected.map(|p| p.as_fd().as_raw_fd());
    let flags = mode.flag() | expected_fd.map_or(0, |_| XDP_FLAGS_REPLACE);
    set_xdp(
        ifindex,
        &format!("RTM_SETLINK IFLA_XDP {} detach", mode.word()),
        -1,
        flags,
        expected_fd,
    )
}

/// What is attached at XDP on `ifindex` (`RTM_GETLINK`).
pub fn query_xdp(ifindex: u32) -> Result<XdpAttached, SysError> {
    let request = "RTM_GETLINK";
    let mut message = Message::new(RTM_GETLINK, NLM_F_REQUEST, ifindex);
    message.attr(IFLA_EXT_MASK, &RTEXT_FILTER_SKIP_STATS.to_ne_bytes());
    let socket = Socket::open(request, ifindex)?;
    let answer = socket.exchange(request, ifindex, message)?;
    let malformed = |why: &str| SysError::NetlinkAnswer {
        request: request.to_string(),
        why: why.to_string(),
    };
    if answer.kind != RTM_NEWLINK {
        return Err(malformed(&format!("message type {}", answer.kind)));
    }
    let attrs = answer
        .payload
        .get(IFINFOMSG_LEN..)
        .ok_or_else(|| malformed("shorter than struct ifinfomsg"))?;
    let Some(xdp) = attributes(attrs)
        .map_err(|why| malformed(&why.to_string()))?
        .into_iter()
        .find(|(kind, _)| *kind == IFLA_XDP)
        .map(|(_, value)| value)
    else {
        return Ok(XdpAttached::None);
    };
    let (mut attached, mut prog_id) = (0u8, None);
    let (mut native, mut generic, mut offload) = (None, None, None);
    for (kind, value) in attributes(xdp).map_err(|why| malformed(&why.to_string()))? {
        let word = || {
            value
                .get(..4)
                .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or_else(|| malformed(&format!("IFLA_XDP attribute {kind} too short")))
        };
        match kind {
            IFLA_XDP_ATTACHED => {
                attached = *value
                    .first()
                    .ok_or_else(|| malformed("empty IFLA_XDP_ATTACHED"))?
            }
            IFLA_XDP_PROG_ID => prog_id = Some(word()?),
            IFLA_XDP_DRV_PROG_ID => native = Some(word()?),
            IFLA_XDP_SKB_PROG_ID => generic = Some(word()?),
            IFLA_XDP_HW_PROG_ID => offload = Some(word()?),
            _ => {}
        }
    }
    let one = |mode| match prog_id {
        Some(prog_id) => Ok(XdpAttached::One { mode, prog_id }),
        None => Err(malformed("IFLA_XDP_ATTACHED without IFLA_XDP_PROG_ID")),
    };
    match attached {
        0 => Ok(XdpAttached::None),
        1 => one(XdpMode::Native),
        2 => one(XdpMode::Generic),
        3 => one(XdpMode::Offload),
        4 => Ok(XdpAttached::Multi {
            native,
            generic,
            offload,
        }),
        other => Err(malformed(&format!("IFLA_XDP_ATTACHED {other}"))),
    }
}

/// One `RTM_SETLINK` with a nested `IFLA_XDP`, acknowledged.
fn set_xdp(
    ifindex: u32,
    request: &str,
    fd: i32,
    flags: u32,
    expected_fd: Option<i32>,
) -> Result<(), SysError> {
    let mut message = Message::new(RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK, ifindex);
    let nest = message.begin_nest(IFLA_XDP);
    message.attr(IFLA_XDP_FD, &fd.to_ne_bytes());
    if flags != 0 {
        message.attr(IFLA_XDP_FLAGS, &flags.to_ne_bytes());
    }
    if let Some(expected) = expected_fd {
        message.attr(IFLA_XDP_EXPECTED_FD, &expected.to_ne_bytes());
    }
    message.end_nest(nest);
    let socket = Socket::open(request, ifindex)?;
    let answer = socket.exchange(request, ifindex, message)?;
    if answer.kind == NLMSG_ERROR {
        // exchange() turns a non-zero error into Err: this is the acknowledgement.
        Ok(())
    } else {
        Err(SysError::NetlinkAnswer {
            request: request.to_string(),
            why: format!("message type {} instead of an acknowledgement", answer.kind),
        })
    }
}

/// A request being written: `struct nlmsghdr`, `struct ifinfomsg`, attributes.
struct Message {
    bytes: Vec<u8>,
}

fn align4(len: usize) -> usize {
    len.next_multiple_of(4)
}

impl Message {
    fn new(kind: u16, flags: u16, ifindex: u32) -> Message {
        let mut bytes = Vec::with_capacity(64);
        bytes.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_len, set by finish()
        bytes.extend_from_slice(&kind.to_ne_bytes());
        bytes.extend_from_slice(&flags.to_ne_bytes());
        bytes.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_seq, set by the socket
        bytes.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid: the kernel fills it
        bytes.push(libc::AF_UNSPEC as u8); // ifi_family
        bytes.push(0);
        bytes.extend_from_slice(&0u16.to_ne_bytes()); // ifi_type
        bytes.extend_from_slice(&(ifindex as i32).to_ne_bytes());
        bytes.extend_from_slice(&0u32.to_ne_bytes()); // ifi_flags
        bytes.extend_from_slice(&0u32.to_ne_bytes()); // ifi_change
        Message { bytes }
    }

    fn attr(&mut self, kind: u16, value: &[u8]) {
        self.bytes
            .extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
        self.bytes.extend_from_slice(&kind.to_ne_bytes());
        self.bytes.extend_from_slice(value);
        self.bytes.resize(align4(self.bytes.len()), 0);
    }

    /// Starts a nested attribute: where its header is, for [`end_nest`](Message::end_nest).
    fn begin_nest(&mut self, kind: u16) -> usize {
        let start = self.bytes.len();
        self.attr(kind | NLA_F_NESTED, &[]);
        start
    }

    fn end_nest(&mut self, start: usize) {
        let len = (self.bytes.len() - start) as u16;
        self.bytes[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }

    fn finish(mut self, seq: u32) -> Vec<u8> {
        let len = self.bytes.len() as u32;
        self.bytes[0..4].copy_from_slice(&len.to_ne_bytes());
        self.bytes[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.bytes
    }
}

/// An attribute whose length does not fit what is left of its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("attribute {kind} of length {len} in {left} bytes")]
struct BadAttribute {
    kind: u16,
    len: usize,
    left: usize,
}

/// Attributes `(type without flags, value)` of `bytes`.
fn attributes(mut bytes: &[u8]) -> Result<Vec<(u16, &[u8])>, BadAttribute> {
    let mut out = Vec::new();
    while bytes.len() >= 4 {
        let len = u16::from_ne_bytes([bytes[0], bytes[1]]) as usize;
        let kind = u16::from_ne_bytes([bytes[2], bytes[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > bytes.len() {
            return Err(BadAttribute {
                kind,
                len,
                left: bytes.len(),
            });
        }
        out.push((kind, &bytes[4..len]));
        bytes = &bytes[align4(len).min(bytes.len())..];
    }
    Ok(out)
}

/// One answer: its type and what follows its header.
struct Answer {
    kind: u16,
    payload: Vec<u8>,
}

/// A `NETLINK_ROUTE` socket.
struct Socket {
    fd: OwnedFd,
}

fn socket_error(request: &str, ifindex: u32) -> impl Fn(io::Error) -> SysError + '_ {
    move |source| SysError::Netlink {
        request: request.to_string(),
        ifindex,
        source,
        message: None,
    }
}

impl Socket {
    fn open(request: &str, ifindex: u32) -> Result<Socket, SysError> {
        // SAFETY: socket(2) takes no pointers; the result is checked before use.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(socket_error(request, ifindex)(io::Error::last_os_error()));
        }
        // SAFETY: `fd` was just returned by socket(2); nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        for option in [NETLINK_EXT_ACK, NETLINK_CAP_ACK] {
            let on: libc::c_int = 1;
            // SAFETY: `on` is a live c_int and its size is passed. A kernel without the option
            // refuses it, and the answers are read the same way without it: the result is
            // ignored on purpose.
            unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    SOL_NETLINK,
                    option,
                    &on as *const libc::c_int as *const libc::c_void,
                    size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
        }
        Ok(Socket { fd })
    }

    /// Sends `message` to the kernel and reads until the answer to it: a non-zero error is
    /// `Err` with the kernel's extended message.
    fn exchange(&self, request: &str, ifindex: u32, message: Message) -> Result<Answer, SysError> {
        let error = socket_error(request, ifindex);
        let seq = 1;
        let bytes = message.finish(seq);
        // SAFETY: `bytes` is a live buffer of the length passed; send(2) only reads it. An
        // unconnected netlink socket sends to the kernel.
        let sent = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                bytes.as_ptr() as *const libc::c_void,
                bytes.len(),
                0,
            )
        };
        if sent < 0 {
            return Err(error(io::Error::last_os_error()));
        }
        let malformed = |why: String| SysError::NetlinkAnswer {
            request: request.to_string(),
            why,
        };
        loop {
            let datagram = self.receive().map_err(&error)?;
            let mut rest = &datagram[..];
            while rest.len() >= NLMSG_HDRLEN {
                let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                let kind = u16::from_ne_bytes([rest[4], rest[5]]);
                let flags = u16::from_ne_bytes([rest[6], rest[7]]);
                let answer_seq = u32::from_ne_bytes([rest[8], rest[9], rest[10], rest[11]]);
                if len < NLMSG_HDRLEN || len > rest.len() {
                    return Err(malformed(format!(
                        "message of length {len} in {} bytes",
                        rest.len()
                    )));
                }
                let payload = &rest[NLMSG_HDRLEN..len];
                rest = &rest[align4(len).min(rest.len())..];
                if answer_seq != seq {
                    continue;
                }
                if kind == NLMSG_ERROR {
                    let code = payload
                        .get(..4)
                        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                        .ok_or_else(|| malformed("short NLMSG_ERROR".into()))?;
                    if code != 0 {
                        return Err(SysError::Netlink {
                            request: request.to_string(),
                            ifindex,
                            source: io::Error::from_raw_os_error(-code),
                            message: extended_message(payload, flags),
                        });
                    }
                }
                return Ok(Answer {
                    kind,
                    payload: payload.to_vec(),
                });
            }
        }
    }

    /// One datagram, whole (its length is peeked first).
    fn receive(&self) -> io::Result<Vec<u8>> {
        let mut probe = [0u8; 1];
        // SAFETY: `probe` is a live buffer of the length passed; with MSG_PEEK | MSG_TRUNC
        // recv(2) returns the datagram's full length and leaves it queued.
        let len = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                probe.as_mut_ptr() as *mut libc::c_void,
                probe.len(),
                libc::MSG_PEEK | libc::MSG_TRUNC,
            )
        };
        if len < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buffer = vec![0u8; len as usize];
        // SAFETY: `buffer` is a live buffer of the length passed, which recv(2) fills.
        let got = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buffer.as_mut_ptr() as *mut libc::c_void,
                buffer.len(),
                0,
            )
        };
        if got < 0 {
            return Err(io::Error::last_os_error());
        }
        buffer.truncate(got as usize);
        Ok(buffer)
    }
}

/// The kernel's `NLMSGERR_ATTR_MSG` in an `NLMSG_ERROR` payload: after `struct nlmsgerr`
/// (the error and the request's header, or the whole request when the ack is not capped).
fn extended_message(payload: &[u8], flags: u16) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    let request_len = if flags & NLM_F_CAPPED != 0 {
        NLMSG_HDRLEN
    } else {
        let b = payload.get(4..8)?;
        u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize
    };
    let tlvs = payload.get(4 + align4(request_len)..)?;
    let (_, text) = attributes(tlvs)
        .ok()?
        .into_iter()
        .find(|(kind, _)| *kind == NLMSGERR_ATTR_MSG)?;
    let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
    Some(String::from_utf8_lossy(&text[..end]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_setlink_request_nests_the_xdp_attributes() {
        let mut message = Message::new(RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK, 7);
        let nest = message.begin_nest(IFLA_XDP);
        message.attr(IFLA_XDP_FD, &5i32.to_ne_bytes());
        message.attr(IFLA_XDP_FLAGS, &XDP_FLAGS_DRV_MODE.to_ne_bytes());
        message.end_nest(nest);
        let bytes = message.finish(9);
        assert_eq!(bytes.len(), 16 + 16 + 4 + 8 + 8);
        assert_eq!(u32::from_ne_bytes(bytes[0..4].try_into().unwrap()), 52);
        assert_eq!(u32::from_ne_bytes(bytes[8..12].try_into().unwrap()), 9);
        assert_eq!(i32::from_ne_bytes(bytes[20..24].try_into().unwrap()), 7);
        let attrs = attributes(&bytes[32..]).unwrap();
        assert_eq!(attrs.len(), 1);
        assert_eq!(attrs[0].0, IFLA_XDP);
        assert_eq!(
            u16::from_ne_bytes(bytes[34..36].try_into().unwrap()),
            IFLA_XDP | NLA_F_NESTED
        );
        let inner = attributes(attrs[0].1).unwrap();
        assert_eq!(inner[0], (IFLA_XDP_FD, &5i32.to_ne_bytes()[..]));
        assert_eq!(inner[1], (IFLA_XDP_FLAGS, &4u32.to_ne_bytes()[..]));
    }

    #[test]
    fn malformed_attributes_are_errors() {
        assert!(attributes(&[8, 0, 1, 0, 0, 0]).is_err());
        assert!(attributes(&[2, 0, 1, 0]).is_err());
        assert_eq!(attributes(&[]).unwrap(), vec![]);
    }

    #[test]
    fn the_extended_message_follows_a_capped_request() {
        let mut payload = (-95i32).to_ne_bytes().to_vec();
        payload.extend_from_slice(&[0u8; 16]);
        let text = b"native XDP is not supported\0";
        payload.extend_from_slice(&((4 + text.len()) as u16).to_ne_bytes());
        payload.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        payload.extend_from_slice(text);
        assert_eq!(
            extended_message(&payload, NLM_F_CAPPED | NLM_F_ACK_TLVS).as_deref(),
            Some("native XDP is not supported")
        );
        assert_eq!(extended_message(&payload, NLM_F_CAPPED), None);
    }
}
