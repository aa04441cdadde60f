//! Times as the pages show them: relative ("in 52 min", "3 h ago") with the exact UTC time
//! beside it for the `title` attribute.

/// A point in time as the pages show it: relative, with the exact UTC time beside it.
pub struct Moment {
    pub relative: String,
    pub absolute: String,
}

/// "in 52 min", "3 h ago", "—" when there is no time.
pub fn relative(time: Option<chrono::NaiveDateTime>, now: chrono::NaiveDateTime) -> String {
    let Some(time) = time else {
        return "—".into();
    };
    let seconds = (time - now).num_seconds();
    let span = |s: i64| match s {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 86400 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86400),
    };
    match seconds {
        0 => "just now".into(),
        s if s > 0 => format!("in {}", span(s)),
        s => format!("{} ago", span(-s)),
    }
}

pub fn moment(time: Option<chrono::NaiveDateTime>, now: chrono::NaiveDateTime) -> Moment {
    Moment {
        relative: relative(time, now),
        absolute: absolute(time),
    }
}

/// The exact UTC time, for `title` attributes; empty when there is no time.
pub fn absolute(time: Option<chrono::NaiveDateTime>) -> String {
    time.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times() {
        let now = chrono::DateTime::from_timestamp(1_000_000, 0)
            .unwrap()
            .naive_utc();
        let at = |s: i64| Some(now + chrono::TimeDelta::seconds(s));
        assert_eq!(relative(at(52 * 60 + 5), now), "in 52 min");
        assert_eq!(relative(at(-3 * 3600), now), "3 h ago");
        assert_eq!(relative(at(0), now), "just now");
        assert_eq!(relative(None, now), "—");
        assert_eq!(moment(at(0), now).absolute, "1970-01-12 13:46:40 UTC");
    }
}
