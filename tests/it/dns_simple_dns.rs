//! `bpftools::dns::parse` against simple-dns's `Packet::parse` on generated DNS messages.
//!
//! A message is generated as a model (header, questions, answer and authority records, maybe an
//! OPT record) and written to bytes here, with compression pointers to the suffixes of names
//! written before it; names mix label lengths from 1 to 63 (up to the 255-byte limit), letters
//! of both cases, digits, and any byte at all. Then it is either left alone or damaged in one
//! named way ([`Damage`]), and both parsers read it.
//!
//! Both accept a well-formed message, and then agree with the model and with each other on the
//! header counts, every question (name, type, class) and every record's owner and type. On a
//! damaged message both refuse, or they differ in one of these documented, deliberate ways:
//! - bytes after the last record: `parse` reports them (a dissector shows what it cannot
//!   explain), simple-dns ignores them;
//! - a question type or class without a name in simple-dns's tables, and the reserved Z flag:
//!   simple-dns refuses the message, `parse` shows the values (flood packets carry anything);
//! - a QCLASS with the top bit set: simple-dns reads it as mDNS's unicast-response bit beside
//!   the class, `parse` shows the 16-bit value;
//! - a compression pointer back into the labels of the same name before it that would end the
//!   name (it lands inside a label, on a zero byte): simple-dns follows any pointer to before
//!   itself (and stops loops by the name's length), `parse` follows only pointers to before
//!   where the walk last jumped from, which alone rules out loops, and refuses this one.
//!
//! Both refuse a name whose labels take 255 bytes (256 with the root label, one more than
//! RFC 1035 allows).

use bpftools::dns::{parse, DnsProblem, Message};
use proptest::prelude::*;
use simple_dns::{Packet, SimpleDnsError};

/// Question types simple-dns names (A, NS, CNAME, SOA, PTR, MX, TXT, AAAA, SRV, HTTPS, ANY).
const KNOWN_QTYPES: [u16; 11] = [1, 2, 5, 6, 12, 15, 16, 28, 33, 65, 255];
/// Question classes simple-dns names (IN, CS, CH, HS, NONE, ANY).
const KNOWN_QCLASSES: [u16; 6] = [1, 2, 3, 4, 254, 255];

/// How a name is written.
#[derive(Debug, Clone)]
enum NameShape {
    /// Labels, compressed against earlier names when `compress`.
    Labels {
        labels: Vec<Vec<u8>>,
        compress: bool,
    },
    /// A pointer to itself.
    SelfPointer,
    /// A pointer past its own place.
    ForwardPointer(u16),
    /// A label, then a pointer back to that label's start: a loop.
    LoopToOwnLabel(Vec<u8>),
    /// A 3-byte label `x 0 y`, then a pointer to its zero byte (ends the name, see the module
    /// documentation).
    PointerIntoOwnLabel,
    /// Labels of `total` bytes with their length bytes (and no compression).
    Long { total: usize },
    /// A length byte of 64..=191: a label type neither parser supports.
    BadLabelType(u8),
}

#[derive(Debug, Clone)]
struct QuestionModel {
    name: NameShape,
    qtype: u16,
    qclass: u16,
}

#[derive(Debug, Clone)]
enum RDataModel {
    A([u8; 4]),
    Aaaa([u8; 16]),
    /// NS (2) or CNAME (5): one name.
    Name(u16, NameShape),
    Mx(u16, NameShape),
    Txt(Vec<Vec<u8>>),
}

impl RDataModel {
    fn rtype(&self) -> u16 {
        match self {
            RDataModel::A(_) => 1,
            RDataModel::Aaaa(_) => 28,
            RDataModel::Name(rtype, _) => *rtype,
            RDataModel::Mx(..) => 15,
            RDataModel::Txt(_) => 16,
        }
    }
}

#[derive(Debug, Clone)]
struct RecordModel {
    owner: NameShape,
    ttl: u32,
    data: RDataModel,
}

#[derive(Debug, Clone)]
struct MessageModel {
    id: u16,
    /// Flags without the reserved Z bit.
    flags: u16,
    questions: Vec<QuestionModel>,
    answers: Vec<RecordModel>,
    authority: Vec<RecordModel>,
    opt: bool,
}

/// One way a written message is damaged.
#[derive(Debug, Clone)]
enum Damage {
    None,
    /// Cut to this fraction (per mille) of its length.
    Truncate(u16),
    /// Bytes appended after the last record.
    Trailing(Vec<u8>),
    /// One more entry than written in a section (0 questions .. 3 additional).
    CountOneMore(usize),
    /// The first question's name replaced by a bad one.
    BadName(NameShape),
    /// The first question's type set to one simple-dns does not know.
    UnknownQtype(u16),
    /// The first question's class set to one simple-dns does not know.
    UnknownQclass(u16),
    /// The first question's class with the top (unicast-response) bit.
    UnicastBit,
    /// The reserved Z flag set.
    ZFlag,
}

/// Writes messages, remembering where each name suffix was written for compression.
struct Writer {
    bytes: Vec<u8>,
    suffixes: Vec<(Vec<Vec<u8>>, usize)>,
}

impl Writer {
    fn name(&mut self, shape: &NameShape) {
        let here = self.bytes.len();
        match shape {
            NameShape::Labels { labels, compress } => {
                for start in 0..labels.len() {
                    let suffix = &labels[start..];
                    if *compress {
                        if let Some((_, at)) = self.suffixes.iter().find(|(s, _)| s == suffix) {
                            let at = *at as u16;
                            self.bytes.extend_from_slice(&(0xc000 | at).to_be_bytes());
                            return;
                        }
                    }
                    let at = self.bytes.len();
                    if at < 0x4000 {
                        self.suffixes.push((suffix.to_vec(), at));
                    }
                    self.bytes.push(labels[start].len() as u8);
                    self.bytes.extend_from_slice(&labels[start]);
                }
                self.bytes.push(0);
            }
            NameShape::SelfPointer => {
                self.bytes
                    .extend_from_slice(&(0xc000 | here as u16).to_be_bytes());
            }
            NameShape::ForwardPointer(ahead) => {
                let target = (here as u16).saturating_add(2 + ahead) & 0x3fff;
                self.bytes
                    .extend_from_slice(&(0xc000 | target).to_be_bytes());
            }
            NameShape::LoopToOwnLabel(label) => {
                self.bytes.push(label.len() as u8);
                self.bytes.extend_from_slice(label);
                self.bytes
                    .extend_from_slice(&(0xc000 | here as u16).to_be_bytes());
            }
            NameShape::PointerIntoOwnLabel => {
                self.bytes.extend_from_slice(&[3, b'x', 0, b'y']);
                self.bytes
                    .extend_from_slice(&(0xc000 | (here + 2) as u16).to_be_bytes());
            }
            NameShape::Long { total } => {
                let mut left = *total;
                while left > 0 {
                    let len = (left - 1).min(63);
                    // A 1-byte remainder cannot be a label: make this one a byte shorter.
                    let len = if left - 1 - len == 1 { len - 1 } else { len };
                    self.bytes.push(len as u8);
                    self.bytes.extend(std::iter::repeat_n(b'a', len));
                    left -= 1 + len;
                }
                self.bytes.push(0);
            }
            NameShape::BadLabelType(byte) => {
                self.bytes.push(*byte);
                self.bytes.extend_from_slice(b"abc\0");
            }
        }
    }

    fn u16(&mut self, value: u16) {
        self.bytes.extend_from_slice(&value.to_be_bytes());
    }

    fn record(&mut self, record: &RecordModel) {
        self.name(&record.owner);
        self.u16(record.data.rtype());
        self.u16(1);
        self.bytes.extend_from_slice(&record.ttl.to_be_bytes());
        let length_at = self.bytes.len();
        self.u16(0);
        match &record.data {
            RDataModel::A(address) => self.bytes.extend_from_slice(address),
            RDataModel::Aaaa(address) => self.bytes.extend_from_slice(address),
            RDataModel::Name(_, name) => self.name(name),
            RDataModel::Mx(preference, name) => {
                self.u16(*preference);
                self.name(name);
            }
            RDataModel::Txt(strings) => {
                for string in strings {
                    self.bytes.push(string.len() as u8);
                    self.bytes.extend_from_slice(string);
                }
            }
        }
        let length = (self.bytes.len() - length_at - 2) as u16;
        self.bytes[length_at..length_at + 2].copy_from_slice(&length.to_be_bytes());
    }
}

fn write(model: &MessageModel) -> Vec<u8> {
    let mut writer = Writer {
        bytes: Vec::new(),
        suffixes: Vec::new(),
    };
    writer.u16(model.id);
    writer.u16(model.flags);
    for count in [
        model.questions.len(),
        model.answers.len(),
        model.authority.len(),
        usize::from(model.opt),
    ] {
        writer.u16(count as u16);
    }
    for question in &model.questions {
        writer.name(&question.name);
        writer.u16(question.qtype);
        writer.u16(question.qclass);
    }
    for record in model.answers.iter().chain(&model.authority) {
        writer.record(record);
    }
    if model.opt {
        // Root owner, OPT, UDP payload size 1232, no extended rcode or flags, no options.
        writer
            .bytes
            .extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    }
    writer.bytes
}

/// A name as `parse` shows it: dotted, `.` and `\` escaped, bytes outside printable ASCII as
/// `\DDD`, `.` for the root.
fn presentation<'a>(labels: impl IntoIterator<Item = &'a [u8]>) -> String {
    let mut text = String::new();
    for label in labels {
        for &byte in label {
            match byte {
                b'.' | b'\\' => {
                    text.push('\\');
                    text.push(char::from(byte));
                }
                0x21..=0x7e => text.push(char::from(byte)),
                _ => text.push_str(&format!("\\{byte:03}")),
            }
        }
        text.push('.');
    }
    if text.is_empty() {
        text.push('.');
    }
    text
}

fn simple_dns_name(name: &simple_dns::Name<'_>) -> String {
    presentation(name.as_bytes())
}

fn model_name(shape: &NameShape) -> String {
    match shape {
        NameShape::Labels { labels, .. } => presentation(labels.iter().map(Vec::as_slice)),
        other => panic!("no model name for {other:?}"),
    }
}

/// Both parsers read the message: it must agree between them and with the model.
fn assert_agree(model: &MessageModel, ours: &Message, theirs: &Packet<'_>, check_model: bool) {
    let header = ours.header.expect("header");
    assert_eq!(usize::from(header.qdcount), theirs.questions.len());
    assert_eq!(usize::from(header.ancount), theirs.answers.len());
    assert_eq!(usize::from(header.nscount), theirs.name_servers.len());
    // simple-dns takes the OPT record out of the additional section.
    assert_eq!(
        usize::from(header.arcount),
        theirs.additional_records.len() + usize::from(theirs.opt().is_some())
    );
    assert_eq!(ours.questions.len(), theirs.questions.len());
    for (index, (a, b)) in ours.questions.iter().zip(&theirs.questions).enumerate() {
        assert_eq!(a.name, simple_dns_name(&b.qname), "question {index}");
        assert_eq!(a.qtype, u16::from(b.qtype), "question {index}");
        assert_eq!(a.qclass & 0x7fff, u16::from(b.qclass), "question {index}");
        assert_eq!(
            a.qclass & 0x8000 != 0,
            b.unicast_response,
            "question {index}"
        );
        if check_model {
            let expected = &model.questions[index];
            assert_eq!(a.name, model_name(&expected.name), "question {index}");
            assert_eq!(
                (a.qtype, a.qclass),
                (expected.qtype, expected.qclass),
                "question {index}"
            );
        }
    }
    let theirs_records: Vec<&simple_dns::ResourceRecord<'_>> = theirs
        .answers
        .iter()
        .chain(&theirs.name_servers)
        .chain(&theirs.additional_records)
        .collect();
    let ours_records: Vec<_> = ours
        .records
        .iter()
        .filter(|(_, record)| record.rtype != 41)
        .collect();
    assert_eq!(ours_records.len(), theirs_records.len());
    for (index, ((_, a), b)) in ours_records.iter().zip(theirs_records).enumerate() {
        assert_eq!(a.name, simple_dns_name(&b.name), "record {index}");
        assert_eq!(a.rtype, u16::from(b.rdata.type_code()), "record {index}");
        assert_eq!(a.ttl, b.ttl, "record {index}");
    }
    if check_model {
        let model_records: Vec<&RecordModel> =
            model.answers.iter().chain(&model.authority).collect();
        assert_eq!(ours_records.len(), model_records.len());
        for (index, ((_, a), b)) in ours_records.iter().zip(model_records).enumerate() {
            assert_eq!(a.name, model_name(&b.owner), "record {index}");
            assert_eq!(a.rtype, b.data.rtype(), "record {index}");
        }
    }
}

/// Reads `bytes` with both parsers and checks the outcome `damage` must have.
fn check(model: &MessageModel, damage: &Damage, bytes: &[u8]) -> Result<(), TestCaseError> {
    let ours = parse(bytes);
    let theirs = Packet::parse(bytes);
    let context = || format!("{damage:?}\n{}\n{model:#?}", hex::encode(bytes));
    let both_refuse = |ours: &Message, theirs: &Result<Packet<'_>, SimpleDnsError>| {
        prop_assert!(
            ours.error.is_some() && theirs.is_err(),
            "want both to refuse: parse: {:?}, simple-dns: {:?}\n{}",
            ours.error,
            theirs.as_ref().err(),
            context()
        );
        Ok(())
    };
    match damage {
        Damage::None | Damage::UnicastBit => {
            prop_assert!(
                ours.error.is_none(),
                "parse: {:?}\n{}",
                ours.error,
                context()
            );
            let theirs = theirs
                .map_err(|e| TestCaseError::fail(format!("simple-dns: {e:?}\n{}", context())))?;
            assert_agree(model, &ours, &theirs, true);
        }
        Damage::Trailing(extra) => {
            let error = ours.error.clone().expect("parse reports trailing bytes");
            prop_assert_eq!(error.offset, bytes.len() - extra.len());
            prop_assert!(
                matches!(error.problem, DnsProblem::TrailingBytes { .. }),
                "{}",
                error
            );
            let theirs = theirs
                .map_err(|e| TestCaseError::fail(format!("simple-dns: {e:?}\n{}", context())))?;
            // Everything before the extra bytes was read, and agrees.
            assert_agree(model, &ours, &theirs, true);
        }
        Damage::Truncate(_) | Damage::CountOneMore(_) => both_refuse(&ours, &theirs)?,
        Damage::BadName(shape) => match shape {
            NameShape::PointerIntoOwnLabel => {
                let error = ours.error.clone().expect("parse refuses the pointer");
                prop_assert!(
                    matches!(error.problem, DnsProblem::PointerNotBackwards { .. }),
                    "{}",
                    error
                );
                let theirs = theirs.map_err(|e| {
                    TestCaseError::fail(format!("simple-dns: {e:?}\n{}", context()))
                })?;
                prop_assert_eq!(simple_dns_name(&theirs.questions[0].qname), "x\\000y.");
            }
            NameShape::Long { total: 255 } => {
                // 256 bytes with the root label: one over RFC 1035's limit; both refuse.
                prop_assert!(
                    theirs.is_err(),
                    "simple-dns reads a 256-byte name\n{}",
                    context()
                );
                prop_assert_eq!(
                    ours.error.as_ref().map(|e| e.problem.clone()),
                    Some(DnsProblem::NameTooLong),
                    "{}",
                    context()
                );
            }
            NameShape::Long { total } if *total < 255 => {
                prop_assert!(
                    ours.error.is_none(),
                    "parse: {:?}\n{}",
                    ours.error,
                    context()
                );
                let theirs = theirs.map_err(|e| {
                    TestCaseError::fail(format!("simple-dns: {e:?}\n{}", context()))
                })?;
                prop_assert_eq!(
                    &ours.questions[0].name,
                    &simple_dns_name(&theirs.questions[0].qname)
                );
            }
            _ => both_refuse(&ours, &theirs)?,
        },
        Damage::UnknownQtype(qtype) => {
            prop_assert!(
                ours.error.is_none(),
                "parse: {:?}\n{}",
                ours.error,
                context()
            );
            prop_assert_eq!(ours.questions[0].qtype, *qtype);
            prop_assert!(
                matches!(theirs, Err(SimpleDnsError::InvalidQType(t)) if t == *qtype),
                "simple-dns: {:?}",
                theirs.as_ref().err()
            );
        }
        Damage::UnknownQclass(qclass) => {
            prop_assert!(
                ours.error.is_none(),
                "parse: {:?}\n{}",
                ours.error,
                context()
            );
            prop_assert_eq!(ours.questions[0].qclass, *qclass);
            prop_assert!(
                matches!(theirs, Err(SimpleDnsError::InvalidClass(c)) if c == *qclass),
                "simple-dns: {:?}",
                theirs.as_ref().err()
            );
        }
        Damage::ZFlag => {
            prop_assert!(
                ours.error.is_none(),
                "parse: {:?}\n{}",
                ours.error,
                context()
            );
            prop_assert!(ours.header.unwrap().flag_names().contains(&"z"));
            prop_assert!(
                matches!(theirs, Err(SimpleDnsError::InvalidHeaderData)),
                "simple-dns: {:?}",
                theirs.as_ref().err()
            );
        }
    }
    Ok(())
}

/// Applies `damage` to the model or to the written bytes.
fn damaged(model: &MessageModel, damage: &Damage) -> (MessageModel, Vec<u8>) {
    let mut model = model.clone();
    match damage {
        Damage::BadName(shape) => model.questions[0].name = shape.clone(),
        Damage::UnknownQtype(qtype) => model.questions[0].qtype = *qtype,
        Damage::UnknownQclass(qclass) => model.questions[0].qclass = *qclass,
        Damage::UnicastBit => model.questions[0].qclass |= 0x8000,
        Damage::ZFlag => model.flags |= 0x0040,
        _ => {}
    }
    let mut bytes = write(&model);
    match damage {
        Damage::Truncate(per_mille) => {
            let keep = bytes.len() * usize::from(*per_mille) / 1000;
            bytes.truncate(keep.min(bytes.len() - 1));
        }
        Damage::Trailing(extra) => bytes.extend_from_slice(extra),
        Damage::CountOneMore(section) => {
            let at = 4 + 2 * section;
            let count = u16::from_be_bytes([bytes[at], bytes[at + 1]]) + 1;
            bytes[at..at + 2].copy_from_slice(&count.to_be_bytes());
        }
        _ => {}
    }
    (model, bytes)
}

fn arb_label() -> impl Strategy<Value = Vec<u8>> {
    let host_byte = prop_oneof![
        proptest::char::range('a', 'z').prop_map(|c| c as u8),
        proptest::char::range('A', 'Z').prop_map(|c| c as u8),
        proptest::char::range('0', '9').prop_map(|c| c as u8),
        Just(b'-'),
        Just(b'_'),
    ];
    let length = prop_oneof![4 => 1usize..=12, 1 => 13usize..=63, 1 => Just(63usize)];
    prop_oneof![
        4 => length.clone().prop_flat_map(move |n| proptest::collection::vec(host_byte.clone(), n)),
        1 => length.prop_flat_map(|n| proptest::collection::vec(any::<u8>(), n)),
    ]
}

/// Labels of at most 255 bytes with the root label; a few labels from a small set so that
/// names share suffixes and compress.
fn arb_labels() -> impl Strategy<Value = Vec<Vec<u8>>> {
    let shared = prop_oneof![
        Just(b"example".to_vec()),
        Just(b"net".to_vec()),
        Just(b"www".to_vec()),
        Just(b"EXAMPLE".to_vec()),
    ];
    proptest::collection::vec(prop_oneof![2 => arb_label(), 3 => shared], 0..8).prop_map(
        |mut labels| {
            while labels.iter().map(|l| 1 + l.len()).sum::<usize>() + 1 > 255 {
                labels.remove(0);
            }
            labels
        },
    )
}

fn arb_name() -> impl Strategy<Value = NameShape> {
    (arb_labels(), proptest::bool::weighted(0.7))
        .prop_map(|(labels, compress)| NameShape::Labels { labels, compress })
}

fn arb_question() -> impl Strategy<Value = QuestionModel> {
    (
        arb_name(),
        proptest::sample::select(KNOWN_QTYPES.to_vec()),
        proptest::sample::select(KNOWN_QCLASSES.to_vec()),
    )
        .prop_map(|(name, qtype, qclass)| QuestionModel {
            name,
            qtype,
            qclass,
        })
}

fn arb_record() -> impl Strategy<Value = RecordModel> {
    let data = prop_oneof![
        any::<[u8; 4]>().prop_map(RDataModel::A),
        any::<[u8; 16]>().prop_map(RDataModel::Aaaa),
        (prop_oneof![Just(2u16), Just(5u16)], arb_name())
            .prop_map(|(rtype, name)| RDataModel::Name(rtype, name)),
        (any::<u16>(), arb_name()).prop_map(|(preference, name)| RDataModel::Mx(preference, name)),
        proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..4)
            .prop_map(RDataModel::Txt),
    ];
    (arb_name(), any::<u32>(), data).prop_map(|(owner, ttl, data)| RecordModel { owner, ttl, data })
}

fn arb_message() -> impl Strategy<Value = MessageModel> {
    (
        any::<u16>(),
        any::<u16>(),
        proptest::collection::vec(arb_question(), 1..5),
        proptest::collection::vec(arb_record(), 0..4),
        proptest::collection::vec(arb_record(), 0..3),
        any::<bool>(),
    )
        .prop_map(
            |(id, flags, questions, answers, authority, opt)| MessageModel {
                id,
                flags: flags & !0x0040,
                questions,
                answers,
                authority,
                opt,
            },
        )
}

fn arb_damage() -> impl Strategy<Value = Damage> {
    let bad_name = prop_oneof![
        Just(NameShape::SelfPointer),
        (0u16..64).prop_map(NameShape::ForwardPointer),
        arb_label().prop_map(NameShape::LoopToOwnLabel),
        Just(NameShape::PointerIntoOwnLabel),
        proptest::sample::select(vec![200usize, 253, 254, 255, 256, 257, 300])
            .prop_map(|total| NameShape::Long { total }),
        (64u8..=191).prop_map(NameShape::BadLabelType),
    ];
    prop_oneof![
        6 => Just(Damage::None),
        2 => (0u16..1000).prop_map(Damage::Truncate),
        1 => proptest::collection::vec(any::<u8>(), 1..9).prop_map(Damage::Trailing),
        1 => (0usize..4).prop_map(Damage::CountOneMore),
        3 => bad_name.prop_map(Damage::BadName),
        1 => prop_oneof![Just(0u16), 65280u16..=65534].prop_map(Damage::UnknownQtype),
        1 => prop_oneof![5u16..=253, 256u16..=0x7fff].prop_map(Damage::UnknownQclass),
        1 => Just(Damage::UnicastBit),
        1 => Just(Damage::ZFlag),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn dns_parse_agrees_with_simple_dns(model in arb_message(), damage in arb_damage()) {
        let (model, bytes) = damaged(&model, &damage);
        check(&model, &damage, &bytes)?;
    }
}

#[test]
fn the_writer_compresses_against_earlier_names() {
    // Two questions, www.example.net and example.net: the second is one pointer to the
    // first's second label (offset 12 + 4).
    let labels =
        |names: &[&str]| -> Vec<Vec<u8>> { names.iter().map(|n| n.as_bytes().to_vec()).collect() };
    let question = |names: &[&str]| QuestionModel {
        name: NameShape::Labels {
            labels: labels(names),
            compress: true,
        },
        qtype: 1,
        qclass: 1,
    };
    let model = MessageModel {
        id: 1,
        flags: 0x0100,
        questions: vec![
            question(&["www", "example", "net"]),
            question(&["example", "net"]),
        ],
        answers: vec![],
        authority: vec![],
        opt: false,
    };
    let bytes = write(&model);
    assert_eq!(&bytes[33..], &[0xc0, 16, 0, 1, 0, 1]);
    let ours = parse(&bytes);
    assert_eq!(ours.error, None);
    assert_eq!(ours.questions[1].name, "example.net.");
    // A 255-byte name (254 of labels and length bytes, then the root label) is the longest.
    let mut writer = Writer {
        bytes: Vec::new(),
        suffixes: Vec::new(),
    };
    writer.name(&NameShape::Long { total: 254 });
    assert_eq!(writer.bytes.len(), 255);
}

#[test]
fn both_parsers_draw_the_name_length_limit_in_the_same_place_but_one_byte() {
    let read = |total: usize| {
        let model = MessageModel {
            id: 1,
            flags: 0,
            questions: vec![QuestionModel {
                name: NameShape::Long { total },
                qtype: 1,
                qclass: 1,
            }],
            answers: vec![],
            authority: vec![],
            opt: false,
        };
        let bytes = write(&model);
        (parse(&bytes), Packet::parse(&bytes).map(|_| ()))
    };
    // 255 bytes with the root label: the longest name RFC 1035 allows; both read it.
    let (ours, theirs) = read(254);
    assert_eq!((ours.error, theirs), (None, Ok(())));
    assert_eq!(ours.questions[0].name.len(), 254);
    // 257 bytes: both refuse.
    let (ours, theirs) = read(256);
    assert_eq!(ours.error.unwrap().problem, DnsProblem::NameTooLong);
    assert!(theirs.is_err());
    // 256 bytes: one over RFC 1035's limit; both refuse.
    let (ours, theirs) = read(255);
    assert_eq!(ours.error.unwrap().problem, DnsProblem::NameTooLong);
    assert!(theirs.is_err());
}
