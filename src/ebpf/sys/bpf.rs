//! bpf(2): maps, programs, test runs, pins, and the memory-lock limit.
//!
//! Each command's `union bpf_attr` is a `#[repr(C)]` struct holding the prefix of the union
//! that the command reads (the layouts of `include/uapi/linux/bpf.h`), passed with its own
//! size: the kernel zero-fills what a shorter attribute leaves out. Pointers in an attribute
//! are `u64` and always point into memory borrowed for the duration of the call.
//!
//! What is checked here: key and value lengths against the map's (a wrong length would let
//! the kernel read or write past a buffer), names (no NUL, at most 15 bytes kept for the
//! kernel's `BPF_OBJ_NAME_LEN`), that a pin holds the kind of object asked for. What the kernel
//! checks (types, sizes, flags, the program) comes back as its errno in a [`SysError`].

use std::ffi::CString;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::SysError;
use crate::ebpf::insn::{encode, Insn};

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_OBJ_GET: libc::c_long = 7;
const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;

/// `BPF_F_NO_PREALLOC`: an LPM trie requires it.
const BPF_F_NO_PREALLOC: u32 = 1;
/// `BPF_OBJ_NAME_LEN`: object names keep 15 bytes and a NUL.
const OBJ_NAME_LEN: usize = 16;
/// The largest verifier log every kernel takes (`UINT_MAX >> 8` before 5.2).
const LOG_MAX: usize = (u32::MAX >> 8) as usize;
/// The verifier log buffer offered first.
const LOG_FIRST: usize = 1 << 20;

/// Where bpffs is mounted by convention, and where [`ensure_bpffs`] mounts it.
pub const BPF_FS_PATH: &str = "/sys/fs/bpf";
/// `BPF_FS_MAGIC`: statfs(2)'s `f_type` on bpffs.
pub const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// Calls bpf(2) with `attr` as the command's `union bpf_attr`, again when a signal
/// interrupted it (a test run's repeat loop and the verifier stop for pending signals; the
/// call did nothing then), and for a program load, up to 5 times when the verifier says
/// EAGAIN (its way of saying it was interrupted).
fn sys_bpf<T>(command: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    let mut eagain = 0;
    loop {
        match sys_bpf_once(command, attr) {
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
            Err(e)
                if command == BPF_PROG_LOAD
                    && e.raw_os_error() == Some(libc::EAGAIN)
                    && eagain < 5 =>
            {
                eagain += 1;
            }
            result => return result,
        }
    }
}

fn sys_bpf_once<T>(command: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, initialised, `#[repr(C)]` prefix of `union bpf_attr` for this
    // command, and its size is passed, so the kernel reads and writes only inside it; every
    // pointer it holds is into memory the caller borrows across this call, sized as the
    // attribute says (the callers check key and value lengths against the map's).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            command,
            attr as *mut T as *mut libc::c_void,
            size_of::<T>(),
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Calls a bpf(2) command that returns a new file descriptor, and takes ownership of it.
fn sys_bpf_fd<T>(command: libc::c_long, attr: &mut T) -> io::Result<OwnedFd> {
    let fd = sys_bpf(command, attr)?;
    let fd = i32::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the commands passed here (map create, program load, object get) return a new
    // file descriptor that this process holds and nothing else owns yet.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn bpf_error(command: &'static str) -> impl FnOnce(io::Error) -> SysError {
    move |source| SysError::Bpf { command, source }
}

/// A name for the kernel's 16-byte `name` field: up to 15 bytes, no NUL.
fn object_name(what: &'static str, name: &str) -> Result<[u8; OBJ_NAME_LEN], SysError> {
    // The kernel accepts letters, digits, '_' and '.' only.
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
    {
        return Err(SysError::Name {
            what,
            name: name.to_string(),
            why: "only letters, digits, '_' and '.' are allowed",
        });
    }
    let mut out = [0u8; OBJ_NAME_LEN];
    let kept = name.len().min(OBJ_NAME_LEN - 1);
    out[..kept].copy_from_slice(&name.as_bytes()[..kept]);
    Ok(out)
}

fn c_path(what: &'static str, path: &Path) -> Result<CString, SysError> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| SysError::Name {
        what,
        name: path.display().to_string(),
        why: "it contains a NUL byte",
    })
}

fn name_of(raw: &[u8; OBJ_NAME_LEN]) -> String {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

/// The soft and hard RLIMIT_MEMLOCK, before and after [`raise_memlock`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memlock {
    /// The soft limit found.
    pub before: u64,
    /// The soft limit now.
    pub after: u64,
    /// The hard limit.
    pub hard: u64,
}

/// Raises RLIMIT_MEMLOCK's soft limit to the hard limit when it is lower.
///
/// Kernels before 5.11 charge maps and programs to it (a low limit makes map creation fail
/// with EPERM); later ones charge the memory cgroup and ignore it. Raising above the hard
/// limit needs CAP_SYS_RESOURCE and is not tried: on a kernel that charges the memory cgroup
/// it would change nothing, and on an old one the caller sees the EPERM of the object that
/// did not fit.
pub fn raise_memlock() -> Result<Memlock, SysError> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a live rlimit that getrlimit(2) fills.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) } != 0 {
        return Err(SysError::Bpf {
            command: "getrlimit(RLIMIT_MEMLOCK)",
            source: io::Error::last_os_error(),
        });
    }
    let before = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: `limit` is a live rlimit that setrlimit(2) only reads.
        if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &limit) } != 0 {
            return Err(SysError::Bpf {
                command: "setrlimit(RLIMIT_MEMLOCK)",
                source: io::Error::last_os_error(),
            });
        }
    }
    Ok(Memlock {
        before,
        after: limit.rlim_cur,
        hard: limit.rlim_max,
    })
}

/// The number of possible CPUs (`/sys/devices/system/cpu/possible`): a per-CPU map's value
/// holds one slot for each.
pub fn possible_cpus() -> Result<usize, SysError> {
    let path = Path::new("/sys/devices/system/cpu/possible");
    let text = std::fs::read_to_string(path).map_err(|source| SysError::Path {
        call: "read",
        path: path.to_path_buf(),
        source,
    })?;
    parse_cpu_list(text.trim()).ok_or_else(|| SysError::Path {
        call: "parse",
        path: path.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidData, format!("'{}'", text.trim())),
    })
}

/// `0-3,5,7-8` -> the highest CPU number + 1 (the kernel numbers per-CPU slots densely up
/// to the highest possible CPU).
fn parse_cpu_list(text: &str) -> Option<usize> {
    let mut highest = None;
    for part in text.split(',') {
        let last = match part.split_once('-') {
            Some((from, to)) => {
                let (from, to) = (from.parse::<usize>().ok()?, to.parse::<usize>().ok()?);
                (from <= to).then_some(to)?
            }
            None => part.parse().ok()?,
        };
        highest = Some(highest.map_or(last, |h: usize| h.max(last)));
    }
    highest.map(|h| h + 1)
}

/// An LPM trie's key: the prefix length in bits (host order, as `struct bpf_lpm_trie_key`)
/// then the address bytes.
pub fn lpm_key(prefix_len: u32, data: &[u8]) -> Vec<u8> {
    let mut key = prefix_len.to_ne_bytes().to_vec();
    key.extend_from_slice(data);
    key
}

/// The map types this module creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapKind {
    /// `BPF_MAP_TYPE_HASH`.
    Hash,
    /// `BPF_MAP_TYPE_ARRAY`.
    Array,
    /// `BPF_MAP_TYPE_PROG_ARRAY`: program file descriptors, for tail calls (4-byte keys and
    /// values).
    ProgArray,
    /// `BPF_MAP_TYPE_PERCPU_HASH`.
    PerCpuHash,
    /// `BPF_MAP_TYPE_PERCPU_ARRAY`.
    PerCpuArray,
    /// `BPF_MAP_TYPE_LPM_TRIE`: keys made by [`lpm_key`]; created with `BPF_F_NO_PREALLOC`,
    /// which the kernel requires.
    LpmTrie,
    /// Another type, by its number (what a pinned map may be).
    Other(u32),
}

impl MapKind {
    /// The kernel's `enum bpf_map_type` number.
    pub fn number(self) -> u32 {
        match self {
            MapKind::Hash => 1,
            MapKind::Array => 2,
            MapKind::ProgArray => 3,
            MapKind::PerCpuHash => 5,
            MapKind::PerCpuArray => 6,
            MapKind::LpmTrie => 11,
            MapKind::Other(number) => number,
        }
    }

    /// The kind of the kernel's `enum bpf_map_type` `number`.
    pub fn from_number(number: u32) -> MapKind {
        [
            MapKind::Hash,
            MapKind::Array,
            MapKind::ProgArray,
            MapKind::PerCpuHash,
            MapKind::PerCpuArray,
            MapKind::LpmTrie,
        ]
        .into_iter()
        .find(|kind| kind.number() == number)
        .unwrap_or(MapKind::Other(number))
    }

    /// Whether each value holds one slot per possible CPU.
    pub fn per_cpu(self) -> bool {
        matches!(
            self,
            MapKind::PerCpuHash | MapKind::PerCpuArray | MapKind::Other(10)
        )
    }
}

/// What a map is created as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapSpec {
    /// The name (letters, digits, '_' and '.'; the kernel keeps 15 bytes).
    pub name: String,
    /// The type.
    pub kind: MapKind,
    /// Key length in bytes (with an LPM trie, 4 + the address length).
    pub key_size: u32,
    /// Value length in bytes (with a per-CPU map, of one CPU's slot).
    pub value_size: u32,
    /// The most entries.
    pub max_entries: u32,
    /// `map_flags` beyond what the type requires.
    pub flags: u32,
}

/// A map as the kernel describes it (`struct bpf_map_info`'s first fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapInfo {
    /// The type.
    pub kind: MapKind,
    /// The map's id, system-wide.
    pub id: u32,
    /// Key length.
    pub key_size: u32,
    /// Value length (of one CPU's slot in a per-CPU map).
    pub value_size: u32,
    /// The most entries.
    pub max_entries: u32,
    /// `map_flags`.
    pub flags: u32,
    /// The name (as truncated by the kernel).
    pub name: String,
}

#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; OBJ_NAME_LEN],
}

#[repr(C)]
#[derive(Default)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

#[repr(C)]
#[derive(Default)]
struct ObjPinAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
}

#[repr(C)]
#[derive(Default)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// `struct bpf_map_info` up to its name.
#[repr(C)]
#[derive(Default)]
struct RawMapInfo {
    map_type: u32,
    id: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    name: [u8; OBJ_NAME_LEN],
}

/// `struct bpf_prog_info` up to its id (the kernel fills no more than the length asked).
#[repr(C)]
#[derive(Default)]
struct RawProgInfo {
    prog_type: u32,
    id: u32,
}

/// `BPF_OBJ_GET_INFO_BY_FD` into `info`, of which the kernel fills at most its size.
fn object_info<T>(fd: BorrowedFd<'_>, info: &mut T) -> io::Result<()> {
    let mut attr = InfoAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: size_of::<T>() as u32,
        info: info as *mut T as u64,
    };
    sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr).map(|_| ())
}

/// How an update treats an existing key (`BPF_ANY`, `BPF_NOEXIST`, `BPF_EXIST`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    /// Create or replace.
    Any,
    /// Create only (EEXIST when present).
    NoExist,
    /// Replace only (ENOENT when absent).
    Exist,
}

/// A map, held by its file descriptor.
#[derive(Debug)]
pub struct Map {
    fd: OwnedFd,
    info: MapInfo,
    /// The bytes of one value as user space reads and writes it.
    value_len: usize,
}

impl Map {
    /// Creates a map (`BPF_MAP_CREATE`).
    pub fn create(spec: &MapSpec) -> Result<Map, SysError> {
        let mut attr = MapCreateAttr {
            map_type: spec.kind.number(),
            key_size: spec.key_size,
            value_size: spec.value_size,
            max_entries: spec.max_entries,
            map_flags: spec.flags
                | if spec.kind == MapKind::LpmTrie {
                    BPF_F_NO_PREALLOC
                } else {
                    0
                },
            map_name: object_name("map name", &spec.name)?,
            ..MapCreateAttr::default()
        };
        let fd = sys_bpf_fd(BPF_MAP_CREATE, &mut attr).map_err(bpf_error("BPF_MAP_CREATE"))?;
        Map::from_fd(fd)
    }

    /// Takes a map's file descriptor and asks the kernel what the map is.
    pub fn from_fd(fd: OwnedFd) -> Result<Map, SysError> {
        let mut raw = RawMapInfo::default();
        object_info(fd.as_fd(), &mut raw).map_err(bpf_error("BPF_OBJ_GET_INFO_BY_FD"))?;
        let kind = MapKind::from_number(raw.map_type);
        let value_len = if kind.per_cpu() {
            (raw.value_size as usize).next_multiple_of(8) * possible_cpus()?
        } else {
            raw.value_size as usize
        };
        Ok(Map {
            fd,
            info: MapInfo {
                kind,
                id: raw.id,
                key_size: raw.key_size,
                value_size: raw.value_size,
                max_entries: raw.max_entries,
                flags: raw.map_flags,
                name: name_of(&raw.name),
            },
            value_len,
        })
    }

    /// Opens a map pinned at `path` (`BPF_OBJ_GET`).
    pub fn open_pinned(path: impl AsRef<Path>) -> Result<Map, SysError> {
        let path = path.as_ref();
        let fd = obj_get(path)?;
        check_kind(&fd, path, "bpf-map", "BPF map")?;
        Map::from_fd(fd)
    }

    /// What the kernel says the map is.
    pub fn info(&self) -> &MapInfo {
        &self.info
    }

    /// The length of a value as [`lookup`](Map::lookup) returns it and
    /// [`update`](Map::update) takes it: for a per-CPU map, one slot per possible CPU, each
    /// rounded up to 8 bytes.
    pub fn value_len(&self) -> usize {
        self.value_len
    }

    fn check(&self, what: &'static str, expected: usize, got: usize) -> Result<(), SysError> {
        if expected == got {
            Ok(())
        } else {
            Err(SysError::Length {
                map: self.info.name.clone(),
                what,
                expected,
                got,
            })
        }
    }

    fn elem_attr(&self, key: &[u8], value: u64, flags: u64) -> Result<MapElemAttr, SysError> {
        self.check("key", self.info.key_size as usize, key.len())?;
        Ok(MapElemAttr {
            map_fd: self.fd.as_raw_fd() as u32,
            key: key.as_ptr() as u64,
            value,
            flags,
            ..MapElemAttr::default()
        })
    }

    /// Sets `key` to `value` (`BPF_MAP_UPDATE_ELEM`).
    pub fn update(&self, key: &[u8], value: &[u8], how: Update) -> Result<(), SysError> {
        self.check("value", self.value_len, value.len())?;
        let flags = match how {
            Update::Any => 0,
            Update::NoExist => 1,
            Update::Exist => 2,
        };
        let mut attr = self.elem_attr(key, value.as_ptr() as u64, flags)?;
        sys_bpf(BPF_MAP_UPDATE_ELEM, &mut attr)
            .map(|_| ())
            .map_err(bpf_error("BPF_MAP_UPDATE_ELEM"))
    }

    /// Puts `program` at `index` of a program array.
    pub fn set_program(&self, index: u32, program: &Program) -> Result<(), SysError> {
        let fd = program.fd.as_raw_fd() as u32;
        self.update(&index.to_ne_bytes(), &fd.to_ne_bytes(), Update::Any)
    }

    /// The value of `key` (`BPF_MAP_LOOKUP_ELEM`), `None` when absent.
    pub fn lookup(&self, key: &[u8]) -> Result<Option<Vec<u8>>, SysError> {
        let mut value = vec![0u8; self.value_len];
        let mut attr = self.elem_attr(key, value.as_mut_ptr() as u64, 0)?;
        match sys_bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) {
            Ok(_) => Ok(Some(value)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(source) => Err(bpf_error("BPF_MAP_LOOKUP_ELEM")(source)),
        }
    }

    /// Deletes `key` (`BPF_MAP_DELETE_ELEM`): whether it was there.
    pub fn delete(&self, key: &[u8]) -> Result<bool, SysError> {
        let mut attr = self.elem_attr(key, 0, 0)?;
        match sys_bpf(BPF_MAP_DELETE_ELEM, &mut attr) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
            Err(source) => Err(bpf_error("BPF_MAP_DELETE_ELEM")(source)),
        }
    }

    /// The key after `key` (`BPF_MAP_GET_NEXT_KEY`), the first with `None`; `None` after
    /// the last. A hash map's order is its own, and a key deleted meanwhile restarts the walk.
    pub fn next_key(&self, key: Option<&[u8]>) -> Result<Option<Vec<u8>>, SysError> {
        let mut next = vec![0u8; self.info.key_size as usize];
        let mut attr = match key {
            Some(key) => self.elem_attr(key, next.as_mut_ptr() as u64, 0)?,
            None => MapElemAttr {
                map_fd: self.fd.as_raw_fd() as u32,
                value: next.as_mut_ptr() as u64,
                ..MapElemAttr::default()
            },
        };
        match sys_bpf(BPF_MAP_GET_NEXT_KEY, &mut attr) {
            Ok(_) => Ok(Some(next)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(source) => Err(bpf_error("BPF_MAP_GET_NEXT_KEY")(source)),
        }
    }

    /// Every key, in the map's order.
    pub fn keys(&self) -> Result<Vec<Vec<u8>>, SysError> {
        let mut keys = Vec::new();
        let mut key = self.next_key(None)?;
        while let Some(current) = key {
            key = self.next_key(Some(&current))?;
            keys.push(current);
        }
        Ok(keys)
    }

    /// Pins the map at `path` on bpffs (`BPF_OBJ_PIN`).
    pub fn pin(&self, path: impl AsRef<Path>) -> Result<(), SysError> {
        obj_pin(self.fd.as_fd(), path.as_ref())
    }
}

impl AsFd for Map {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The program types this module loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgramKind {
    /// `BPF_PROG_TYPE_SOCKET_FILTER` (also what xt_bpf's `--object-pinned` runs).
    SocketFilter,
    /// `BPF_PROG_TYPE_XDP`.
    Xdp,
    /// Another type, by its number (what a pinned program may be).
    Other(u32),
}

impl ProgramKind {
    /// The kernel's `enum bpf_prog_type` number.
    pub fn number(self) -> u32 {
        match self {
            ProgramKind::SocketFilter => 1,
            ProgramKind::Xdp => 6,
            ProgramKind::Other(number) => number,
        }
    }

    fn from_number(number: u32) -> ProgramKind {
        match number {
            1 => ProgramKind::SocketFilter,
            6 => ProgramKind::Xdp,
            other => ProgramKind::Other(other),
        }
    }
}

/// `BPF_*_GET_FD_BY_ID`'s part of `union bpf_attr`: the id, then `next_id` and
/// `open_flags` (0).
#[repr(C)]
#[derive(Default)]
struct GetByIdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

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
    prog_name: [u8; OBJ_NAME_LEN],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

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

/// What one `BPF_PROG_TEST_RUN` gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRun {
    /// The program's return value (the last run's).
    pub retval: u32,
    /// The packet as the program left it.
    pub data_out: Vec<u8>,
    /// The mean time of a run, in nanoseconds, as the kernel measured it.
    pub duration_ns: u32,
}

/// Room beyond the input for a program that grows the packet (`bpf_xdp_adjust_tail`).
const TEST_RUN_HEADROOM: usize = 4096;

/// A loaded program, held by its file descriptor.
#[derive(Debug)]
pub struct Program {
    fd: OwnedFd,
    kind: ProgramKind,
}

impl Program {
    /// Loads `insns` as a `kind` program named `name`, under the GPL (`BPF_PROG_LOAD`).
    ///
    /// The first load asks for no log (the verifier is faster without one). When the kernel
    /// refuses the program, it is loaded again with a level-1 log, in a buffer grown while
    /// the log does not fit (up to 16 MiB, what every kernel takes), and the error is
    /// [`SysError::Refused`] with the log; with no log, a plain [`SysError::Bpf`].
    pub fn load(kind: ProgramKind, name: &str, insns: &[Insn]) -> Result<Program, SysError> {
        let name_bytes = object_name("program name", name)?;
        let bytes = encode(insns);
        let license = b"GPL\0";
        let attempt = |log: Option<&mut [u8]>| {
            let mut attr = ProgLoadAttr {
                prog_type: kind.number(),
                insn_cnt: insns.len() as u32,
                insns: bytes.as_ptr() as u64,
                license: license.as_ptr() as u64,
                prog_name: name_bytes,
                ..ProgLoadAttr::default()
            };
            if let Some(log) = log {
                attr.log_level = 1;
                attr.log_size = log.len() as u32;
                attr.log_buf = log.as_mut_ptr() as u64;
            }
            sys_bpf_fd(BPF_PROG_LOAD, &mut attr)
        };
        let source = match attempt(None) {
            Ok(fd) => return Ok(Program { fd, kind }),
            Err(source) => source,
        };
        let mut size = LOG_FIRST;
        loop {
            let mut log = vec![0u8; size];
            let retry = attempt(Some(&mut log));
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]).trim_end().to_string();
            match retry {
                // The verifier's decisions do not depend on the log; a second load that passes
                // is a program loaded.
                Ok(fd) => return Ok(Program { fd, kind }),
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && size < LOG_MAX => {
                    size = (size * 4).min(LOG_MAX);
                }
                Err(e) => {
                    if text.is_empty() {
                        return Err(SysError::Bpf {
                            command: "BPF_PROG_LOAD",
                            source,
                        });
                    }
                    return Err(SysError::Refused {
                        name: name.to_string(),
                        source,
                        log: text,
                        log_truncated: e.raw_os_error() == Some(libc::ENOSPC),
                    });
                }
            }
        }
    }

    /// Opens a program pinned at `path` (`BPF_OBJ_GET`).
    pub fn open_pinned(path: impl AsRef<Path>) -> Result<Program, SysError> {
        let path = path.as_ref();
        let fd = obj_get(path)?;
        check_kind(&fd, path, "bpf-prog", "BPF program")?;
        let mut raw = RawProgInfo::default();
        object_info(fd.as_fd(), &mut raw).map_err(bpf_error("BPF_OBJ_GET_INFO_BY_FD"))?;
        Ok(Program {
            fd,
            kind: ProgramKind::from_number(raw.prog_type),
        })
    }

    /// Opens the program of system-wide id `id` (`BPF_PROG_GET_FD_BY_ID`): a program whose
    /// pin is gone but which is still attached somewhere.
    pub fn by_id(id: u32) -> Result<Program, SysError> {
        let mut attr = GetByIdAttr {
            id,
            ..GetByIdAttr::default()
        };
        let fd = sys_bpf_fd(BPF_PROG_GET_FD_BY_ID, &mut attr)
            .map_err(bpf_error("BPF_PROG_GET_FD_BY_ID"))?;
        let mut raw = RawProgInfo::default();
        object_info(fd.as_fd(), &mut raw).map_err(bpf_error("BPF_OBJ_GET_INFO_BY_FD"))?;
        Ok(Program {
            fd,
            kind: ProgramKind::from_number(raw.prog_type),
        })
    }

    /// The program's type.
    pub fn kind(&self) -> ProgramKind {
        self.kind
    }

    /// The program's id, system-wide (what [`query_xdp`](super::query_xdp) reports).
    pub fn id(&self) -> Result<u32, SysError> {
        let mut raw = RawProgInfo::default();
        object_info(self.fd.as_fd(), &mut raw).map_err(bpf_error("BPF_OBJ_GET_INFO_BY_FD"))?;
        Ok(raw.id)
    }

    /// Runs the program `repeat` times (at least once) on `data` (`BPF_PROG_TEST_RUN`). For
    /// XDP, `data` is the frame from its Ethernet header; for a socket filter, too (the kernel
    /// takes the Ethernet header off and checks the network header).
    pub fn test_run(&self, data: &[u8], repeat: u32) -> Result<TestRun, SysError> {
        let mut out = vec![0u8; data.len() + TEST_RUN_HEADROOM];
        let mut attr = TestRunAttr {
            prog_fd: self.fd.as_raw_fd() as u32,
            data_size_in: data.len() as u32,
            data_size_out: out.len() as u32,
            data_in: data.as_ptr() as u64,
            data_out: out.as_mut_ptr() as u64,
            repeat: repeat.max(1),
            ..TestRunAttr::default()
        };
        sys_bpf(BPF_PROG_TEST_RUN, &mut attr).map_err(bpf_error("BPF_PROG_TEST_RUN"))?;
        out.truncate(attr.data_size_out as usize);
        Ok(TestRun {
            retval: attr.retval,
            data_out: out,
            duration_ns: attr.duration,
        })
    }

    /// Pins the program at `path` on bpffs (`BPF_OBJ_PIN`).
    pub fn pin(&self, path: impl AsRef<Path>) -> Result<(), SysError> {
        obj_pin(self.fd.as_fd(), path.as_ref())
    }
}

impl AsFd for Program {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn obj_pin(fd: BorrowedFd<'_>, path: &Path) -> Result<(), SysError> {
    let c_path = c_path("pin path", path)?;
    let mut attr = ObjPinAttr {
        pathname: c_path.as_ptr() as u64,
        bpf_fd: fd.as_raw_fd() as u32,
        file_flags: 0,
    };
    sys_bpf(BPF_OBJ_PIN, &mut attr)
        .map(|_| ())
        .map_err(|source| SysError::Path {
            call: "BPF_OBJ_PIN",
            path: path.to_path_buf(),
            source,
        })
}

fn obj_get(path: &Path) -> Result<OwnedFd, SysError> {
    let c_path = c_path("pin path", path)?;
    let mut attr = ObjPinAttr {
        pathname: c_path.as_ptr() as u64,
        ..ObjPinAttr::default()
    };
    sys_bpf_fd(BPF_OBJ_GET, &mut attr).map_err(|source| SysError::Path {
        call: "BPF_OBJ_GET",
        path: path.to_path_buf(),
        source,
    })
}

/// Checks, by the anonymous inode's name (`anon_inode:bpf-map`), that `fd` is of `kind`.
fn check_kind(
    fd: &OwnedFd,
    path: &Path,
    kind: &str,
    expected: &'static str,
) -> Result<(), SysError> {
    let link = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    let target = std::fs::read_link(&link).map_err(|source| SysError::Path {
        call: "readlink",
        path: link,
        source,
    })?;
    let target = target.to_string_lossy();
    let found = target.strip_prefix("anon_inode:").unwrap_or(&target);
    if found == kind {
        Ok(())
    } else {
        Err(SysError::WrongKind {
            path: path.to_path_buf(),
            expected,
            found: found.to_string(),
        })
    }
}

/// Whether `path` is on bpffs.
fn on_bpffs(path: &Path) -> Result<bool, SysError> {
    let c_path = c_path("bpffs path", path)?;
    // SAFETY: statfs is plain old data; all zeroes is a valid value.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c_path` is a NUL-terminated path and `stat` a live statfs for statfs(2) to fill.
    if unsafe { libc::statfs(c_path.as_ptr(), &mut stat) } != 0 {
        return Err(SysError::Path {
            call: "statfs",
            path: path.to_path_buf(),
            source: io::Error::last_os_error(),
        });
    }
    #[allow(clippy::unnecessary_cast)] // f_type's type differs between C libraries.
    Ok(stat.f_type as i64 == BPF_FS_MAGIC)
}

/// Makes sure bpffs is mounted at `path` (usually [`BPF_FS_PATH`]): nothing to do when it
/// is; otherwise the directory is created if missing and bpffs mounted on it (mode 0700).
/// Whether it had to be mounted.
pub fn ensure_bpffs(path: impl AsRef<Path>) -> Result<bool, SysError> {
    let path = path.as_ref();
    if path.is_dir() && on_bpffs(path)? {
        return Ok(false);
    }
    let mount_error = |source| SysError::Mount {
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(path).map_err(mount_error)?;
    let target = c_path("bpffs path", path)?;
    let fstype = c"bpf";
    let options = c"mode=0700";
    // SAFETY: every pointer is to a NUL-terminated string that outlives the call; mount(2)
    // reads the options as a string because bpffs takes text options.
    let rc = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            options.as_ptr() as *const libc::c_void,
        )
    };
    if rc != 0 {
        return Err(mount_error(io::Error::last_os_error()));
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_count_up_to_the_highest_cpu() {
        assert_eq!(parse_cpu_list("0"), Some(1));
        assert_eq!(parse_cpu_list("0-1"), Some(2));
        assert_eq!(parse_cpu_list("0-3,5,7-8"), Some(9));
        assert_eq!(parse_cpu_list(""), None);
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
    }

    #[test]
    fn names_are_checked_and_cut_to_the_kernels_length() {
        let name = object_name("map name", "a_very_long_map_name.v4").unwrap();
        assert_eq!(&name[..15], b"a_very_long_map");
        assert_eq!(name[15], 0);
        let err = object_name("map name", "bad name").unwrap_err();
        assert!(err.to_string().contains("'bad name'"), "{err}");
    }

    #[test]
    fn lpm_keys_start_with_the_prefix_length() {
        assert_eq!(
            lpm_key(24, &[10, 53, 0, 0]),
            [24u32.to_ne_bytes().as_slice(), &[10, 53, 0, 0]].concat()
        );
    }

    #[test]
    fn attributes_have_the_kernels_layout() {
        assert_eq!(size_of::<MapCreateAttr>(), 44);
        assert_eq!(size_of::<MapElemAttr>(), 32);
        assert_eq!(size_of::<ObjPinAttr>(), 16);
        assert_eq!(size_of::<ProgLoadAttr>(), 72);
        assert_eq!(size_of::<TestRunAttr>(), 80);
        assert_eq!(size_of::<RawMapInfo>(), 40);
    }
}
