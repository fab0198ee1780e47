//! `bpf_asm` assembly (and `tcpdump -d` listings) -> program.
//!
//! The syntax is the current Linux `tools/bpf/bpf_asm` one: case-insensitive mnemonics and
//! keywords, operands `#k`, `x`/`%x`, `a`/`%a`, `M[k]`, `[k]`, `[x + k]`, `4*([k]&0xf)`,
//! `#len`/`len`, ancillary keywords with or without `#`; numbers in decimal (with sign: `#-1` is
//! 4294967295), `0x` hex, `0b` binary and leading-0 octal; comments `;` to end of line,
//! `/* ... */` and `#` in column 0; labels `name:`; CRLF line ends.
//!
//! A `tcpdump -d` listing is accepted too: each line starts with `(NNN)`, conditional jumps end
//! with `jt N jf M` and `ja N` gives absolute instruction numbers; `[proto]`-style ancillary names
//! and `#pktlen` are understood.
//!
//! Where `bpf_asm` is sloppy this is strict, and every error carries `line:col`, the offending text
//! and what was expected: conditional jump offsets over 255, backward or self jumps, unknown and
//! duplicate labels (all through [`crate::asm::labels::resolve`]), more than 4096 instructions,
//! a malformed `4*([k]&0xf)`, numbers that do not fit in 32 bits, scratch indexes over 15, and
//! characters that are not part of the syntax.

use std::fmt;

use thiserror::Error;

use crate::asm::labels::{resolve, LabelError, LabelErrorKind, Stmt, StmtKind, Target};
use crate::asm::quote;
use crate::insn::{
    AluOp, Ancillary, Insn, JumpCond, Operand, RawInsn, Size, BPF_MAXINSNS, BPF_MEMWORDS,
};

/// A position in the source text, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// Line number.
    pub line: usize,
    /// Column number (in characters).
    pub col: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// An assembly error at a position.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{pos}: {message}")]
pub struct AsmError {
    /// Where the error is.
    pub pos: Pos,
    /// The offending text (may be empty at the end of input).
    pub found: String,
    /// What is wrong and what was expected.
    pub message: String,
}

impl AsmError {
    /// Line of the error (1-based).
    pub fn line(&self) -> usize {
        self.pos.line
    }
    /// Column of the error (1-based).
    pub fn col(&self) -> usize {
        self.pos.col
    }
}

impl From<LabelError<Pos>> for AsmError {
    fn from(err: LabelError<Pos>) -> AsmError {
        AsmError {
            pos: err.pos,
            found: String::new(),
            message: err.kind.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Number(u32),
    Punct(char),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    text: String,
    pos: Pos,
    /// First token of its line (after whitespace): listing prefixes are recognised only there.
    line_start: bool,
}

fn describe(tok: Option<&Token>) -> String {
    match tok {
        Some(t) => format!("'{}'", quote(&t.text)),
        None => "end of input".to_string(),
    }
}

fn parse_number_text(text: &str) -> Option<u32> {
    let lower = text.to_ascii_lowercase();
    let (negative, body) = match lower.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, lower.strip_prefix('+').unwrap_or(&lower)),
    };
    let value: u64 = if let Some(hex) = body.strip_prefix("0x") {
        u64::from_str_radix(hex, 16).ok()?
    } else if let Some(bin) = body.strip_prefix("0b") {
        u64::from_str_radix(bin, 2).ok()?
    } else if body.len() > 1 && body.starts_with('0') {
        u64::from_str_radix(&body[1..], 8).ok()?
    } else {
        body.parse().ok()?
    };
    if negative {
        if value > u64::from(u32::MAX) {
            return None;
        }
        Some((value as u32).wrapping_neg())
    } else {
        u32::try_from(value).ok()
    }
}

/// The lexer's state between lines: where it is, and whether a `/* */` comment is open.
struct Lexer {
    /// Number of the next line (1-based).
    line: usize,
    /// Where the open block comment started.
    open_comment: Option<Pos>,
}

impl Lexer {
    /// Reads one line (with or without its line end) and appends its tokens.
    fn line(&mut self, text: &str, tokens: &mut Vec<Token>) -> Result<(), AsmError> {
        let chars: Vec<char> = text.chars().collect();
        let line = self.line;
        self.line += 1;
        let (mut i, mut col) = (0usize, 1usize);
        let mut line_start = true;
        if self.open_comment.is_some() {
            match text.find("*/") {
                Some(end) => {
                    let before = text[..end].chars().count();
                    i = before + 2;
                    col = before + 3;
                    self.open_comment = None;
                }
                None => return Ok(()),
            }
        }
        while i < chars.len() {
            let c = chars[i];
            let pos = Pos { line, col };
            match c {
                '\n' => break,
                ' ' | '\t' | '\r' => {
                    i += 1;
                    col += 1;
                }
                ';' => break,
                '#' if col == 1 => break,
                '/' if chars.get(i + 1) == Some(&'*') => {
                    i += 2;
                    col += 2;
                    loop {
                        if i >= chars.len() || chars[i] == '\n' {
                            self.open_comment = Some(pos);
                            return Ok(());
                        }
                        if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                            i += 2;
                            col += 2;
                            break;
                        }
                        col += 1;
                        i += 1;
                    }
                }
                c if c.is_ascii_digit()
                    || (c == '-' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
                    // bpf_asm reads `+5` as a number; after `x` a `+` is the `[x + k]` operator.
                    || (c == '+'
                        && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())
                        && matches!(tokens.last(), Some(Token { tok: Tok::Punct('#' | '[' | ','), .. }))) =>
                {
                    let start = i;
                    i += 1;
                    while i < chars.len() && chars[i].is_ascii_alphanumeric() {
                        i += 1;
                    }
                    let text: String = chars[start..i].iter().collect();
                    // `(008)` starting a listing line is a decimal instruction number, not octal.
                    let listing_number = matches!(tokens.last(), Some(Token { tok: Tok::Punct('('), line_start: true, .. }));
                    let value = if listing_number && text.bytes().all(|b| b.is_ascii_digit()) {
                        text.parse().ok()
                    } else {
                        parse_number_text(&text)
                    };
                    let value = value.ok_or_else(|| AsmError {
                        pos,
                        found: quote(&text),
                        message: format!(
                            "bad number '{}': expected a 32-bit decimal, 0x hex, 0b binary or 0-prefixed octal number",
                            quote(&text)
                        ),
                    })?;
                    col += i - start;
                    tokens.push(Token {
                        tok: Tok::Number(value),
                        text,
                        pos,
                        line_start,
                    });
                    line_start = false;
                }
                c if c.is_ascii_alphabetic() || c == '_' || c == '.' => {
                    let start = i;
                    while i < chars.len()
                        && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '.')
                    {
                        i += 1;
                    }
                    let text: String = chars[start..i].iter().collect();
                    col += i - start;
                    tokens.push(Token {
                        tok: Tok::Ident(text.clone()),
                        text,
                        pos,
                        line_start,
                    });
                    line_start = false;
                }
                '#' | '%' | '[' | ']' | '(' | ')' | '+' | '*' | '&' | ',' | ':' => {
                    i += 1;
                    col += 1;
                    tokens.push(Token {
                        tok: Tok::Punct(c),
                        text: c.to_string(),
                        pos,
                        line_start,
                    });
                    line_start = false;
                }
                other => {
                    return Err(AsmError {
                        pos,
                        found: other.to_string(),
                        message: format!(
                            "unexpected character '{}': expected an instruction, a label, a number or one of # % [ ] ( ) + * & , :",
                            other.escape_default()
                        ),
                    })
                }
            }
        }
        Ok(())
    }
}

fn ancillary_keyword(word: &str) -> Option<Ancillary> {
    let word = word.to_ascii_lowercase();
    match word.as_str() {
        "vlan_pr" | "vlanp" => return Some(Ancillary::VlanTagPresent),
        "random" => return Some(Ancillary::Random),
        "xor_x" => return Some(Ancillary::AluXorX),
        _ => {}
    }
    Ancillary::ALL
        .into_iter()
        .find(|a| a.keyword() == Some(word.as_str()) || a.tcpdump_name() == word)
}

fn is_len_keyword(word: &str) -> bool {
    word.eq_ignore_ascii_case("len") || word.eq_ignore_ascii_case("pktlen")
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    end: Pos,
    /// Position of the instruction being parsed.
    stmt_pos: Pos,
    /// Every jump target as written: (its instruction's position, text, the target's position),
    /// so that label errors point at the target itself.
    targets: Vec<(Pos, String, Pos)>,
    /// Instructions parsed so far.
    count: u64,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        if token.is_some() {
            self.at += 1;
        }
        token
    }

    fn error_here(&self, expected: &str) -> AsmError {
        let token = self.peek();
        AsmError {
            pos: token.map_or(self.end, |t| t.pos),
            found: token.map_or(String::new(), |t| quote(&t.text)),
            message: format!("expected {expected}, found {}", describe(token)),
        }
    }

    fn eat_punct(&mut self, c: char) -> bool {
        if matches!(self.peek(), Some(Token { tok: Tok::Punct(p), .. }) if *p == c) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect_punct(&mut self, c: char, expected: &str) -> Result<(), AsmError> {
        if self.eat_punct(c) {
            Ok(())
        } else {
            Err(self.error_here(expected))
        }
    }

    fn peek_ident(&self) -> Option<&str> {
        match self.peek() {
            Some(Token {
                tok: Tok::Ident(s), ..
            }) => Some(s.as_str()),
            _ => None,
        }
    }

    fn eat_ident(&mut self, word: &str) -> bool {
        if self
            .peek_ident()
            .is_some_and(|s| s.eq_ignore_ascii_case(word))
        {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn number(&mut self, expected: &str) -> Result<u32, AsmError> {
        match self.peek() {
            Some(Token {
                tok: Tok::Number(n),
                ..
            }) => {
                let n = *n;
                self.at += 1;
                Ok(n)
            }
            _ => Err(self.error_here(expected)),
        }
    }

    /// `x` or `%x` (or `a`/`%a` when `reg` is "a").
    fn eat_register(&mut self, reg: &str) -> bool {
        let save = self.at;
        let percent = self.eat_punct('%');
        if self.eat_ident(reg) {
            return true;
        }
        if percent {
            self.at = save;
        }
        false
    }

    fn mem_index(&mut self) -> Result<u32, AsmError> {
        self.expect_punct('[', "'[' after 'M'")?;
        let pos = self.peek().map_or(self.end, |t| t.pos);
        let index = self.number("a scratch memory index 0..15")?;
        if index >= BPF_MEMWORDS {
            return Err(AsmError {
                pos,
                found: index.to_string(),
                message: format!("scratch memory index {index} out of range: expected 0..15"),
            });
        }
        self.expect_punct(']', "']' closing M[")?;
        Ok(index)
    }

    /// `4*([k]&0xf)` after the mnemonic.
    fn msh(&mut self) -> Result<u32, AsmError> {
        const FORM: &str = "the form 4*([k]&0xf)";
        let start = self.peek().map_or(self.end, |t| t.pos);
        let four = self.number(&format!("{FORM}: '4'"))?;
        self.expect_punct('*', &format!("{FORM}: '*'"))?;
        self.expect_punct('(', &format!("{FORM}: '('"))?;
        self.expect_punct('[', &format!("{FORM}: '['"))?;
        let offset = self.number(&format!("{FORM}: the offset k"))?;
        self.expect_punct(']', &format!("{FORM}: ']'"))?;
        self.expect_punct('&', &format!("{FORM}: '&'"))?;
        let mask = self.number(&format!("{FORM}: '0xf'"))?;
        self.expect_punct(')', &format!("{FORM}: ')'"))?;
        if four != 4 || mask != 0xf {
            return Err(AsmError {
                pos: start,
                found: format!("{four}*([{offset}]&{mask:#x})"),
                message: format!(
                    "bad '{four}*([{offset}]&{mask:#x})': expected {FORM}, with exactly 4 and 0xf"
                ),
            });
        }
        Ok(offset)
    }

    /// `#k`, `x` or `%x`.
    fn alu_operand(&mut self) -> Result<Operand, AsmError> {
        if self.eat_punct('#') {
            return Ok(Operand::K(self.number("a number after '#'")?));
        }
        if self.eat_register("x") {
            return Ok(Operand::X);
        }
        Err(self.error_here("'#k', 'x' or '%x'"))
    }

    /// Records the token at the cursor as a jump target of the current instruction.
    fn note_target(&mut self) {
        if let Some(token) = self.tokens.get(self.at) {
            let text = match &token.tok {
                Tok::Number(n) => n.to_string(),
                _ => token.text.clone(),
            };
            self.targets.push((self.stmt_pos, text, token.pos));
        }
    }

    fn target(&mut self, listing: bool) -> Result<Target, AsmError> {
        if listing {
            if let Some(Token {
                tok: Tok::Number(n),
                ..
            }) = self.peek()
            {
                let n = *n as usize;
                self.note_target();
                self.at += 1;
                return Ok(Target::Index(n));
            }
        }
        match self.peek() {
            Some(Token {
                tok: Tok::Ident(name),
                ..
            }) => {
                let name = name.clone();
                self.note_target();
                self.at += 1;
                Ok(Target::Label(name))
            }
            _ => Err(self.error_here("a jump label")),
        }
    }

    /// A packet load for `ld`, `ldh`, `ldb`.
    fn load(&mut self, size: Size, mnemonic: &str) -> Result<Insn, AsmError> {
        let word = size == Size::Word;
        if self.eat_punct('[') {
            if self.eat_register("x") {
                self.expect_punct('+', "'+' in [x + k]")?;
                let offset = self.number("the offset k in [x + k]")?;
                self.expect_punct(']', "']' closing [x + k]")?;
                return Ok(Insn::LoadInd { size, offset });
            }
            if let Some(anc) = self.peek_ident().and_then(ancillary_keyword) {
                self.at += 1;
                self.expect_punct(']', "']'")?;
                return Ok(Insn::LoadAbs {
                    size,
                    offset: anc.offset(),
                });
            }
            let offset = self.number("a packet offset, 'x + k' or an ancillary name in [ ]")?;
            self.expect_punct(']', "']' closing [k]")?;
            return Ok(Insn::LoadAbs { size, offset });
        }
        let hash = self.eat_punct('#');
        if let Some(word_text) = self.peek_ident().map(str::to_string) {
            if is_len_keyword(&word_text) && word {
                self.at += 1;
                return Ok(Insn::LoadLen);
            }
            if let Some(anc) = ancillary_keyword(&word_text) {
                self.at += 1;
                return Ok(Insn::LoadAbs {
                    size,
                    offset: anc.offset(),
                });
            }
            if !hash && word && word_text.eq_ignore_ascii_case("m") {
                self.at += 1;
                return Ok(Insn::LoadMem(self.mem_index()?));
            }
        }
        if hash && word {
            return Ok(Insn::LoadImm(
                self.number("a number, 'len' or an ancillary keyword after '#'")?,
            ));
        }
        Err(self.error_here(&format!(
            "an operand for '{mnemonic}': {}",
            if word {
                "'#k', '#len', 'M[k]', '[k]', '[x + k]' or an ancillary keyword"
            } else {
                "'[k]', '[x + k]' or an ancillary keyword"
            }
        )))
    }

    fn ldx(&mut self) -> Result<Insn, AsmError> {
        if matches!(
            self.peek(),
            Some(Token {
                tok: Tok::Number(_),
                ..
            })
        ) {
            return Ok(Insn::LoadXMsh(self.msh()?));
        }
        let hash = self.eat_punct('#');
        if self.peek_ident().is_some_and(is_len_keyword) {
            self.at += 1;
            return Ok(Insn::LoadXLen);
        }
        if hash {
            return Ok(Insn::LoadXImm(self.number("a number or 'len' after '#'")?));
        }
        if self.eat_ident("m") {
            return Ok(Insn::LoadXMem(self.mem_index()?));
        }
        Err(self.error_here("an operand for 'ldx': '#k', '#len', 'M[k]' or '4*([k]&0xf)'"))
    }

    fn conditional(&mut self, cond: JumpCond, listing: bool) -> Result<StmtKind, AsmError> {
        let operand = self.alu_operand()?;
        if listing && self.eat_ident("jt") {
            let jt = self.target(true)?;
            if !self.eat_ident("jf") {
                return Err(self.error_here("'jf N'"));
            }
            let jf = self.target(true)?;
            return Ok(StmtKind::Jump {
                cond,
                operand,
                jt,
                jf,
            });
        }
        self.expect_punct(',', "',' and a label after the comparison operand")?;
        let jt = self.target(listing)?;
        let jf = if self.eat_punct(',') {
            self.target(listing)?
        } else {
            Target::Next
        };
        Ok(StmtKind::Jump {
            cond,
            operand,
            jt,
            jf,
        })
    }

    /// `jneq`, `jlt`, `jle`: one label, taken when the base comparison is false.
    fn inverted(&mut self, cond: JumpCond, listing: bool) -> Result<StmtKind, AsmError> {
        let operand = self.alu_operand()?;
        self.expect_punct(',', "',' and a label after the comparison operand")?;
        let jf = self.target(listing)?;
        Ok(StmtKind::Jump {
            cond,
            operand,
            jt: Target::Next,
            jf,
        })
    }

    fn instruction(&mut self, mnemonic: &Token, listing: bool) -> Result<StmtKind, AsmError> {
        let name = match &mnemonic.tok {
            Tok::Ident(s) => s.to_ascii_lowercase(),
            _ => unreachable!("instruction() is called on identifiers"),
        };
        let insn = |insn| Ok(StmtKind::Insn(insn));
        if let Some((cond, inverse)) = JumpCond::from_mnemonic(&name) {
            return if inverse {
                self.inverted(cond, listing)
            } else {
                self.conditional(cond, listing)
            };
        }
        match name.as_str() {
            "ld" => insn(self.load(Size::Word, "ld")?),
            "ldh" => insn(self.load(Size::Half, "ldh")?),
            "ldb" => insn(self.load(Size::Byte, "ldb")?),
            "ldi" => {
                self.eat_punct('#');
                insn(Insn::LoadImm(self.number("a number for 'ldi'")?))
            }
            "ldx" => insn(self.ldx()?),
            "ldxi" => {
                self.eat_punct('#');
                insn(Insn::LoadXImm(self.number("a number for 'ldxi'")?))
            }
            "ldxb" => insn(Insn::LoadXMsh(self.msh()?)),
            "st" => {
                if !self.eat_ident("m") {
                    return Err(self.error_here("'M[k]' after 'st'"));
                }
                insn(Insn::Store(self.mem_index()?))
            }
            "stx" => {
                if !self.eat_ident("m") {
                    return Err(self.error_here("'M[k]' after 'stx'"));
                }
                insn(Insn::StoreX(self.mem_index()?))
            }
            "jmp" | "ja" => Ok(StmtKind::Ja(self.target(listing)?)),
            "neg" => insn(Insn::Neg),
            "tax" => insn(Insn::Tax),
            "txa" => insn(Insn::Txa),
            "ret" => {
                if self.eat_punct('#') {
                    return insn(Insn::RetK(self.number("a number after 'ret #'")?));
                }
                if self.eat_register("a") {
                    return insn(Insn::RetA);
                }
                if self.eat_register("x") {
                    return insn(Insn::RetX);
                }
                // libpcap lists `ret a` as a bare `ret`.
                if listing && self.peek().is_none_or(|t| t.line_start) {
                    return insn(Insn::RetA);
                }
                Err(self.error_here("'#k', 'a' or 'x' after 'ret'"))
            }
            other => match AluOp::ALL.into_iter().find(|op| op.mnemonic() == other) {
                Some(op) => insn(Insn::Alu {
                    op,
                    operand: self.alu_operand()?,
                }),
                None => Err(AsmError {
                    pos: mnemonic.pos,
                    found: quote(&mnemonic.text),
                    message: format!("unknown instruction '{}': expected a bpf_asm mnemonic or a label definition 'name:'", quote(&mnemonic.text)),
                }),
            },
        }
    }

    /// A `(NNN)` listing prefix at the start of a line: its number and position.
    fn listing_prefix(&mut self) -> Result<Option<(u32, Pos, String)>, AsmError> {
        let at_line_start = self
            .peek()
            .is_some_and(|t| t.line_start && t.tok == Tok::Punct('('));
        if !at_line_start {
            return Ok(None);
        }
        self.at += 1;
        let (pos, text) = self
            .peek()
            .map_or((self.end, String::new()), |t| (t.pos, t.text.clone()));
        let number = self.number("an instruction number in '(NNN)'")?;
        self.expect_punct(')', "')' closing '(NNN)'")?;
        Ok(Some((number, pos, text)))
    }

    /// One statement (a label definition or an instruction) at the cursor.
    fn statement(&mut self) -> Result<Stmt<Pos>, AsmError> {
        let prefix = self.listing_prefix()?;
        if let Some((number, pos, text)) = &prefix {
            // Listing jumps name instruction numbers: a line out of place would silently
            // change every target after it.
            let count = self.count;
            if u64::from(*number) != count {
                return Err(AsmError {
                    pos: *pos,
                    found: quote(text),
                    message: format!(
                        "listing line ({}) is instruction {count}: the jump targets of a listing are instruction numbers, so lines must be numbered in order (renumber them, or use bpf_asm labels)",
                        quote(text)
                    ),
                });
            }
        }
        let listing = prefix.is_some();
        let Some(token) = self.next() else {
            return Err(self.error_here("an instruction after '(NNN)'"));
        };
        let Tok::Ident(word) = &token.tok else {
            self.at -= 1;
            return Err(self.error_here("an instruction or a label definition 'name:'"));
        };
        if !listing && self.eat_punct(':') {
            return Ok(Stmt {
                kind: StmtKind::Label(word.clone()),
                pos: token.pos,
            });
        }
        self.stmt_pos = token.pos;
        let kind = self.instruction(&token, listing)?;
        self.count += 1;
        Ok(Stmt {
            kind,
            pos: token.pos,
        })
    }

    /// Parses the statements the tokens so far hold. Unless `last`, a statement that reaches
    /// the end of the tokens waits for the next line, which may continue it.
    fn statements(&mut self, stmts: &mut Vec<Stmt<Pos>>, last: bool) -> Result<(), AsmError> {
        while self.peek().is_some() {
            let (at, count, targets) = (self.at, self.count, self.targets.len());
            let result = self.statement();
            if !last && self.at >= self.tokens.len() {
                self.at = at;
                self.count = count;
                self.targets.truncate(targets);
                break;
            }
            let stmt = result?;
            let is_insn = !matches!(stmt.kind, StmtKind::Label(_));
            stmts.push(stmt);
            if is_insn && self.count > BPF_MAXINSNS as u64 {
                return Err(AsmError {
                    pos: stmts[stmts.len() - 1].pos,
                    found: String::new(),
                    message: format!(
                        "program has {} instructions, expected at most {BPF_MAXINSNS} (the kernel's limit)",
                        self.count
                    ),
                });
            }
        }
        // What is parsed is kept as statements: drop its tokens.
        self.tokens.drain(..self.at);
        self.at = 0;
        Ok(())
    }
}

/// Assembles source given line by line, keeping only the statements read so far: the first
/// error stops it, wherever it is, and so does a 4097th instruction (more than the kernel
/// takes). [`assemble`] is this over a whole text.
pub struct Assembler {
    lexer: Lexer,
    parser: Parser,
    stmts: Vec<Stmt<Pos>>,
    /// Characters of the last line, without its line end.
    last_line_chars: usize,
}

impl Default for Assembler {
    fn default() -> Self {
        Assembler::new()
    }
}

impl Assembler {
    /// An assembler at line 1.
    pub fn new() -> Assembler {
        Assembler {
            lexer: Lexer {
                line: 1,
                open_comment: None,
            },
            parser: Parser {
                tokens: Vec::new(),
                at: 0,
                end: Pos { line: 1, col: 1 },
                stmt_pos: Pos { line: 1, col: 1 },
                targets: Vec::new(),
                count: 0,
            },
            stmts: Vec::new(),
            last_line_chars: 0,
        }
    }

    /// Reads the next line (its line end, `\n` or `\r\n`, may be included).
    pub fn push_line(&mut self, line: &str) -> Result<(), AsmError> {
        let body = match line.strip_suffix('\n') {
            Some(body) => body.strip_suffix('\r').unwrap_or(body),
            None => line,
        };
        self.last_line_chars = body.chars().count();
        self.lexer.line(line, &mut self.parser.tokens)?;
        self.parser.statements(&mut self.stmts, false)
    }

    /// Ends the input and resolves the program.
    pub fn finish(mut self) -> Result<Vec<RawInsn>, AsmError> {
        let end = Pos {
            line: (self.lexer.line - 1).max(1),
            col: self.last_line_chars + 1,
        };
        if let Some(pos) = self.lexer.open_comment {
            return Err(AsmError {
                pos,
                found: "/*".into(),
                message: "unterminated comment: expected '*/'".into(),
            });
        }
        self.parser.end = end;
        self.parser.statements(&mut self.stmts, true)?;
        if !self
            .stmts
            .iter()
            .any(|s| !matches!(s.kind, StmtKind::Label(_)))
        {
            return Err(AsmError {
                pos: end,
                found: String::new(),
                message: "no instructions: expected at least one instruction".into(),
            });
        }
        resolve(&self.stmts, BPF_MAXINSNS).map_err(|err| label_error(err, &self.parser.targets))
    }
}

/// Assembles `bpf_asm` source (or a `tcpdump -d` listing) into a program of at most 4096
/// instructions.
pub fn assemble(source: &str) -> Result<Vec<RawInsn>, AsmError> {
    let mut assembler = Assembler::new();
    for line in source.split_inclusive('\n') {
        assembler.push_line(line)?;
    }
    assembler.finish()
}

/// A label error pointing at the offending target (or label definition) and quoting it.
fn label_error(err: LabelError<Pos>, targets: &[(Pos, String, Pos)]) -> AsmError {
    let named = match &err.kind {
        LabelErrorKind::UnknownLabel(name) => Some(name.as_str()),
        LabelErrorKind::BackwardJump { target }
        | LabelErrorKind::OffsetTooLarge { target, .. }
        | LabelErrorKind::PastEnd { target } => Some(target.as_str()),
        LabelErrorKind::DuplicateLabel { name, .. } => {
            return AsmError {
                pos: err.pos,
                found: name.clone(),
                message: err.kind.to_string(),
            }
        }
        LabelErrorKind::TooManyInstructions { .. } | LabelErrorKind::Empty => None,
    };
    let at = named.and_then(|name| {
        targets
            .iter()
            .find(|(stmt, text, _)| *stmt == err.pos && text == name)
    });
    AsmError {
        pos: at.map_or(err.pos, |(_, _, pos)| *pos),
        found: named.unwrap_or_default().to_string(),
        message: err.kind.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asm(src: &str) -> Vec<(u16, u8, u8, u32)> {
        assemble(src)
            .unwrap_or_else(|e| panic!("{src}: {e}"))
            .into_iter()
            .map(|r| (r.code, r.jt, r.jf, r.k))
            .collect()
    }

    #[test]
    fn numbers_in_every_base() {
        assert_eq!(asm("ld #0x10\nret a"), [(0x00, 0, 0, 16), (0x16, 0, 0, 0)]);
        assert_eq!(asm("ld #0b101\nret a")[0].3, 5);
        assert_eq!(asm("ld #017\nret a")[0].3, 15);
        assert_eq!(asm("ld #-1\nret a")[0].3, 0xffff_ffff);
        assert_eq!(asm("ld #0\nret a")[0].3, 0);
    }

    #[test]
    fn labels_and_short_jumps() {
        let prog = asm("ldh [12]\njeq #0x800, ok\nret #0\nok: ret #65535\n");
        assert_eq!(prog[1], (0x15, 1, 0, 0x800));
        let prog = asm("ldh [12]\njneq #0x800, drop\nret #65535\ndrop: ret #0\n");
        assert_eq!(prog[1], (0x15, 0, 1, 0x800));
        let prog = asm("ld #1\njlt #5, l\nret #1\nl: ret #0");
        assert_eq!(prog[1], (0x35, 0, 1, 5));
        let prog = asm("ld #1\njle x, l\nret #1\nl: ret #0");
        assert_eq!(prog[1], (0x2d, 0, 1, 0));
    }

    #[test]
    fn comments_and_crlf() {
        let prog = asm("# header comment\r\n/* block\r\n comment */ ld #1 ; trailing\r\nret a\r\n");
        assert_eq!(prog.len(), 2);
    }

    #[test]
    fn reads_tcpdump_listing() {
        let listing = "(000) ldh      [12]\n(001) jeq      #0x800           jt 2\tjf 4\n(002) ld       [ifidx]\n(003) ret      #262144\n(004) ret      #0\n";
        let prog = asm(listing);
        assert_eq!(prog[1], (0x15, 0, 2, 0x800));
        assert_eq!(prog[2], (0x20, 0, 0, 0xffff_f008));
    }

    #[test]
    fn errors_have_positions() {
        let err = assemble("ld #1\n  ret @\n").unwrap_err();
        assert_eq!((err.line(), err.col()), (2, 7));
        assert!(err.message.contains("unexpected character '@'"), "{err}");

        let err = assemble("ldx 4*([14]&0xe)\nret a").unwrap_err();
        assert_eq!((err.line(), err.col()), (1, 5));
        assert!(err.message.contains("4*([k]&0xf)"), "{err}");

        let err = assemble("ld M[16]\nret a").unwrap_err();
        assert_eq!((err.line(), err.col()), (1, 6));

        let err = assemble("foo #1\nret a").unwrap_err();
        assert!(
            err.message.starts_with("unknown instruction 'foo'"),
            "{err}"
        );

        let err = assemble("l: ld #1\nja l\nret a").unwrap_err();
        assert_eq!(err.line(), 2);
        assert!(err.message.contains("backwards"), "{err}");
    }
}
