//! `bpftools::ebpf::sys` against the running kernel: bpf(2) and rtnetlink without libbpf.
//!
//! Root only (ignored unless asked for, failing without root): a `bpfgen dns` program compiled
//! to XDP is loaded and test-run on real DNS queries; maps of each kind are created, filled,
//! read, walked and emptied; objects are pinned under bpffs (mounted if absent) and opened
//! again; in two fresh network namespaces joined by a veth pair, the program is attached
//! natively to the server's end, drops a matching DNS query while others reach a UDP listener,
//! is replaced atomically and detached; on loopback, native mode is refused and the
//! attach falls back to generic. Without root: the error paths that need no privilege.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bpftools::ebpf::compile::{XDP_DROP, XDP_PASS};
use bpftools::ebpf::sys::{
    attach_xdp, detach_xdp, ensure_bpffs, ifindex, lpm_key, possible_cpus, query_xdp,
    raise_memlock, replace_xdp, Map, MapKind, MapSpec, Program, ProgramKind, SysError, Update,
    XdpAttached, XdpMode, BPF_FS_PATH,
};
use bpftools::ebpf::{compile, Insn, Reg, Target, Verdicts, XdpLayout};
use bpftools::gen::{build, DnsSpec, GenOptions, Generator, DEFAULT_EXT_HEADERS};

use crate::common::{is_root, require_root};
use crate::kernel::Netns;
use crate::packets::{dns_query, ethernet, labels, udp_packet, Shape};

/// `bpfgen dns -- PATTERN` (IPv4, from the network header) compiled for XDP on Ethernet:
/// matched -> XDP_DROP, otherwise XDP_PASS.
fn dns_drop_program(pattern: &str) -> Vec<Insn> {
    let generator = Generator::Dns(DnsSpec {
        patterns: vec![pattern.to_string()],
        ignore_case: true,
        ext_headers: DEFAULT_EXT_HEADERS,
    });
    let opts = GenOptions {
        inet6: false,
        negate: false,
        offset: 0,
    };
    let classic = build(&generator, &opts).expect("bpfgen dns").insns;
    compile(
        &classic,
        Target::Xdp(XdpLayout::ethernet(14)),
        Verdicts::XDP_DROP_MATCHED,
    )
    .expect("compiles")
    .insns
}

fn load_dns_drop(pattern: &str) -> Program {
    let prog = dns_drop_program(pattern);
    Program::load(ProgramKind::Xdp, "dns_drop", &prog).unwrap_or_else(|e| panic!("{e}"))
}

/// An Ethernet frame with an IPv4 UDP DNS query for `name` to port 53.
fn query_frame(name: &str) -> Vec<u8> {
    ethernet(&udp_packet(&dns_query(&labels(name), 0x4242), Shape::V4))
}

#[test]
#[ignore = "needs root (bpf(2), netlink, network namespaces)"]
fn a_compiled_dns_program_loads_and_test_runs() {
    require_root("bpf(2)");
    raise_memlock().expect("RLIMIT_MEMLOCK");
    let program = load_dns_drop("*.www.example.net");
    assert_eq!(program.kind(), ProgramKind::Xdp);
    assert!(program.id().expect("id") > 0);
    for (name, verdict) in [
        ("abc.www.example.net", XDP_DROP),
        ("ABC.WWW.EXAMPLE.NET", XDP_DROP),
        ("www.example.net", XDP_PASS),
        ("abc.www.example.org", XDP_PASS),
    ] {
        let frame = query_frame(name);
        let run = program.test_run(&frame, 10).expect("test run");
        assert_eq!(run.retval, verdict, "{name}");
        assert_eq!(run.data_out, frame, "{name}: the program does not write");
    }
    // A socket filter of the same classic program takes the frame from its Ethernet header.
    let generator = Generator::Dns(DnsSpec {
        patterns: vec!["*.www.example.net".into()],
        ignore_case: false,
        ext_headers: DEFAULT_EXT_HEADERS,
    });
    let classic = build(
        &generator,
        &GenOptions {
            inet6: false,
            negate: false,
            offset: 0,
        },
    )
    .unwrap()
    .insns;
    let compiled = compile(&classic, Target::SocketFilter, Verdicts::Value).unwrap();
    let socket = Program::load(ProgramKind::SocketFilter, "dns_sock", &compiled.insns)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(
        socket
            .test_run(&query_frame("a.www.example.net"), 1)
            .unwrap()
            .retval,
        0
    );
    assert_eq!(
        socket
            .test_run(&query_frame("www.example.net"), 1)
            .unwrap()
            .retval,
        0
    );
}

#[test]
fn a_refused_program_carries_the_verifiers_log() {
    // `exit` with r0 never written: every kernel refuses it, naming the register.
    let result = Program::load(ProgramKind::Xdp, "refused", &[Insn::exit()]);
    match result {
        Err(SysError::Refused {
            name,
            source,
            log,
            log_truncated,
        }) => {
            assert_eq!(name, "refused");
            assert_eq!(source.raw_os_error(), Some(libc::EACCES));
            assert!(log.contains("R0 !read_ok"), "{log}");
            assert!(!log_truncated);
        }
        // Without the privilege to load XDP programs the kernel says no before verifying.
        Err(SysError::Bpf { command, source }) if !is_root() => {
            assert_eq!(command, "BPF_PROG_LOAD");
            assert_eq!(source.raw_os_error(), Some(libc::EPERM));
        }
        other => panic!("{other:?}"),
    }
    let err = Program::load(ProgramKind::Xdp, "refused", &[Insn::exit()]).unwrap_err();
    assert!(err.to_string().starts_with("bpf(BPF_PROG_LOAD): "), "{err}");
    // Names the kernel would refuse are refused before the call.
    let err = Program::load(ProgramKind::Xdp, "a name", &[Insn::exit()]).unwrap_err();
    assert!(matches!(err, SysError::Name { .. }), "{err:?}");
}

#[test]
fn error_paths_name_the_call_and_the_errno() {
    let err = ifindex("bpftools-none").unwrap_err();
    assert_eq!(err.errno(), Some(libc::ENODEV), "{err}");
    assert!(err.to_string().contains("'bpftools-none'"), "{err}");
    let err = Map::open_pinned("/sys/fs/bpf/bpftools-no/such-pin").unwrap_err();
    assert!(
        matches!(err.errno(), Some(libc::ENOENT | libc::EPERM | libc::EACCES)),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("BPF_OBJ_GET '/sys/fs/bpf/bpftools-no/such-pin': E"),
        "{err}"
    );
    // bpffs cannot be mounted where no directory can be made.
    let err = ensure_bpffs("/proc/bpftools-no-such-dir").unwrap_err();
    assert!(matches!(err, SysError::Mount { .. }), "{err:?}");
    assert!(err.to_string().contains("mount -t bpf bpf"), "{err}");
    // An interface that does not exist (or, without CAP_NET_ADMIN, no permission).
    let err = detach_xdp(0x7fff_fff0, XdpMode::Native, None).unwrap_err();
    assert!(
        matches!(err.errno(), Some(libc::ENODEV | libc::EPERM)),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("netlink RTM_SETLINK IFLA_XDP native detach on interface 2147483632: E"),
        "{err}"
    );
    let err = query_xdp(0x7fff_fff0).unwrap_err();
    assert_eq!(err.errno(), Some(libc::ENODEV), "{err}");
}

#[test]
#[ignore = "needs root (bpf(2), netlink, network namespaces)"]
fn maps_of_each_kind_are_created_filled_read_and_emptied() {
    require_root("bpf(2)");
    raise_memlock().expect("RLIMIT_MEMLOCK");
    let spec = |name: &str, kind, key_size, value_size, max_entries| MapSpec {
        name: name.to_string(),
        kind,
        key_size,
        value_size,
        max_entries,
        flags: 0,
    };

    let hash = Map::create(&spec("names", MapKind::Hash, 4, 8, 16)).expect("hash");
    assert_eq!(hash.info().kind, MapKind::Hash);
    assert_eq!(hash.info().name, "names");
    for key in 0u32..5 {
        hash.update(
            &key.to_ne_bytes(),
            &u64::from(key * 10).to_ne_bytes(),
            Update::NoExist,
        )
        .expect("update");
    }
    let again = hash.update(&1u32.to_ne_bytes(), &[0; 8], Update::NoExist);
    assert_eq!(again.unwrap_err().errno(), Some(libc::EEXIST));
    let absent = hash.update(&99u32.to_ne_bytes(), &[0; 8], Update::Exist);
    assert_eq!(absent.unwrap_err().errno(), Some(libc::ENOENT));
    assert_eq!(
        hash.lookup(&3u32.to_ne_bytes()).unwrap(),
        Some(30u64.to_ne_bytes().to_vec())
    );
    assert_eq!(hash.lookup(&7u32.to_ne_bytes()).unwrap(), None);
    let mut keys: Vec<u32> = hash
        .keys()
        .unwrap()
        .iter()
        .map(|k| u32::from_ne_bytes(k[..].try_into().unwrap()))
        .collect();
    keys.sort();
    assert_eq!(keys, [0, 1, 2, 3, 4]);
    assert!(hash.delete(&3u32.to_ne_bytes()).unwrap());
    assert!(!hash.delete(&3u32.to_ne_bytes()).unwrap());
    assert_eq!(hash.keys().unwrap().len(), 4);
    let err = hash.lookup(&[0u8; 3]).unwrap_err();
    assert!(matches!(err, SysError::Length { what: "key", .. }), "{err}");

    let trie = Map::create(&spec("protected4", MapKind::LpmTrie, 8, 4, 64)).expect("trie");
    trie.update(
        &lpm_key(16, &[10, 53, 0, 0]),
        &16u32.to_ne_bytes(),
        Update::Any,
    )
    .unwrap();
    trie.update(
        &lpm_key(24, &[10, 53, 7, 0]),
        &24u32.to_ne_bytes(),
        Update::Any,
    )
    .unwrap();
    let longest = |address: [u8; 4]| {
        trie.lookup(&lpm_key(32, &address))
            .unwrap()
            .map(|v| u32::from_ne_bytes(v[..].try_into().unwrap()))
    };
    assert_eq!(longest([10, 53, 7, 9]), Some(24));
    assert_eq!(longest([10, 53, 8, 9]), Some(16));
    assert_eq!(longest([10, 54, 0, 1]), None);

    let cpus = possible_cpus().expect("possible CPUs");
    let counters = Map::create(&spec("counters", MapKind::PerCpuArray, 4, 12, 4)).unwrap();
    assert_eq!(counters.value_len(), 16 * cpus);
    let value: Vec<u8> = (0..counters.value_len()).map(|i| i as u8).collect();
    counters
        .update(&2u32.to_ne_bytes(), &value, Update::Any)
        .unwrap();
    assert_eq!(counters.lookup(&2u32.to_ne_bytes()).unwrap(), Some(value));
    assert_eq!(
        counters.lookup(&0u32.to_ne_bytes()).unwrap(),
        Some(vec![0; 16 * cpus])
    );
    let err = counters
        .update(&1u32.to_ne_bytes(), &[0; 12], Update::Any)
        .unwrap_err();
    assert!(
        matches!(err, SysError::Length { what: "value", .. }),
        "{err}"
    );

    let tails = Map::create(&spec("tails", MapKind::ProgArray, 4, 4, 8)).unwrap();
    let program = load_dns_drop("*.www.example.net");
    tails.set_program(3, &program).unwrap();
    // User space reads a program array's slot as the program's id.
    assert_eq!(
        tails.lookup(&3u32.to_ne_bytes()).unwrap(),
        Some(program.id().unwrap().to_ne_bytes().to_vec())
    );
    assert!(tails.delete(&3u32.to_ne_bytes()).unwrap());
    let err = tails
        .set_program(8, &program)
        .expect_err("index past the end");
    assert_eq!(err.errno(), Some(libc::E2BIG), "{err}");
}

/// A directory under bpffs removed, with what it holds, when dropped.
struct PinDir(PathBuf);

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
#[ignore = "needs root (bpf(2), netlink, network namespaces)"]
fn pinned_objects_open_again_under_bpffs() {
    require_root("bpf(2), mount(2)");
    raise_memlock().expect("RLIMIT_MEMLOCK");
    ensure_bpffs(BPF_FS_PATH).unwrap_or_else(|e| panic!("{e}"));
    assert!(!ensure_bpffs(BPF_FS_PATH).unwrap(), "mounted twice");
    let dir = PinDir(Path::new(BPF_FS_PATH).join(format!("bpftools-test-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).expect("directory on bpffs");

    let map = Map::create(&MapSpec {
        name: "pinned".into(),
        kind: MapKind::Hash,
        key_size: 4,
        value_size: 4,
        max_entries: 4,
        flags: 0,
    })
    .unwrap();
    map.update(&1u32.to_ne_bytes(), &7u32.to_ne_bytes(), Update::Any)
        .unwrap();
    let program = load_dns_drop("*.www.example.net");
    map.pin(dir.0.join("map")).unwrap();
    program.pin(dir.0.join("prog")).unwrap();
    let err = map.pin(dir.0.join("map")).unwrap_err();
    assert_eq!(err.errno(), Some(libc::EEXIST), "{err}");

    let reopened = Map::open_pinned(dir.0.join("map")).unwrap();
    assert_eq!(reopened.info(), map.info());
    assert_eq!(
        reopened.lookup(&1u32.to_ne_bytes()).unwrap(),
        Some(7u32.to_ne_bytes().to_vec())
    );
    let again = Program::open_pinned(dir.0.join("prog")).unwrap();
    assert_eq!(again.id().unwrap(), program.id().unwrap());
    assert_eq!(again.kind(), ProgramKind::Xdp);
    let frame = query_frame("x.www.example.net");
    assert_eq!(again.test_run(&frame, 1).unwrap().retval, XDP_DROP);

    let err = Program::open_pinned(dir.0.join("map")).unwrap_err();
    assert!(
        err.to_string().ends_with("is a bpf-map, not a BPF program"),
        "{err}"
    );
    // Pins only go on bpffs.
    let err = map.pin("/tmp/bpftools-not-bpffs").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("BPF_OBJ_PIN '/tmp/bpftools-not-bpffs': "),
        "{err}"
    );

    drop(dir);
    assert!(Map::open_pinned(
        Path::new(BPF_FS_PATH).join(format!("bpftools-test-{}/map", std::process::id()))
    )
    .is_err());
}

/// Runs `f` on a thread inside network namespace `netns`: sockets it opens (the listener,
/// netlink's) belong to that namespace.
fn in_netns<T: Send>(netns: &Netns, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let file =
                    std::fs::File::open(format!("/var/run/netns/{}", netns.0)).expect("netns file");
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
                f()
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("ip");
    assert!(status.success(), "ip {}", args.join(" "));
}

const SERVER: &str = "10.199.0.2";
const CLIENT: &str = "10.199.0.1";

/// Which of `names`, sent as DNS queries from `sender`, reach `listener`: a last query
/// (`sentinel.invalid`) that must arrive marks the end, the veth keeping the order.
fn delivered(sender: &UdpSocket, listener: &UdpSocket, names: &[&str]) -> Vec<String> {
    let target = format!("{SERVER}:53");
    for (id, name) in names.iter().enumerate() {
        sender
            .send_to(&dns_query(&labels(name), id as u16), &target)
            .expect("send");
    }
    sender
        .send_to(&dns_query(&labels("sentinel.invalid"), 0xffff), &target)
        .expect("send");
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 512];
    loop {
        assert!(Instant::now() < deadline, "the sentinel never arrived");
        let Ok(len) = listener.recv(&mut buf) else {
            continue;
        };
        let id = u16::from_be_bytes([buf[0], buf[1]]);
        if id == 0xffff && len > 2 {
            return out;
        }
        out.push(names[id as usize].to_string());
    }
}

#[test]
#[ignore = "needs root (bpf(2), netlink, network namespaces)"]
fn an_xdp_program_on_a_veth_drops_matching_queries_is_replaced_and_detached() {
    require_root("bpf(2), netlink, network namespaces");
    raise_memlock().expect("RLIMIT_MEMLOCK");
    let pid = std::process::id();
    let server = Netns::new(&format!("bpftools-xdp-srv-{pid}"));
    let client = Netns::new(&format!("bpftools-xdp-cli-{pid}"));
    ip(&[
        "link", "add", "xdp-cli", "netns", &client.0, "type", "veth", "peer", "name", "xdp-srv",
        "netns", &server.0,
    ]);
    for (ns, dev, address) in [(&server, "xdp-srv", SERVER), (&client, "xdp-cli", CLIENT)] {
        ip(&[
            "-n",
            &ns.0,
            "addr",
            "add",
            &format!("{address}/24"),
            "dev",
            dev,
        ]);
        ip(&["-n", &ns.0, "link", "set", dev, "up"]);
    }
    let listener = in_netns(&server, || {
        UdpSocket::bind(format!("{SERVER}:53")).expect("bind")
    });
    listener
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let sender = in_netns(&client, || {
        UdpSocket::bind(format!("{CLIENT}:0")).expect("bind")
    });
    let names = ["abc.www.example.net", "www.example.net", "abc.example.org"];

    // Before: everything arrives (and the neighbours know each other).
    assert_eq!(delivered(&sender, &listener, &names), names);

    let drop_net = load_dns_drop("*.www.example.net");
    let drop_org = load_dns_drop("*.example.org");
    let index = in_netns(&server, || ifindex("xdp-srv")).expect("ifindex");
    assert_eq!(
        in_netns(&server, || query_xdp(index)).unwrap(),
        XdpAttached::None
    );

    let attachment = in_netns(&server, || attach_xdp(index, &drop_net, None)).unwrap();
    assert_eq!(attachment.mode, XdpMode::Native);
    assert!(attachment.native_refused.is_none());
    assert_eq!(
        in_netns(&server, || query_xdp(index)).unwrap(),
        XdpAttached::One {
            mode: XdpMode::Native,
            prog_id: drop_net.id().unwrap()
        }
    );
    assert_eq!(
        delivered(&sender, &listener, &names),
        ["www.example.net", "abc.example.org"]
    );
    // A second attach does not replace what is there.
    let err = in_netns(&server, || attach_xdp(index, &drop_org, None)).unwrap_err();
    assert_eq!(err.errno(), Some(libc::EBUSY), "{err}");

    // Replaced in one step, checked by the kernel against the program expected.
    let checked = in_netns(&server, || {
        replace_xdp(index, &drop_org, &drop_net, XdpMode::Native)
    })
    .unwrap();
    assert!(checked, "this kernel knows XDP_FLAGS_REPLACE");
    assert_eq!(
        in_netns(&server, || query_xdp(index)).unwrap(),
        XdpAttached::One {
            mode: XdpMode::Native,
            prog_id: drop_org.id().unwrap()
        }
    );
    let err = in_netns(&server, || {
        replace_xdp(index, &drop_net, &drop_net, XdpMode::Native)
    })
    .unwrap_err();
    assert_eq!(err.errno(), Some(libc::EEXIST), "{err}");
    assert_eq!(
        delivered(&sender, &listener, &names),
        ["abc.www.example.net", "www.example.net"]
    );

    // Detached only when it is the program named.
    let err = in_netns(&server, || {
        detach_xdp(index, XdpMode::Native, Some(&drop_net))
    })
    .unwrap_err();
    assert_eq!(err.errno(), Some(libc::EEXIST), "{err}");
    in_netns(&server, || {
        detach_xdp(index, XdpMode::Native, Some(&drop_org))
    })
    .unwrap();
    assert_eq!(
        in_netns(&server, || query_xdp(index)).unwrap(),
        XdpAttached::None
    );
    assert_eq!(delivered(&sender, &listener, &names), names);
}

#[test]
#[ignore = "needs root (bpf(2), netlink, network namespaces)"]
fn loopback_falls_back_to_generic_mode_and_says_why() {
    require_root("bpf(2), netlink, network namespaces");
    raise_memlock().expect("RLIMIT_MEMLOCK");
    let netns = Netns::new(&format!("bpftools-xdp-gen-{}", std::process::id()));
    let program = Program::load(
        ProgramKind::Xdp,
        "pass",
        &[Insn::mov32_imm(Reg::R0, XDP_PASS), Insn::exit()],
    )
    .unwrap();
    in_netns(&netns, || {
        // The loopback driver has no native XDP.
        let index = ifindex("lo").unwrap();
        let attachment = attach_xdp(index, &program, None).unwrap();
        assert_eq!(attachment.mode, XdpMode::Generic);
        let refusal = attachment.native_refused.expect("native refused");
        assert_eq!(refusal.errno(), Some(libc::EOPNOTSUPP), "{refusal}");
        assert!(
            refusal
                .to_string()
                .starts_with("netlink RTM_SETLINK IFLA_XDP native on interface"),
            "{refusal}"
        );
        assert_eq!(
            query_xdp(index).unwrap(),
            XdpAttached::One {
                mode: XdpMode::Generic,
                prog_id: program.id().unwrap()
            }
        );
        // Asked for native only, the refusal is the error.
        detach_xdp(index, XdpMode::Generic, None).unwrap();
        let err = attach_xdp(index, &program, Some(XdpMode::Native)).unwrap_err();
        assert_eq!(err.errno(), Some(libc::EOPNOTSUPP), "{err}");
        assert_eq!(query_xdp(index).unwrap(), XdpAttached::None);
    });
}
