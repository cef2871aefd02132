//! Cross-site scripting detection after libinjection 3.9.2's algorithm (Nick
//! Galbreath, BSD-3-Clause): the input is tokenised as HTML5 from five starting
//! contexts (text, and inside an attribute value unquoted or opened by `'`, `"` or a
//! backtick), and it is XSS when a token is dangerous: a doctype, a blacklisted tag,
//! an event-handler or style attribute, a URL attribute whose value is a
//! `javascript:`/`data:`-like URL (HTML entities decoded), or an IE-specific comment.

/// Where tokenising starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    Data,
    ValueNoQuote,
    ValueSingleQuote,
    ValueDoubleQuote,
    ValueBackQuote,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenType {
    DataText,
    TagNameOpen,
    TagNameClose,
    TagNameSelfClose,
    TagClose,
    AttrName,
    AttrValue,
    TagComment,
    Doctype,
}

/// The tokeniser's next step (libinjection's state functions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Eof,
    Data,
    TagOpen,
    TagNameClose,
    BeforeAttributeName,
    AfterAttributeName,
    SelfClosingStartTag,
    BeforeAttributeValue,
    AttributeValueSingleQuote,
    AttributeValueDoubleQuote,
    AttributeValueBackQuote,
    AfterAttributeValueQuoted,
}

/// The end of input as `h5_skip_white` reports it (a 0xFF byte reads the same, as
/// a signed `char` in libinjection).
const EOF: i32 = -1;

/// libinjection's `h5_is_white`: `strchr` also finds the terminating NUL.
fn is_white(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0)
}

struct Html5<'a> {
    s: &'a [u8],
    pos: usize,
    is_close: bool,
    state: State,
    token_start: usize,
    token_len: usize,
    token_type: TokenType,
}

impl<'a> Html5<'a> {
    fn new(s: &'a [u8], start: Start) -> Self {
        Self {
            s,
            pos: 0,
            is_close: false,
            state: match start {
                Start::Data => State::Data,
                Start::ValueNoQuote => State::BeforeAttributeName,
                Start::ValueSingleQuote => State::AttributeValueSingleQuote,
                Start::ValueDoubleQuote => State::AttributeValueDoubleQuote,
                Start::ValueBackQuote => State::AttributeValueBackQuote,
            },
            token_start: 0,
            token_len: 0,
            token_type: TokenType::DataText,
        }
    }

    fn token(&mut self, start: usize, len: usize, kind: TokenType) {
        self.token_start = start;
        self.token_len = len;
        self.token_type = kind;
    }

    /// The current token's bytes.
    fn text(&self) -> &'a [u8] {
        let end = (self.token_start + self.token_len).min(self.s.len());
        &self.s[self.token_start.min(end)..end]
    }

    /// From the token's start to the end of input (libinjection compares past a
    /// token's end in one place).
    fn rest(&self) -> &'a [u8] {
        &self.s[self.token_start.min(self.s.len())..]
    }

    fn next(&mut self) -> bool {
        match self.state {
            State::Eof => false,
            State::Data => self.data(),
            State::TagOpen => self.tag_open(),
            State::TagNameClose => self.tag_name_close(),
            State::BeforeAttributeName => self.before_attribute_name(),
            State::AfterAttributeName => self.after_attribute_name(),
            State::SelfClosingStartTag => self.self_closing_start_tag(),
            State::BeforeAttributeValue => self.before_attribute_value(),
            State::AttributeValueSingleQuote => self.attribute_value_quote(b'\''),
            State::AttributeValueDoubleQuote => self.attribute_value_quote(b'"'),
            State::AttributeValueBackQuote => self.attribute_value_quote(b'`'),
            State::AfterAttributeValueQuoted => self.after_attribute_value_quoted(),
        }
    }

    fn find(&self, from: usize, b: u8) -> Option<usize> {
        self.s
            .get(from..)?
            .iter()
            .position(|c| *c == b)
            .map(|i| i + from)
    }

    fn skip_white(&mut self) -> i32 {
        while self.pos < self.s.len() {
            let ch = self.s[self.pos];
            match ch {
                0x00 | 0x20 | 0x09 | 0x0a | 0x0b | 0x0c | 0x0d => self.pos += 1,
                0xff => return EOF,
                _ => return i32::from(ch),
            }
        }
        EOF
    }

    fn data(&mut self) -> bool {
        let len = self.s.len();
        match self.find(self.pos, b'<') {
            None => {
                self.token(self.pos, len - self.pos, TokenType::DataText);
                self.state = State::Eof;
                self.token_len != 0
            }
            Some(idx) => {
                self.token(self.pos, idx - self.pos, TokenType::DataText);
                self.pos = idx + 1;
                self.state = State::TagOpen;
                if self.token_len == 0 {
                    return self.tag_open();
                }
                true
            }
        }
    }

    fn tag_open(&mut self) -> bool {
        if self.pos >= self.s.len() {
            return false;
        }
        let ch = self.s[self.pos];
        match ch {
            b'!' => {
                self.pos += 1;
                self.markup_declaration_open()
            }
            b'/' => {
                self.pos += 1;
                self.is_close = true;
                self.end_tag_open()
            }
            b'?' => {
                self.pos += 1;
                self.bogus_comment()
            }
            b'%' => {
                self.pos += 1;
                self.bogus_comment2()
            }
            b'a'..=b'z' | b'A'..=b'Z' | 0 => self.tag_name(),
            _ => {
                if self.pos == 0 {
                    return self.data();
                }
                self.token(self.pos - 1, 1, TokenType::DataText);
                self.state = State::Data;
                true
            }
        }
    }

    fn end_tag_open(&mut self) -> bool {
        if self.pos >= self.s.len() {
            return false;
        }
        match self.s[self.pos] {
            b'>' => self.data(),
            b'a'..=b'z' | b'A'..=b'Z' => self.tag_name(),
            _ => {
                self.is_close = false;
                self.bogus_comment()
            }
        }
    }

    fn tag_name_close(&mut self) -> bool {
        self.is_close = false;
        self.token(self.pos, 1, TokenType::TagNameClose);
        self.pos += 1;
        self.state = if self.pos < self.s.len() {
            State::Data
        } else {
            State::Eof
        };
        true
    }

    fn tag_name(&mut self) -> bool {
        let len = self.s.len();
        let mut pos = self.pos;
        while pos < len {
            let ch = self.s[pos];
            if ch == 0 {
                pos += 1;
            } else if is_white(ch) {
                self.token(self.pos, pos - self.pos, TokenType::TagNameOpen);
                self.pos = pos + 1;
                self.state = State::BeforeAttributeName;
                return true;
            } else if ch == b'/' {
                self.token(self.pos, pos - self.pos, TokenType::TagNameOpen);
                self.pos = pos + 1;
                self.state = State::SelfClosingStartTag;
                return true;
            } else if ch == b'>' {
                if self.is_close {
                    self.token(self.pos, pos - self.pos, TokenType::TagClose);
                    self.pos = pos + 1;
                    self.is_close = false;
                    self.state = State::Data;
                } else {
                    self.token(self.pos, pos - self.pos, TokenType::TagNameOpen);
                    self.pos = pos;
                    self.state = State::TagNameClose;
                }
                return true;
            } else {
                pos += 1;
            }
        }
        self.token(self.pos, len - self.pos, TokenType::TagNameOpen);
        self.state = State::Eof;
        true
    }

    fn before_attribute_name(&mut self) -> bool {
        match self.skip_white() {
            EOF => false,
            c if c == i32::from(b'/') => {
                self.pos += 1;
                self.self_closing_start_tag()
            }
            c if c == i32::from(b'>') => {
                self.state = State::Data;
                self.token(self.pos, 1, TokenType::TagNameClose);
                self.pos += 1;
                true
            }
            _ => self.attribute_name(),
        }
    }

    fn attribute_name(&mut self) -> bool {
        let len = self.s.len();
        let mut pos = self.pos + 1;
        while pos < len {
            let ch = self.s[pos];
            let next = if is_white(ch) {
                Some((State::AfterAttributeName, pos + 1))
            } else if ch == b'/' {
                Some((State::SelfClosingStartTag, pos + 1))
            } else if ch == b'=' {
                Some((State::BeforeAttributeValue, pos + 1))
            } else if ch == b'>' {
                Some((State::TagNameClose, pos))
            } else {
                None
            };
            if let Some((state, new_pos)) = next {
                self.token(self.pos, pos - self.pos, TokenType::AttrName);
                self.state = state;
                self.pos = new_pos;
                return true;
            }
            pos += 1;
        }
        self.token(self.pos, len - self.pos, TokenType::AttrName);
        self.state = State::Eof;
        self.pos = len;
        true
    }

    fn after_attribute_name(&mut self) -> bool {
        match self.skip_white() {
            EOF => false,
            c if c == i32::from(b'/') => {
                self.pos += 1;
                self.self_closing_start_tag()
            }
            c if c == i32::from(b'=') => {
                self.pos += 1;
                self.before_attribute_value()
            }
            c if c == i32::from(b'>') => self.tag_name_close(),
            _ => self.attribute_name(),
        }
    }

    fn before_attribute_value(&mut self) -> bool {
        match self.skip_white() {
            EOF => {
                self.state = State::Eof;
                false
            }
            c if c == i32::from(b'"') => self.attribute_value_quote(b'"'),
            c if c == i32::from(b'\'') => self.attribute_value_quote(b'\''),
            c if c == i32::from(b'`') => self.attribute_value_quote(b'`'),
            _ => self.attribute_value_no_quote(),
        }
    }

    fn attribute_value_quote(&mut self, quote: u8) -> bool {
        let len = self.s.len();
        if self.pos > 0 {
            self.pos += 1;
        }
        match self.find(self.pos, quote) {
            None => {
                self.token(self.pos, len.saturating_sub(self.pos), TokenType::AttrValue);
                self.state = State::Eof;
            }
            Some(idx) => {
                self.token(self.pos, idx - self.pos, TokenType::AttrValue);
                self.state = State::AfterAttributeValueQuoted;
                self.pos += self.token_len + 1;
            }
        }
        true
    }

    fn attribute_value_no_quote(&mut self) -> bool {
        let len = self.s.len();
        let mut pos = self.pos;
        while pos < len {
            let ch = self.s[pos];
            if is_white(ch) {
                self.token(self.pos, pos - self.pos, TokenType::AttrValue);
                self.pos = pos + 1;
                self.state = State::BeforeAttributeName;
                return true;
            } else if ch == b'>' {
                self.token(self.pos, pos - self.pos, TokenType::AttrValue);
                self.pos = pos;
                self.state = State::TagNameClose;
                return true;
            }
            pos += 1;
        }
        self.state = State::Eof;
        self.token(self.pos, len - self.pos, TokenType::AttrValue);
        true
    }

    fn after_attribute_value_quoted(&mut self) -> bool {
        if self.pos >= self.s.len() {
            return false;
        }
        let ch = self.s[self.pos];
        if is_white(ch) {
            self.pos += 1;
            self.before_attribute_name()
        } else if ch == b'/' {
            self.pos += 1;
            self.self_closing_start_tag()
        } else if ch == b'>' {
            self.token(self.pos, 1, TokenType::TagNameClose);
            self.pos += 1;
            self.state = State::Data;
            true
        } else {
            self.before_attribute_name()
        }
    }

    fn self_closing_start_tag(&mut self) -> bool {
        if self.pos >= self.s.len() {
            return false;
        }
        if self.s[self.pos] == b'>' {
            self.token(self.pos.saturating_sub(1), 2, TokenType::TagNameSelfClose);
            self.state = State::Data;
            self.pos += 1;
            true
        } else {
            self.before_attribute_name()
        }
    }

    fn bogus_comment(&mut self) -> bool {
        let len = self.s.len();
        match self.find(self.pos, b'>') {
            None => {
                self.token(self.pos, len - self.pos, TokenType::TagComment);
                self.pos = len;
                self.state = State::Eof;
            }
            Some(idx) => {
                self.token(self.pos, idx - self.pos, TokenType::TagComment);
                self.pos = idx + 1;
                self.state = State::Data;
            }
        }
        true
    }

    /// `<% ... %>` (IE and old Safari).
    fn bogus_comment2(&mut self) -> bool {
        let len = self.s.len();
        let mut pos = self.pos;
        loop {
            match self.find(pos, b'%') {
                Some(idx) if idx + 1 < len => {
                    if self.s[idx + 1] != b'>' {
                        pos = idx + 1;
                        continue;
                    }
                    self.token(self.pos, idx - self.pos, TokenType::TagComment);
                    self.pos = idx + 2;
                    self.state = State::Data;
                    return true;
                }
                _ => {
                    self.token(self.pos, len - self.pos, TokenType::TagComment);
                    self.pos = len;
                    self.state = State::Eof;
                    return true;
                }
            }
        }
    }

    fn markup_declaration_open(&mut self) -> bool {
        let rest = &self.s[self.pos.min(self.s.len())..];
        if rest.len() >= 7 && rest[..7].eq_ignore_ascii_case(b"DOCTYPE") {
            self.doctype()
        } else if rest.len() >= 7 && &rest[..7] == b"[CDATA[" {
            self.pos += 7;
            self.cdata()
        } else if rest.len() >= 2 && &rest[..2] == b"--" {
            self.pos += 2;
            self.comment()
        } else {
            self.bogus_comment()
        }
    }

    fn comment(&mut self) -> bool {
        let len = self.s.len();
        let mut pos = self.pos;
        let unterminated = |h: &mut Self| {
            h.state = State::Eof;
            h.token(h.pos, len - h.pos, TokenType::TagComment);
            true
        };
        loop {
            let idx = match self.find(pos, b'-') {
                Some(idx) if idx + 3 <= len => idx,
                _ => return unterminated(self),
            };
            // NULs between the dashes are ignored.
            let mut offset = 1;
            while idx + offset < len && self.s[idx + offset] == 0 {
                offset += 1;
            }
            if idx + offset == len {
                return unterminated(self);
            }
            let ch = self.s[idx + offset];
            if ch != b'-' && ch != b'!' {
                pos = idx + 1;
                continue;
            }
            offset += 1;
            if idx + offset == len {
                return unterminated(self);
            }
            if self.s[idx + offset] != b'>' {
                pos = idx + 1;
                continue;
            }
            offset += 1;
            self.token(self.pos, idx - self.pos, TokenType::TagComment);
            self.pos = idx + offset;
            self.state = State::Data;
            return true;
        }
    }

    fn cdata(&mut self) -> bool {
        let len = self.s.len();
        let mut pos = self.pos;
        loop {
            match self.find(pos, b']') {
                Some(idx) if idx + 3 <= len => {
                    if self.s[idx + 1] == b']' && self.s[idx + 2] == b'>' {
                        self.state = State::Data;
                        self.token(self.pos, idx - self.pos, TokenType::DataText);
                        self.pos = idx + 3;
                        return true;
                    }
                    pos = idx + 1;
                }
                _ => {
                    self.state = State::Eof;
                    self.token(self.pos, len - self.pos, TokenType::DataText);
                    return true;
                }
            }
        }
    }

    fn doctype(&mut self) -> bool {
        let len = self.s.len();
        self.token_start = self.pos;
        self.token_type = TokenType::Doctype;
        match self.find(self.pos, b'>') {
            None => {
                self.state = State::Eof;
                self.token_len = len - self.pos;
            }
            Some(idx) => {
                self.state = State::Data;
                self.token_len = idx - self.pos;
                self.pos = idx + 1;
            }
        }
        true
    }
}

/// What an attribute name means for its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attribute {
    None,
    /// Always XSS.
    Black,
    /// The value is a URL.
    Url,
    /// The value is CSS.
    Style,
    /// The value names an attribute (SVG `attributeName`).
    Indirect,
}

const BLACK_ATTRIBUTES: &[(&str, Attribute)] = &[
    ("ACTION", Attribute::Url),
    ("ATTRIBUTENAME", Attribute::Indirect),
    ("BY", Attribute::Url),
    ("BACKGROUND", Attribute::Url),
    ("DATAFORMATAS", Attribute::Black),
    ("DATASRC", Attribute::Black),
    ("DYNSRC", Attribute::Url),
    ("FILTER", Attribute::Style),
    ("FORMACTION", Attribute::Url),
    ("FOLDER", Attribute::Url),
    ("FROM", Attribute::Url),
    ("HANDLER", Attribute::Url),
    ("HREF", Attribute::Url),
    ("LOWSRC", Attribute::Url),
    ("POSTER", Attribute::Url),
    ("SRC", Attribute::Url),
    ("STYLE", Attribute::Style),
    ("TO", Attribute::Url),
    ("VALUES", Attribute::Url),
    ("XLINK:HREF", Attribute::Url),
];

const BLACK_TAGS: &[&str] = &[
    "APPLET", "BASE", "COMMENT", "EMBED", "FRAME", "FRAMESET", "HANDLER", "IFRAME", "IMPORT",
    "ISINDEX", "LINK", "LISTENER", "META", "NOSCRIPT", "OBJECT", "SCRIPT", "STYLE", "VMLFRAME",
    "XML", "XSS",
];

const EVENT_ATTRIBUTES: &[&str] = &[
    "ONSTART",
    "ONERROR",
    "ONCLICK",
    "ONMOUSEDOWN",
    "ONMOUSEENTER",
    "ONMOUSELEAVE",
    "ONMOUSEMOVE",
    "ONMOUSEOUT",
    "ONMOUSEOVER",
    "ONMOUSEUP",
    "ONMOUSEWHEEL",
    "ONPROPERTYCHANGE",
    "ONFORMCHANGE",
    "ONFORMINPUT",
    "ONABORT",
    "ONREADYSTATECHANGE",
    "ONACTIVATE",
    "ONBEFOREACTIVATE",
    "ONAFTERPRINT",
    "ONBEFOREPRINT",
    "ONBEFOREUNLOAD",
    "ONBLUR",
    "ONCANPLAY",
    "ONCANPLAYTHROUGH",
    "ONCHANGE",
    "ONCONTEXTMENU",
    "ONCOPY",
    "ONCUT",
    "ONDBLCLICK",
    "ONDRAG",
    "ONDRAGEND",
    "ONDRAGENTER",
    "ONDRAGLEAVE",
    "ONDRAGOVER",
    "ONDRAGSTART",
    "ONDROP",
    "ONDURATIONCHANGE",
    "ONEMPTIED",
    "ONENDED",
    "ONFOCUS",
    "ONFOCUSIN",
    "ONFOCUSOUT",
    "ONHASHCHANGE",
    "ONINPUT",
    "ONINVALID",
    "ONKEYDOWN",
    "ONKEYPRESS",
    "ONKEYUP",
    "ONLOAD",
    "ONLOADEDDATA",
    "ONLOADEDMETADATA",
    "ONLOADSTART",
    "ONMESSAGE",
    "ONOFFLINE",
    "ONONLINE",
    "ONOPEN",
    "ONPAGEHIDE",
    "ONPAGESHOW",
    "ONPASTE",
    "ONPAUSE",
    "ONPLAY",
    "ONPLAYING",
    "ONPOPSTATE",
    "ONPROGRESS",
    "ONRATECHANGE",
    "ONRESET",
    "ONRESIZE",
    "ONSCROLL",
    "ONSEARCH",
    "ONSEEKED",
    "ONSEEKING",
    "ONSELECT",
    "ONSHOW",
    "ONSTALLED",
    "ONSTORAGE",
    "ONSUBMIT",
    "ONSUSPEND",
    "ONTIMEUPDATE",
    "ONTOGGLE",
    "ONTOUCHCANCEL",
    "ONTOUCHEND",
    "ONTOUCHMOVE",
    "ONTOUCHSTART",
    "ONUNLOAD",
    "ONVOLUMECHANGE",
    "ONWAITING",
    "ONWHEEL",
];

/// libinjection's `cstrcasecmp_with_null`: the first `n` bytes of `b`, NULs
/// dropped and letters upper-cased, equal `upper`. Bytes past `b`'s end read as NUL.
fn equals_ignoring_nul(upper: &str, b: &[u8], n: usize) -> bool {
    let upper = upper.as_bytes();
    let mut matched = 0;
    for i in 0..n {
        let cb = b.get(i).copied().unwrap_or(0);
        if cb == 0 {
            continue;
        }
        let ca = upper.get(matched).copied().unwrap_or(0);
        matched += 1;
        if ca != cb.to_ascii_uppercase() {
            return false;
        }
    }
    matched == upper.len()
}

fn is_black_tag(name: &[u8]) -> bool {
    if name.len() < 3 {
        return false;
    }
    if BLACK_TAGS
        .iter()
        .any(|tag| equals_ignoring_nul(tag, name, name.len()))
    {
        return true;
    }
    // Anything SVG or XSL(T).
    name[..3].eq_ignore_ascii_case(b"svg") || name[..3].eq_ignore_ascii_case(b"xsl")
}

/// `rest` runs from the name to the end of input (event names are compared over
/// their own length, as libinjection does).
fn black_attribute(name: &[u8], rest: &[u8]) -> Attribute {
    if name.len() < 2 {
        return Attribute::None;
    }
    if name[..2].eq_ignore_ascii_case(b"on")
        && EVENT_ATTRIBUTES
            .iter()
            .any(|event| equals_ignoring_nul(event, rest, event.len()))
    {
        return Attribute::Black;
    }
    if name.len() >= 5
        && (equals_ignoring_nul("XMLNS", name, 5) || equals_ignoring_nul("XLINK", name, 5))
    {
        return Attribute::Black;
    }
    BLACK_ATTRIBUTES
        .iter()
        .find(|(attribute, _)| equals_ignoring_nul(attribute, name, name.len()))
        .map_or(Attribute::None, |(_, kind)| *kind)
}

/// One character of `src`, decoding a numeric entity (`&#106;`, `&#x6a`); returns
/// the code (libinjection's `html_decode_char_at`) and how many bytes it took.
fn decode_char(src: &[u8]) -> (i32, usize) {
    let at = |i: usize| src.get(i).copied().unwrap_or(0);
    if src.is_empty() {
        return (-1, 0);
    }
    if src[0] != b'&' || src.len() < 2 {
        return (i32::from(src[0]), 1);
    }
    if src[1] != b'#' {
        return (i32::from(b'&'), 1);
    }
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as i32);
    let len = src.len();
    if at(2) == b'x' || at(2) == b'X' {
        let Some(mut val) = hex(at(3)) else {
            return (i32::from(b'&'), 1);
        };
        let mut i = 4;
        while i < len {
            let ch = src[i];
            if ch == b';' {
                return (val, i + 1);
            }
            let Some(digit) = hex(ch) else {
                return (val, i);
            };
            val = val * 16 + digit;
            if val > 0x0010_00FF {
                return (i32::from(b'&'), 1);
            }
            i += 1;
        }
        (val, i)
    } else {
        if !at(2).is_ascii_digit() {
            return (i32::from(b'&'), 1);
        }
        let mut val = i32::from(at(2) - b'0');
        let mut i = 3;
        while i < len {
            let ch = src[i];
            if ch == b';' {
                return (val, i + 1);
            }
            if !ch.is_ascii_digit() {
                return (val, i);
            }
            val = val * 10 + i32::from(ch - b'0');
            if val > 0x0010_00FF {
                return (i32::from(b'&'), 1);
            }
            i += 1;
        }
        (val, i)
    }
}

/// Whether `value`, entities decoded and leading controls, NULs and newlines
/// skipped, starts with `upper` (libinjection's `htmlencode_startswith`).
fn entity_decoded_starts_with(upper: &str, value: &[u8]) -> bool {
    let upper = upper.as_bytes();
    let mut matched = 0;
    let mut rest = value;
    let mut first = true;
    while !rest.is_empty() {
        if matched == upper.len() {
            return true;
        }
        let (mut cb, consumed) = decode_char(rest);
        rest = &rest[consumed.max(1).min(rest.len())..];
        if first && cb <= 32 {
            continue;
        }
        first = false;
        if cb == 0 || cb == 10 {
            continue;
        }
        if (i32::from(b'a')..=i32::from(b'z')).contains(&cb) {
            cb -= 0x20;
        }
        // libinjection compares the code as a (truncated) C char.
        if upper[matched] != cb as u8 {
            return false;
        }
        matched += 1;
    }
    matched == upper.len()
}

fn is_black_url(value: &[u8]) -> bool {
    let start = value
        .iter()
        .position(|b| *b > 32 && *b < 127)
        .unwrap_or(value.len());
    let value = &value[start..];
    ["DATA", "VIEW-SOURCE", "JAVA", "VBSCRIPT"]
        .iter()
        .any(|scheme| entity_decoded_starts_with(scheme, value))
}

fn is_xss_from(input: &[u8], start: Start) -> bool {
    let mut html = Html5::new(input, start);
    let mut attribute = Attribute::None;
    while html.next() {
        let text = html.text();
        if html.token_type != TokenType::AttrValue {
            attribute = Attribute::None;
        }
        match html.token_type {
            TokenType::Doctype => return true,
            TokenType::TagNameOpen => {
                if is_black_tag(text) {
                    return true;
                }
            }
            TokenType::AttrName => attribute = black_attribute(text, html.rest()),
            TokenType::AttrValue => {
                match attribute {
                    Attribute::None => {}
                    Attribute::Black | Attribute::Style => return true,
                    Attribute::Url => {
                        if is_black_url(text) {
                            return true;
                        }
                    }
                    Attribute::Indirect => {
                        if black_attribute(text, html.rest()) != Attribute::None {
                            return true;
                        }
                    }
                }
                attribute = Attribute::None;
            }
            TokenType::TagComment => {
                // IE takes a backtick as a tag end; conditional comments; `<?import`
                // and XML entity definitions.
                if text.contains(&b'`') {
                    return true;
                }
                if text.len() > 3
                    && (text[0] == b'[' && text[1..3].eq_ignore_ascii_case(b"if")
                        || text[..3].eq_ignore_ascii_case(b"xml"))
                {
                    return true;
                }
                if text.len() > 5
                    && (equals_ignoring_nul("IMPORT", text, 6)
                        || equals_ignoring_nul("ENTITY", text, 6))
                {
                    return true;
                }
            }
            TokenType::DataText
            | TokenType::TagNameClose
            | TokenType::TagNameSelfClose
            | TokenType::TagClose => {}
        }
    }
    false
}

/// Whether `input` looks like cross-site scripting in any of the five contexts.
pub fn detect_xss(input: &[u8]) -> bool {
    [
        Start::Data,
        Start::ValueNoQuote,
        Start::ValueSingleQuote,
        Start::ValueDoubleQuote,
        Start::ValueBackQuote,
    ]
    .into_iter()
    .any(|start| is_xss_from(input, start))
}

#[cfg(test)]
mod tests {
    use super::detect_xss;

    #[test]
    fn script_tags_handlers_and_javascript_urls_are_xss() {
        for input in [
            "<script>alert(1)</script>",
            "<img src=x onerror=alert(1)>",
            "<a href=\"javascript:alert(1)\">x</a>",
            "<a href=\"&#106;avascript:alert(1)\">x</a>",
            "\" onmouseover=\"alert(1)",
            "<svg/onload=alert(1)>",
            "<!DOCTYPE html>",
            "<div style=\"background:url(x)\">",
        ] {
            assert!(detect_xss(input.as_bytes()), "{input:?}");
        }
    }

    #[test]
    fn ordinary_text_and_markup_are_not_xss() {
        for input in [
            "hello world",
            "<b>bold</b> and <i>italic</i>",
            "a < b and c > d",
            "<a href=\"https://example.com\">link</a>",
            "",
        ] {
            assert!(!detect_xss(input.as_bytes()), "{input:?}");
        }
    }
}
