//! The DNS parser and parsedns's report never panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let message = bpftools::dns::parse(data);
    for (_, record) in &message.records {
        for option in &record.options {
            let _ = bpftools::dns::option_text(option);
        }
    }
    let _ = bpftools::dns::dissect::report(data);
});
