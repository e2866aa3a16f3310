//! Saying numbers, digits, dates, times and durations in French from fragment prompts, like
//! Asterisk's SayNumber: `number(21)` is `["num/vingt-et-un"]`-style fragment ids.
//!
//! Input: a value. Output: the list of fragment prompt ids to play, in order. The catalogue
//! [`fragments`] gives each fragment's French text, so `guichet prompts render` can make
//! `audio/fr/<id>.wav` for every one. Pure functions.
//!
//! API CONTRACT: `flow::interp` and the prompt renderer code against these signatures.

/// Fragment ids for a whole number (negative numbers start with "moins").
pub fn number(n: i64) -> Vec<String> {
    let _ = n;
    Vec::new()
}

/// Fragment ids for a string of digits said one by one ("0 8 0 9").
pub fn digits(s: &str) -> Vec<String> {
    let _ = s;
    Vec::new()
}

/// Fragment ids for a phone number said in pairs ("zéro huit, zéro neuf, quarante...").
pub fn phone_number(s: &str) -> Vec<String> {
    let _ = s;
    Vec::new()
}

/// Fragment ids for a date: "le lundi 24 décembre 2026".
pub fn date(d: jiff::civil::Date) -> Vec<String> {
    let _ = d;
    Vec::new()
}

/// Fragment ids for a time of day: "17 heures 30".
pub fn time(t: jiff::civil::Time) -> Vec<String> {
    let _ = t;
    Vec::new()
}

/// Fragment ids for a duration: "2 minutes 30 secondes".
pub fn duration(d: std::time::Duration) -> Vec<String> {
    let _ = d;
    Vec::new()
}

/// Every fragment id with its French text, for rendering.
pub fn fragments() -> Vec<(String, String)> {
    Vec::new()
}
