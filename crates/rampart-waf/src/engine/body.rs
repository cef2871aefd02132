//! Request body processors: urlencoded, multipart, JSON, XML (text only), with limits.

use crate::seclang::Collection;

/// Most arguments taken from one body.
const MAX_ARGS: usize = 4096;
/// Deepest JSON nesting followed.
const MAX_JSON_DEPTH: usize = 64;
/// Most multipart parts.
const MAX_PARTS: usize = 1024;

/// What a body processor found.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Arguments (name, value).
    pub args: Vec<(String, Vec<u8>)>,
    /// Uploaded files (field name, file name).
    pub files: Vec<(String, Vec<u8>)>,
    /// Uploaded files' sizes in bytes (field name, size).
    pub file_sizes: Vec<(String, usize)>,
    /// Multipart part headers (part name, header line).
    pub part_headers: Vec<(String, Vec<u8>)>,
    /// XML content (`/*`) and attribute values (`//@*`).
    pub xml: Vec<(String, Vec<u8>)>,
    /// Multipart strictness flags.
    pub flags: Vec<(Collection, u8)>,
}

/// `a=1&b=2` with `+` and `%XX` decoded.
pub fn parse_urlencoded(body: &[u8]) -> Vec<(String, Vec<u8>)> {
    body.split(|b| *b == b'&')
        .filter(|p| !p.is_empty())
        .take(MAX_ARGS)
        .map(|pair| {
            let (k, v) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            (
                String::from_utf8_lossy(&super::transform::url_decode(k, false)).into_owned(),
                super::transform::url_decode(v, false),
            )
        })
        .collect()
}

/// Flattens JSON into `json.a.b` / `json.list.0` arguments.
pub fn parse_json(body: &[u8]) -> Result<Parsed, String> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("JSON: {e}"))?;
    let mut parsed = Parsed::default();
    flatten("json", &value, 0, &mut parsed.args)?;
    Ok(parsed)
}

fn flatten(
    prefix: &str,
    value: &serde_json::Value,
    depth: usize,
    out: &mut Vec<(String, Vec<u8>)>,
) -> Result<(), String> {
    use serde_json::Value as V;
    if depth > MAX_JSON_DEPTH {
        return Err("JSON nested too deeply".into());
    }
    if out.len() >= MAX_ARGS {
        return Err("too many JSON values".into());
    }
    match value {
        V::Object(map) => {
            for (key, v) in map {
                flatten(&format!("{prefix}.{key}"), v, depth + 1, out)?;
            }
        }
        V::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten(&format!("{prefix}.{i}"), v, depth + 1, out)?;
            }
        }
        V::String(s) => out.push((prefix.to_string(), s.as_bytes().to_vec())),
        V::Null => out.push((prefix.to_string(), Vec::new())),
        other => out.push((prefix.to_string(), other.to_string().into_bytes())),
    }
    Ok(())
}

/// An XML document as `XML:/*` (its text content) and `XML://@*` (each attribute
/// value) see it.
pub fn xml_entries(body: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut text = Vec::with_capacity(body.len());
    let mut attributes = Vec::new();
    let mut i = 0;
    while i < body.len() {
        if body[i] == b'<' {
            // A tag: collect quoted attribute values up to its end.
            i += 1;
            while i < body.len() && body[i] != b'>' {
                if body[i] == b'"' || body[i] == b'\'' {
                    let quote = body[i];
                    let start = i + 1;
                    i = start;
                    while i < body.len() && body[i] != quote {
                        i += 1;
                    }
                    if attributes.len() < MAX_ARGS {
                        attributes.push(body[start..i.min(body.len())].to_vec());
                    }
                }
                i += 1;
            }
            i += 1;
        } else {
            text.push(body[i]);
            i += 1;
        }
    }
    // As an XML parser would, resolve character and predefined entity references.
    let decode =
        |v: Vec<u8>| super::transform::apply(crate::seclang::Transformation::HtmlEntityDecode, &v);
    let mut out = vec![("/*".to_string(), decode(text))];
    out.extend(
        attributes
            .into_iter()
            .map(|a| ("//@*".to_string(), decode(a))),
    );
    out
}

/// `multipart/form-data`: fields become arguments, files are listed, part headers kept.
pub fn parse_multipart(body: &[u8], content_type: &str) -> Result<Parsed, String> {
    let boundary = content_type
        .split(';')
        .find_map(|p| {
            let p = p.trim();
            p.get(..9)
                .filter(|k| k.eq_ignore_ascii_case("boundary="))
                .map(|_| &p[9..])
        })
        .map(|b| b.trim_matches('"').to_string())
        .filter(|b| !b.is_empty())
        .ok_or_else(|| "multipart without a boundary".to_string())?;
    let delimiter = format!("--{boundary}");
    let mut parsed = Parsed::default();
    let mut sections = split_bytes(body, delimiter.as_bytes());
    if sections.len() < 2 {
        return Err("multipart body without its boundary".into());
    }
    sections.remove(0);
    let mut closed = false;
    for section in sections.into_iter().take(MAX_PARTS) {
        if section.starts_with(b"--") {
            closed = true;
            break;
        }
        let section = section
            .strip_prefix(b"\r\n")
            .or_else(|| section.strip_prefix(b"\n"))
            .unwrap_or(section);
        let (head, content) = match find(section, b"\r\n\r\n") {
            Some(i) => (&section[..i], &section[i + 4..]),
            None => match find(section, b"\n\n") {
                Some(i) => (&section[..i], &section[i + 2..]),
                None => return Err("multipart part without headers".into()),
            },
        };
        let content = content
            .strip_suffix(b"\r\n")
            .or_else(|| content.strip_suffix(b"\n"))
            .unwrap_or(content);
        let head = String::from_utf8_lossy(head);
        let mut name = None;
        let mut filename = None;
        let mut lines = Vec::new();
        for line in head.lines() {
            let line = line.trim_end_matches('\r');
            if let Some((hn, hv)) = line.split_once(':') {
                lines.push(line.as_bytes().to_vec());
                if hn.trim().eq_ignore_ascii_case("content-disposition") {
                    for param in split_params(hv) {
                        let param = param.trim();
                        let unquote = |v: &str| {
                            v.strip_prefix('"')
                                .and_then(|v| v.strip_suffix('"'))
                                .unwrap_or(v)
                                .to_string()
                        };
                        if let Some(v) = param.strip_prefix("name=") {
                            name = Some(unquote(v));
                        } else if let Some(v) = param.strip_prefix("filename=") {
                            filename = Some(unquote(v));
                        }
                    }
                }
            }
        }
        let name = name.ok_or_else(|| "multipart part without a name".to_string())?;
        // MULTIPART_PART_HEADERS is keyed by the part's name, as in ModSecurity.
        parsed
            .part_headers
            .extend(lines.into_iter().map(|l| (name.clone(), l)));
        match filename {
            Some(f) => {
                parsed.file_sizes.push((name.clone(), content.len()));
                parsed.files.push((name, f.into_bytes()));
            }
            None => parsed.args.push((name, content.to_vec())),
        }
    }
    if !closed {
        parsed
            .flags
            .push((Collection::MultipartUnmatchedBoundary, 1));
        parsed.flags.push((Collection::MultipartStrictError, 1));
    }
    Ok(parsed)
}

/// Splits header parameters on `;` outside double quotes.
fn split_params(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, c) in value.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ';' if !quoted => {
                out.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&value[start..]);
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn split_bytes<'a>(hay: &'a [u8], needle: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = hay;
    while let Some(i) = find(rest, needle) {
        out.push(&rest[..i]);
        rest = &rest[i + needle.len()..];
    }
    out.push(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_fields_and_files() {
        let body = b"-----------------------------6276\nContent-Disposition: form-data; name=\"fi=le\"; filename=\"test\"\nContent-Type: text/plain\n\nemail: x@example.com\n\n-----------------------------6276\nContent-Disposition: form-data; name=\"note\"\n\nContact info.\n-----------------------------6276--\n";
        let parsed = parse_multipart(
            body,
            "multipart/form-data; boundary=---------------------------6276",
        )
        .expect("parses");
        assert_eq!(parsed.files, vec![("fi=le".to_string(), b"test".to_vec())]);
        assert_eq!(
            parsed.args,
            vec![("note".to_string(), b"Contact info.".to_vec())]
        );
        assert!(parsed.flags.is_empty());
    }
}
