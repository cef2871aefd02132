//! Quota usage: requests counted per consumer and period, kept in the database so that
//! budgets survive restarts and are shared by every instance.

use async_trait::async_trait;
use sqlx::Row;
use time::{Date, Month, OffsetDateTime};

use crate::{Store, StoreError};

/// The period a quota counts over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuotaPeriod {
    /// A UTC day.
    Day,
    /// A UTC calendar month.
    Month,
}

impl QuotaPeriod {
    /// The key of the period containing `unix_secs`, such as `d:2026-11-23` or `m:2026-11`.
    pub fn key(self, unix_secs: i64) -> String {
        let date = utc_date(unix_secs);
        let (y, m) = (date.year(), u8::from(date.month()));
        match self {
            QuotaPeriod::Day => format!("d:{y:04}-{m:02}-{:02}", date.day()),
            QuotaPeriod::Month => format!("m:{y:04}-{m:02}"),
        }
    }

    /// Seconds from `unix_secs` until the period containing it ends.
    pub fn seconds_left(self, unix_secs: i64) -> i64 {
        let date = utc_date(unix_secs);
        let end = match self {
            QuotaPeriod::Day => date.next_day(),
            QuotaPeriod::Month => {
                let next = date.month().next();
                let year = date.year() + i32::from(next == Month::January);
                Date::from_calendar_date(year, next, 1).ok()
            }
        };
        end.map_or(86_400, |end| {
            end.midnight().assume_utc().unix_timestamp() - unix_secs
        })
    }
}

/// The UTC date of a Unix time (clamped to the dates `time` can represent).
fn utc_date(unix_secs: i64) -> Date {
    OffsetDateTime::from_unix_timestamp(unix_secs)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .date()
}

/// Quota usage storage.
#[async_trait]
pub trait UsageStore: Send + Sync {
    /// Adds `delta` requests to a consumer's count for `period` (a [`QuotaPeriod::key`]);
    /// returns the new count (0, counting nothing, when the consumer no longer exists).
    async fn add_usage(
        &self,
        consumer_id: &str,
        period: &str,
        delta: i64,
    ) -> Result<i64, StoreError>;
    /// A consumer's count for `period` (0 when nothing was counted).
    async fn usage(&self, consumer_id: &str, period: &str) -> Result<i64, StoreError>;
}

#[async_trait]
impl UsageStore for Store {
    async fn add_usage(
        &self,
        consumer_id: &str,
        period: &str,
        delta: i64,
    ) -> Result<i64, StoreError> {
        // Counts of a consumer deleted meanwhile are dropped (0), not retried forever.
        let row = sqlx::query(
            "INSERT INTO quota_usage (consumer_id, period, used) \
             SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM consumers WHERE id = $1) \
             ON CONFLICT (consumer_id, period) DO UPDATE SET used = quota_usage.used + excluded.used \
             RETURNING used",
        )
        .bind(consumer_id)
        .bind(period)
        .bind(delta)
        .fetch_optional(self.pool())
        .await?;
        match row {
            Some(row) => Ok(row.try_get("used")?),
            None => Ok(0),
        }
    }

    async fn usage(&self, consumer_id: &str, period: &str) -> Result<i64, StoreError> {
        let row =
            sqlx::query("SELECT used FROM quota_usage WHERE consumer_id = $1 AND period = $2")
                .bind(consumer_id)
                .bind(period)
                .fetch_optional(self.pool())
                .await?;
        Ok(match row {
            Some(row) => row.try_get("used")?,
            None => 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unix(y: i32, m: Month, d: u8, secs: i64) -> i64 {
        Date::from_calendar_date(y, m, d)
            .expect("date")
            .midnight()
            .assume_utc()
            .unix_timestamp()
            + secs
    }

    #[test]
    fn period_keys_and_ends_follow_the_utc_calendar() {
        let t = unix(2026, Month::November, 23, 19 * 3600);
        assert_eq!(QuotaPeriod::Day.key(t), "d:2026-11-23");
        assert_eq!(QuotaPeriod::Month.key(t), "m:2026-11");
        assert_eq!(QuotaPeriod::Day.seconds_left(t), 5 * 3600);
        assert_eq!(QuotaPeriod::Month.seconds_left(t), 7 * 86_400 + 5 * 3600);
        let leap = unix(2028, Month::February, 29, 0);
        assert_eq!(QuotaPeriod::Day.key(leap), "d:2028-02-29");
        assert_eq!(QuotaPeriod::Month.seconds_left(leap), 86_400);
        let new_year_eve = unix(2026, Month::December, 31, 86_399);
        assert_eq!(QuotaPeriod::Month.key(new_year_eve), "m:2026-12");
        assert_eq!(QuotaPeriod::Month.seconds_left(new_year_eve), 1);
        assert_eq!(QuotaPeriod::Day.key(0), "d:1970-01-01");
    }
}
