//! Loading without a C toolchain: bpf(2) and rtnetlink through libc (no libbpf, no clang).
//!
//! - [`bpf`]: maps (hash, LPM trie, array, per-CPU array and hash, program array) and their
//!   elements, program loading (XDP and socket filters) with the verifier's log on refusal,
//!   `BPF_PROG_TEST_RUN`, pinning under bpffs (mounted when absent), RLIMIT_MEMLOCK;
//! - [`netlink`]: attaching an XDP program to an interface (native first, generic as a
//!   fallback the result reports), replacing it atomically, detaching it, and asking which
//!   program is attached in which mode.
//!
//! Rules kept here: this is the one module of the library with `unsafe` code, and every
//! `unsafe` block says why it is sound; every kernel object is held by an [`OwnedFd`] (closed
//! when dropped); every failure is a [`SysError`] naming the call and the errno, never a panic;
//! nothing prints (a fallback or a truncated log is in the returned value, for the caller to
//! say).
//!
//! [`OwnedFd`]: std::os::fd::OwnedFd

pub mod bpf;
pub mod netlink;

use std::io;
use std::path::PathBuf;

pub use bpf::{ensure_bpffs, Map};
pub use bpf::{
    lpm_key, possible_cpus, raise_memlock, MapInfo, MapKind, MapSpec, Memlock, Program,
    ProgramKind, TestRun, Update, BPF_FS_MAGIC, BPF_FS_PATH,
};
pub use netlink::{
    attach_xdp, detach_xdp, ifindex, query_xdp, replace_xdp, XdpAttached, XdpAttachment, XdpMode,
};

/// A failed system call or a kernel object that is not what was asked for.
#[derive(Debug, thiserror::Error)]
pub enum SysError {
    /// A bpf(2) command failed.
    #[error("bpf({command}): {}", errno_text(.source))]
    Bpf {
        /// The command, as the kernel names it (`BPF_MAP_CREATE`).
        command: &'static str,
        /// The errno.
        #[source]
        source: io::Error,
    },
    /// The verifier refused a program: its log says why.
    #[error(
        "bpf(BPF_PROG_LOAD): the verifier refused program '{name}' ({}){}:\n{log}",
        errno_text(.source),
        if *.log_truncated { " (log truncated: its end is shown)" } else { "" }
    )]
    Refused {
        /// The program's name.
        name: String,
        /// The errno of the load (without the log).
        #[source]
        source: io::Error,
        /// The verifier's log (level 1).
        log: String,
        /// Whether the log did not fit the largest buffer offered.
        log_truncated: bool,
    },
    /// A call on a path failed (bpffs pins, `/proc`, `/sys`).
    #[error("{call} '{}': {}", .path.display(), errno_text(.source))]
    Path {
        /// The call (`BPF_OBJ_PIN`, `statfs`, ...).
        call: &'static str,
        /// The path it was given.
        path: PathBuf,
        /// The errno.
        #[source]
        source: io::Error,
    },
    /// bpffs is not mounted where pins go, and mounting it failed.
    #[error(
        "bpffs is not mounted at '{}' and mounting it failed: {} \
         (mount it with `mount -t bpf bpf {}`, which needs CAP_SYS_ADMIN)",
        .path.display(), errno_text(.source), .path.display()
    )]
    Mount {
        /// Where bpffs was wanted.
        path: PathBuf,
        /// The errno of mount(2) (or of creating the directory).
        #[source]
        source: io::Error,
    },
    /// A pinned object is of another kind than the one asked for.
    #[error("'{}' is a {found}, not a {expected}", .path.display())]
    WrongKind {
        /// The pin.
        path: PathBuf,
        /// What was asked for (`BPF map`, `BPF program`).
        expected: &'static str,
        /// What it is.
        found: String,
    },
    /// A key or value whose length is not the map's.
    #[error("map '{map}': {what} of {got} bytes, the map's are {expected}")]
    Length {
        /// The map's name.
        map: String,
        /// `key` or `value`.
        what: &'static str,
        /// The map's length.
        expected: usize,
        /// The length given.
        got: usize,
    },
    /// A name the kernel cannot take (a NUL byte, or too long for a path).
    #[error("{what} '{}' cannot be given to the kernel: {why}", .name.escape_debug())]
    Name {
        /// What the name is for.
        what: &'static str,
        /// The name.
        name: String,
        /// Why not.
        why: &'static str,
    },
    /// No network interface of that name.
    #[error("no network interface '{name}': {}", errno_text(.source))]
    NoInterface {
        /// The name.
        name: String,
        /// The errno of if_nametoindex(3).
        #[source]
        source: io::Error,
    },
    /// A netlink request failed: the errno, and the kernel's extended message when it gave one.
    #[error(
        "netlink {request} on interface {ifindex}: {}{}",
        errno_text(.source),
        .message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default()
    )]
    Netlink {
        /// The request (`RTM_SETLINK IFLA_XDP native`, ...).
        request: String,
        /// The interface index.
        ifindex: u32,
        /// The errno (from the kernel's `NLMSG_ERROR`, or of the socket call).
        #[source]
        source: io::Error,
        /// The kernel's extended acknowledgement (`NLMSGERR_ATTR_MSG`), if any.
        message: Option<String>,
    },
    /// A netlink answer that does not parse.
    #[error("netlink {request}: malformed answer: {why}")]
    NetlinkAnswer {
        /// The request.
        request: String,
        /// What is wrong with it.
        why: String,
    },
}

impl SysError {
    /// The errno of the failed call, when there was one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            SysError::Bpf { source, .. }
            | SysError::Refused { source, .. }
            | SysError::Path { source, .. }
            | SysError::Mount { source, .. }
            | SysError::NoInterface { source, .. }
            | SysError::Netlink { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// `EPERM (Operation not permitted)`: the errno's symbolic name (for the ones these calls
/// return) and its description.
fn errno_text(error: &io::Error) -> String {
    let Some(errno) = error.raw_os_error() else {
        return error.to_string();
    };
    let description = io::Error::from_raw_os_error(errno).to_string();
    let description = description
        .strip_suffix(&format!(" (os error {errno})"))
        .unwrap_or(&description)
        .to_string();
    match errno_name(errno) {
        Some(name) => format!("{name} ({description})"),
        None => format!("errno {errno} ({description})"),
    }
}

/// The symbolic names of the errnos bpf(2), mount(2) and rtnetlink return.
pub fn errno_name(errno: i32) -> Option<&'static str> {
    Some(match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::E2BIG => "E2BIG",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EINVAL => "EINVAL",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::ERANGE => "ERANGE",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOSYS => "ENOSYS",
        libc::ELOOP => "ELOOP",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EPROTONOSUPPORT => "EPROTONOSUPPORT",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        // The kernel's internal ENOTSUPP, which bpf(2) lets out on some paths.
        524 => "ENOTSUPP",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_call_and_the_errno() {
        let err = SysError::Bpf {
            command: "BPF_MAP_CREATE",
            source: io::Error::from_raw_os_error(libc::EPERM),
        };
        assert_eq!(
            err.to_string(),
            "bpf(BPF_MAP_CREATE): EPERM (Operation not permitted)"
        );
        assert_eq!(err.errno(), Some(libc::EPERM));
        let err = SysError::Netlink {
            request: "RTM_SETLINK IFLA_XDP native".into(),
            ifindex: 7,
            source: io::Error::from_raw_os_error(libc::EOPNOTSUPP),
            message: Some("native XDP is not supported".into()),
        };
        assert!(
            err.to_string()
                .starts_with("netlink RTM_SETLINK IFLA_XDP native on interface 7: EOPNOTSUPP ("),
            "{err}"
        );
        assert!(err.to_string().ends_with("(native XDP is not supported)"));
        assert_eq!(
            errno_text(&io::Error::from_raw_os_error(4095)),
            "errno 4095 (Unknown error 4095)"
        );
    }
}
