use serde::{Deserialize, Serialize};

/// A point in time in UTC, kept as whole microseconds since the Unix epoch:
/// the precision the eHealth API prints (`2026-12-04T10:20:16.300597Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

const MICROS_PER_SECOND: i64 = 1_000_000;
const SECONDS_PER_DAY: i64 = 86_400;

impl Timestamp {
    pub const fn from_unix_micros(micros: i64) -> Self {
        Self(micros)
    }

    pub const fn unix_micros(self) -> i64 {
        self.0
    }

    pub const fn unix_seconds(self) -> i64 {
        self.0.div_euclid(MICROS_PER_SECOND)
    }

    pub fn plus_seconds(self, seconds: u64) -> Self {
        let micros = i64::try_from(seconds)
            .unwrap_or(i64::MAX)
            .saturating_mul(MICROS_PER_SECOND);
        Self(self.0.saturating_add(micros))
    }

    /// Whole seconds from `self` until `later`, rounded up so that a client that
    /// waits that long is never early; zero when `later` has passed.
    pub fn seconds_until(self, later: Timestamp) -> u64 {
        let micros = later.0.saturating_sub(self.0);
        if micros <= 0 {
            return 0;
        }
        u64::try_from((micros + MICROS_PER_SECOND - 1) / MICROS_PER_SECOND).unwrap_or(u64::MAX)
    }

    /// The start of the next UTC day: when per-day counters start over.
    pub fn next_utc_midnight(self) -> Self {
        let day = self.unix_seconds().div_euclid(SECONDS_PER_DAY);
        Self((day + 1) * SECONDS_PER_DAY * MICROS_PER_SECOND)
    }

    /// `YYYY-MM-DD` of the UTC day this instant falls in.
    pub fn utc_date(self) -> String {
        let (year, month, day) = civil_from_days(self.unix_seconds().div_euclid(SECONDS_PER_DAY));
        format!("{year:04}-{month:02}-{day:02}")
    }

    /// RFC 3339 in UTC with exactly six fractional digits.
    pub fn to_rfc3339(self) -> String {
        let seconds = self.unix_seconds();
        let micros = self.0.rem_euclid(MICROS_PER_SECOND);
        let (year, month, day) = civil_from_days(seconds.div_euclid(SECONDS_PER_DAY));
        let second_of_day = seconds.rem_euclid(SECONDS_PER_DAY);
        format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z",
            second_of_day / 3600,
            second_of_day % 3600 / 60,
            second_of_day % 60
        )
    }
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`), so that no calendar crate is needed in the component.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339_with_microseconds() {
        let t = Timestamp::from_unix_micros(1_796_379_616_300_597);
        assert_eq!(t.to_rfc3339(), "2026-12-04T10:20:16.300597Z");
        assert_eq!(
            Timestamp::from_unix_micros(0).to_rfc3339(),
            "1970-01-01T00:00:00.000000Z"
        );
    }

    #[test]
    fn handles_leap_days_and_century_rules() {
        // 2000-02-29 and 2100-03-01 (2100 is not a leap year).
        assert_eq!(
            Timestamp::from_unix_micros(951_782_400 * MICROS_PER_SECOND).utc_date(),
            "2000-02-29"
        );
        assert_eq!(
            Timestamp::from_unix_micros(4_107_542_400 * MICROS_PER_SECOND).utc_date(),
            "2100-03-01"
        );
    }

    #[test]
    fn seconds_until_rounds_up_and_never_goes_negative() {
        let t = Timestamp::from_unix_micros(10 * MICROS_PER_SECOND);
        assert_eq!(t.seconds_until(t.plus_seconds(60)), 60);
        assert_eq!(
            t.seconds_until(Timestamp::from_unix_micros(10 * MICROS_PER_SECOND + 1)),
            1
        );
        assert_eq!(t.plus_seconds(5).seconds_until(t), 0);
    }

    #[test]
    fn next_midnight_is_the_start_of_the_following_day() {
        let t = Timestamp::from_unix_micros(1_796_379_616_300_597);
        assert_eq!(
            t.next_utc_midnight().to_rfc3339(),
            "2026-12-05T00:00:00.000000Z"
        );
    }
}
