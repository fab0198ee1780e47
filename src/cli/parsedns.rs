//! `parsedns`: a layer-by-layer report of DNS packets given as hex.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::process::ExitCode;

use clap::Parser;
use etherparse::{LaxNetSlice, LaxSlicedPacket, TransportSlice};
use serde_json::{json, Value};

use crate::cli::bpfasm::parse_hex_packet;
use crate::cli::{hex_line_data, parse_args, CliError, EXIT_OK};
use crate::dns::{self, class_name, opcode_name, option_name, option_text, rcode_name, type_name};

const EXAMPLES: &str = "\
Input: Ethernet frames (as pcap2hex prints them) or packets starting at the IP header, as hex
arguments or one per line on stdin (anything after a tab is ignored).

Examples:
  pcap2hex flood.pcap | head -3 | parsedns
  parsedns --json 45000038...  | jq .dns.questions";

/// Show DNS packets given as hex, layer by layer.
#[derive(Debug, Parser)]
#[command(name = "parsedns", version, about = "Show DNS packets given as hex, layer by layer", after_help = EXAMPLES)]
struct Args {
    /// One JSON object per packet instead of text.
    #[arg(short = 'j', long)]
    json: bool,
    /// Packets as hex; stdin (one per line) when none.
    packets: Vec<String>,
}

/// Whether `ip` starts with an IPv4 or IPv6 header whose length field matches the data:
/// exactly, or (`exact` false) with padding after it as on short Ethernet frames.
fn ip_header_fits(ip: &[u8], exact: bool) -> bool {
    let length = match ip.first().map(|b| b >> 4) {
        Some(4) if ip.len() >= 20 && ip[0] & 0xf >= 5 => {
            usize::from(u16::from_be_bytes([ip[2], ip[3]]))
        }
        Some(6) if ip.len() >= 40 => 40 + usize::from(u16::from_be_bytes([ip[4], ip[5]])),
        _ => return false,
    };
    if exact {
        length == ip.len()
    } else {
        length <= ip.len()
    }
}

/// Builds the report of one packet as JSON (the text form is printed from it).
pub fn report(packet: &[u8]) -> Value {
    // An IP packet whose source address holds 08 00 or 86 dd at bytes 12-13 looks like an
    // Ethernet frame: when it is also a whole IP packet, read it as Ethernet only when an IP
    // header of the right length follows the Ethernet header.
    let ethertype = (packet.len() >= 14).then(|| u16::from_be_bytes([packet[12], packet[13]]));
    let ethernet_first = match ethertype {
        Some(0x8100 | 0x88a8) => true,
        Some(0x0800 | 0x86dd) => {
            !ip_header_fits(packet, true) || ip_header_fits(&packet[14..], false)
        }
        _ => false,
    };
    let sliced = if ethernet_first || !matches!(packet.first().map(|b| b >> 4), Some(4 | 6)) {
        LaxSlicedPacket::from_ethernet(packet).map_err(|e| e.to_string())
    } else {
        LaxSlicedPacket::from_ip(packet).map_err(|e| e.to_string())
    };
    let mut out = json!({ "length": packet.len() });
    let sliced = match sliced {
        Ok(sliced) => sliced,
        Err(e) => {
            out["error"] = json!(format!("l2: {e}"));
            return out;
        }
    };
    if let Some(etherparse::LinkSlice::Ethernet2(eth)) = &sliced.link {
        let mac = |m: [u8; 6]| {
            m.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":")
        };
        out["l2"] = json!({
            "type": "ethernet",
            "src": mac(eth.source()),
            "dst": mac(eth.destination()),
            "ethertype": format!("{:#06x}", eth.ether_type().0),
            "vlans": sliced.link_exts.len(),
        });
    }
    let (udp_ok, mut error) = (true, None::<String>);
    match &sliced.net {
        Some(LaxNetSlice::Ipv4(ip)) => {
            let h = ip.header();
            out["l3"] = json!({
                "type": "ipv4", "src": h.source_addr().to_string(), "dst": h.destination_addr().to_string(),
                "ttl": h.ttl(), "id": h.identification(), "length": h.total_len(),
                "header_length": h.ihl() as usize * 4, "protocol": h.protocol().0,
            });
        }
        Some(LaxNetSlice::Ipv6(ip)) => {
            let h = ip.header();
            out["l3"] = json!({
                "type": "ipv6", "src": h.source_addr().to_string(), "dst": h.destination_addr().to_string(),
                "hop_limit": h.hop_limit(), "payload_length": h.payload_length(), "next_header": h.next_header().0,
            });
        }
        Some(LaxNetSlice::Arp(_)) => error = Some("l3: ARP, not IP".into()),
        None => error = Some("l3: no IP header".into()),
    }
    let _ = udp_ok;
    match &sliced.transport {
        Some(TransportSlice::Udp(udp)) => {
            out["l4"] = json!({
                "type": "udp", "src_port": udp.source_port(), "dst_port": udp.destination_port(), "length": udp.length(),
            });
            out["dns"] = dns_report(udp.payload());
        }
        Some(_) => error = error.or(Some("l4: not UDP".into())),
        None => {
            if error.is_none() {
                error = Some(match &sliced.stop_err {
                    Some((e, layer)) => format!("{layer:?}: {e}"),
                    None => "l4: no transport header".into(),
                });
            }
        }
    }
    if let Some(error) = error {
        out["error"] = json!(error);
    }
    out
}

fn dns_report(payload: &[u8]) -> Value {
    let message = dns::parse(payload);
    let mut out = json!({});
    if let Some(h) = message.header {
        out["id"] = json!(h.id);
        out["flags"] = json!(h.flag_names());
        out["opcode"] = json!(opcode_name(h.opcode()));
        out["rcode"] = json!(rcode_name(h.rcode()));
        out["counts"] = json!({"qd": h.qdcount, "an": h.ancount, "ns": h.nscount, "ar": h.arcount});
    }
    out["questions"] = message
        .questions
        .iter()
        .map(|q| json!({"name": q.name, "type": type_name(q.qtype), "class": class_name(q.qclass)}))
        .collect();
    out["records"] = message
        .records
        .iter()
        .map(|(section, r)| {
            if r.rtype == 41 {
                json!({
                    "section": section.to_string(), "name": r.name, "type": "OPT",
                    "edns": {
                        "udp_size": r.class,
                        "extended_rcode": r.ttl >> 24,
                        "version": (r.ttl >> 16) & 0xff,
                        "do": r.ttl & 0x8000 != 0,
                        "options": r.options.iter().map(|o| json!({
                            "code": o.code, "name": option_name(o.code), "value": option_text(o),
                        })).collect::<Vec<_>>(),
                    }
                })
            } else {
                json!({
                    "section": section.to_string(), "name": r.name, "type": type_name(r.rtype),
                    "class": class_name(r.class), "ttl": r.ttl, "data": r.data,
                })
            }
        })
        .collect();
    if let Some(e) = message.error {
        out["error"] = json!(e.to_string());
    }
    out
}

fn text(report: &Value) -> String {
    let mut s = String::new();
    let str_of = |v: &Value| {
        v.as_str()
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string())
    };
    if let Some(l2) = report.get("l2") {
        s += &format!(
            "l2: ethernet {} -> {} type {}",
            str_of(&l2["src"]),
            str_of(&l2["dst"]),
            str_of(&l2["ethertype"])
        );
        if l2["vlans"].as_u64().unwrap_or(0) > 0 {
            s += &format!(" ({} vlan tags)", l2["vlans"]);
        }
        s.push('\n');
    }
    if let Some(l3) = report.get("l3") {
        if l3["type"] == "ipv4" {
            s += &format!(
                "l3: ipv4 {} -> {} ttl {} id {} length {} header {} protocol {}\n",
                str_of(&l3["src"]),
                str_of(&l3["dst"]),
                l3["ttl"],
                l3["id"],
                l3["length"],
                l3["header_length"],
                l3["protocol"]
            );
        } else {
            s += &format!(
                "l3: ipv6 {} -> {} hop limit {} payload {} next header {}\n",
                str_of(&l3["src"]),
                str_of(&l3["dst"]),
                l3["hop_limit"],
                l3["payload_length"],
                l3["next_header"]
            );
        }
    }
    if let Some(l4) = report.get("l4") {
        s += &format!(
            "l4: udp {} -> {} length {}\n",
            l4["src_port"], l4["dst_port"], l4["length"]
        );
    }
    if let Some(d) = report.get("dns") {
        if d.get("id").is_some() {
            let flags: Vec<String> = d["flags"]
                .as_array()
                .into_iter()
                .flatten()
                .map(str_of)
                .collect();
            s += &format!(
                "dns: id {} opcode {} rcode {} flags [{}]\n",
                d["id"],
                str_of(&d["opcode"]),
                str_of(&d["rcode"]),
                flags.join(" ")
            );
            let c = &d["counts"];
            s += &format!(
                "dns: qdcount {} ancount {} nscount {} arcount {}\n",
                c["qd"], c["an"], c["ns"], c["ar"]
            );
        }
        for q in d["questions"].as_array().into_iter().flatten() {
            s += &format!(
                "question: {} {} {}\n",
                str_of(&q["name"]),
                str_of(&q["type"]),
                str_of(&q["class"])
            );
        }
        for r in d["records"].as_array().into_iter().flatten() {
            if let Some(e) = r.get("edns") {
                s += &format!(
                    "{}: {} OPT udp size {} version {} do {} extended rcode {}\n",
                    str_of(&r["section"]),
                    str_of(&r["name"]),
                    e["udp_size"],
                    e["version"],
                    e["do"],
                    e["extended_rcode"]
                );
                for o in e["options"].as_array().into_iter().flatten() {
                    s += &format!(
                        "  edns option {} ({}): {}\n",
                        str_of(&o["name"]),
                        o["code"],
                        str_of(&o["value"])
                    );
                }
            } else {
                s += &format!(
                    "{}: {} {} {} ttl {} {}\n",
                    str_of(&r["section"]),
                    str_of(&r["name"]),
                    str_of(&r["type"]),
                    str_of(&r["class"]),
                    r["ttl"],
                    str_of(&r["data"])
                );
            }
        }
        if let Some(e) = d.get("error") {
            s += &format!("dns error: {}\n", str_of(e));
        }
    }
    if let Some(e) = report.get("error") {
        s += &format!("error: {}\n", str_of(e));
    }
    s
}

/// Runs `parsedns` with `args` (including the program name).
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
    let mut out = BufWriter::new(stdout);
    let emit = |label: String,
                hex_text: &str,
                out: &mut BufWriter<&mut dyn Write>|
     -> Result<(), CliError> {
        let data = hex_text.split('\t').next().unwrap_or("");
        let packet = parse_hex_packet(data).map_err(|e| format!("{label}: {e}"))?;
        let report = report(&packet);
        if args.json {
            writeln!(out, "{report}")?;
        } else {
            writeln!(out, "{}", text(&report))?;
        }
        Ok(())
    };
    if args.packets.is_empty() {
        for (index, line) in BufReader::new(stdin).lines().enumerate() {
            let line = line.map_err(|e| format!("line {}: {e}", index + 1))?;
            if hex_line_data(&line).is_none() {
                continue;
            }
            emit(format!("line {}", index + 1), &line, &mut out)?;
        }
    } else {
        for (index, packet) in args.packets.iter().enumerate() {
            emit(format!("argument {}", index + 1), packet, &mut out)?;
        }
    }
    out.flush()?;
    Ok(ExitCode::from(EXIT_OK))
}
