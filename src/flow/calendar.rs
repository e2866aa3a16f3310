//! Opening hours and closures: weekly hours per service, exceptional closures and partial
//! days, French public holidays (Easter-based ones computed; Alsace-Moselle option).
//! Times are Europe/Paris unless the file names another zone.
//!
//! Input: a calendar YAML file (`flows/calendar.yaml`) and an instant (`jiff::ZonedDateTime`).
//! Output: whether a service is open, why not, and when it opens next. No IO but `load`,
//! no clock reads: the caller passes the instant.
//!
//! API CONTRACT: `flow::check`, `flow::interp` code against these signatures.
//!
//! # File format
//!
//! ```yaml
//! timezone: Europe/Paris        # optional, this is the default
//! holidays: france              # `france` (default) or `none`
//! alsace_moselle: false         # true adds Vendredi saint and Saint-Étienne (26 Dec)
//! closures:                     # optional, closures of every service
//!   - { date: 2026-12-31, label: "Inventaire" }
//! partial_days:                 # optional, short days of every service
//!   - { date: 2026-12-24, hours: ["08:30-12:00"], label: "Veille de Noël" }
//! services:
//!   accueil:
//!     hours:                    # French or English day names; a missing day is closed
//!       lundi: ["08:30-12:00", "13:30-16:00"]
//!       mardi: ["08:30-12:00", "13:30-16:00"]
//!       mercredi: ["08:30-12:00"]
//!       jeudi: ["08:30-12:00", "13:30-16:00"]
//!       friday: ["08:30-12:00", "13:30-15:00"]
//!       samedi: []
//!     closures:                 # a date, or a range `from`..`to` (both included)
//!       - { from: 2026-08-10, to: 2026-08-21, label: "Fermeture estivale" }
//!     partial_days:             # hours that replace the weekly hours on that date
//!       - { date: 2026-12-31, hours: ["09:00-11:00"] }
//!   astreinte:
//!     holidays: false           # this service ignores public holidays (default true)
//!     hours:
//!       sunday: ["00:00-24:00"]
//! ```
//!
//! Ranges are `HH:MM-HH:MM` (also `8h30-12h`), start included, end excluded, `24:00` allowed
//! as an end. Ranges of one day may touch but not overlap. Precedence for a date: a closure,
//! then a partial day (which can open a service on a holiday), then a public holiday, then
//! the weekly hours. Day names: `lundi`..`dimanche` or `monday`..`sunday`.
//!
//! Every mistake names `file:line:column` ([`CalendarError`]).
//!
//! # Example
//!
//! ```
//! use guichet::flow::calendar::{Calendar, Status};
//! let yaml = "services:\n  caf:\n    hours:\n      lundi: [\"08:30-12:00\"]\n";
//! let cal = Calendar::parse(yaml, "calendar.yaml".as_ref()).unwrap();
//! let at = jiff::civil::date(2026, 12, 7).at(9, 0, 0, 0).in_tz("Europe/Paris").unwrap();
//! match cal.status("caf", &at).unwrap() {
//!     Status::Open { until } => assert_eq!(until.hour(), 12),
//!     Status::Closed { .. } => unreachable!(),
//! }
//! ```
//!
//! Statuses are computed on instants (timestamps), so a range is correct on the days the
//! clocks change (last Sunday of March and of October); a range starting in the spring-
//! forward gap starts at the first valid instant after it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use jiff::ZonedDateTime;
use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use serde::Deserialize;
use serde_saphyr::Spanned;

/// The zone used when the file names none.
pub const DEFAULT_TIME_ZONE: &str = "Europe/Paris";

/// How many days ahead [`Calendar::status`] looks for the next opening.
pub const SEARCH_DAYS: i64 = 60;

/// A place in an operator file (`file:line:column`, 1-based; 0 when unknown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePos {
    pub file: PathBuf,
    pub line: u64,
    pub column: u64,
}

impl SourcePos {
    fn new(file: &Path, location: serde_saphyr::Location) -> SourcePos {
        SourcePos {
            file: file.to_owned(),
            line: location.line(),
            column: location.column(),
        }
    }
}

impl fmt::Display for SourcePos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// What is wrong with a time range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeProblem {
    /// Not of the form `HH:MM-HH:MM`.
    Syntax,
    /// An hour above 24 (or 24 with minutes, or 24 as a start).
    HourOutOfRange(u32),
    /// Minutes above 59.
    MinuteOutOfRange(u32),
    /// The end is not after the start.
    EndNotAfterStart,
}

impl fmt::Display for RangeProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RangeProblem::Syntax => write!(f, "expected \"HH:MM-HH:MM\" such as \"08:30-12:00\""),
            RangeProblem::HourOutOfRange(h) => {
                write!(f, "hour {h} is out of range (00 to 23, or 24:00 as an end)")
            }
            RangeProblem::MinuteOutOfRange(m) => write!(f, "minute {m} is out of range (00 to 59)"),
            RangeProblem::EndNotAfterStart => write!(f, "the end must come after the start"),
        }
    }
}

/// Why a calendar could not be loaded or asked.
#[derive(Debug, thiserror::Error)]
pub enum CalendarError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// A service name that the calendar does not define.
    #[error("unknown service `{0}` in the calendar")]
    UnknownService(String),
    /// The YAML does not parse or does not have the expected shape (unknown key, wrong type).
    #[error("{at}: {message}")]
    Yaml { at: SourcePos, message: String },
    /// A time range that cannot be read or makes no sense.
    #[error("{at}: bad time range `{range}`: {problem}")]
    BadTimeRange {
        at: SourcePos,
        range: String,
        problem: RangeProblem,
    },
    /// Two ranges of one day overlap.
    #[error("{at}: time range `{range}` overlaps `{other}` of the same day; merge them")]
    OverlappingRanges {
        at: SourcePos,
        range: String,
        other: String,
    },
    /// A date that is not `YYYY-MM-DD` or does not exist.
    #[error("{at}: bad date `{text}`: expected YYYY-MM-DD such as 2026-12-24")]
    BadDate { at: SourcePos, text: String },
    /// A closure without `date`, or with `to` before `from`, or both forms at once.
    #[error(
        "{at}: a closure needs either `date: YYYY-MM-DD` or `from:` and `to:` with `from` not after `to`"
    )]
    BadClosure { at: SourcePos },
    /// A time zone name unknown to the bundled tz database.
    #[error("{at}: unknown time zone `{name}`: expected an IANA name such as Europe/Paris")]
    UnknownTimeZone { at: SourcePos, name: String },
    /// A holiday set other than `france` or `none`.
    #[error("{at}: unknown holiday set `{name}`: expected `france` or `none`")]
    UnknownHolidaySet { at: SourcePos, name: String },
}

/// Why a service is closed at an instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClosedReason {
    /// A public holiday, with its French name ("Lundi de Pâques").
    Holiday(String),
    /// An exceptional closure, with its label from the file (also: outside the short hours
    /// of a labelled partial day, when the weekly hours would have been open).
    Closure(String),
    /// Outside the weekly hours.
    OutsideHours,
}

/// The state of a service at an instant.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// Open until `until` (the end of the continuous opening, across touching ranges and
    /// midnight, looked for at most [`SEARCH_DAYS`] ahead).
    Open { until: jiff::ZonedDateTime },
    /// Closed; `next_open` is `None` when nothing opens within [`SEARCH_DAYS`] days.
    Closed {
        reason: ClosedReason,
        next_open: Option<jiff::ZonedDateTime>,
    },
}

/// An opening range in minutes from local midnight: `start < end <= 1440`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Range {
    start: u16,
    end: u16,
}

#[derive(Debug, Clone)]
struct Closure {
    from: Date,
    to: Date,
    label: String,
}

#[derive(Debug, Clone)]
struct PartialDay {
    hours: Vec<Range>,
    label: Option<String>,
}

#[derive(Debug, Clone, Default)]
struct Service {
    /// Indexed by `Weekday::to_monday_zero_offset`.
    week: [Vec<Range>; 7],
    closures: Vec<Closure>,
    partial_days: BTreeMap<Date, PartialDay>,
    observe_holidays: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HolidaySet {
    None,
    France { alsace_moselle: bool },
}

/// Opening hours of every service.
#[derive(Debug, Clone)]
pub struct Calendar {
    tz: TimeZone,
    holidays: HolidaySet,
    services: BTreeMap<String, Service>,
}

impl Default for Calendar {
    /// No services, Europe/Paris, French holidays.
    fn default() -> Calendar {
        Calendar {
            // The zone is in the bundled database (feature tzdb-bundle-always); UTC is
            // only a fallback that cannot happen in practice.
            tz: TimeZone::get(DEFAULT_TIME_ZONE).unwrap_or(TimeZone::UTC),
            holidays: HolidaySet::France {
                alsace_moselle: false,
            },
            services: BTreeMap::new(),
        }
    }
}

// ---- raw YAML shapes -------------------------------------------------------------------

type RawRanges = Option<Vec<Spanned<String>>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCalendar {
    #[serde(default)]
    timezone: Option<Spanned<String>>,
    #[serde(default)]
    holidays: Option<Spanned<String>>,
    #[serde(default)]
    alsace_moselle: bool,
    #[serde(default)]
    closures: Vec<Spanned<RawClosure>>,
    #[serde(default)]
    partial_days: Vec<RawPartialDay>,
    #[serde(default)]
    services: BTreeMap<String, RawService>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    #[serde(default)]
    hours: RawWeek,
    #[serde(default)]
    closures: Vec<Spanned<RawClosure>>,
    #[serde(default)]
    partial_days: Vec<RawPartialDay>,
    #[serde(default = "yes")]
    holidays: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawWeek {
    #[serde(default, alias = "monday")]
    lundi: RawRanges,
    #[serde(default, alias = "tuesday")]
    mardi: RawRanges,
    #[serde(default, alias = "wednesday")]
    mercredi: RawRanges,
    #[serde(default, alias = "thursday")]
    jeudi: RawRanges,
    #[serde(default, alias = "friday")]
    vendredi: RawRanges,
    #[serde(default, alias = "saturday")]
    samedi: RawRanges,
    #[serde(default, alias = "sunday")]
    dimanche: RawRanges,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClosure {
    #[serde(default)]
    date: Option<Spanned<String>>,
    #[serde(default)]
    from: Option<Spanned<String>>,
    #[serde(default)]
    to: Option<Spanned<String>>,
    label: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPartialDay {
    date: Spanned<String>,
    hours: Vec<Spanned<String>>,
    #[serde(default)]
    label: Option<String>,
}

// ---- parsing ---------------------------------------------------------------------------

/// Minutes from midnight of `"HH:MM"`, `"H:MM"`, `"HHhMM"` or `"HHh"`; 24:00 allowed.
fn parse_clock(text: &str) -> Result<u16, RangeProblem> {
    let text = text.trim();
    let (hours, minutes) = match text.split_once([':', 'h', 'H']) {
        Some((h, "")) if !text.contains(':') => (h, "00"),
        Some((h, m)) => (h, m),
        None => return Err(RangeProblem::Syntax),
    };
    let all_digits =
        |s: &str| !s.is_empty() && s.len() <= 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(hours) || !all_digits(minutes) || minutes.len() != 2 {
        return Err(RangeProblem::Syntax);
    }
    let h: u32 = hours.parse().map_err(|_| RangeProblem::Syntax)?;
    let m: u32 = minutes.parse().map_err(|_| RangeProblem::Syntax)?;
    if m > 59 {
        return Err(RangeProblem::MinuteOutOfRange(m));
    }
    if h > 24 || (h == 24 && m > 0) {
        return Err(RangeProblem::HourOutOfRange(h));
    }
    // h <= 24 and m <= 59 here, so this fits in u16.
    Ok((h * 60 + m) as u16)
}

fn parse_range(text: &str) -> Result<Range, RangeProblem> {
    let (start, end) = text.split_once('-').ok_or(RangeProblem::Syntax)?;
    let start = parse_clock(start)?;
    let end = parse_clock(end)?;
    if start >= 24 * 60 {
        return Err(RangeProblem::HourOutOfRange(24));
    }
    if end <= start {
        return Err(RangeProblem::EndNotAfterStart);
    }
    Ok(Range { start, end })
}

fn parse_ranges(file: &Path, raw: &[Spanned<String>]) -> Result<Vec<Range>, CalendarError> {
    let mut parsed: Vec<(Range, &Spanned<String>)> = Vec::with_capacity(raw.len());
    for item in raw {
        let range = parse_range(&item.value).map_err(|problem| CalendarError::BadTimeRange {
            at: SourcePos::new(file, item.referenced),
            range: item.value.clone(),
            problem,
        })?;
        parsed.push((range, item));
    }
    parsed.sort_by_key(|(range, _)| *range);
    for pair in parsed.windows(2) {
        if let [(before, before_item), (after, after_item)] = pair
            && after.start < before.end
        {
            // Report the one written later in the file.
            let (here, other) = if after_item.referenced.span().offset()
                >= before_item.referenced.span().offset()
            {
                (after_item, before_item)
            } else {
                (before_item, after_item)
            };
            return Err(CalendarError::OverlappingRanges {
                at: SourcePos::new(file, here.referenced),
                range: here.value.clone(),
                other: other.value.clone(),
            });
        }
    }
    Ok(parsed.into_iter().map(|(range, _)| range).collect())
}

fn parse_date(file: &Path, raw: &Spanned<String>) -> Result<Date, CalendarError> {
    raw.value
        .trim()
        .parse::<Date>()
        .map_err(|_| CalendarError::BadDate {
            at: SourcePos::new(file, raw.referenced),
            text: raw.value.clone(),
        })
}

fn parse_closure(file: &Path, raw: &Spanned<RawClosure>) -> Result<Closure, CalendarError> {
    let bad = || CalendarError::BadClosure {
        at: SourcePos::new(file, raw.referenced),
    };
    let c = &raw.value;
    let (from, to) = match (&c.date, &c.from, &c.to) {
        (Some(date), None, None) => {
            let d = parse_date(file, date)?;
            (d, d)
        }
        (None, Some(from), Some(to)) => (parse_date(file, from)?, parse_date(file, to)?),
        _ => return Err(bad()),
    };
    if to < from {
        return Err(bad());
    }
    Ok(Closure {
        from,
        to,
        label: c.label.clone(),
    })
}

fn parse_partial_day(
    file: &Path,
    raw: &RawPartialDay,
) -> Result<(Date, PartialDay), CalendarError> {
    Ok((
        parse_date(file, &raw.date)?,
        PartialDay {
            hours: parse_ranges(file, &raw.hours)?,
            label: raw.label.clone(),
        },
    ))
}

fn yaml_error(file: &Path, err: &serde_saphyr::Error) -> CalendarError {
    let location = err.location().unwrap_or(serde_saphyr::Location::UNKNOWN);
    CalendarError::Yaml {
        at: SourcePos::new(file, location),
        message: strip_location(&err.without_snippet().to_string()),
    }
}

/// Drop serde-saphyr's " at line L, column C" suffix: the error already names the place.
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message.get(..i).unwrap_or(message).to_owned(),
        None => message.to_owned(),
    }
}

impl Calendar {
    /// Parse a calendar from YAML text; `file` is used in error messages.
    pub fn parse(text: &str, file: &Path) -> Result<Calendar, CalendarError> {
        let raw: RawCalendar = serde_saphyr::from_str(text).map_err(|e| yaml_error(file, &e))?;

        let tz = match &raw.timezone {
            None => Calendar::default().tz,
            Some(name) => {
                TimeZone::get(name.value.trim()).map_err(|_| CalendarError::UnknownTimeZone {
                    at: SourcePos::new(file, name.referenced),
                    name: name.value.clone(),
                })?
            }
        };
        let holidays = match &raw.holidays {
            None => HolidaySet::France {
                alsace_moselle: raw.alsace_moselle,
            },
            Some(name) => match name.value.trim() {
                "france" | "France" => HolidaySet::France {
                    alsace_moselle: raw.alsace_moselle,
                },
                "none" | "aucun" => HolidaySet::None,
                _ => {
                    return Err(CalendarError::UnknownHolidaySet {
                        at: SourcePos::new(file, name.referenced),
                        name: name.value.clone(),
                    });
                }
            },
        };

        let global_closures = raw
            .closures
            .iter()
            .map(|c| parse_closure(file, c))
            .collect::<Result<Vec<_>, _>>()?;
        let global_partial = raw
            .partial_days
            .iter()
            .map(|p| parse_partial_day(file, p))
            .collect::<Result<Vec<_>, _>>()?;

        let mut services = BTreeMap::new();
        for (name, svc) in &raw.services {
            let w = &svc.hours;
            let mut week: [Vec<Range>; 7] = Default::default();
            let days = [
                &w.lundi,
                &w.mardi,
                &w.mercredi,
                &w.jeudi,
                &w.vendredi,
                &w.samedi,
                &w.dimanche,
            ];
            for (slot, day) in week.iter_mut().zip(days) {
                if let Some(ranges) = day {
                    *slot = parse_ranges(file, ranges)?;
                }
            }
            let mut closures = global_closures.clone();
            for c in &svc.closures {
                closures.push(parse_closure(file, c)?);
            }
            let mut partial_days: BTreeMap<Date, PartialDay> =
                global_partial.iter().cloned().collect();
            for p in &svc.partial_days {
                let (date, day) = parse_partial_day(file, p)?;
                partial_days.insert(date, day);
            }
            services.insert(
                name.clone(),
                Service {
                    week,
                    closures,
                    partial_days,
                    observe_holidays: svc.holidays,
                },
            );
        }
        Ok(Calendar {
            tz,
            holidays,
            services,
        })
    }

    /// Read and parse a calendar file.
    pub fn load(path: &Path) -> Result<Calendar, CalendarError> {
        let text = std::fs::read_to_string(path).map_err(|source| CalendarError::Io {
            path: path.to_owned(),
            source,
        })?;
        Calendar::parse(&text, path)
    }

    /// Names of the services defined.
    pub fn services(&self) -> Vec<String> {
        self.services.keys().cloned().collect()
    }

    /// Whether the calendar defines `service`.
    pub fn has_service(&self, service: &str) -> bool {
        self.services.contains_key(service)
    }

    /// The zone the hours are written in.
    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// The public holiday on `date` under this calendar's holiday set, if any.
    pub fn holiday(&self, date: Date) -> Option<&'static str> {
        match self.holidays {
            HolidaySet::None => None,
            HolidaySet::France { alsace_moselle } => french_holidays(date.year(), alsace_moselle)
                .into_iter()
                .find(|(d, _)| *d == date)
                .map(|(_, name)| name),
        }
    }

    /// Whether `service` is open at `at`, and until when / why not.
    pub fn status(&self, service: &str, at: &jiff::ZonedDateTime) -> Result<Status, CalendarError> {
        let svc = self
            .services
            .get(service)
            .ok_or_else(|| CalendarError::UnknownService(service.to_owned()))?;
        let local = at.with_time_zone(self.tz.clone());
        let date = local.date();
        let plan = self.plan(svc, date);
        for range in plan.ranges {
            if let Some((start, end)) = self.instants(date, *range)
                && start <= local
                && local < end
            {
                return Ok(Status::Open {
                    until: self.extend(svc, end),
                });
            }
        }
        let reason = match plan.closed {
            Some(reason) => reason,
            None => match plan.partial_label {
                Some(label)
                    if in_ranges(&svc.week[weekday_index(date.weekday())], local.time()) =>
                {
                    ClosedReason::Closure(label.to_owned())
                }
                _ => ClosedReason::OutsideHours,
            },
        };
        Ok(Status::Closed {
            reason,
            next_open: self.next_open(svc, &local),
        })
    }

    /// The ranges that apply to `date` and, when the whole day is closed, why.
    fn plan<'a>(&self, svc: &'a Service, date: Date) -> DayPlan<'a> {
        if let Some(c) = svc.closures.iter().find(|c| c.from <= date && date <= c.to) {
            return DayPlan {
                ranges: &[],
                closed: Some(ClosedReason::Closure(c.label.clone())),
                partial_label: None,
            };
        }
        if let Some(p) = svc.partial_days.get(&date) {
            return DayPlan {
                ranges: &p.hours,
                closed: None,
                partial_label: p.label.as_deref(),
            };
        }
        if svc.observe_holidays
            && let Some(name) = self.holiday(date)
        {
            return DayPlan {
                ranges: &[],
                closed: Some(ClosedReason::Holiday(name.to_owned())),
                partial_label: None,
            };
        }
        let ranges = &svc.week[weekday_index(date.weekday())];
        DayPlan {
            ranges,
            closed: if ranges.is_empty() {
                Some(ClosedReason::OutsideHours)
            } else {
                None
            },
            partial_label: None,
        }
    }

    /// The instants a range of `date` starts and ends at; `None` for a range that vanishes
    /// in a DST gap or lies outside jiff's supported years.
    fn instants(&self, date: Date, range: Range) -> Option<(ZonedDateTime, ZonedDateTime)> {
        let start = self.instant(date, range.start)?;
        let end = self.instant(date, range.end)?;
        (start < end).then_some((start, end))
    }

    /// The instant of `minutes` after local midnight of `date` (1440 is next midnight).
    fn instant(&self, date: Date, minutes: u16) -> Option<ZonedDateTime> {
        let (date, minutes) = if minutes >= 24 * 60 {
            (date.tomorrow().ok()?, minutes - 24 * 60)
        } else {
            (date, minutes)
        };
        // minutes < 1440 here, so hour < 24 and minute < 60.
        let time = Time::new((minutes / 60) as i8, (minutes % 60) as i8, 0, 0).ok()?;
        self.tz.to_zoned_datetime(date.to_datetime(time)).ok()
    }

    /// Follow ranges that start exactly where the previous one ends (touching ranges, or a
    /// range to 24:00 followed by one from 00:00), up to SEARCH_DAYS ahead.
    fn extend(&self, svc: &Service, mut end: ZonedDateTime) -> ZonedDateTime {
        let first_day = end.date();
        let limit = first_day.saturating_add(jiff::Span::new().days(SEARCH_DAYS));
        loop {
            let date = end.date();
            if date > limit {
                return end;
            }
            let next = self
                .plan(svc, date)
                .ranges
                .iter()
                .filter_map(|r| self.instants(date, *r))
                .find(|(start, stop)| *start <= end && end < *stop);
            match next {
                Some((_, stop)) => end = stop,
                None => return end,
            }
        }
    }

    /// The first range start after `local`, at most SEARCH_DAYS ahead.
    fn next_open(&self, svc: &Service, local: &ZonedDateTime) -> Option<ZonedDateTime> {
        let mut date = local.date();
        for _ in 0..=SEARCH_DAYS {
            let found = self
                .plan(svc, date)
                .ranges
                .iter()
                .filter_map(|r| self.instants(date, *r))
                .map(|(start, _)| start)
                .find(|start| start > local);
            if found.is_some() {
                return found;
            }
            date = date.tomorrow().ok()?;
        }
        None
    }
}

struct DayPlan<'a> {
    ranges: &'a [Range],
    closed: Option<ClosedReason>,
    partial_label: Option<&'a str>,
}

fn weekday_index(day: Weekday) -> usize {
    // 0..=6 by jiff's contract.
    day.to_monday_zero_offset() as usize
}

fn in_ranges(ranges: &[Range], time: Time) -> bool {
    // hour 0..=23, minute 0..=59 by jiff's contract.
    let minutes = time.hour() as u16 * 60 + time.minute() as u16;
    ranges.iter().any(|r| r.start <= minutes && minutes < r.end)
}

/// Easter Sunday of `year` (anonymous Gregorian algorithm, Meeus/Jones/Butcher); `None`
/// outside the years jiff supports.
pub fn easter(year: i16) -> Option<Date> {
    let y = i32::from(year);
    let a = y.rem_euclid(19);
    let b = y.div_euclid(100);
    let c = y.rem_euclid(100);
    let d = b.div_euclid(4);
    let e = b.rem_euclid(4);
    let f = (b + 8).div_euclid(25);
    let g = (b - f + 1).div_euclid(3);
    let h = (19 * a + b - d - g + 15).rem_euclid(30);
    let i = c.div_euclid(4);
    let k = c.rem_euclid(4);
    let l = (32 + 2 * e + 2 * i - h - k).rem_euclid(7);
    let m = (a + 11 * h + 22 * l).div_euclid(451);
    let month = (h + l - 7 * m + 114).div_euclid(31);
    let day = (h + l - 7 * m + 114).rem_euclid(31) + 1;
    // month is 3 or 4 and day 1..=31 by the algorithm.
    Date::new(year, i8::try_from(month).ok()?, i8::try_from(day).ok()?).ok()
}

/// French public holidays of `year` (11 national; +Vendredi saint and Saint-Étienne in
/// Alsace-Moselle), sorted by date.
pub fn french_holidays(year: i16, alsace_moselle: bool) -> Vec<(jiff::civil::Date, &'static str)> {
    let mut out = Vec::with_capacity(13);
    let fixed = |month: i8, day: i8| Date::new(year, month, day).ok();
    let mut push = |date: Option<Date>, name: &'static str| {
        if let Some(date) = date {
            out.push((date, name));
        }
    };
    let from_easter =
        |days: i64| easter(year).and_then(|e| e.checked_add(jiff::Span::new().days(days)).ok());
    push(fixed(1, 1), "Jour de l'an");
    if alsace_moselle {
        push(from_easter(-2), "Vendredi saint");
    }
    push(from_easter(1), "Lundi de Pâques");
    push(fixed(5, 1), "Fête du Travail");
    push(fixed(5, 8), "Victoire 1945");
    push(from_easter(39), "Ascension");
    push(from_easter(50), "Lundi de Pentecôte");
    push(fixed(7, 14), "Fête nationale");
    push(fixed(8, 15), "Assomption");
    push(fixed(11, 1), "Toussaint");
    push(fixed(11, 11), "Armistice 1918");
    push(fixed(12, 25), "Noël");
    if alsace_moselle {
        push(fixed(12, 26), "Saint-Étienne");
    }
    // Ascension can fall on 1 or 8 May; keep date order.
    out.sort_by_key(|(date, _)| *date);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    const YAML: &str = r#"
holidays: france
alsace_moselle: false
closures:
  - { date: 2026-12-31, label: "Inventaire" }
partial_days:
  - { date: 2026-12-24, hours: ["08:30-12:00"], label: "Veille de Noël" }
services:
  accueil:
    hours:
      lundi: ["08:30-12:00", "13:30-16:00"]
      mardi: ["08:30-12:00", "13:30-16:00"]
      mercredi: ["08:30-12:00"]
      jeudi: ["08:30-12:00", "13:30-16:00"]
      friday: ["08:30-12:00", "13:30-16:00"]
    closures:
      - { from: 2026-08-10, to: 2026-08-21, label: "Fermeture estivale" }
  caf:
    hours:
      monday: ["09:00-12:00"]
      dimanche: ["01:00-04:00"]
      samedi: ["01:00-04:00"]
  astreinte:
    holidays: false
    hours:
      lundi: ["00:00-24:00"]
      mardi: ["00:00-12:00", "12:00-18:00"]
"#;

    fn cal() -> Calendar {
        Calendar::parse(YAML, Path::new("calendar.yaml")).unwrap()
    }

    fn paris(y: i16, m: i8, d: i8, h: i8, min: i8) -> ZonedDateTime {
        date(y, m, d)
            .at(h, min, 0, 0)
            .in_tz("Europe/Paris")
            .unwrap()
    }

    #[test]
    fn easter_known_dates() {
        let known = [
            (2024, 3, 31),
            (2025, 4, 20),
            (2026, 4, 5),
            (2027, 3, 28),
            (2028, 4, 16),
            (2029, 4, 1),
            (2030, 4, 21),
            (2000, 4, 23),
            (2019, 4, 21),
        ];
        for (y, m, d) in known {
            assert_eq!(easter(y), Some(date(y, m, d)), "Easter {y}");
        }
    }

    #[test]
    fn holidays_2026() {
        let expected = [
            (date(2026, 1, 1), "Jour de l'an"),
            (date(2026, 4, 6), "Lundi de Pâques"),
            (date(2026, 5, 1), "Fête du Travail"),
            (date(2026, 5, 8), "Victoire 1945"),
            (date(2026, 5, 14), "Ascension"),
            (date(2026, 5, 25), "Lundi de Pentecôte"),
            (date(2026, 7, 14), "Fête nationale"),
            (date(2026, 8, 15), "Assomption"),
            (date(2026, 11, 1), "Toussaint"),
            (date(2026, 11, 11), "Armistice 1918"),
            (date(2026, 12, 25), "Noël"),
        ];
        assert_eq!(french_holidays(2026, false), expected);
    }

    #[test]
    fn alsace_moselle_adds_two() {
        let am = french_holidays(2026, true);
        assert_eq!(am.len(), 13);
        assert!(am.contains(&(date(2026, 4, 3), "Vendredi saint")));
        assert!(am.contains(&(date(2026, 12, 26), "Saint-Étienne")));
        assert!(am.windows(2).all(|w| w[0].0 < w[1].0), "sorted");
        // The calendar option is wired.
        let yaml = "alsace_moselle: true\nservices:\n  a:\n    hours:\n      vendredi: [\"09:00-12:00\"]\n";
        let c = Calendar::parse(yaml, Path::new("c.yaml")).unwrap();
        match c.status("a", &paris(2026, 4, 3, 10, 0)).unwrap() {
            Status::Closed { reason, next_open } => {
                assert_eq!(reason, ClosedReason::Holiday("Vendredi saint".into()));
                assert_eq!(next_open, Some(paris(2026, 4, 10, 9, 0)));
            }
            other => panic!("{other:?}"),
        }
        assert!(cal().holiday(date(2026, 4, 3)).is_none());
    }

    #[test]
    fn holidays_every_year_sorted_and_complete() {
        for year in 1900..2200 {
            let h = french_holidays(year, false);
            assert_eq!(h.len(), 11, "{year}");
            assert!(h.windows(2).all(|w| w[0].0 <= w[1].0), "{year}");
            let e = easter(year).unwrap();
            assert_eq!(e.weekday(), Weekday::Sunday, "{year}");
            assert!(e >= date(year, 3, 22) && e <= date(year, 4, 25), "{year}");
        }
    }

    #[test]
    fn open_and_closed_on_an_ordinary_day() {
        let c = cal();
        // Monday 7 Dec 2026, 10:00.
        assert_eq!(
            c.status("accueil", &paris(2026, 12, 7, 10, 0)).unwrap(),
            Status::Open {
                until: paris(2026, 12, 7, 12, 0)
            }
        );
        // Lunch break.
        assert_eq!(
            c.status("accueil", &paris(2026, 12, 7, 12, 0)).unwrap(),
            Status::Closed {
                reason: ClosedReason::OutsideHours,
                next_open: Some(paris(2026, 12, 7, 13, 30)),
            }
        );
        // Start included.
        assert!(matches!(
            c.status("accueil", &paris(2026, 12, 7, 8, 30)).unwrap(),
            Status::Open { .. }
        ));
        // An instant given in another zone is converted.
        let utc = paris(2026, 12, 7, 10, 0).in_tz("UTC").unwrap();
        assert!(matches!(
            c.status("accueil", &utc).unwrap(),
            Status::Open { .. }
        ));
    }

    #[test]
    fn unknown_service() {
        let err = cal()
            .status("mairie", &paris(2026, 12, 7, 10, 0))
            .unwrap_err();
        assert!(matches!(err, CalendarError::UnknownService(ref s) if s == "mairie"));
        assert_eq!(cal().services(), vec!["accueil", "astreinte", "caf"]);
    }

    #[test]
    fn christmas_eve_partial_day() {
        let c = cal();
        // Thursday 24 Dec 2026: open in the morning until 12:00.
        assert_eq!(
            c.status("accueil", &paris(2026, 12, 24, 11, 0)).unwrap(),
            Status::Open {
                until: paris(2026, 12, 24, 12, 0)
            }
        );
        // 14:00 would be open on an ordinary Thursday: closed with the day's label.
        // Next: 25 Dec holiday, 26-27 weekend, Monday 28 Dec.
        assert_eq!(
            c.status("accueil", &paris(2026, 12, 24, 14, 0)).unwrap(),
            Status::Closed {
                reason: ClosedReason::Closure("Veille de Noël".into()),
                next_open: Some(paris(2026, 12, 28, 8, 30)),
            }
        );
        // 18:00 is outside the weekly hours anyway.
        assert!(matches!(
            c.status("accueil", &paris(2026, 12, 24, 18, 0)).unwrap(),
            Status::Closed {
                reason: ClosedReason::OutsideHours,
                ..
            }
        ));
        // Christmas itself.
        assert!(matches!(
            c.status("accueil", &paris(2026, 12, 25, 10, 0)).unwrap(),
            Status::Closed { reason: ClosedReason::Holiday(ref n), .. } if n == "Noël"
        ));
        // Global closure on 31 Dec; next opening skips Friday 1 Jan 2027 (holiday) and the
        // weekend to Monday 4 Jan.
        assert_eq!(
            c.status("accueil", &paris(2026, 12, 31, 10, 0)).unwrap(),
            Status::Closed {
                reason: ClosedReason::Closure("Inventaire".into()),
                next_open: Some(paris(2027, 1, 4, 8, 30)),
            }
        );
    }

    #[test]
    fn friday_evening_skips_holiday_monday() {
        let c = cal();
        // Friday 22 May 2026 evening; Monday 25 May is Lundi de Pentecôte.
        assert_eq!(
            c.status("accueil", &paris(2026, 5, 22, 18, 0)).unwrap(),
            Status::Closed {
                reason: ClosedReason::OutsideHours,
                next_open: Some(paris(2026, 5, 26, 8, 30)),
            }
        );
        // Easter Monday 2026 (6 Apr) likewise.
        assert_eq!(
            c.status("accueil", &paris(2026, 4, 3, 17, 0)).unwrap(),
            Status::Closed {
                reason: ClosedReason::OutsideHours,
                next_open: Some(paris(2026, 4, 7, 8, 30)),
            }
        );
        // The holiday itself gives its name.
        assert!(matches!(
            c.status("accueil", &paris(2026, 5, 25, 10, 0)).unwrap(),
            Status::Closed { reason: ClosedReason::Holiday(ref n), .. } if n == "Lundi de Pentecôte"
        ));
        // A service that ignores holidays is open.
        assert!(matches!(
            c.status("astreinte", &paris(2026, 5, 25, 10, 0)).unwrap(),
            Status::Open { .. }
        ));
    }

    #[test]
    fn service_closure_range() {
        let c = cal();
        assert_eq!(
            c.status("accueil", &paris(2026, 8, 14, 10, 0)).unwrap(),
            Status::Closed {
                reason: ClosedReason::Closure("Fermeture estivale".into()),
                next_open: Some(paris(2026, 8, 24, 8, 30)),
            }
        );
        // caf does not have that closure.
        assert!(matches!(
            c.status("caf", &paris(2026, 8, 10, 10, 0)).unwrap(),
            Status::Open { .. }
        ));
    }

    #[test]
    fn until_follows_touching_ranges_and_midnight() {
        let c = cal();
        // Monday 00:00-24:00 then Tuesday 00:00-12:00, 12:00-18:00.
        assert_eq!(
            c.status("astreinte", &paris(2026, 12, 7, 3, 0)).unwrap(),
            Status::Open {
                until: paris(2026, 12, 8, 18, 0)
            }
        );
    }

    #[test]
    fn nothing_within_search_window() {
        let yaml = "services:\n  ferme: {}\n";
        let c = Calendar::parse(yaml, Path::new("c.yaml")).unwrap();
        assert_eq!(
            c.status("ferme", &paris(2026, 12, 7, 10, 0)).unwrap(),
            Status::Closed {
                reason: ClosedReason::OutsideHours,
                next_open: None
            }
        );
    }

    #[test]
    fn dst_spring_forward() {
        let c = cal();
        // Sunday 29 Mar 2026: 02:00 CET jumps to 03:00 CEST. caf is open 01:00-04:00,
        // which lasts two real hours that day (01:30 to 04:00 is 90 minutes).
        let at = paris(2026, 3, 29, 1, 30);
        let Status::Open { until } = c.status("caf", &at).unwrap() else {
            panic!("should be open")
        };
        assert_eq!(until, paris(2026, 3, 29, 4, 0));
        assert_eq!(
            at.duration_until(&until),
            jiff::SignedDuration::from_mins(90)
        );
        assert_eq!(until.offset(), jiff::tz::offset(2));
        // Saturday 28 Mar evening: next opening is Sunday 01:00 CET.
        let Status::Closed { next_open, .. } = c.status("caf", &paris(2026, 3, 28, 5, 0)).unwrap()
        else {
            panic!("should be closed")
        };
        let next = next_open.unwrap();
        assert_eq!(next, paris(2026, 3, 29, 1, 0));
        assert_eq!(next.offset(), jiff::tz::offset(1));
        // One minute before 04:00 CEST it is open, at 04:00 closed.
        assert!(matches!(
            c.status("caf", &paris(2026, 3, 29, 3, 59)).unwrap(),
            Status::Open { .. }
        ));
        assert!(matches!(
            c.status("caf", &paris(2026, 3, 29, 4, 0)).unwrap(),
            Status::Closed { .. }
        ));
    }

    #[test]
    fn dst_fall_back() {
        let c = cal();
        // Sunday 25 Oct 2026: 03:00 CEST goes back to 02:00 CET; 01:00-04:00 lasts 4 hours.
        let at = paris(2026, 10, 25, 1, 0);
        let Status::Open { until } = c.status("caf", &at).unwrap() else {
            panic!("should be open")
        };
        assert_eq!(
            at.duration_until(&until),
            jiff::SignedDuration::from_hours(4)
        );
        // 02:30 happens twice; both are open.
        let first = jiff::tz::TimeZone::get("Europe/Paris")
            .unwrap()
            .to_ambiguous_zoned_datetime(date(2026, 10, 25).at(2, 30, 0, 0))
            .earlier()
            .unwrap();
        let second = first
            .checked_add(jiff::SignedDuration::from_hours(1))
            .unwrap();
        assert_eq!(second.hour(), 2);
        for t in [first, second] {
            assert_eq!(
                c.status("caf", &t).unwrap(),
                Status::Open {
                    until: until.clone()
                }
            );
        }
        // Monday after: an ordinary office day in winter time.
        assert_eq!(
            c.status("accueil", &paris(2026, 10, 26, 9, 0)).unwrap(),
            Status::Open {
                until: paris(2026, 10, 26, 12, 0)
            }
        );
    }

    fn parse_err(yaml: &str) -> CalendarError {
        Calendar::parse(yaml, Path::new("cal.yaml")).unwrap_err()
    }

    #[test]
    fn bad_hour_with_location() {
        let err = parse_err("services:\n  a:\n    hours:\n      lundi: [\"08:00-25:00\"]\n");
        match &err {
            CalendarError::BadTimeRange { at, range, problem } => {
                assert_eq!(range, "08:00-25:00");
                assert_eq!(*problem, RangeProblem::HourOutOfRange(25));
                assert_eq!((at.line, at.column), (4, 15));
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().starts_with("cal.yaml:4:15: bad time range"));
    }

    #[test]
    fn bad_ranges() {
        for (range, problem) in [
            ("12:00-08:00", RangeProblem::EndNotAfterStart),
            ("12:00-12:00", RangeProblem::EndNotAfterStart),
            ("08:60-12:00", RangeProblem::MinuteOutOfRange(60)),
            ("24:00-24:00", RangeProblem::HourOutOfRange(24)),
            ("24:30-23:00", RangeProblem::HourOutOfRange(24)),
            ("8-12", RangeProblem::Syntax),
            ("08:00", RangeProblem::Syntax),
            ("ab:00-12:00", RangeProblem::Syntax),
            ("08:0-12:00", RangeProblem::Syntax),
        ] {
            let yaml = format!("services:\n  a:\n    hours:\n      mardi: [\"{range}\"]\n");
            match parse_err(&yaml) {
                CalendarError::BadTimeRange { problem: p, .. } => assert_eq!(p, problem, "{range}"),
                other => panic!("{range}: {other:?}"),
            }
        }
        assert_eq!(
            parse_range("8h30-12h"),
            Ok(Range {
                start: 510,
                end: 720
            })
        );
        assert_eq!(
            parse_range("00:00-24:00"),
            Ok(Range {
                start: 0,
                end: 1440
            })
        );
    }

    #[test]
    fn overlapping_ranges() {
        let yaml = "services:\n  a:\n    hours:\n      jeudi:\n        - \"08:00-12:00\"\n        - \"11:00-14:00\"\n";
        match parse_err(yaml) {
            CalendarError::OverlappingRanges { at, range, other } => {
                assert_eq!(range, "11:00-14:00");
                assert_eq!(other, "08:00-12:00");
                assert_eq!(at.line, 6);
            }
            other => panic!("{other:?}"),
        }
        // Touching ranges are fine.
        let ok = "services:\n  a:\n    hours:\n      jeudi: [\"08:00-12:00\", \"12:00-14:00\"]\n";
        assert!(Calendar::parse(ok, Path::new("c")).is_ok());
    }

    #[test]
    fn other_errors_are_located() {
        let err = parse_err("services:\n  a:\n    hours:\n      lunday: [\"08:00-12:00\"]\n");
        match &err {
            CalendarError::Yaml { at, message } => {
                assert_eq!((at.line, at.column), (4, 7), "{err}");
                assert!(message.contains("unknown field `lunday`"), "{message}");
                assert!(!message.contains(" at line "), "{message}");
            }
            other => panic!("{other:?}"),
        }
        match parse_err("closures:\n  - { date: 2026-02-30, label: x }\nservices: {}\n") {
            CalendarError::BadDate { at, text } => {
                assert_eq!(text, "2026-02-30");
                assert_eq!(at.line, 2);
            }
            other => panic!("{other:?}"),
        }
        match parse_err("closures:\n  - { from: 2026-02-10, to: 2026-02-01, label: x }\n") {
            CalendarError::BadClosure { at } => assert_eq!(at.line, 2),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_err("timezone: Europe/Lutece\n"),
            CalendarError::UnknownTimeZone { .. }
        ));
        assert!(matches!(
            parse_err("holidays: belgique\n"),
            CalendarError::UnknownHolidaySet { ref name, .. } if name == "belgique"
        ));
    }

    #[test]
    fn load_reads_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("calendar.yaml");
        std::fs::write(&path, YAML).unwrap();
        assert_eq!(Calendar::load(&path).unwrap().services().len(), 3);
        assert!(matches!(
            Calendar::load(&dir.path().join("missing.yaml")),
            Err(CalendarError::Io { .. })
        ));
    }

    proptest::proptest! {
        /// Open until `until`: open just before, closed at it; closed until `next_open`:
        /// closed just before, open at it. Checked around DST changes and holidays too.
        #[test]
        fn status_transitions_are_consistent(
            minutes in 0i64..(2 * 366 * 24 * 60),
            service in proptest::sample::select(vec!["accueil", "caf", "astreinte"]),
        ) {
            let c = cal();
            let at = paris(2026, 1, 1, 0, 0)
                .checked_add(jiff::SignedDuration::from_mins(minutes))
                .unwrap();
            let one_ns = jiff::SignedDuration::from_nanos(1);
            match c.status(service, &at).unwrap() {
                Status::Open { until } => {
                    proptest::prop_assert!(until > at);
                    let before = until.checked_sub(one_ns).unwrap();
                    let open_before = matches!(c.status(service, &before).unwrap(), Status::Open { .. });
                    proptest::prop_assert!(open_before);
                    if until.duration_since(&at) < jiff::SignedDuration::from_hours(24 * 30) {
                        let closed_at = matches!(c.status(service, &until).unwrap(), Status::Closed { .. });
                        proptest::prop_assert!(closed_at);
                    }
                }
                Status::Closed { next_open, .. } => {
                    if let Some(next) = next_open {
                        proptest::prop_assert!(next > at);
                        let open_at = matches!(c.status(service, &next).unwrap(), Status::Open { .. });
                        proptest::prop_assert!(open_at);
                        let before = next.checked_sub(one_ns).unwrap();
                        let closed_before = matches!(c.status(service, &before).unwrap(), Status::Closed { .. });
                        proptest::prop_assert!(closed_before);
                    }
                }
            }
        }

        #[test]
        fn range_parser_never_panics(text in "[0-9:h -]{0,14}") {
            let yaml = format!("services:\n  a:\n    hours:\n      lundi: [\"{text}\"]\n");
            let _ = Calendar::parse(&yaml, Path::new("c.yaml"));
        }
    }
}
