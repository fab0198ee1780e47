//! The pcap/pcapng reader never panics and never allocates what a damaged file claims; the
//! normalization and the scrubber never panic on what it returns.
#![no_main]

use bpftools::pcap::{link, scrub, Reader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = Reader::new(data) else {
        return;
    };
    let mut frame = Vec::new();
    while let Ok(Some(packet)) = reader.next_packet() {
        frame.clear();
        if link::to_ethernet(packet.linktype, packet.data, &mut frame) {
            scrub::scrub_ethernet(&mut frame);
        }
        let _ = link::network_header(packet.linktype, packet.data);
        let mut raw = packet.data.to_vec();
        scrub::scrub_frame(packet.linktype, &mut raw);
        assert_eq!(raw.len(), packet.data.len(), "scrubbing keeps the length");
    }
});
