//! DNS wire view: header, questions, records, EDNS, with a guard against compression loops.
//!
//! [`Packet`] is the view over untrusted bytes: a checked constructor, the header fields by
//! name (offsets in [`field`]), and one walker ([`Packet::entries`], [`walk_name`],
//! [`RecordRef::rdata_names`], [`RecordRef::options`]) that both [`parse`] (for `parsedns`)
//! and the scrubber (`pcap2hex --scrub`) use.
//!
//! [`parse`] never fails: it returns what it could read and, when the message is malformed,
//! an error saying where (byte offset in the DNS message) and why it stopped.
//!
//! Names: labels are read until the root label; a compression pointer must point before the
//! place it is read from (so every jump goes strictly backwards, which makes loops impossible),
//! and inside the message; at most 255 bytes of name are accepted.

//!
//! Layout: [`wire`] is the view over the bytes (offsets, the checked view, the walker, every
//! [`DnsError`]), [`text`] the text form `parsedns` prints ([`parse`], [`Message`], the names
//! of types and codes), [`dissect`] the typed dissection of a whole frame (link, IP, UDP, DNS)
//! that `parsedns` prints and the tests and fuzz targets use. This file only declares them and re-exports their items, so that
//! `dns::Packet`, `dns::parse` and the rest keep their paths; it must not hold code.

pub mod dissect;
pub mod text;
pub mod wire;

pub use text::{
    class_name, opcode_name, option_name, option_text, parse, rcode_name, read_name, type_name,
    EdnsOption, Message, Question, Record,
};
pub use wire::{
    field, flags, option, rtype, walk_name, DnsError, DnsProblem, EdnsOptions, Entries, Entry,
    Header, NameRef, OptionRef, Packet, QuestionRef, RecordRef, Section,
};

#[cfg(test)]
pub(crate) use wire::tests;
