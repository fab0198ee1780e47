//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// Path of a built binary of this crate.
pub fn bin(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_BIN_EXE_bpfasm"));
    dir.parent().expect("bin dir").join(name)
}

/// Runs a binary with arguments and stdin; returns its output.
pub fn run(name: &str, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(bin(name))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {name}: {e}"));
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let output = child.wait_with_output().expect("wait");
    writer.join().expect("stdin writer");
    output
}

/// stdout as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The project's testdata directory.
pub fn testdata(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(path)
}

/// A capture from testdata/captures.
pub fn capture(name: &str) -> PathBuf {
    testdata("captures").join(name)
}

/// Every real capture of testdata/captures (see testdata/README.md), one of each link type
/// and file format: the tests that run something over all captures read this list.
pub const CAPTURES: [&str; 6] = [
    "eth-flood-v4.pcap",
    "eth-flood-v6.pcap",
    "eth-vlan.pcap",
    "any-sll1.pcap",
    "any-sll2.pcap",
    "eth-flood.pcapng",
];

#[test]
fn the_capture_list_names_every_capture_in_testdata() {
    let mut present: Vec<String> = std::fs::read_dir(testdata("captures"))
        .expect("testdata/captures")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    present.sort();
    let mut listed: Vec<String> = CAPTURES.iter().map(|name| name.to_string()).collect();
    listed.sort();
    assert_eq!(listed, present, "CAPTURES and testdata/captures differ");
}

/// A file from testdata/reference (what the original bpftools produced).
pub fn reference(name: &str) -> PathBuf {
    testdata("reference").join(name)
}

/// True when running as root.
pub fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// True when `tool` is on PATH.
pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Fails the test, naming what to install, when `tool` (the oracle of a test) is not on PATH:
/// a test whose oracle cannot run never passes.
pub fn require(tool: &str, debian_package: &str) {
    assert!(
        have(tool),
        "this test needs `{tool}` on PATH as its oracle (Debian: apt-get install {debian_package})"
    );
}

/// Fails the test when not root. Tests that call it are `#[ignore = "needs root ..."]`, so they
/// run only when asked for (`cargo test -- --include-ignored`, as `scripts/test-all.sh` does as
/// root and in CI); asked for without root they fail rather than pass unchecked.
pub fn require_root(why: &str) {
    assert!(
        is_root(),
        "this test needs root ({why}); run it as root or leave out --include-ignored / --ignored"
    );
}

/// Raw bpf(2) calls on bare file descriptors, still made by tests/it/ebpf_match.rs (map
/// creation and updates, loading, test runs); other tests use `bpftools::ebpf::sys`, and these
/// go once that file does too.
pub mod raw_bpf {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    use bpftools::ebpf;

    const BPF_PROG_LOAD: libc::c_long = 5;
    const BPF_PROG_TEST_RUN: libc::c_long = 10;
    /// `BPF_PROG_TYPE_XDP`.
    pub const BPF_PROG_TYPE_XDP: u32 = 6;

    /// `union bpf_attr` for `BPF_PROG_LOAD`, up to `expected_attach_type`.
    #[repr(C)]
    #[derive(Default)]
    struct ProgLoadAttr {
        prog_type: u32,
        insn_cnt: u32,
        insns: u64,
        license: u64,
        log_level: u32,
        log_size: u32,
        log_buf: u64,
        kern_version: u32,
        prog_flags: u32,
        prog_name: [u8; 16],
        prog_ifindex: u32,
        expected_attach_type: u32,
    }

    /// `union bpf_attr` for `BPF_PROG_TEST_RUN`.
    #[repr(C)]
    #[derive(Default)]
    struct TestRunAttr {
        prog_fd: u32,
        retval: u32,
        data_size_in: u32,
        data_size_out: u32,
        data_in: u64,
        data_out: u64,
        repeat: u32,
        duration: u32,
        ctx_size_in: u32,
        ctx_size_out: u32,
        ctx_in: u64,
        ctx_out: u64,
        flags: u32,
        cpu: u32,
        batch_size: u32,
        _pad: u32,
    }

    /// bpf(2) with `attr`, a `union bpf_attr` prefix whose pointers are live.
    pub fn sys_bpf<T>(cmd: libc::c_long, attr: &mut T) -> libc::c_long {
        // SAFETY: attr is a live, initialised bpf_attr prefix of the size passed; every pointer
        // in it refers to memory the caller keeps alive across the call.
        unsafe {
            libc::syscall(
                libc::SYS_bpf,
                cmd,
                attr as *mut T as *mut libc::c_void,
                std::mem::size_of::<T>(),
            )
        }
    }

    /// Raises RLIMIT_MEMLOCK's soft limit to its hard limit (see `bpftools::ebpf::sys`).
    pub fn raise_memlock() {
        if let Err(error) = ebpf::sys::raise_memlock() {
            panic!("{error}");
        }
    }

    /// A refusal by `BPF_PROG_LOAD`: the error and the verifier's log.
    #[derive(Debug)]
    pub struct LoadError {
        /// The errno.
        pub error: io::Error,
        /// The verifier's log.
        pub log: String,
    }

    /// Loads `prog` as `prog_type`; on refusal, loads again with the verifier's log on.
    pub fn load(prog_type: u32, prog: &[ebpf::Insn]) -> Result<OwnedFd, LoadError> {
        let bytes = ebpf::insn::encode(prog);
        let license = b"GPL\0";
        let attempt = |log: Option<&mut Vec<u8>>| {
            let mut attr = ProgLoadAttr {
                prog_type,
                insn_cnt: prog.len() as u32,
                insns: bytes.as_ptr() as u64,
                license: license.as_ptr() as u64,
                ..ProgLoadAttr::default()
            };
            attr.prog_name[..6].copy_from_slice(b"bpfcmp");
            if let Some(log) = log {
                attr.log_level = 1;
                attr.log_size = log.len() as u32;
                attr.log_buf = log.as_mut_ptr() as u64;
            }
            let fd = sys_bpf(BPF_PROG_LOAD, &mut attr);
            if fd < 0 {
                Err(io::Error::last_os_error())
            } else {
                // SAFETY: the kernel returned a new file descriptor that nothing else owns.
                Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
            }
        };
        attempt(None).map_err(|error| {
            let mut log = vec![0u8; 4 << 20];
            let _ = attempt(Some(&mut log));
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            LoadError {
                error,
                log: String::from_utf8_lossy(&log[..end]).into_owned(),
            }
        })
    }

    /// Runs a loaded program once on `packet`; its return value.
    pub fn test_run(fd: &OwnedFd, packet: &[u8]) -> io::Result<u32> {
        let mut attr = TestRunAttr {
            prog_fd: fd.as_raw_fd() as u32,
            data_size_in: packet.len() as u32,
            data_in: packet.as_ptr() as u64,
            repeat: 1,
            ..TestRunAttr::default()
        };
        if sys_bpf(BPF_PROG_TEST_RUN, &mut attr) < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(attr.retval)
    }
}
