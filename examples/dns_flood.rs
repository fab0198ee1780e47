//! The flood of `scripts/bench-xdp.sh`: DNS queries for random names, at a given rate.
//!
//! `dns_flood ADDR[:PORT] --rate R --seconds S [--zone Z] [--threads T]` sends queries for
//! random names under Z (`www.example.net`; labels of 8 to 16 letters and digits, type A, RD
//! set) to ADDR (port 53) at R packets per second (0: as fast as it can), from T threads (1),
//! each round-robin over 16 UDP sockets (a socket's send buffer holds only some 170 queries
//! in flight: frames waiting in a veth ring would otherwise block one socket), paced by
//! sleeping between bursts (a burst per 50 µs at most) rather than spinning, so that the CPU
//! it leaves idle stays idle. Answers are read and counted (a filter that drops the flood
//! leaves none). Prints `sent=N seconds=S rate=R answered=A blocked=B errors=E`: B sends
//! refused because a socket's buffer was full (not sent, but counted in the pacing), E other
//! failures.
//!
//! Why a program rather than dnsperf for the flood: dnsperf keeps at most `-q` queries
//! outstanding and waits for each until its timeout, so against a filter that drops them all
//! it sends `-q` queries per timeout; here nothing waits for an answer.

use std::error::Error;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use simple_dns::{Name, Packet, Question, CLASS, TYPE};

type Fallible<T> = Result<T, Box<dyn Error + Send + Sync>>;

const USAGE: &str = "usage: dns_flood ADDR[:PORT] --rate R --seconds S [--zone Z] [--threads T]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match flood(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dns_flood: {e}");
            ExitCode::from(2)
        }
    }
}

/// A DNS query (RD set) for `name`, type A.
fn dns_query(name: &str, id: u16) -> Fallible<Vec<u8>> {
    let mut packet = Packet::new_query(id);
    packet.set_flags(simple_dns::PacketFlag::RECURSION_DESIRED);
    packet.questions.push(Question::new(
        Name::new(name)?,
        TYPE::A.into(),
        CLASS::IN.into(),
        false,
    ));
    Ok(packet.build_bytes_vec()?)
}

/// xorshift64: random-looking labels without a dependency.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A label of 8 to 16 letters and digits.
    fn label(&mut self) -> String {
        const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let length = 8 + (self.next() % 9) as usize;
        (0..length)
            .map(|_| char::from(CHARS[(self.next() % CHARS.len() as u64) as usize]))
            .collect()
    }
}

#[derive(Default)]
struct Sent {
    sent: u64,
    answered: u64,
    blocked: u64,
    errors: u64,
}

/// UDP sockets per sending thread.
const SOCKETS: usize = 16;

fn option<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn flood(args: &[String]) -> Fallible<()> {
    let target = args.first().ok_or(USAGE)?;
    let target: SocketAddr = match target.parse::<SocketAddr>() {
        Ok(addr) => addr,
        Err(_) => SocketAddr::new(target.parse::<IpAddr>()?, 53),
    };
    let rate: f64 = option(args, "--rate").ok_or(USAGE)?.parse()?;
    let seconds: f64 = option(args, "--seconds").ok_or(USAGE)?.parse()?;
    let zone = option(args, "--zone")
        .unwrap_or("www.example.net")
        .to_string();
    let threads: usize = option(args, "--threads").unwrap_or("1").parse()?;
    if threads == 0 || !seconds.is_finite() || seconds <= 0.0 || !rate.is_finite() || rate < 0.0 {
        return Err("--threads at least 1, --seconds above 0, --rate 0 or more".into());
    }
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos() as u64;
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|index| {
            let zone = zone.clone();
            let per_thread = rate / threads as f64;
            let seed = seed ^ ((index as u64 + 1) << 32) | 1;
            std::thread::spawn(move || send(target, per_thread, seconds, &zone, seed))
        })
        .collect();
    let mut total = Sent::default();
    for worker in workers {
        let sent = worker.join().map_err(|_| "a sending thread panicked")??;
        total.sent += sent.sent;
        total.answered += sent.answered;
        total.blocked += sent.blocked;
        total.errors += sent.errors;
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "sent={} seconds={elapsed:.3} rate={:.0} answered={} blocked={} errors={}",
        total.sent,
        total.sent as f64 / elapsed,
        total.answered,
        total.blocked,
        total.errors
    );
    Ok(())
}

/// One thread's flood: `rate` packets per second (0: unpaced) for `seconds`.
fn send(target: SocketAddr, rate: f64, seconds: f64, zone: &str, seed: u64) -> Fallible<Sent> {
    let mut random = Random(seed);
    let queries: Vec<Vec<u8>> = (0..4096)
        .map(|_| dns_query(&format!("{}.{zone}", random.label()), random.next() as u16))
        .collect::<Fallible<_>>()?;
    let bind: SocketAddr = if target.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sockets: Vec<UdpSocket> = (0..SOCKETS)
        .map(|_| {
            let socket = UdpSocket::bind(bind)?;
            socket.connect(target)?;
            socket.set_nonblocking(true)?;
            Ok(socket)
        })
        .collect::<std::io::Result<_>>()?;
    // A burst every 50 µs at most: sleeps long enough to be kept by the timer.
    let burst = if rate > 0.0 {
        ((rate / 20_000.0).ceil() as u64).max(1)
    } else {
        64
    };
    let mut out = Sent::default();
    // Sends tried, sent or not: the pacing's count.
    let mut attempts = 0u64;
    let mut answer = [0u8; 1500];
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if rate > 0.0 {
            let due = start + Duration::from_secs_f64(attempts as f64 / rate);
            if due > now {
                std::thread::sleep(due - now);
                continue;
            }
        }
        for _ in 0..burst {
            let socket = &sockets[(attempts % SOCKETS as u64) as usize];
            let query = &queries[(attempts % queries.len() as u64) as usize];
            attempts += 1;
            match socket.send(query) {
                Ok(_) => out.sent += 1,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => out.blocked += 1,
                Err(_) => out.errors += 1,
            }
        }
        for socket in &sockets {
            while socket.recv(&mut answer).is_ok() {
                out.answered += 1;
            }
        }
    }
    // Answers still on their way.
    let settle = Instant::now() + Duration::from_millis(200);
    while Instant::now() < settle {
        let mut got = false;
        for socket in &sockets {
            while socket.recv(&mut answer).is_ok() {
                out.answered += 1;
                got = true;
            }
        }
        if !got {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    Ok(out)
}
