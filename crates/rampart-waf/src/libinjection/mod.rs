//! Rust implementations of libinjection's detectors (`@detectSQLi`, `@detectXSS`).

mod sqli;
mod xss;

pub use sqli::detect_sqli;
pub use xss::detect_xss;

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

    #[test]
    fn xss_agrees_with_libinjection_on_every_vector() {
        let mut positives = 0;
        for (input, _, xss) in vectors() {
            assert_eq!(
                super::detect_xss(&input),
                xss,
                "{:?}",
                String::from_utf8_lossy(&input)
            );
            positives += usize::from(xss);
        }
        assert!(positives > 100, "only {positives} XSS vectors");
    }
}
