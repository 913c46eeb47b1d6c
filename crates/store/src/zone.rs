//! Time zones: the two directions of one conversion between instants and an IANA zone's
//! wall clock, for the queue's opening hours and days and the inbox's snooze times (both
//! in the organisation's zone).

use crate::StoreError;
use time::{Date, OffsetDateTime, Time};

/// The local date and time in an IANA time zone.
pub fn local_time(now: OffsetDateTime, tz: &str) -> Result<(Date, Time), StoreError> {
    let zone = jiff::tz::TimeZone::get(tz)
        .map_err(|_| StoreError::Invalid(format!("unknown time zone {tz:?}")))?;
    let ts = jiff::Timestamp::from_second(now.unix_timestamp())
        .map_err(|e| StoreError::Invalid(e.to_string()))?;
    let dt = zone.to_datetime(ts);
    let month =
        time::Month::try_from(dt.month() as u8).map_err(|e| StoreError::Invalid(e.to_string()))?;
    let date = Date::from_calendar_date(i32::from(dt.year()), month, dt.day() as u8)
        .map_err(|e| StoreError::Invalid(e.to_string()))?;
    let time = Time::from_hms(dt.hour() as u8, dt.minute() as u8, dt.second() as u8)
        .map_err(|e| StoreError::Invalid(e.to_string()))?;
    Ok((date, time))
}

/// Whether `tz` names a time zone this installation knows.
pub fn valid_time_zone(tz: &str) -> bool {
    tz.len() <= 64 && jiff::tz::TimeZone::get(tz).is_ok()
}

/// The instant a wall-clock time in an IANA time zone names (a time skipped by a clock
/// change is refused; one that occurs twice is taken the first time).
pub fn utc_of_local(
    local: time::PrimitiveDateTime,
    tz: &str,
) -> Result<OffsetDateTime, StoreError> {
    let zone = jiff::tz::TimeZone::get(tz)
        .map_err(|_| StoreError::Invalid(format!("unknown time zone {tz:?}")))?;
    let civil = jiff::civil::datetime(
        local.year() as i16,
        u8::from(local.month()) as i8,
        local.day() as i8,
        local.hour() as i8,
        local.minute() as i8,
        local.second() as i8,
        0,
    );
    let ambiguous = zone.to_ambiguous_timestamp(civil);
    if matches!(ambiguous.offset(), jiff::tz::AmbiguousOffset::Gap { .. }) {
        return Err(StoreError::Invalid(format!(
            "{civil} does not exist in {tz}"
        )));
    }
    let ts = ambiguous
        .earlier()
        .map_err(|e| StoreError::Invalid(e.to_string()))?;
    OffsetDateTime::from_unix_timestamp(ts.as_second())
        .map_err(|e| StoreError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wall_clock_times_become_instants_in_the_organisations_zone() {
        let at = |s: &str| {
            let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]");
            time::PrimitiveDateTime::parse(s, &fmt).unwrap()
        };
        let t = utc_of_local(at("2026-11-24 18:30"), "Asia/Kolkata").unwrap();
        assert_eq!(t, time::macros::datetime!(2026-11-24 13:00 UTC));
        assert_eq!(
            utc_of_local(at("2026-11-24 18:30"), "UTC").unwrap(),
            time::macros::datetime!(2026-11-24 18:30 UTC)
        );
        // 02:30 is skipped when New York's clocks go forward; 01:30 happens twice when
        // they go back, and the first is taken.
        assert!(utc_of_local(at("2026-03-08 02:30"), "America/New_York").is_err());
        assert_eq!(
            utc_of_local(at("2026-11-01 01:30"), "America/New_York").unwrap(),
            time::macros::datetime!(2026-11-01 05:30 UTC)
        );
        assert!(utc_of_local(at("2026-11-24 18:30"), "Mars/Olympus").is_err());
    }

    #[test]
    fn instants_become_wall_clock_times_and_back() {
        let t = time::macros::datetime!(2026-11-24 13:00 UTC);
        let (d, clock) = local_time(t, "Asia/Kolkata").unwrap();
        assert_eq!(
            (d, clock),
            (
                time::macros::date!(2026 - 11 - 24),
                time::macros::time!(18:30)
            )
        );
        // Past midnight locally while it is still the day before in UTC.
        let (d, clock) = local_time(
            time::macros::datetime!(2026-11-24 23:30 UTC),
            "Europe/Berlin",
        )
        .unwrap();
        assert_eq!(
            (d, clock),
            (
                time::macros::date!(2026 - 11 - 25),
                time::macros::time!(00:30)
            )
        );
        assert_eq!(
            utc_of_local(time::PrimitiveDateTime::new(d, clock), "Europe/Berlin").unwrap(),
            time::macros::datetime!(2026-11-24 23:30 UTC)
        );
        assert!(local_time(t, "Mars/Olympus").is_err());
        assert!(valid_time_zone("America/New_York"));
        assert!(!valid_time_zone("Mars/Olympus"));
        assert!(!valid_time_zone(&"A".repeat(65)));
    }
}
