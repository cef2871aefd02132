//! Secrets shown once: API keys (`rk_…`) and admin tokens (`rat_…`).
//!
//! A secret is `<prefix>_<id>_<random>`: the id finds the record, the random part is
//! checked against its stored SHA-256 digest in constant time. The random part has 256
//! bits of entropy, so a fast digest is the right tool (a password hash such as
//! argon2 protects low-entropy secrets, which these are not).

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a secret is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    /// An API key for a consumer.
    ApiKey,
    /// An admin API token.
    AdminToken,
}

impl SecretKind {
    fn prefix(self) -> &'static str {
        match self {
            SecretKind::ApiKey => "rk",
            SecretKind::AdminToken => "rat",
        }
    }
}

/// A freshly generated secret.
#[derive(Debug, Clone)]
pub struct Secret {
    /// The full secret, shown to its owner once.
    pub value: String,
    /// The public id inside it.
    pub id: String,
    /// Hex SHA-256 of the random part, stored.
    pub digest: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn digest(random: &str) -> String {
    hex(&Sha256::digest(random.as_bytes()))
}

impl Secret {
    /// Generates a secret of `kind` for the record `id`.
    pub fn generate(kind: SecretKind, id: &str) -> Self {
        let random = hex(&rand::random::<[u8; 32]>());
        Self {
            value: format!("{}_{id}_{random}", kind.prefix()),
            id: id.to_string(),
            digest: digest(&random),
        }
    }

    /// Splits a presented secret into (id, random part) if it has the right shape.
    pub fn parse(kind: SecretKind, presented: &str) -> Option<(&str, &str)> {
        let rest = presented.strip_prefix(kind.prefix())?.strip_prefix('_')?;
        let (id, random) = rest.split_once('_')?;
        let valid = !id.is_empty()
            && id.len() <= 32
            && id.bytes().all(|b| b.is_ascii_hexdigit())
            && random.len() == 64
            && random.bytes().all(|b| b.is_ascii_hexdigit());
        valid.then_some((id, random))
    }

    /// Whether `random` matches the stored `digest`, in constant time.
    pub fn matches(random: &str, stored_digest: &str) -> bool {
        digest(random)
            .as_bytes()
            .ct_eq(stored_digest.as_bytes())
            .into()
    }
}

impl crate::Store {
    /// The row of `table` (its `columns`) that a presented secret belongs to, if the
    /// secret has the right shape and its digest matches (compared in constant time).
    pub(crate) async fn row_for_secret(
        &self,
        kind: SecretKind,
        table: &'static str,
        columns: &'static str,
        presented: &str,
    ) -> Result<Option<sqlx::any::AnyRow>, crate::StoreError> {
        use sqlx::Row;
        let Some((id, random)) = Secret::parse(kind, presented) else {
            return Ok(None);
        };
        let row = sqlx::query(&format!(
            "SELECT {columns}, secret_hash FROM {table} WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let digest: String = row.try_get("secret_hash")?;
        Ok(Secret::matches(random, &digest).then_some(row))
    }

    /// Records that the secret of `id` in `table` was just used.
    pub(crate) async fn record_use(
        &self,
        table: &'static str,
        id: &str,
        now: i64,
    ) -> Result<(), crate::StoreError> {
        sqlx::query(&format!(
            "UPDATE {table} SET last_used_at = $1 WHERE id = $2"
        ))
        .bind(now)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_parse_and_match() {
        let s = Secret::generate(SecretKind::ApiKey, "0123abcd");
        assert!(s.value.starts_with("rk_0123abcd_"));
        let (id, random) = Secret::parse(SecretKind::ApiKey, &s.value).expect("parses");
        assert_eq!(id, "0123abcd");
        assert!(Secret::matches(random, &s.digest));
        assert!(!Secret::matches(&"0".repeat(64), &s.digest));
        assert!(
            Secret::parse(SecretKind::AdminToken, &s.value).is_none(),
            "kinds do not mix"
        );
    }

    #[test]
    fn malformed_secrets_are_refused() {
        for bad in [
            "",
            "rk_",
            "rk__x",
            "rk_zz_00",
            "rk_ab_short",
            "rk_ab_cd_ef",
            &format!("rk_{}_{}", "a".repeat(40), "0".repeat(64)),
        ] {
            assert!(Secret::parse(SecretKind::ApiKey, bad).is_none(), "{bad}");
        }
    }
}
