//! bronze_scan: the lines of one NDJSON bronze body validated and normalised into the columns
//! of silver rows, in one pass, for the columnar transform (data_pipeline.silver.native_scan
//! loads this library with ctypes; native_rows.py makes the table).
//!
//! It finishes only lines it decides exactly, and marks every other line for the Python path
//! (orjson, the columnar kernels and the per-row reference), so it never has to agree with a
//! JSON parser on anything hard, and every dead letter's reason is the reference's. A line is
//! finished when it is "plain" and every field is valid in a form this file knows.
//!
//! Plain: one JSON object with
//! - keys among the ten record fields (officer: badge, name; location: lat, lon), none twice;
//! - string values of ASCII: printable bytes (0x20-0x7F), and escapes that stand for one ASCII
//!   character (`\t`, `\"`, `\\`, `\u0041`...); a `\u` escape beyond ASCII is not plain;
//! - integers of at most 18 digits, no fraction or exponent (they fit i64 exactly);
//! - null; an object only for officer and location (of plain scalars), an array of plain strings
//!   only for tags;
//! - JSON whitespace (space, tab, CR) between tokens and around the object.
//! Every plain line is valid JSON whose value orjson gives exactly. Anything else (escapes,
//! non-ASCII, floats, true/false, other keys, a repeated key, a truncated line...) is left.
//!
//! Valid (validate.validate_line's rules, WORKLOAD.md "Transform", on ASCII text): record_id a
//! string non-empty after trim; agency_id an integer of agencies.csv; occurred_at an integer or
//! all-digit string in range, `MM/DD/YYYY HH:MM` (its day in the agency's zone is resolved by
//! the caller, which hands back impossible and transition days), or the ISO form; updated_at the
//! ISO form; the enums after trim + lower; location an object of numbers (integers, or decimal
//! strings after trim) in range; amount null, absent or such a number (commas removed). The
//! values are normalised as normalise.py does (badge, officer name with str.title()'s rule for
//! ASCII: upper case after any non-letter, tags).
//!
//! No dependencies: built by `rustc --crate-type cdylib` (see BUILD), no crates to download.

use std::slice;

const FIELDS: usize = 14;
const RECORD_ID: usize = 0;
const AGENCY_ID: usize = 1;
const OCCURRED_AT: usize = 2;
const UPDATED_AT: usize = 3;
const RECORD_TYPE: usize = 4;
const STATUS: usize = 5;
const LOCATION: usize = 6;
const LAT: usize = 7;
const LON: usize = 8;
const AMOUNT: usize = 9;
const OFFICER: usize = 10;
const BADGE: usize = 11;
const NAME: usize = 12;
const TAGS: usize = 13;

// What a field held on a line: absent, null, a string, an integer, an object, an array.
const ABSENT: u8 = 0;
const NULL: u8 = 1;
const STRING: u8 = 2;
const INT: u8 = 3;
const OBJECT: u8 = 4;
const ARRAY: u8 = 5;

const MAX_DIGITS: usize = 18;

const RECORD_FIELDS: [(&[u8], usize); 10] = [
    (b"record_id", RECORD_ID),
    (b"agency_id", AGENCY_ID),
    (b"occurred_at", OCCURRED_AT),
    (b"updated_at", UPDATED_AT),
    (b"record_type", RECORD_TYPE),
    (b"status", STATUS),
    (b"location", LOCATION),
    (b"amount", AMOUNT),
    (b"officer", OFFICER),
    (b"tags", TAGS),
];


const MIN_EPOCH: i64 = -62135596800; // 0001-01-01T00:00:00Z (timeparse.MIN_EPOCH)
const MAX_EPOCH: i64 = 253402300799; // 9999-12-31T23:59:59Z (timeparse.MAX_EPOCH)

fn two_digits(s: &[u8], at: usize) -> Option<i64> {
    let (a, b) = (s[at], s[at + 1]);
    (a.is_ascii_digit() && b.is_ascii_digit()).then(|| i64::from(a - b'0') * 10 + i64::from(b - b'0'))
}

/// "+HH:MM" / "-HH:MM" (HH <= 23, MM <= 59) in seconds east of UTC.
fn offset(s: &[u8]) -> Option<i64> {
    if s.len() != 6 || s[3] != b':' {
        return None;
    }
    let sign = match s[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (hours, minutes) = (two_digits(s, 1)?, two_digits(s, 4)?);
    (hours <= 23 && minutes <= 59).then_some(sign * (hours * 3600 + minutes * 60))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146097 + day_of_era - 719468
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// (epoch seconds, microseconds) of `YYYY-MM-DDTHH:MM:SS[.f{1,6}](Z|+HH:MM|-HH:MM)` as
/// timeparse.parse_iso_us reads it: impossible fields refused, never rolled over, and instants
/// outside 0001-01-01..9999-12-31 UTC refused.
fn iso(s: &[u8]) -> Option<(i64, i64)> {
    if s.len() < 20 || s[4] != b'-' || s[7] != b'-' || s[10] != b'T' || s[13] != b':' || s[16] != b':' {
        return None;
    }
    let year = two_digits(s, 0)? * 100 + two_digits(s, 2)?;
    let (month, day) = (two_digits(s, 5)?, two_digits(s, 8)?);
    let (hour, minute, second) = (two_digits(s, 11)?, two_digits(s, 14)?, two_digits(s, 17)?);
    if year < 1 || !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let rest = &s[19..];
    let (east, micros) = if rest == b"Z" {
        (0, 0)
    } else if let Some(east) = offset(rest) {
        (east, 0)
    } else {
        if rest[0] != b'.' {
            return None;
        }
        let (digits, east) = if rest[rest.len() - 1] == b'Z' {
            (&rest[1..rest.len() - 1], 0)
        } else if rest.len() >= 7 {
            (&rest[1..rest.len() - 6], offset(&rest[rest.len() - 6..])?)
        } else {
            return None;
        };
        if digits.is_empty() || digits.len() > 6 || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let mut micros = 0;
        for index in 0..6 {
            let digit = digits.get(index).map_or(0, |d| i64::from(d - b'0'));
            micros = micros * 10 + digit;
        }
        (east, micros)
    };
    let clock = hour * 3600 + minute * 60 + second;
    let seconds = days_from_civil(year, month, day) * 86400 + clock - east;
    (MIN_EPOCH..=MAX_EPOCH).contains(&seconds).then_some((seconds, micros))
}

#[derive(Clone, Copy, Default)]
struct Value {
    kind: u8,
    start: usize,
    end: usize,
    int: i64,
}

struct Line<'a> {
    bytes: &'a [u8],
    at: usize,
    values: [Value; FIELDS],
    tags: Vec<(usize, usize)>,
    scratch: Vec<u8>, // the decoded strings; values and tags point into it
}

impl<'a> Line<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    /// A string after its opening quote, decoded into `scratch`: (start, end) there. Plain
    /// bytes and the escapes that stand for one ASCII character (`\t`, `\"`, `\u0041`...).
    fn string(&mut self) -> Option<(usize, usize)> {
        let start = self.scratch.len();
        loop {
            // The run of plain bytes up to the next quote, escape or non-plain byte, at once.
            let rest = &self.bytes[self.at..];
            let run = rest.iter().position(|&b| b == b'"' || b == b'\\' || !(0x20..=0x7f).contains(&b))?;
            self.scratch.extend_from_slice(&rest[..run]);
            self.at += run + 1;
            match rest[run] {
                b'"' => return Some((start, self.scratch.len())),
                b'\\' => {
                    let escaped = self.peek()?;
                    self.at += 1;
                    let decoded = match escaped {
                        b'"' | b'\\' | b'/' => escaped,
                        b'b' => 0x08,
                        b'f' => 0x0c,
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'u' => self.ascii_escape()?,
                        _ => return None,
                    };
                    self.scratch.push(decoded);
                }
                _ => return None,
            }
        }
    }

    /// The four hex digits after `\u` when they name an ASCII character.
    fn ascii_escape(&mut self) -> Option<u8> {
        let digits = self.bytes.get(self.at..self.at + 4)?;
        let mut value: u32 = 0;
        for &digit in digits {
            value = value * 16 + (digit as char).to_digit(16)?;
        }
        self.at += 4;
        (value < 0x80).then_some(value as u8)
    }

    fn integer(&mut self) -> Option<i64> {
        let negative = self.eat(b'-');
        let start = self.at;
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
        let digits = &self.bytes[start..self.at];
        if digits.is_empty() || digits.len() > MAX_DIGITS || (digits[0] == b'0' && digits.len() > 1)
        {
            return None;
        }
        if let Some(b'.' | b'e' | b'E') = self.peek() {
            return None;
        }
        let mut value: i64 = 0;
        for digit in digits {
            value = value * 10 + i64::from(digit - b'0');
        }
        Some(if negative { -value } else { value })
    }

    /// A string, an integer or null.
    fn scalar(&mut self) -> Option<Value> {
        match self.peek()? {
            b'"' => {
                self.at += 1;
                let (start, end) = self.string()?;
                Some(Value { kind: STRING, start, end, int: 0 })
            }
            b'-' | b'0'..=b'9' => {
                let int = self.integer()?;
                Some(Value { kind: INT, start: 0, end: 0, int })
            }
            b'n' if self.bytes[self.at..].starts_with(b"null") => {
                self.at += 4;
                Some(Value { kind: NULL, ..Value::default() })
            }
            _ => None,
        }
    }

    /// A key and its colon: the key's field among `names`, None for any other key.
    fn key(&mut self, names: &[(&[u8], usize)]) -> Option<usize> {
        if !self.eat(b'"') {
            return None;
        }
        let (start, end) = self.string()?;
        let key = &self.scratch[start..end];
        let field = names.iter().find(|(name, _)| *name == key)?.1;
        self.scratch.truncate(start); // keys are not kept
        self.skip_ws();
        if !self.eat(b':') {
            return None;
        }
        self.skip_ws();
        Some(field)
    }

    /// `{` ... `}` of plain scalars under two keys (officer's or location's), `{` already eaten.
    fn nested(&mut self, first: (&[u8], usize), second: (&[u8], usize)) -> Option<()> {
        self.skip_ws();
        if self.eat(b'}') {
            return Some(());
        }
        loop {
            self.skip_ws();
            let field = self.key(&[first, second])?;
            if self.values[field].kind != ABSENT {
                return None;
            }
            self.values[field] = self.scalar()?;
            self.skip_ws();
            if self.eat(b'}') {
                return Some(());
            }
            if !self.eat(b',') {
                return None;
            }
        }
    }

    fn tags(&mut self) -> Option<()> {
        self.skip_ws();
        if self.eat(b']') {
            return Some(());
        }
        loop {
            self.skip_ws();
            if !self.eat(b'"') {
                return None;
            }
            let span = self.string()?;
            self.tags.push(span);
            self.skip_ws();
            if self.eat(b']') {
                return Some(());
            }
            if !self.eat(b',') {
                return None;
            }
        }
    }

    fn value(&mut self, field: usize) -> Option<()> {
        if self.values[field].kind != ABSENT {
            return None; // a key given twice
        }
        let compound = match (field, self.peek()?) {
            (LOCATION, b'{') => Some(OBJECT),
            (OFFICER, b'{') => Some(OBJECT),
            (TAGS, b'[') => Some(ARRAY),
            _ => None,
        };
        match compound {
            Some(kind) => {
                self.at += 1;
                self.values[field] = Value { kind, ..Value::default() };
                match field {
                    LOCATION => self.nested((b"lat", LAT), (b"lon", LON)),
                    OFFICER => self.nested((b"badge", BADGE), (b"name", NAME)),
                    _ => self.tags(),
                }
            }
            None if field == TAGS => {
                // null tags are no tags; anything else is for the Python path
                let value = self.scalar()?;
                (value.kind == NULL).then(|| self.values[field] = value)
            }
            None => {
                self.values[field] = self.scalar()?;
                Some(())
            }
        }
    }

    fn object(&mut self) -> Option<()> {
        self.skip_ws();
        if !self.eat(b'{') {
            return None;
        }
        self.skip_ws();
        if !self.eat(b'}') {
            loop {
                self.skip_ws();
                let field = self.key(&RECORD_FIELDS)?;
                self.value(field)?;
                self.skip_ws();
                if self.eat(b'}') {
                    break;
                }
                if !self.eat(b',') {
                    return None;
                }
            }
        }
        self.skip_ws();
        // The line ends here: at a newline (left for the caller) or at the end of the body.
        (self.peek().map_or(true, |byte| byte == b'\n')).then_some(())
    }
}

fn set_bit(bits: &mut [u8], index: usize) {
    bits[index >> 3] |= 1 << (index & 7);
}

const WHITESPACE: &[u8] = b" \t\r\n"; // what "trim" strips (schema.WHITESPACE)

fn trim(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|b| !WHITESPACE.contains(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|b| !WHITESPACE.contains(b)).map_or(start, |at| at + 1);
    &s[start..end]
}

/// What the transform is told: the agencies of agencies.csv and the two enums, in order.
#[repr(C)]
pub struct Params {
    agency_ids: *const i64,
    agencies: usize,
    record_types: *const u8, // the allowed values, lower case, "\n"-joined
    record_types_len: usize,
    statuses: *const u8,
    statuses_len: usize,
}

struct Vocabulary<'a> {
    agency_ids: &'a [i64],
    record_types: Vec<&'a [u8]>,
    statuses: Vec<&'a [u8]>,
}

unsafe fn bytes<'a>(data: *const u8, len: usize) -> &'a [u8] {
    if len == 0 { &[] } else { slice::from_raw_parts(data, len) }
}

/// enum_value: lower(trim(value)) when it is one of allowed (all ASCII here): its index.
fn enum_code(value: &[u8], allowed: &[&[u8]]) -> Option<i8> {
    let text = trim(value);
    let same = |name: &&[u8]| {
        name.len() == text.len() && name.iter().zip(text).all(|(a, b)| *a == b.to_ascii_lowercase())
    };
    allowed.iter().position(same).map(|index| index as i8)
}

/// normalise.number_from_text of trimmed text: the plain decimal form
/// `[+-]?(d+.?d*|.d+)([eE][+-]?d+)?`, as the finite float Python's float() reads (both are
/// correctly rounded).
fn decimal(text: &[u8]) -> Option<f64> {
    let mut at = usize::from(matches!(text.first(), Some(b'+' | b'-')));
    let digits = |at: &mut usize| {
        let start = *at;
        while *at < text.len() && text[*at].is_ascii_digit() {
            *at += 1;
        }
        *at - start
    };
    let whole = digits(&mut at);
    let mut fraction = 0;
    if at < text.len() && text[at] == b'.' {
        at += 1;
        fraction = digits(&mut at);
    }
    if whole == 0 && fraction == 0 {
        return None;
    }
    if at < text.len() && matches!(text[at], b'e' | b'E') {
        at += 1;
        if at < text.len() && matches!(text[at], b'+' | b'-') {
            at += 1;
        }
        if digits(&mut at) == 0 {
            return None;
        }
    }
    if at != text.len() {
        return None;
    }
    let value: f64 = std::str::from_utf8(text).ok()?.parse().ok()?;
    value.is_finite().then_some(value)
}

/// (epoch seconds, or the minute of a local time's day in seconds; the local day as YYYYMMDD,
/// or -1) of occurred_at in timeparse.parse_occurred_at's forms, tried in its order. The
/// agency's zone decides a local time's day (native_rows.py); its date is checked there.
fn occurred(value: &Value, line: &Line) -> Option<(i64, i64)> {
    match value.kind {
        INT => (MIN_EPOCH..=MAX_EPOCH).contains(&value.int).then_some((value.int, -1)),
        STRING => {
            let s = &line.scratch[value.start..value.end];
            if !s.is_empty() && s.iter().all(u8::is_ascii_digit) {
                let significant = &s[s.iter().position(|&b| b != b'0').unwrap_or(s.len())..];
                if significant.len() > 12 {
                    return None;
                }
                let seconds = significant.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0'));
                (seconds <= MAX_EPOCH).then_some((seconds, -1))
            } else if s.len() == 16 && s[2] == b'/' {
                if s[5] != b'/' || s[10] != b' ' || s[13] != b':' {
                    return None;
                }
                let (month, day) = (two_digits(s, 0)?, two_digits(s, 3)?);
                let year = two_digits(s, 6)? * 100 + two_digits(s, 8)?;
                let (hour, minute) = (two_digits(s, 11)?, two_digits(s, 14)?);
                if hour > 23 || minute > 59 {
                    return None;
                }
                Some((hour * 3600 + minute * 60, year * 10000 + month * 100 + day))
            } else {
                iso(s).map(|(seconds, _)| (seconds, -1))
            }
        }
        _ => None,
    }
}

/// A JSON number (an integer here) or a decimal string after trim (and, for amount, after
/// removing ","): normalise.coordinate / the amount rule.
fn number(value: &Value, line: &Line, strip_commas: bool) -> Option<f64> {
    match value.kind {
        INT => Some(value.int as f64), // round to nearest, ties to even: as float(int)
        STRING => {
            let text = trim(&line.scratch[value.start..value.end]);
            if strip_commas && text.contains(&b',') {
                let kept: Vec<u8> = text.iter().copied().filter(|&b| b != b',').collect();
                decimal(&kept)
            } else {
                decimal(text)
            }
        }
        _ => None,
    }
}

/// Strings of the finished rows, as Arrow lays out a string array (validity LSB first).
#[derive(Default)]
struct Strings {
    offsets: Vec<i32>,
    data: Vec<u8>,
    valid: Vec<u8>,
    count: usize,
}

impl Strings {
    /// Room for about `count` strings of about `size` bytes.
    fn new(count: usize, size: usize) -> Strings {
        let mut offsets = Vec::with_capacity(count + 1);
        offsets.push(0);
        Strings {
            offsets,
            data: Vec::with_capacity(count * size),
            valid: Vec::with_capacity(count / 8 + 1),
            count: 0,
        }
    }

    fn end(&mut self, valid: bool) {
        if self.count & 7 == 0 {
            self.valid.push(0);
        }
        if valid {
            set_bit(&mut self.valid, self.count);
        }
        self.count += 1;
        self.offsets.push(self.data.len() as i32);
    }

    fn push(&mut self, value: Option<&[u8]>) {
        if let Some(value) = value {
            self.data.extend_from_slice(value);
        }
        self.end(value.is_some());
    }

    /// normalise.badge of a string: trimmed, leading zeros stripped, "0" when nothing is left.
    fn push_badge(&mut self, value: &[u8]) {
        let text = trim(value);
        let digits = &text[text.iter().position(|&b| b != b'0').unwrap_or(text.len())..];
        self.push(Some(if digits.is_empty() { b"0" } else { digits }));
    }

    /// normalise._name_part (ASCII): trimmed, whitespace runs collapsed to one space, then
    /// str.title() of the lower-cased text (upper case after any non-letter); null when empty.
    fn push_name_part(&mut self, part: &[u8]) {
        let text = trim(part);
        let (mut cased, mut blank) = (false, false);
        for &byte in text {
            if WHITESPACE.contains(&byte) {
                blank = true;
                continue;
            }
            if blank {
                self.data.push(b' ');
                (blank, cased) = (false, false);
            }
            let letter = byte.is_ascii_alphabetic();
            self.data.push(match (letter, cased) {
                (true, true) => byte.to_ascii_lowercase(),
                (true, false) => byte.to_ascii_uppercase(),
                _ => byte,
            });
            cased = letter;
        }
        self.end(!text.is_empty());
    }

    /// A tag: trimmed and lower-cased.
    fn push_tag(&mut self, value: &[u8]) {
        self.data.extend(trim(value).iter().map(u8::to_ascii_lowercase));
        self.end(true);
    }
}

/// The rows the scanner finished: every field decided as validate.validate_line decides it,
/// but a local occurred_at's day in its zone (native_rows.py).
// A line's status.
const PYTHON_PATH: u8 = 0; // not finished here: the Python path decides it
const FINISHED: u8 = 1;
const BLANK: u8 = 2; // nothing but spaces, tabs and CRs (not a row)

#[derive(Default)]
pub struct Scan {
    lines: usize,
    status: Vec<u8>,
    line_starts: Vec<i64>,
    line_numbers: Vec<i64>,
    record_id: Strings,
    agency: Vec<i32>,
    occurred: Vec<i64>,
    local_day: Vec<i64>,
    updated_seconds: Vec<i64>,
    updated_micros: Vec<i64>,
    record_type: Vec<i8>,
    status_code: Vec<i8>,
    lat: Vec<f64>,
    lon: Vec<f64>,
    amount: Vec<f64>,
    amount_valid: Vec<u8>,
    badge: Strings,
    last: Strings,
    first: Strings,
    tag_offsets: Vec<i32>,
    tags: Strings,
}

impl Scan {
    /// A scan with room for about `rows` lines (a guess from the body's size: fewer regrowths).
    fn new(rows: usize) -> Scan {
        let mut tag_offsets = Vec::with_capacity(rows + 1);
        tag_offsets.push(0);
        Scan {
            status: Vec::with_capacity(rows),
            line_starts: Vec::with_capacity(rows + 1),
            line_numbers: Vec::with_capacity(rows),
            record_id: Strings::new(rows, 16),
            agency: Vec::with_capacity(rows),
            occurred: Vec::with_capacity(rows),
            local_day: Vec::with_capacity(rows),
            updated_seconds: Vec::with_capacity(rows),
            updated_micros: Vec::with_capacity(rows),
            record_type: Vec::with_capacity(rows),
            status_code: Vec::with_capacity(rows),
            lat: Vec::with_capacity(rows),
            lon: Vec::with_capacity(rows),
            amount: Vec::with_capacity(rows),
            amount_valid: Vec::with_capacity(rows / 8 + 1),
            badge: Strings::new(rows, 8),
            last: Strings::new(rows, 12),
            first: Strings::new(rows, 12),
            tag_offsets,
            tags: Strings::new(rows * 2, 10),
            ..Scan::default()
        }
    }

    /// The line's row when every field is one this scanner decides and valid, else false (the
    /// Python path decides the line).
    fn finish(&mut self, line: &Line, vocabulary: &Vocabulary) -> bool {
        let values = &line.values;
        let text = |value: &Value| &line.scratch[value.start..value.end];
        let string = |field: usize| (values[field].kind == STRING).then(|| text(&values[field]));
        let Some(record_id) = string(RECORD_ID).map(trim).filter(|id| !id.is_empty()) else {
            return false;
        };
        let agency = values[AGENCY_ID];
        let Some(position) = (agency.kind == INT)
            .then(|| vocabulary.agency_ids.iter().position(|&id| id == agency.int))
            .flatten()
        else {
            return false;
        };
        let Some((occurred, local_day)) = occurred(&values[OCCURRED_AT], line) else {
            return false;
        };
        let Some((updated_seconds, updated_micros)) = string(UPDATED_AT).and_then(iso) else {
            return false;
        };
        let Some(record_type) = string(RECORD_TYPE).and_then(|v| enum_code(v, &vocabulary.record_types)) else {
            return false;
        };
        let Some(status) = string(STATUS).and_then(|v| enum_code(v, &vocabulary.statuses)) else {
            return false;
        };
        if values[LOCATION].kind != OBJECT {
            return false;
        }
        let (Some(lat), Some(lon)) = (number(&values[LAT], line, false), number(&values[LON], line, false)) else {
            return false;
        };
        if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
            return false;
        }
        let amount = match values[AMOUNT].kind {
            ABSENT | NULL => None,
            _ => match number(&values[AMOUNT], line, true) {
                None => return false,
                some => some,
            },
        };
        // Valid: the row is this scanner's.
        let row = self.agency.len();
        self.record_id.push(Some(record_id));
        self.agency.push(position as i32);
        self.occurred.push(occurred);
        self.local_day.push(local_day);
        self.updated_seconds.push(updated_seconds);
        self.updated_micros.push(updated_micros);
        self.record_type.push(record_type);
        self.status_code.push(status);
        self.lat.push(lat);
        self.lon.push(lon);
        if row & 7 == 0 {
            self.amount_valid.push(0);
        }
        self.amount.push(amount.unwrap_or(0.0));
        if amount.is_some() {
            set_bit(&mut self.amount_valid, row);
        }
        let officer = values[OFFICER].kind == OBJECT;
        match string(BADGE).filter(|_| officer) {
            Some(badge) => self.badge.push_badge(badge),
            None => self.badge.push(None),
        }
        match string(NAME).filter(|_| officer) {
            Some(name) => match name.iter().position(|&b| b == b',') {
                Some(comma) => {
                    self.last.push_name_part(&name[..comma]);
                    self.first.push_name_part(&name[comma + 1..]);
                }
                None => {
                    self.last.push_name_part(name);
                    self.first.push(None);
                }
            },
            None => {
                self.last.push(None);
                self.first.push(None);
            }
        }
        for &(start, end) in &line.tags {
            self.tags.push_tag(&line.scratch[start..end]);
        }
        self.tag_offsets.push(self.tags.count as i32);
        true
    }
}

fn scan(text: &[u8], vocabulary: &Vocabulary) -> Box<Scan> {
    let mut out = Box::new(Scan::new(text.len() / 256 + 1));
    let (mut tags, mut scratch) = (Vec::new(), Vec::new());
    let mut start = 0;
    loop {
        tags.clear();
        scratch.clear();
        let values = [Value::default(); FIELDS];
        // The parser reads the line straight from the body: no token takes a newline, so it
        // stops at the line's end, plain or not.
        let mut line = Line { bytes: text, at: start, values, tags, scratch };
        let plain = line.object().is_some();
        let end = if plain {
            line.at
        } else {
            text[start..].iter().position(|&b| b == b'\n').map_or(text.len(), |at| start + at)
        };
        out.line_starts.push(start as i64);
        out.lines += 1;
        let finished = plain && out.finish(&line, vocabulary);
        let blank = !plain && text[start..end].iter().all(|b| WHITESPACE.contains(b));
        out.status.push(if finished { FINISHED } else if blank { BLANK } else { PYTHON_PATH });
        if finished {
            out.line_numbers.push(out.lines as i64);
        }
        (tags, scratch) = (line.tags, line.scratch);
        if end >= text.len() {
            out.line_starts.push(text.len() as i64 + 1); // where a line after the last would start
            return out;
        }
        start = end + 1;
    }
}

/// One string array's buffers.
#[repr(C)]
pub struct StringsOut {
    offsets: *const i32,
    data: *const u8,
    data_len: usize,
    valid: *const u8,
}

fn strings_out(strings: &Strings) -> StringsOut {
    StringsOut {
        offsets: strings.offsets.as_ptr(),
        data: strings.data.as_ptr(),
        data_len: strings.data.len(),
        valid: strings.valid.as_ptr(),
    }
}

/// The scan of a body: per line a status (PYTHON_PATH, FINISHED, BLANK) and where it starts
/// (lines + 1 offsets: line i is text[starts[i]..starts[i + 1] - 1]), and the finished rows'
/// columns, in line order.
#[repr(C)]
pub struct ScanOut {
    lines: usize,
    status: *const u8,
    line_starts: *const i64,
    rows: usize,
    line_numbers: *const i64, // 1-based
    record_id: StringsOut,
    agency: *const i32, // the position of the row's agency in Params.agency_ids
    occurred: *const i64,
    local_day: *const i64,
    updated_seconds: *const i64,
    updated_micros: *const i64,
    record_type: *const i8, // positions in Params.record_types / statuses
    status_code: *const i8,
    lat: *const f64,
    lon: *const f64,
    amount: *const f64,
    amount_valid: *const u8,
    badge: StringsOut,
    last: StringsOut,
    first: StringsOut,
    tag_offsets: *const i32,
    tags: StringsOut,
    tag_values: usize,
    handle: *mut Scan,
}

/// The layout of Params, ScanOut and StringsOut: native_scan.py refuses a library of another.
/// Bump it with any change to them.
const ABI: u32 = 4;

/// ABI, for the loader to check before it reads a ScanOut.
#[no_mangle]
pub extern "C" fn bronze_scan_abi() -> u32 {
    ABI
}

/// Scan `len` bytes at `text` into `*out`. Returns 0, or 1 when the body is too large for
/// 32-bit offsets (the caller then takes the Python path). Free with bronze_scan_free.
///
/// # Safety
/// `text` must point to `len` readable bytes, `params` to a Params whose arrays are readable,
/// and `out` to a writable ScanOut.
#[no_mangle]
pub unsafe extern "C" fn bronze_scan(
    text: *const u8,
    len: usize,
    params: *const Params,
    out: *mut ScanOut,
) -> i32 {
    if len >= i32::MAX as usize {
        return 1;
    }
    let params = &*params;
    let split = |data, len| -> Vec<&[u8]> {
        let joined = bytes(data, len);
        if joined.is_empty() { Vec::new() } else { joined.split(|&b| b == b'\n').collect() }
    };
    let agency_ids = if params.agencies == 0 {
        &[][..]
    } else {
        slice::from_raw_parts(params.agency_ids, params.agencies)
    };
    let vocabulary = Vocabulary {
        agency_ids,
        record_types: split(params.record_types, params.record_types_len),
        statuses: split(params.statuses, params.statuses_len),
    };
    let scan = scan(bytes(text, len), &vocabulary);
    *out = ScanOut {
        lines: scan.lines,
        status: scan.status.as_ptr(),
        line_starts: scan.line_starts.as_ptr(),
        rows: scan.agency.len(),
        line_numbers: scan.line_numbers.as_ptr(),
        record_id: strings_out(&scan.record_id),
        agency: scan.agency.as_ptr(),
        occurred: scan.occurred.as_ptr(),
        local_day: scan.local_day.as_ptr(),
        updated_seconds: scan.updated_seconds.as_ptr(),
        updated_micros: scan.updated_micros.as_ptr(),
        record_type: scan.record_type.as_ptr(),
        status_code: scan.status_code.as_ptr(),
        lat: scan.lat.as_ptr(),
        lon: scan.lon.as_ptr(),
        amount: scan.amount.as_ptr(),
        amount_valid: scan.amount_valid.as_ptr(),
        badge: strings_out(&scan.badge),
        last: strings_out(&scan.last),
        first: strings_out(&scan.first),
        tag_offsets: scan.tag_offsets.as_ptr(),
        tags: strings_out(&scan.tags),
        tag_values: scan.tags.count,
        handle: std::ptr::null_mut(),
    };
    (*out).handle = Box::into_raw(scan);
    0
}

/// Free what bronze_scan allocated for `handle`.
///
/// # Safety
/// `handle` must come from bronze_scan and be freed once.
#[no_mangle]
pub unsafe extern "C" fn bronze_scan_free(handle: *mut Scan) {
    if !handle.is_null() {
        drop(Box::from_raw(handle));
    }
}
