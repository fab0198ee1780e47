//! The pcap/pcapng reader never panics and never allocates what a damaged file claims.
#![no_main]

use bpftools::pcap::{link, Reader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = Reader::new(data) else {
        return;
    };
    let mut frame = Vec::new();
    while let Ok(Some(packet)) = reader.next_packet() {
        frame.clear();
        link::to_ethernet(packet.linktype, packet.data, &mut frame);
        let _ = link::network_header(packet.linktype, packet.data);
    }
});
