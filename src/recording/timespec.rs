//! Times on the command line: `HH:MM[:SS]` (today), RFC 3339, a date and
//! time without a zone, or an offset into the recording like `+5m30s`.
//! Times without a zone are in the local time zone, which is UTC when `TZ`
//! is unset (PRODUCT.md).

use crate::Failure;
use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ZonedDateTime};

/// A parsed TIME.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum When {
    /// A wall-clock instant.
    At(Timestamp),
    /// Seconds since the recording's start.
    Offset(f64),
}

impl When {
    /// Seconds since `started` (negative if before it).
    pub fn offset_from(self, started: Option<Timestamp>) -> f64 {
        match (self, started) {
            (When::Offset(s), _) => s,
            (When::At(t), Some(start)) => {
                (t.as_millisecond() - start.as_millisecond()) as f64 / 1000.0
            }
            (When::At(_), None) => 0.0,
        }
    }
}

/// The zone for times written without one.
pub fn local_zone() -> TimeZone {
    if std::env::var_os("TZ").is_none() {
        return TimeZone::UTC;
    }
    TimeZone::try_system().unwrap_or(TimeZone::UTC)
}

/// Parses TIME.
///
/// # Errors
///
/// Not one of the accepted forms (exit 2).
pub fn parse(text: &str) -> Result<When, Failure> {
    let bad = || {
        Failure::invalid(format!(
            "{text:?} is not a time: use HH:MM[:SS], an RFC 3339 time, or an offset like +5m30s"
        ))
    };
    if let Some(rest) = text.strip_prefix('+') {
        return parse_offset(rest).map(When::Offset).ok_or_else(bad);
    }
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Ok(When::At(ts));
    }
    let zone = local_zone();
    if let Ok(dt) = text.parse::<DateTime>() {
        return dt.to_zoned_datetime(zone).map(|z| When::At(z.timestamp())).map_err(|_| bad());
    }
    if let Ok(time) = text.parse::<Time>() {
        let today: Date = ZonedDateTime::now().with_time_zone(zone.clone()).date();
        return today
            .to_datetime(time)
            .to_zoned_datetime(zone)
            .map(|z| When::At(z.timestamp()))
            .map_err(|_| bad());
    }
    Err(bad())
}

/// `5m30s`, `90`, `1h2m3.5s`, `1.5` (seconds).
fn parse_offset(text: &str) -> Option<f64> {
    if text.is_empty() {
        return None;
    }
    if let Ok(secs) = text.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then_some(secs);
    }
    let mut total = 0.0;
    let mut number = String::new();
    for c in text.chars() {
        match c {
            '0'..='9' | '.' => number.push(c),
            'h' | 'm' | 's' => {
                let n: f64 = number.parse().ok()?;
                total += n * match c {
                    'h' => 3600.0,
                    'm' => 60.0,
                    _ => 1.0,
                };
                number.clear();
            }
            _ => return None,
        }
    }
    number.is_empty().then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets() {
        assert_eq!(parse("+5m30s").unwrap(), When::Offset(330.0));
        assert_eq!(parse("+90").unwrap(), When::Offset(90.0));
        assert_eq!(parse("+1h2m3.5s").unwrap(), When::Offset(3723.5));
        assert!(parse("+5x").is_err());
        assert!(parse("+").is_err());
        assert!(parse("tomorrow").is_err());
    }

    #[test]
    fn wall_clock() {
        let When::At(t) = parse("2026-11-28T03:22:24Z").unwrap() else { panic!() };
        assert_eq!(t.as_second(), 1_795_836_144);
        let start: Timestamp = "2026-11-28T03:22:00Z".parse().unwrap();
        assert_eq!(When::At(t).offset_from(Some(start)), 24.0);
        assert!(matches!(parse("14:02").unwrap(), When::At(_)));
        assert!(matches!(parse("14:02:30").unwrap(), When::At(_)));
        assert!(matches!(parse("2026-11-28T14:02").unwrap(), When::At(_)));
    }
}
