//! Rust implementations of libinjection's detectors (`@detectSQLi`, `@detectXSS`).

mod sqli;

pub use sqli::detect_sqli;

/// Placeholder until the XSS detector lands.
pub fn detect_xss(_input: &[u8]) -> bool {
    false
}

#[cfg(test)]
mod tests {
    /// Each vector: input, libinjection's SQLi verdict and fingerprint, its XSS verdict.
    fn vectors() -> impl Iterator<Item = (Vec<u8>, Option<&'static str>, bool)> {
        include_str!("vectors.txt")
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|line| {
                let mut fields = line.split(' ');
                let hex = fields.next().unwrap_or_default();
                let input = (0..hex.len() / 2)
                    .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
                    .collect();
                let sqli = fields.next() == Some("1");
                let fingerprint = fields.next().filter(|_| sqli);
                let xss = fields.next() == Some("1");
                (input, fingerprint, xss)
            })
    }

    #[test]
    fn sqli_agrees_with_libinjection_on_every_vector() {
        let mut checked = 0;
        for (input, fingerprint, _) in vectors() {
            assert_eq!(
                super::detect_sqli(&input).as_deref(),
                fingerprint,
                "{:?}",
                String::from_utf8_lossy(&input)
            );
            checked += 1;
        }
        assert!(checked > 2000, "only {checked} vectors");
    }
}
