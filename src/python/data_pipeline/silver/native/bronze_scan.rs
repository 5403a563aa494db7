//! bronze_scan: the lines of one NDJSON bronze body into column buffers, in one pass, for the
//! columnar transform (data_pipeline.silver.native_scan loads this library with ctypes).
//!
//! It decides only lines of one plain shape, and marks every other line for the Python path
//! (orjson and the per-row reference), so it never has to agree with a JSON parser on anything
//! hard. A line is "plain" when it is one JSON object with:
//! - keys among the ten record fields (officer: badge, name; location: lat, lon), none twice;
//! - string values of ASCII: printable bytes (0x20-0x7F), and escapes that stand for one ASCII
//!   character (`\t`, `\"`, `\\`, `\u0041`...); a `\u` escape beyond ASCII is not plain;
//! - integers of at most 18 digits, no fraction or exponent (they fit i64 exactly);
//! - null; an object only for officer and location (of plain scalars), an array of plain strings
//!   only for tags;
//! - JSON whitespace (space, tab, CR) between tokens and around the object.
//!
//! Every plain line is valid JSON whose value orjson gives exactly: the same keys and values,
//! strings decoded the same way. Anything else (escapes, non-ASCII, floats, true/false, other keys,
//! a repeated key, a truncated line...) is status 0: the caller parses it with orjson.
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
// The fields whose strings the scanner also reads as ISO instants.
const ISO_FIELDS: [usize; 2] = [OCCURRED_AT, UPDATED_AT];

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

#[derive(Default)]
struct Column {
    kind: Vec<u8>,
    offsets: Vec<i32>,
    data: Vec<u8>,
    ints: Vec<i64>,
    string_valid: Vec<u8>,
    int_valid: Vec<u8>,
    // The ISO reading of the field's strings (only for ISO_FIELDS): valid where it is one.
    iso_seconds: Vec<i64>,
    iso_micros: Vec<i64>,
    iso_valid: Vec<u8>,
}

#[derive(Default)]
pub struct Scan {
    lines: usize,
    status: Vec<u8>,
    columns: Vec<Column>,
    tag_offsets: Vec<i32>,
    tag_value_offsets: Vec<i32>,
    tag_data: Vec<u8>,
}

/// One field's buffers, as Arrow lays them out (validity bitmaps LSB first).
#[repr(C)]
pub struct ColumnOut {
    kind: *const u8,
    offsets: *const i32,
    data: *const u8,
    data_len: usize,
    ints: *const i64,
    string_valid: *const u8,
    int_valid: *const u8,
    iso_seconds: *const i64,
    iso_micros: *const i64,
    iso_valid: *const u8,
}

/// The scan of a body: per line a status (1 plain, 0 for the Python path) and per field its
/// buffers; the tags as a list<string> (an empty list where a line has no tag array).
#[repr(C)]
pub struct ScanOut {
    lines: usize,
    status: *const u8,
    columns: [ColumnOut; FIELDS],
    tag_offsets: *const i32,
    tag_value_offsets: *const i32,
    tag_values: usize,
    tag_data: *const u8,
    tag_data_len: usize,
    handle: *mut Scan,
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

impl Scan {
    fn new(capacity: usize) -> Scan {
        let columns = (0..FIELDS)
            .map(|_| {
                let mut column = Column {
                    kind: Vec::with_capacity(capacity),
                    offsets: Vec::with_capacity(capacity + 1),
                    ints: Vec::with_capacity(capacity),
                    ..Column::default()
                };
                column.offsets.push(0);
                column
            })
            .collect();
        let mut scan = Scan {
            lines: 0,
            status: Vec::with_capacity(capacity),
            columns,
            tag_offsets: Vec::with_capacity(capacity + 1),
            tag_value_offsets: vec![0],
            ..Scan::default()
        };
        scan.tag_offsets.push(0);
        scan
    }

    fn push(&mut self, line: Option<&Line>) {
        let row = self.lines;
        self.lines += 1;
        self.status.push(line.is_some() as u8);
        for (field, column) in self.columns.iter_mut().enumerate() {
            let iso_field = ISO_FIELDS.contains(&field);
            if row & 7 == 0 {
                column.string_valid.push(0);
                column.int_valid.push(0);
                if iso_field {
                    column.iso_valid.push(0);
                }
            }
            let value = line.map_or(Value::default(), |line| line.values[field]);
            column.kind.push(value.kind);
            if value.kind == STRING {
                let bytes = line.map_or(&[][..], |line| &line.scratch[value.start..value.end]);
                column.data.extend_from_slice(bytes);
                set_bit(&mut column.string_valid, row);
            }
            if iso_field {
                let parsed = if value.kind == STRING {
                    iso(line.map_or(&[][..], |line| &line.scratch[value.start..value.end]))
                } else {
                    None
                };
                let (seconds, micros) = parsed.unwrap_or((0, 0));
                column.iso_seconds.push(seconds);
                column.iso_micros.push(micros);
                if parsed.is_some() {
                    set_bit(&mut column.iso_valid, row);
                }
            }
            column.offsets.push(column.data.len() as i32);
            column.ints.push(value.int);
            if value.kind == INT {
                set_bit(&mut column.int_valid, row);
            }
        }
        if let Some(line) = line {
            for &(start, end) in &line.tags {
                self.tag_data.extend_from_slice(&line.scratch[start..end]);
                self.tag_value_offsets.push(self.tag_data.len() as i32);
            }
        }
        self.tag_offsets.push((self.tag_value_offsets.len() - 1) as i32);
    }
}

fn scan(text: &[u8]) -> Box<Scan> {
    let mut out = Box::new(Scan::new(text.len() / 128 + 1));
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
        out.push(plain.then_some(&line));
        (tags, scratch) = (line.tags, line.scratch);
        if end >= text.len() {
            return out;
        }
        start = end + 1;
    }
}

fn column_out(column: &Column) -> ColumnOut {
    ColumnOut {
        kind: column.kind.as_ptr(),
        offsets: column.offsets.as_ptr(),
        data: column.data.as_ptr(),
        data_len: column.data.len(),
        ints: column.ints.as_ptr(),
        string_valid: column.string_valid.as_ptr(),
        int_valid: column.int_valid.as_ptr(),
        iso_seconds: column.iso_seconds.as_ptr(),
        iso_micros: column.iso_micros.as_ptr(),
        iso_valid: column.iso_valid.as_ptr(),
    }
}

/// The layout of ScanOut and ColumnOut: native_scan.py refuses a library of another. Bump it
/// with any change to either.
const ABI: u32 = 2;

/// ABI, for the loader to check before it reads a ScanOut.
#[no_mangle]
pub extern "C" fn bronze_scan_abi() -> u32 {
    ABI
}

/// Scan `len` bytes at `text` into `*out`. Returns 0, or 1 when the body is too large for
/// 32-bit offsets (the caller then takes the Python path). Free with bronze_scan_free.
///
/// # Safety
/// `text` must point to `len` readable bytes and `out` to a writable ScanOut.
#[no_mangle]
pub unsafe extern "C" fn bronze_scan(text: *const u8, len: usize, out: *mut ScanOut) -> i32 {
    if len >= i32::MAX as usize {
        return 1;
    }
    let text = if len == 0 { &[][..] } else { slice::from_raw_parts(text, len) };
    let scan = scan(text);
    let columns = [0; FIELDS].map(|_| ColumnOut {
        kind: std::ptr::null(),
        offsets: std::ptr::null(),
        data: std::ptr::null(),
        data_len: 0,
        ints: std::ptr::null(),
        string_valid: std::ptr::null(),
        int_valid: std::ptr::null(),
        iso_seconds: std::ptr::null(),
        iso_micros: std::ptr::null(),
        iso_valid: std::ptr::null(),
    });
    let mut result = ScanOut {
        lines: scan.lines,
        status: scan.status.as_ptr(),
        columns,
        tag_offsets: scan.tag_offsets.as_ptr(),
        tag_value_offsets: scan.tag_value_offsets.as_ptr(),
        tag_values: scan.tag_value_offsets.len() - 1,
        tag_data: scan.tag_data.as_ptr(),
        tag_data_len: scan.tag_data.len(),
        handle: std::ptr::null_mut(),
    };
    for (field, column) in scan.columns.iter().enumerate() {
        result.columns[field] = column_out(column);
    }
    result.handle = Box::into_raw(scan);
    *out = result;
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
