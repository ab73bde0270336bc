//! Wall-clock times as tether writes them: RFC 3339, UTC, whole seconds.

use jiff::Timestamp;

/// Now, as `2026-11-28T03:22:24Z`.
pub fn now_rfc3339() -> String {
    format_rfc3339(Timestamp::now())
}

/// `ts` as RFC 3339 UTC with whole seconds.
pub fn format_rfc3339(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// How long ago an RFC 3339 time was, as "5s", "3m", "2h", "4d"; "?" if unparsable.
pub fn age(rfc3339: &str) -> String {
    let Ok(then) = rfc3339.parse::<Timestamp>() else { return "?".into() };
    let secs = Timestamp::now().as_second().saturating_sub(then.as_second()).max(0);
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_seconds() {
        let ts: Timestamp = "2026-11-28T03:22:24.123Z".parse().unwrap();
        assert_eq!(format_rfc3339(ts), "2026-11-28T03:22:24Z");
        assert_eq!(age("garbage"), "?");
        assert!(now_rfc3339().ends_with('Z'));
    }
}
