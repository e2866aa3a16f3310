//! Saying numbers, digits, dates, times and durations in French from fragment prompts, like
//! Asterisk's SayNumber: `number(21)` is `["num/21"]` ("vingt-et-un").
//!
//! Input: a value. Output: the list of fragment prompt ids to play, in order. The catalogue
//! [`fragments`] gives each fragment's French text, so `guichet prompts render` can make
//! `audio/fr/<id>.wav` for every one. Pure functions.
//!
//! API CONTRACT: `flow::interp` and the prompt renderer code against these signatures.
//!
//! # Fragments
//!
//! - `num/0` .. `num/99`: every number below one hundred as one recording, which sounds far
//!   better than "soixante" + "dix-sept". Texts use the 1990 spelling, hyphens everywhere:
//!   "vingt-et-un", "soixante-et-onze", "quatre-vingts", "quatre-vingt-dix-sept".
//! - Feminine forms for "heure", "minute", "seconde": `num/1f` "une", `num/21f`
//!   "vingt-et-une", ... `num/81f` "quatre-vingt-une" (see [`number_feminine`]).
//! - `num/cent`, `num/cents`, `num/quatre-vingt` (the invariant form before "mille"),
//!   `num/mille`, `num/million`, `num/millions`, `num/milliard`, `num/milliards`,
//!   `num/moins`, `num/premier`, `num/plus`.
//! - `day/lundi` .. `day/dimanche`, `month/1` .. `month/12`, `word/le`.
//! - `time/heure(s)`, `time/minute(s)`, `time/seconde(s)`, `time/midi`, `time/minuit`.
//! - `key/etoile`, `key/diese` for `*` and `#` in [`digits`].
//!
//! Played one after the other, fragments read as their texts joined by spaces:
//! `number(201)` is `["num/2", "num/cent", "num/1"]`, "deux cent un".
//!
//! # French rules applied
//!
//! "cent" but "deux cents" and "deux cent un"; "quatre-vingts" but "quatre-vingt-un"; "cent"
//! and "vingt" stay invariant before "mille" ("deux cent mille", "quatre-vingt mille") and take
//! their "s" before the nouns "millions" ("deux cents millions"); "mille" is never plural and
//! "un" is omitted before it; "un million", "deux millions". Numbers of 10^12 and more are
//! said digit by digit.
//!
//! # Example
//!
//! ```
//! use guichet::flow::say;
//! assert_eq!(say::number(2_000), ["num/2", "num/mille"]);
//! assert_eq!(say::spoken(&say::number(97)), "quatre-vingt-dix-sept");
//! assert_eq!(say::spoken(&say::time(jiff::civil::time(17, 30, 0, 0))), "dix-sept heures trente");
//! ```

use std::collections::BTreeMap;
use std::sync::OnceLock;

const UNITS: [&str; 17] = [
    "zéro", "un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf", "dix", "onze",
    "douze", "treize", "quatorze", "quinze", "seize",
];

const DAYS: [&str; 7] = [
    "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche",
];

const MONTHS: [&str; 12] = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
];

/// Numbers below 100 whose last word "un" becomes "une" in the feminine.
const FEMININE: [u32; 7] = [1, 21, 31, 41, 51, 61, 81];

/// The French text of `n < 100`, 1990 spelling.
fn text_below_100(n: u32) -> String {
    let tens = n / 10;
    let unit = n % 10;
    match n {
        // n < 17 here, so the index is in bounds.
        0..=16 => UNITS[n as usize].to_owned(),
        17..=19 => format!("dix-{}", UNITS[unit as usize]),
        20..=69 => {
            let ten = match tens {
                2 => "vingt",
                3 => "trente",
                4 => "quarante",
                5 => "cinquante",
                _ => "soixante",
            };
            match unit {
                0 => ten.to_owned(),
                1 => format!("{ten}-et-un"),
                _ => format!("{ten}-{}", UNITS[unit as usize]),
            }
        }
        70..=79 => match n {
            71 => "soixante-et-onze".to_owned(),
            _ => format!("soixante-{}", text_below_100(n - 60)),
        },
        80 => "quatre-vingts".to_owned(),
        _ => format!("quatre-vingt-{}", text_below_100(n - 80)),
    }
}

fn feminine_text(n: u32) -> String {
    // Only called for FEMININE members, whose text ends in "un".
    format!("{}e", text_below_100(n))
}

fn id(s: impl Into<String>) -> String {
    s.into()
}

/// The fragment for `n < 100`, feminine when asked and there is a feminine form.
fn below_100(n: u32, feminine: bool) -> String {
    if feminine && FEMININE.contains(&n) {
        format!("num/{n}f")
    } else {
        format!("num/{n}")
    }
}

/// What follows a group of three digits: it decides "cents"/"quatre-vingts" agreement.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Next {
    /// Nothing: the end of the number.
    End,
    /// "mille": an adjective, so "cent" and "vingt" stay invariant.
    Mille,
    /// "millions", "milliards": nouns, so "cents" and "quatre-vingts" keep their "s".
    Noun,
}

/// Fragments for `1 <= n <= 999`.
fn below_1000(n: u32, feminine: bool, next: Next, out: &mut Vec<String>) {
    let hundreds = n / 100;
    let rest = n % 100;
    if hundreds > 0 {
        if hundreds > 1 {
            out.push(below_100(hundreds, false));
        }
        let plural = hundreds > 1 && rest == 0 && next != Next::Mille;
        out.push(id(if plural { "num/cents" } else { "num/cent" }));
    }
    if rest == 80 && next == Next::Mille {
        out.push(id("num/quatre-vingt"));
    } else if rest > 0 {
        out.push(below_100(rest, feminine));
    }
}

fn say_unsigned(n: u64, feminine: bool, out: &mut Vec<String>) {
    if n == 0 {
        out.push(below_100(0, false));
        return;
    }
    if n >= 1_000_000_000_000 {
        // Beyond the milliards: digit by digit (never reached for real prompts).
        out.extend(digits(&n.to_string()));
        return;
    }
    // Each group is < 1000 because n < 10^12.
    let milliards = (n / 1_000_000_000) as u32;
    let millions = (n / 1_000_000 % 1000) as u32;
    let thousands = (n / 1000 % 1000) as u32;
    let units = (n % 1000) as u32;
    for (group, one, many) in [
        (milliards, "num/milliard", "num/milliards"),
        (millions, "num/million", "num/millions"),
    ] {
        match group {
            0 => {}
            1 => {
                out.push(below_100(1, false));
                out.push(id(one));
            }
            _ => {
                below_1000(group, false, Next::Noun, out);
                out.push(id(many));
            }
        }
    }
    match thousands {
        0 => {}
        1 => out.push(id("num/mille")),
        _ => {
            below_1000(thousands, false, Next::Mille, out);
            out.push(id("num/mille"));
        }
    }
    if units > 0 {
        below_1000(units, feminine, Next::End, out);
    }
}

fn say_signed(n: i64, feminine: bool) -> Vec<String> {
    let mut out = Vec::new();
    if n < 0 {
        out.push(id("num/moins"));
    }
    say_unsigned(n.unsigned_abs(), feminine, &mut out);
    out
}

/// Fragment ids for a whole number (negative numbers start with "moins").
pub fn number(n: i64) -> Vec<String> {
    say_signed(n, false)
}

/// Fragment ids for a number counting a feminine noun ("une heure", "vingt-et-une minutes",
/// "deux cent une secondes"). Only the final "un" changes; "vingt-et-un mille" stays.
pub fn number_feminine(n: i64) -> Vec<String> {
    say_signed(n, true)
}

/// Fragment ids for a string of digits said one by one ("0 8 0 9"). `*` and `#` are said
/// "étoile" and "dièse"; anything else (spaces, dots, dashes) is skipped.
pub fn digits(s: &str) -> Vec<String> {
    s.chars()
        .filter_map(|c| match c {
            '0'..='9' => Some(format!("num/{c}")),
            '*' => Some(id("key/etoile")),
            '#' => Some(id("key/diese")),
            _ => None,
        })
        .collect()
}

/// Fragments for a pair of digits: "23" is "vingt-trois", "08" is "zéro huit".
fn pair(tens: u32, units: u32, out: &mut Vec<String>) {
    if tens == 0 {
        out.push(below_100(0, false));
        out.push(below_100(units, false));
    } else {
        out.push(below_100(tens * 10 + units, false));
    }
}

/// Fragment ids for a phone number said in pairs ("zéro huit, zéro neuf, quarante...").
///
/// Spaces, dots and dashes are ignored; `+33` becomes a leading `0` (a French number said the
/// French way); another leading `+` is said "plus". An odd count of digits starts with one
/// digit alone, except three-digit numbers ("115", "3939" is pairs), which are said as a
/// number ("cent quinze"). Other characters are skipped.
pub fn phone_number(s: &str) -> Vec<String> {
    let trimmed = s.trim_start();
    let mut out = Vec::new();
    let mut digits: Vec<u32> = trimmed.chars().filter_map(|c| c.to_digit(10)).collect();
    if trimmed.starts_with('+') {
        if digits.starts_with(&[3, 3]) {
            digits.splice(0..2, [0]);
        } else {
            out.push(id("num/plus"));
        }
    }
    if digits.len() == 3 && digits.first() != Some(&0) {
        let n = digits.iter().fold(0i64, |acc, d| acc * 10 + i64::from(*d));
        out.extend(number(n));
        return out;
    }
    let mut rest: &[u32] = &digits;
    if rest.len() % 2 == 1
        && let Some((first, tail)) = rest.split_first()
    {
        out.push(below_100(*first, false));
        rest = tail;
    }
    for chunk in rest.chunks(2) {
        if let [tens, units] = chunk {
            pair(*tens, *units, &mut out);
        }
    }
    out
}

/// Fragment ids for a date: "le lundi 24 décembre 2026" (`word/le`, `day/lundi`, `num/24`,
/// `month/12`, then the year as a number); the first of the month is "premier".
pub fn date(d: jiff::civil::Date) -> Vec<String> {
    let mut out = vec![id("word/le")];
    // to_monday_zero_offset is 0..=6 by jiff's contract.
    let day = DAYS
        .get(d.weekday().to_monday_zero_offset() as usize)
        .copied()
        .unwrap_or("lundi");
    out.push(format!("day/{day}"));
    if d.day() == 1 {
        out.push(id("num/premier"));
    } else {
        out.extend(number(i64::from(d.day())));
    }
    out.push(format!("month/{}", d.month()));
    out.extend(number(i64::from(d.year())));
    out
}

/// Fragment ids for a time of day: "17 heures 30" ("dix-sept heures trente"), "une heure
/// cinq", "zéro heure quinze"; exactly 12:00 is "midi" and 00:00 "minuit". Seconds are
/// ignored.
pub fn time(t: jiff::civil::Time) -> Vec<String> {
    let (hour, minute) = (i64::from(t.hour()), i64::from(t.minute()));
    match (hour, minute) {
        (12, 0) => return vec![id("time/midi")],
        (0, 0) => return vec![id("time/minuit")],
        _ => {}
    }
    let mut out = number_feminine(hour);
    out.push(id(if hour >= 2 {
        "time/heures"
    } else {
        "time/heure"
    }));
    if minute > 0 {
        out.extend(number_feminine(minute));
    }
    out
}

/// Fragment ids for a duration: "2 minutes 30 secondes", "1 heure" ("une heure"). Hours,
/// minutes and seconds, each left out when zero; below one second (or zero) is "zéro
/// seconde". Fractions of a second are dropped.
pub fn duration(d: std::time::Duration) -> Vec<String> {
    let total = d.as_secs();
    let (hours, minutes, seconds) = (total / 3600, total / 60 % 60, total % 60);
    let mut out = Vec::new();
    let mut part = |count: u64, one: &str, many: &str, always: bool| {
        if count > 0 || always {
            // Hours of a Duration fit in i64 (u64::MAX / 3600 < i64::MAX).
            out.extend(number_feminine(i64::try_from(count).unwrap_or(i64::MAX)));
            out.push(id(if count >= 2 { many } else { one }));
        }
    };
    part(hours, "time/heure", "time/heures", false);
    part(minutes, "time/minute", "time/minutes", false);
    part(seconds, "time/seconde", "time/secondes", total == 0);
    out
}

/// Every fragment id with its French text, for rendering.
pub fn fragments() -> Vec<(String, String)> {
    let mut all = Vec::new();
    for n in 0..100 {
        all.push((format!("num/{n}"), text_below_100(n)));
    }
    for n in FEMININE {
        all.push((format!("num/{n}f"), feminine_text(n)));
    }
    for (key, text) in [
        ("num/cent", "cent"),
        ("num/cents", "cents"),
        ("num/quatre-vingt", "quatre-vingt"),
        ("num/mille", "mille"),
        ("num/million", "million"),
        ("num/millions", "millions"),
        ("num/milliard", "milliard"),
        ("num/milliards", "milliards"),
        ("num/moins", "moins"),
        ("num/plus", "plus"),
        ("num/premier", "premier"),
        ("word/le", "le"),
        ("time/heure", "heure"),
        ("time/heures", "heures"),
        ("time/minute", "minute"),
        ("time/minutes", "minutes"),
        ("time/seconde", "seconde"),
        ("time/secondes", "secondes"),
        ("time/midi", "midi"),
        ("time/minuit", "minuit"),
        ("key/etoile", "étoile"),
        ("key/diese", "dièse"),
    ] {
        all.push((key.to_owned(), text.to_owned()));
    }
    for day in DAYS {
        all.push((format!("day/{day}"), day.to_owned()));
    }
    for (i, month) in MONTHS.iter().enumerate() {
        all.push((format!("month/{}", i + 1), (*month).to_owned()));
    }
    all
}

fn catalogue() -> &'static BTreeMap<String, String> {
    static CATALOGUE: OnceLock<BTreeMap<String, String>> = OnceLock::new();
    CATALOGUE.get_or_init(|| fragments().into_iter().collect())
}

/// The French text of one fragment id, if it exists.
pub fn fragment_text(fragment_id: &str) -> Option<&'static str> {
    catalogue().get(fragment_id).map(String::as_str)
}

/// What a fragment sequence says: the texts joined by spaces (unknown ids as `<id>`). For
/// logs, tests and a text-to-speech fallback.
pub fn spoken(ids: &[String]) -> String {
    ids.iter()
        .map(|i| fragment_text(i).map_or_else(|| format!("<{i}>"), str::to_owned))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::{date as ymd, time as hm};
    use proptest::prelude::*;
    use std::time::Duration;

    /// Parse French number words back into a value: an independent check of the texts.
    fn parse_french(text: &str) -> Option<i64> {
        let mut total: i64 = 0;
        let mut current: i64 = 0;
        let mut negative = false;
        let mut after_quatre = false;
        for word in text.split([' ', '-']) {
            let was_quatre = after_quatre;
            after_quatre = false;
            match word {
                "moins" => negative = true,
                "et" => {}
                "vingt" | "vingts" if was_quatre => current += 80 - 4,
                "cent" | "cents" => current = current.max(1) * 100,
                "mille" => {
                    total += current.max(1) * 1000;
                    current = 0;
                }
                "million" | "millions" => {
                    total += current * 1_000_000;
                    current = 0;
                }
                "milliard" | "milliards" => {
                    total += current * 1_000_000_000;
                    current = 0;
                }
                "un" | "une" => current += 1,
                w => {
                    let value = match w {
                        "vingt" => 20,
                        "trente" => 30,
                        "quarante" => 40,
                        "cinquante" => 50,
                        "soixante" => 60,
                        _ => UNITS.iter().position(|u| *u == w)? as i64,
                    };
                    after_quatre = w == "quatre";
                    current += value;
                }
            }
        }
        let n = total + current;
        Some(if negative { -n } else { n })
    }

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn number_table() {
        let table: &[(i64, &[&str], &str)] = &[
            (0, &["num/0"], "zéro"),
            (1, &["num/1"], "un"),
            (16, &["num/16"], "seize"),
            (17, &["num/17"], "dix-sept"),
            (21, &["num/21"], "vingt-et-un"),
            (70, &["num/70"], "soixante-dix"),
            (71, &["num/71"], "soixante-et-onze"),
            (77, &["num/77"], "soixante-dix-sept"),
            (80, &["num/80"], "quatre-vingts"),
            (81, &["num/81"], "quatre-vingt-un"),
            (91, &["num/91"], "quatre-vingt-onze"),
            (97, &["num/97"], "quatre-vingt-dix-sept"),
            (100, &["num/cent"], "cent"),
            (101, &["num/cent", "num/1"], "cent un"),
            (200, &["num/2", "num/cents"], "deux cents"),
            (201, &["num/2", "num/cent", "num/1"], "deux cent un"),
            (
                280,
                &["num/2", "num/cent", "num/80"],
                "deux cent quatre-vingts",
            ),
            (1000, &["num/mille"], "mille"),
            (1001, &["num/mille", "num/1"], "mille un"),
            (2000, &["num/2", "num/mille"], "deux mille"),
            (
                2026,
                &["num/2", "num/mille", "num/26"],
                "deux mille vingt-six",
            ),
            (21_000, &["num/21", "num/mille"], "vingt-et-un mille"),
            (
                80_000,
                &["num/quatre-vingt", "num/mille"],
                "quatre-vingt mille",
            ),
            (100_000, &["num/cent", "num/mille"], "cent mille"),
            (
                200_000,
                &["num/2", "num/cent", "num/mille"],
                "deux cent mille",
            ),
            (1_000_000, &["num/1", "num/million"], "un million"),
            (2_000_000, &["num/2", "num/millions"], "deux millions"),
            (
                80_000_000,
                &["num/80", "num/millions"],
                "quatre-vingts millions",
            ),
            (
                200_000_000,
                &["num/2", "num/cents", "num/millions"],
                "deux cents millions",
            ),
            (
                1_001_000,
                &["num/1", "num/million", "num/mille"],
                "un million mille",
            ),
            (-5, &["num/moins", "num/5"], "moins cinq"),
            (
                999_999_999,
                &[
                    "num/9",
                    "num/cent",
                    "num/99",
                    "num/millions",
                    "num/9",
                    "num/cent",
                    "num/99",
                    "num/mille",
                    "num/9",
                    "num/cent",
                    "num/99",
                ],
                "neuf cent quatre-vingt-dix-neuf millions neuf cent quatre-vingt-dix-neuf mille \
                 neuf cent quatre-vingt-dix-neuf",
            ),
            (1_000_000_000, &["num/1", "num/milliard"], "un milliard"),
        ];
        for (n, expected_ids, expected_text) in table {
            let got = number(*n);
            assert_eq!(got, ids(expected_ids), "{n}");
            assert_eq!(spoken(&got), *expected_text, "{n}");
            assert_eq!(parse_french(expected_text), Some(*n), "{n}");
        }
    }

    #[test]
    fn feminine_forms() {
        assert_eq!(spoken(&number_feminine(1)), "une");
        assert_eq!(spoken(&number_feminine(21)), "vingt-et-une");
        assert_eq!(spoken(&number_feminine(81)), "quatre-vingt-une");
        assert_eq!(spoken(&number_feminine(71)), "soixante-et-onze");
        assert_eq!(spoken(&number_feminine(201)), "deux cent une");
        assert_eq!(spoken(&number_feminine(21_000)), "vingt-et-un mille");
        assert_eq!(spoken(&number_feminine(11)), "onze");
    }

    #[test]
    fn below_100_are_single_fragments() {
        for n in 0..100 {
            assert_eq!(number(n).len(), 1, "{n}");
            assert_eq!(parse_french(&spoken(&number(n))), Some(n), "{n}");
        }
    }

    #[test]
    fn huge_numbers_fall_back_to_digits() {
        assert_eq!(number(1_000_000_000_000).len(), 13);
        assert_eq!(
            number(i64::MIN).first().map(String::as_str),
            Some("num/moins")
        );
        assert_eq!(number(i64::MIN).len(), 20);
    }

    #[test]
    fn digits_one_by_one() {
        assert_eq!(
            digits("0 8-0.9"),
            ids(&["num/0", "num/8", "num/0", "num/9"])
        );
        assert_eq!(spoken(&digits("12*#")), "un deux étoile dièse");
        assert!(digits("abc").is_empty());
    }

    #[test]
    fn phone_numbers() {
        assert_eq!(
            spoken(&phone_number("01 23 45 67 89")),
            "zéro un vingt-trois quarante-cinq soixante-sept quatre-vingt-neuf"
        );
        assert_eq!(
            phone_number("08.00.10.20.30"),
            ids(&[
                "num/0", "num/8", "num/0", "num/0", "num/10", "num/20", "num/30"
            ])
        );
        assert_eq!(
            phone_number("+33 1 23 45 67 89"),
            phone_number("01 23 45 67 89")
        );
        assert_eq!(
            spoken(&phone_number("+44 20")),
            "plus quarante-quatre vingt"
        );
        assert_eq!(spoken(&phone_number("3939")), "trente-neuf trente-neuf");
        assert_eq!(spoken(&phone_number("115")), "cent quinze");
        assert_eq!(
            spoken(&phone_number("36150")),
            "trois soixante-et-un cinquante"
        );
        assert!(phone_number("").is_empty());
    }

    #[test]
    fn dates() {
        assert_eq!(
            date(ymd(2026, 12, 24)),
            ids(&[
                "word/le",
                "day/jeudi",
                "num/24",
                "month/12",
                "num/2",
                "num/mille",
                "num/26"
            ])
        );
        assert_eq!(
            spoken(&date(ymd(2026, 12, 21))),
            "le lundi vingt-et-un décembre deux mille vingt-six"
        );
        assert_eq!(
            spoken(&date(ymd(2027, 1, 1))),
            "le vendredi premier janvier deux mille vingt-sept"
        );
        assert_eq!(
            spoken(&date(ymd(1999, 8, 15))),
            "le dimanche quinze août mille neuf cent quatre-vingt-dix-neuf"
        );
    }

    #[test]
    fn times() {
        assert_eq!(spoken(&time(hm(17, 30, 0, 0))), "dix-sept heures trente");
        assert_eq!(spoken(&time(hm(17, 0, 0, 0))), "dix-sept heures");
        assert_eq!(spoken(&time(hm(12, 0, 0, 0))), "midi");
        assert_eq!(spoken(&time(hm(0, 0, 0, 0))), "minuit");
        assert_eq!(spoken(&time(hm(12, 15, 0, 0))), "douze heures quinze");
        assert_eq!(spoken(&time(hm(1, 5, 0, 0))), "une heure cinq");
        assert_eq!(spoken(&time(hm(0, 21, 0, 0))), "zéro heure vingt-et-une");
        assert_eq!(spoken(&time(hm(21, 1, 0, 0))), "vingt-et-une heures une");
    }

    #[test]
    fn durations() {
        let s = |secs| spoken(&duration(Duration::from_secs(secs)));
        assert_eq!(s(150), "deux minutes trente secondes");
        assert_eq!(s(3600), "une heure");
        assert_eq!(s(7260), "deux heures une minute");
        assert_eq!(s(1), "une seconde");
        assert_eq!(s(0), "zéro seconde");
        assert_eq!(s(61), "une minute une seconde");
        assert_eq!(s(21 * 60), "vingt-et-une minutes");
        assert_eq!(
            spoken(&duration(Duration::from_millis(999))),
            "zéro seconde"
        );
        assert!(!duration(Duration::MAX).is_empty());
    }

    #[test]
    fn fragment_ids_are_unique_and_texts_nonempty() {
        let all = fragments();
        let unique: std::collections::BTreeSet<_> = all.iter().map(|(i, _)| i).collect();
        assert_eq!(unique.len(), all.len());
        assert!(all.iter().all(|(_, t)| !t.is_empty()));
        // File-name safe ids.
        assert!(all.iter().all(|(i, _)| {
            i.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"/-".contains(&b))
        }));
    }

    #[test]
    fn every_time_of_day_is_known() {
        for h in 0..24 {
            for m in 0..60 {
                let got = time(hm(h, m, 0, 0));
                assert!(got.iter().all(|i| fragment_text(i).is_some()), "{h}:{m}");
            }
        }
    }

    fn all_known(list: &[String]) -> bool {
        list.iter().all(|i| fragment_text(i).is_some())
    }

    proptest! {
        #[test]
        fn numbers_round_trip(n in -999_999_999i64..=999_999_999) {
            let got = number(n);
            prop_assert!(all_known(&got));
            prop_assert_eq!(parse_french(&spoken(&got)), Some(n));
            let fem = number_feminine(n);
            prop_assert!(all_known(&fem));
            prop_assert_eq!(parse_french(&spoken(&fem)), Some(n));
        }

        #[test]
        fn any_i64_is_known(n in any::<i64>()) {
            prop_assert!(all_known(&number(n)));
        }

        #[test]
        fn dates_are_known(days in 0i64..7_300_000) {
            let d = ymd(-9999, 1, 1)
                .checked_add(jiff::Span::new().days(days))
                .unwrap_or(ymd(2026, 1, 1));
            let got = date(d);
            prop_assert!(all_known(&got));
            prop_assert_eq!(got.len() >= 5, true);
        }

        #[test]
        fn durations_are_known(secs in any::<u64>()) {
            prop_assert!(all_known(&duration(Duration::from_secs(secs))));
        }

        #[test]
        fn phone_and_digits_are_known(s in "[+]?[0-9 .*#-]{0,20}") {
            prop_assert!(all_known(&phone_number(&s)));
            prop_assert!(all_known(&digits(&s)));
        }

        #[test]
        fn phone_pairs_round_trip(ds in proptest::collection::vec(1u32..10, 5)) {
            // Ten digits, each pair non-zero-led: each pair is one fragment of its value.
            let s: String = ds.iter().map(|d| format!("{d}{}", d % 10)).collect();
            let got = phone_number(&s);
            prop_assert_eq!(got.len(), 5);
            for (fragment, d) in got.iter().zip(&ds) {
                prop_assert_eq!(fragment, &format!("num/{}", d * 10 + d % 10));
            }
        }
    }
}
