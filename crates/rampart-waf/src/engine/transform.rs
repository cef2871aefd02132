//! Transformations (`t:…`): byte-string rewrites applied before an operator runs.

use crate::seclang::Transformation;

/// Applies `t` to `input`.
pub fn apply(t: Transformation, input: &[u8]) -> Vec<u8> {
    use Transformation as T;
    match t {
        T::None => input.to_vec(),
        T::Lowercase => input.to_ascii_lowercase(),
        T::Uppercase => input.to_ascii_uppercase(),
        T::UrlDecode => url_decode(input, false),
        T::UrlDecodeUni => url_decode(input, true),
        T::HtmlEntityDecode => html_entity_decode(input),
        T::JsDecode => js_decode(input),
        T::CssDecode => css_decode(input),
        T::CmdLine => cmd_line(input),
        T::CompressWhitespace => compress_whitespace(input),
        T::RemoveWhitespace => input
            .iter()
            .copied()
            .filter(|b| !is_space(*b) && *b != 0xa0)
            .collect(),
        T::RemoveNulls => input.iter().copied().filter(|b| *b != 0).collect(),
        T::ReplaceNulls => input
            .iter()
            .map(|b| if *b == 0 { b' ' } else { *b })
            .collect(),
        T::ReplaceComments => replace_comments(input),
        T::RemoveComments => remove_comments(input),
        T::RemoveCommentsChar => remove_comment_chars(input),
        T::NormalizePath => normalize_path(input, false),
        T::NormalizePathWin => normalize_path(input, true),
        T::Utf8ToUnicode => utf8_to_unicode(input),
        T::Base64Decode | T::Base64DecodeExt => base64_decode(input),
        T::Base64Encode => base64_encode(input),
        T::HexDecode => hex_decode(input),
        T::HexEncode => input
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
            .into_bytes(),
        T::UrlEncode => url_encode(input),
        T::Length => input.len().to_string().into_bytes(),
        T::Sha1 => {
            use sha1::Digest;
            sha1::Sha1::digest(input).to_vec()
        }
        T::Md5 => {
            use md5::Digest;
            md5::Md5::digest(input).to_vec()
        }
        T::Trim => trim(input, true, true),
        T::TrimLeft => trim(input, true, false),
        T::TrimRight => trim(input, false, true),
        T::EscapeSeqDecode => escape_seq_decode(input),
        T::SqlHexDecode => sql_hex_decode(input),
        T::ParityEven7bit | T::ParityOdd7bit | T::ParityZero7bit => {
            input.iter().map(|b| b & 0x7f).collect()
        }
    }
}

/// `t` applied to `input`, or `None` when a quick scan shows it would return `input`
/// unchanged (most values of a clean request: nothing to decode, already lower case):
/// no copy then.
pub fn apply_if_changed(t: Transformation, input: &[u8]) -> Option<Vec<u8>> {
    (!leaves_unchanged(t, input)).then(|| apply(t, input))
}

/// `chain` applied in order to `input`, or `None` when every step leaves it unchanged.
pub fn apply_chain_if_changed(chain: &[Transformation], input: &[u8]) -> Option<Vec<u8>> {
    let mut current: Option<Vec<u8>> = None;
    for t in chain {
        if let Some(next) = apply_if_changed(*t, current.as_deref().unwrap_or(input)) {
            current = Some(next);
        }
    }
    current
}

/// Whether `apply(t, input) == input` is certain from a scan for the bytes `t` acts on.
/// `false` means only "maybe changed".
fn leaves_unchanged(t: Transformation, input: &[u8]) -> bool {
    use Transformation as T;
    let none_of = |bytes: &[u8]| match *bytes {
        [a] => memchr::memchr(a, input).is_none(),
        [a, b] => memchr::memchr2(a, b, input).is_none(),
        _ => !input.iter().any(|b| bytes.contains(b)),
    };
    let no_pair = |pair: &[u8]| memchr::memmem::find(input, pair).is_none();
    let no_space = || !input.iter().any(|b| is_space(*b) || *b == 0xa0);
    match t {
        T::None => true,
        T::Lowercase => !input.iter().any(u8::is_ascii_uppercase),
        T::Uppercase => !input.iter().any(u8::is_ascii_lowercase),
        T::UrlDecode | T::UrlDecodeUni => none_of(b"%+"),
        T::HtmlEntityDecode => none_of(b"&"),
        T::JsDecode | T::CssDecode | T::EscapeSeqDecode => none_of(b"\\"),
        // Lower-cases, drops `\ " ' ^`, and collapses or drops separators and spaces.
        T::CmdLine => !input
            .iter()
            .any(|b| b.is_ascii_uppercase() || b"\\\"'^,; \t\r\n".contains(b)),
        T::CompressWhitespace | T::RemoveWhitespace => no_space(),
        T::RemoveNulls | T::ReplaceNulls => none_of(&[0]),
        T::ReplaceComments => no_pair(b"/*"),
        T::RemoveComments => none_of(b"#") && no_pair(b"/*") && no_pair(b"--"),
        T::RemoveCommentsChar => {
            none_of(b"#") && no_pair(b"/*") && no_pair(b"*/") && no_pair(b"--")
        }
        T::NormalizePath => path_is_normal(input),
        T::NormalizePathWin => none_of(b"\\") && path_is_normal(input),
        T::Utf8ToUnicode | T::ParityEven7bit | T::ParityOdd7bit | T::ParityZero7bit => {
            input.is_ascii()
        }
        T::Trim => {
            !input.first().is_some_and(|b| is_space(*b))
                && !input.last().is_some_and(|b| is_space(*b))
        }
        T::TrimLeft => !input.first().is_some_and(|b| is_space(*b)),
        T::TrimRight => !input.last().is_some_and(|b| is_space(*b)),
        T::SqlHexDecode => no_pair(b"0x") && no_pair(b"0X"),
        T::Base64Decode
        | T::Base64DecodeExt
        | T::Base64Encode
        | T::HexDecode
        | T::HexEncode
        | T::UrlEncode
        | T::Length
        | T::Sha1
        | T::Md5 => false,
    }
}

/// Whether `normalize_path` keeps `path` as it is: no `.` or `..` segment and no empty
/// segment other than a leading (absolute) or trailing one.
fn path_is_normal(path: &[u8]) -> bool {
    let count = path.split(|b| *b == b'/').count();
    path.split(|b| *b == b'/')
        .enumerate()
        .all(|(i, segment)| match segment {
            b"." | b".." => false,
            b"" => i == 0 || i + 1 == count,
            _ => true,
        })
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `%XX` (and `+` → space); with `unicode`, `%uXXXX` too (the low byte, or the ASCII
/// character for full-width forms, as ModSecurity does).
pub fn url_decode(input: &[u8], unicode: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if b == b'%' {
            if unicode && matches!(input.get(i + 1), Some(b'u' | b'U')) {
                let digits: Option<Vec<u8>> = (2..6)
                    .map(|k| input.get(i + k).and_then(|d| hex_value(*d)))
                    .collect();
                if let Some(d) = digits {
                    let code = (u32::from(d[0]) << 12)
                        | (u32::from(d[1]) << 8)
                        | (u32::from(d[2]) << 4)
                        | u32::from(d[3]);
                    // Full-width ASCII (U+FF01–U+FF5E) maps to ASCII.
                    let byte = unicode_byte(code);
                    out.push(byte);
                    i += 6;
                    continue;
                }
            }
            if let (Some(h), Some(l)) = (
                input.get(i + 1).and_then(|d| hex_value(*d)),
                input.get(i + 2).and_then(|d| hex_value(*d)),
            ) {
                out.push((h << 4) | l);
                i += 3;
                continue;
            }
            out.push(b);
        } else if b == b'+' {
            out.push(b' ');
        } else {
            out.push(b);
        }
        i += 1;
    }
    out
}

/// `%XX` only (paths: `+` is not a space there).
pub fn percent_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' {
            if let (Some(h), Some(l)) = (
                input.get(i + 1).and_then(|d| hex_value(*d)),
                input.get(i + 2).and_then(|d| hex_value(*d)),
            ) {
                out.push((h << 4) | l);
                i += 3;
                continue;
            }
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

/// The byte ModSecurity keeps of a `%uXXXX`-style code point: full-width ASCII
/// (U+FF01–U+FF5E) becomes ASCII, anything else its low byte.
fn unicode_byte(code: u32) -> u8 {
    if (0xff01..=0xff5e).contains(&code) {
        (code - 0xff00 + 0x20) as u8
    } else {
        (code & 0xff) as u8
    }
}

fn url_encode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    for &b in input {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b);
        } else if b == b' ' {
            out.push(b'+');
        } else {
            out.extend_from_slice(format!("%{b:02x}").as_bytes());
        }
    }
    out
}

/// Decodes `&#123;`, `&#x7b;` (terminated by `;` or not) and the common named entities.
fn html_entity_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'&' {
            let rest = &input[i + 1..];
            if rest.first() == Some(&b'#') {
                let (hex, start) = match rest.get(1) {
                    Some(b'x' | b'X') => (true, 2),
                    _ => (false, 1),
                };
                let digits: Vec<u8> = rest[start..]
                    .iter()
                    .copied()
                    .take_while(|c| {
                        if hex {
                            c.is_ascii_hexdigit()
                        } else {
                            c.is_ascii_digit()
                        }
                    })
                    .collect();
                if !digits.is_empty() {
                    // Any number of digits (zero padding is an evasion); the value saturates.
                    let radix = if hex { 16 } else { 10 };
                    let code = digits.iter().fold(0u32, |acc, d| {
                        acc.saturating_mul(radix)
                            .saturating_add(u32::from(hex_value(*d).unwrap_or(0)))
                    });
                    out.push((code & 0xff) as u8);
                    let mut used = 1 + start + digits.len();
                    if rest.get(start + digits.len()) == Some(&b';') {
                        used += 1;
                    }
                    i += used;
                    continue;
                }
            } else {
                let named: &[(&[u8], u8)] = &[
                    (b"quot", b'"'),
                    (b"amp", b'&'),
                    (b"lt", b'<'),
                    (b"gt", b'>'),
                    (b"nbsp", 0xa0),
                    (b"apos", b'\''),
                ];
                if let Some((name, ch)) = named
                    .iter()
                    .find(|(n, _)| rest.len() >= n.len() && rest[..n.len()].eq_ignore_ascii_case(n))
                {
                    out.push(*ch);
                    let mut used = 1 + name.len();
                    if rest.get(name.len()) == Some(&b';') {
                        used += 1;
                    }
                    i += used;
                    continue;
                }
            }
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

/// JavaScript escapes: `\xHH`, `\uHHHH`, `\0oo`, `\n` and friends, `\c` → `c`.
fn js_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'\\' && i + 1 < input.len() {
            let n = input[i + 1];
            let hexes = |from: usize, count: usize| -> Option<u32> {
                (0..count).try_fold(0u32, |acc, k| {
                    input
                        .get(from + k)
                        .and_then(|d| hex_value(*d))
                        .map(|v| (acc << 4) | u32::from(v))
                })
            };
            match n {
                b'x' | b'X' => {
                    if let Some(v) = hexes(i + 2, 2) {
                        out.push(v as u8);
                        i += 4;
                        continue;
                    }
                }
                b'u' | b'U' => {
                    if let Some(v) = hexes(i + 2, 4) {
                        let byte = unicode_byte(v);
                        out.push(byte);
                        i += 6;
                        continue;
                    }
                }
                b'0'..=b'7' => {
                    let mut v = 0u32;
                    let mut k = 0;
                    while k < 3 && matches!(input.get(i + 1 + k), Some(b'0'..=b'7')) {
                        v = v * 8 + u32::from(input[i + 1 + k] - b'0');
                        k += 1;
                    }
                    out.push((v & 0xff) as u8);
                    i += 1 + k;
                    continue;
                }
                _ => {
                    out.push(match n {
                        b'a' => 7,
                        b'b' => 8,
                        b'f' => 12,
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'v' => 11,
                        other => other,
                    });
                    i += 2;
                    continue;
                }
            }
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

/// CSS escapes: `\` followed by up to six hex digits (and one optional space), or `\c`.
fn css_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'\\' && i + 1 < input.len() {
            let digits: Vec<u8> = input[i + 1..]
                .iter()
                .copied()
                .take_while(u8::is_ascii_hexdigit)
                .take(6)
                .collect();
            if !digits.is_empty() {
                let v = digits.iter().fold(0u32, |acc, d| {
                    (acc << 4) | u32::from(hex_value(*d).unwrap_or(0))
                });
                let byte = unicode_byte(v);
                out.push(byte);
                i += 1 + digits.len();
                if input.get(i).is_some_and(|b| is_space(*b)) {
                    i += 1;
                }
                continue;
            }
            if input[i + 1] == b'\n' {
                i += 2;
                continue;
            }
            out.push(input[i + 1]);
            i += 2;
            continue;
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

/// Windows/Unix command-line normalisation: drops `\ " ' ^`, turns `,` and `;` into
/// spaces, collapses whitespace, removes spaces before `/` and `(`, lowercases.
fn cmd_line(input: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(input.len());
    let mut space = false;
    for &b in input {
        match b {
            b'\\' | b'"' | b'\'' | b'^' => {}
            b' ' | b',' | b';' | b'\t' | b'\r' | b'\n' => space = true,
            b'/' | b'(' => {
                space = false;
                out.push(b);
            }
            _ => {
                if space && !out.is_empty() {
                    out.push(b' ');
                }
                space = false;
                out.push(b.to_ascii_lowercase());
            }
        }
    }
    out
}

fn compress_whitespace(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut in_space = false;
    for &b in input {
        if is_space(b) || b == 0xa0 {
            if !in_space {
                out.push(b' ');
            }
            in_space = true;
        } else {
            out.push(b);
            in_space = false;
        }
    }
    out
}

/// `/* … */` becomes one space (an unterminated one too); `--` and `#` end the input.
fn replace_comments(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i..].starts_with(b"/*") {
            match input[i + 2..].windows(2).position(|w| w == b"*/") {
                Some(p) => i += 2 + p + 2,
                None => i = input.len(),
            }
            out.push(b' ');
            continue;
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

fn remove_comments(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i..].starts_with(b"/*") {
            match input[i + 2..].windows(2).position(|w| w == b"*/") {
                Some(p) => i += 2 + p + 2,
                None => i = input.len(),
            }
            continue;
        }
        if input[i..].starts_with(b"--") || input[i] == b'#' {
            break;
        }
        if input[i..].starts_with(b"<!--") {
            match input[i + 4..].windows(3).position(|w| w == b"-->") {
                Some(p) => i += 4 + p + 3,
                None => i = input.len(),
            }
            continue;
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

fn remove_comment_chars(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let rest = &input[i..];
        if rest.starts_with(b"/*") || rest.starts_with(b"*/") || rest.starts_with(b"--") {
            i += 2;
        } else if rest.starts_with(b"<!--") {
            i += 4;
        } else if rest.starts_with(b"-->") {
            i += 3;
        } else if input[i] == b'#' {
            i += 1;
        } else {
            out.push(input[i]);
            i += 1;
        }
    }
    out
}

/// Removes `.` segments, resolves `..`, collapses `//`; with `windows`, `\` is `/` first.
fn normalize_path(input: &[u8], windows: bool) -> Vec<u8> {
    let text: Vec<u8> = if windows {
        input
            .iter()
            .map(|b| if *b == b'\\' { b'/' } else { *b })
            .collect()
    } else {
        input.to_vec()
    };
    let absolute = text.first() == Some(&b'/');
    let trailing = text.ends_with(b"/") || text.ends_with(b"/.") || text.ends_with(b"/..");
    let mut parts: Vec<&[u8]> = Vec::new();
    for segment in text.split(|b| *b == b'/') {
        match segment {
            b"" | b"." => {}
            b".." => {
                if parts.last().is_some_and(|p| *p != b"..") {
                    parts.pop();
                } else if !absolute {
                    parts.push(segment);
                }
            }
            s => parts.push(s),
        }
    }
    let mut out = Vec::with_capacity(text.len());
    if absolute {
        out.push(b'/');
    }
    out.extend_from_slice(&parts.join(&b'/'));
    if trailing && !out.ends_with(b"/") {
        out.push(b'/');
    }
    out
}

/// Non-ASCII UTF-8 characters become `%uXXXX`.
fn utf8_to_unicode(input: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(input);
    let mut out = Vec::with_capacity(input.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c as u8);
        } else {
            let code = c as u32;
            out.extend_from_slice(format!("%u{:04x}", code & 0xffff).as_bytes());
        }
    }
    out
}

fn base64_decode(input: &[u8]) -> Vec<u8> {
    let clean: Vec<u8> = input
        .iter()
        .copied()
        .take_while(|b| b.is_ascii_alphanumeric() || b"+/=".contains(b) || is_space(*b))
        .filter(|b| !is_space(*b) && *b != b'=')
        .collect();
    let value = |b: u8| -> u32 {
        match b {
            b'A'..=b'Z' => u32::from(b - b'A'),
            b'a'..=b'z' => u32::from(b - b'a' + 26),
            b'0'..=b'9' => u32::from(b - b'0' + 52),
            b'+' => 62,
            _ => 63,
        }
    };
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let n = chunk.iter().fold(0u32, |acc, b| (acc << 6) | value(*b)) << (6 * (4 - chunk.len()));
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..chunk.len().saturating_sub(1)]);
    }
    out
}

fn base64_encode(input: &[u8]) -> Vec<u8> {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(TABLE[((n >> (18 - 6 * k)) & 63) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
    out
}

fn hex_decode(input: &[u8]) -> Vec<u8> {
    input
        .chunks(2)
        .filter_map(|pair| match pair {
            [h, l] => Some((hex_value(*h)? << 4) | hex_value(*l)?),
            _ => None,
        })
        .collect()
}

fn trim(input: &[u8], left: bool, right: bool) -> Vec<u8> {
    let mut s = input;
    if left {
        while s.first().is_some_and(|b| is_space(*b)) {
            s = &s[1..];
        }
    }
    if right {
        while s.last().is_some_and(|b| is_space(*b)) {
            s = &s[..s.len() - 1];
        }
    }
    s.to_vec()
}

/// ANSI C escapes (`\n`, `\x41`, `\101`).
fn escape_seq_decode(input: &[u8]) -> Vec<u8> {
    js_decode(input)
}

/// `0x414243` → `ABC` inside SQL.
fn sql_hex_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'0' && matches!(input.get(i + 1), Some(b'x' | b'X')) {
            let digits: Vec<u8> = input[i + 2..]
                .iter()
                .copied()
                .take_while(u8::is_ascii_hexdigit)
                .collect();
            if digits.len() >= 2 {
                out.extend(hex_decode(&digits[..digits.len() / 2 * 2]));
                i += 2 + digits.len() / 2 * 2;
                continue;
            }
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use Transformation as T;

    fn t(t: Transformation, s: &str) -> String {
        String::from_utf8_lossy(&apply(t, s.as_bytes())).into_owned()
    }

    #[test]
    fn the_unchanged_fast_path_agrees_with_applying() {
        let all = [
            T::None,
            T::Lowercase,
            T::Uppercase,
            T::UrlDecode,
            T::UrlDecodeUni,
            T::UrlEncode,
            T::HtmlEntityDecode,
            T::JsDecode,
            T::CssDecode,
            T::CmdLine,
            T::CompressWhitespace,
            T::RemoveWhitespace,
            T::RemoveNulls,
            T::ReplaceNulls,
            T::ReplaceComments,
            T::RemoveComments,
            T::RemoveCommentsChar,
            T::NormalizePath,
            T::NormalizePathWin,
            T::Utf8ToUnicode,
            T::Base64Decode,
            T::Base64DecodeExt,
            T::Base64Encode,
            T::HexDecode,
            T::HexEncode,
            T::Length,
            T::Sha1,
            T::Md5,
            T::Trim,
            T::TrimLeft,
            T::TrimRight,
            T::EscapeSeqDecode,
            T::SqlHexDecode,
            T::ParityEven7bit,
            T::ParityOdd7bit,
            T::ParityZero7bit,
        ];
        let mut inputs: Vec<Vec<u8>> = [
            "",
            "/",
            "//",
            "a",
            "abc",
            "ABC",
            "/a/b/",
            "a/./b",
            "../x",
            "/a/..",
            "a b",
            " a",
            "a ",
            "a  b",
            "a\tb",
            "%41",
            "a+b",
            "&amp;",
            "\\x41",
            "0x4142",
            "/* c */",
            "a--b",
            "#x",
            "<!-- -->",
            "en-US,en;q=0.5",
            "session=abc123; theme=dark",
            "caf\u{e9}",
            "Mozilla/5.0 (X11; Linux x86_64)",
            "/products",
            "id=42&sort=price",
            "a\\b",
            "x^y",
            "'q'",
            "C:\\dir\\f",
            "*/",
            "-->",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        inputs.push(vec![0, b'a']);
        inputs.push(vec![0xa0, b'a']);
        inputs.push(vec![0xff, 0xfe]);
        // Every two-byte string over the bytes the scans look for, and some others.
        let alphabet = b"aA %+&\\/.#-*0x\t;,'\"^(";
        for &x in alphabet {
            for &y in alphabet {
                inputs.push(vec![x, y]);
                inputs.push(vec![b'/', x, y, b'/']);
            }
        }
        for t in all {
            for input in &inputs {
                let expected = apply(t, input);
                match apply_if_changed(t, input) {
                    Some(changed) => assert_eq!(changed, expected, "{t:?} {input:?}"),
                    None => assert_eq!(&expected, input, "{t:?} claimed {input:?} unchanged"),
                }
            }
        }
    }

    #[test]
    fn decodings() {
        assert_eq!(t(T::UrlDecodeUni, "a%20b+c%u0041%uff1c%zz"), "a b cA<%zz");
        assert_eq!(t(T::UrlDecode, "%3Cscript%3E"), "<script>");
        assert_eq!(t(T::HtmlEntityDecode, "&lt;a&#x41;&#66&quot;"), "<aAB\"");
        assert_eq!(
            t(T::HtmlEntityDecode, "&#0000000000000000000000000000000123;"),
            "{"
        );
        assert_eq!(t(T::JsDecode, "\\x3c\\u0041\\n\\'"), "<A\n'");
        assert_eq!(t(T::CssDecode, "\\3c script\\000041"), "<scriptA");
        assert_eq!(
            t(T::CmdLine, "C^at  \"/etc/pass\"wd, x"),
            "cat/etc/passwd x"
        );
        assert_eq!(t(T::CompressWhitespace, "a \t\n b"), "a b");
        assert_eq!(t(T::RemoveWhitespace, " a b "), "ab");
        assert_eq!(t(T::ReplaceComments, "a/*x*/b/*c"), "a b ");
        assert_eq!(t(T::NormalizePath, "/a/./b/../c//d"), "/a/c/d");
        assert_eq!(t(T::NormalizePathWin, "\\a\\..\\b"), "/b");
        assert_eq!(t(T::Base64Decode, "aGVsbG8="), "hello");
        assert_eq!(t(T::Base64Encode, "hello"), "aGVsbG8=");
        assert_eq!(t(T::HexEncode, "AB"), "4142");
        assert_eq!(t(T::HexDecode, "4142"), "AB");
        assert_eq!(t(T::Length, "abcd"), "4");
        assert_eq!(t(T::Utf8ToUnicode, "aé"), "a%u00e9");
        assert_eq!(t(T::Trim, "  a  "), "a");
        assert_eq!(t(T::SqlHexDecode, "select 0x414243"), "select ABC");
        assert_eq!(t(T::RemoveCommentsChar, "a/*b*/--c#"), "abc");
    }

    #[test]
    fn never_panics_on_truncated_escapes() {
        for input in [
            "%", "%u12", "&#", "&#x", "\\", "\\x4", "\\u12", "0x", "/*", "<!--", "\\1",
        ] {
            for tf in [
                T::UrlDecodeUni,
                T::HtmlEntityDecode,
                T::JsDecode,
                T::CssDecode,
                T::SqlHexDecode,
                T::RemoveComments,
                T::EscapeSeqDecode,
                T::Base64Decode,
                T::HexDecode,
            ] {
                let _ = apply(tf, input.as_bytes());
            }
        }
    }
}
