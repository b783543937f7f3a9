//! Reading series from CSV files. Owns the file format rules: an optional header line (a first
//! row with any non-numeric field), one column per dimension or a `--columns` selection, an
//! optional time column ([`TimeColumn`]: RFC 3339, `YYYY-MM-DD HH:MM:SS` as in NAB files, or
//! epoch ms), and errors that name the file, the row (1-based line number) and the reason.

use std::path::{Path, PathBuf};

use thiserror::Error;

/// A series read from a file: `n` rows of `d` columns, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Row-major values.
    pub data: Vec<f64>,
    /// Rows.
    pub n: usize,
    /// Columns.
    pub d: usize,
    /// Column names, when the file has a header.
    pub names: Option<Vec<String>>,
    /// Per row its time (epoch ms), when a time column was read.
    pub ts: Option<Vec<i64>>,
}

/// A column of times: by header name or 0-based index, with the UTC offset given to times
/// written without one (`YYYY-MM-DD HH:MM:SS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeColumn {
    /// Header name or 0-based index.
    pub column: String,
    /// Offset of naive times from UTC, in seconds.
    pub offset_secs: i32,
}

/// Parses `--tz`: `UTC`, `Z` or a fixed offset `+HH:MM` / `-HH:MM` (named zones are not
/// supported: their offsets change over the year).
///
/// # Errors
/// Anything else, with the forms that are accepted.
pub fn parse_offset(tz: &str) -> Result<i32, String> {
    let t = tz.trim();
    if t.eq_ignore_ascii_case("utc") || t == "Z" {
        return Ok(0);
    }
    let bad =
        || format!("--tz {tz:?}: give UTC or a fixed offset such as +02:00 or -05:30 (named zones are not supported)");
    let (sign, rest) = match t.as_bytes().first() {
        Some(b'+') => (1, &t[1..]),
        Some(b'-') => (-1, &t[1..]),
        _ => return Err(bad()),
    };
    let (h, m) = rest.split_once(':').unwrap_or((rest, "0"));
    let (h, m): (i32, i32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if !(0..=23).contains(&h) || !(0..=59).contains(&m) {
        return Err(bad());
    }
    Ok(sign * (h * 3600 + m * 60))
}

/// Reads times: RFC 3339, `YYYY-MM-DD HH:MM:SS[.fff]` or `YYYY-MM-DDTHH:MM:SS[.fff]` (at the
/// given offset), or integer epoch milliseconds.
struct TimeParser {
    /// Without and with fractional seconds.
    naive: [Vec<time::format_description::BorrowedFormatItem<'static>>; 2],
    offset: time::UtcOffset,
}

impl TimeParser {
    fn new(offset_secs: i32) -> Self {
        let naive = [
            "[year]-[month]-[day] [hour]:[minute]:[second]",
            "[year]-[month]-[day] [hour]:[minute]:[second].[subsecond]",
        ]
        .map(|f| time::format_description::parse_borrowed::<1>(f).expect("a valid format description"));
        Self { naive, offset: time::UtcOffset::from_whole_seconds(offset_secs).unwrap_or(time::UtcOffset::UTC) }
    }

    fn parse(&self, field: &str) -> Option<i64> {
        if let Ok(ms) = field.parse::<i64>() {
            return Some(ms);
        }
        let ns = if let Ok(t) = time::OffsetDateTime::parse(field, &time::format_description::well_known::Rfc3339) {
            t.unix_timestamp_nanos()
        } else {
            let spaced = field.replacen('T', " ", 1);
            let t = self.naive.iter().find_map(|f| time::PrimitiveDateTime::parse(&spaced, f).ok())?;
            t.assume_offset(self.offset).unix_timestamp_nanos()
        };
        i64::try_from(ns.div_euclid(1_000_000)).ok()
    }
}

/// What a non-numeric field's error adds: how to pick other columns.
pub const NOT_A_NUMBER_HINT: &str =
    "; pick the value columns with --columns (replay reads a time column with --ts-column)";

/// Why a file could not be read.
#[derive(Debug, Error)]
pub enum InputError {
    /// The file could not be opened or read.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A row is bad.
    #[error("{file}: row {row}: {reason}")]
    Row {
        /// The file.
        file: PathBuf,
        /// 1-based line number.
        row: usize,
        /// What is wrong.
        reason: String,
    },
    /// The file as a whole is unusable.
    #[error("{file}: {reason}")]
    File {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Reads `path`, keeping `columns` (names or 0-based indices) or all columns.
///
/// # Errors
/// Unreadable file, ragged rows, empty, non-numeric or non-finite fields, unknown columns, or no
/// data rows.
pub fn read_csv(path: &Path, columns: Option<&[String]>) -> Result<Table, InputError> {
    read_csv_timed(path, columns, None)
}

/// As [`read_csv`], also reading `time` (the rows' times, in [`Table::ts`]); without
/// `columns` the value columns are every other column.
///
/// # Errors
/// As [`read_csv`], and a time column that is unknown or holds a field that is not a time.
pub fn read_csv_timed(path: &Path, columns: Option<&[String]>, time: Option<&TimeColumn>) -> Result<Table, InputError> {
    let text = std::fs::read(path).map_err(|source| InputError::Io { file: path.to_owned(), source })?;
    parse_csv_timed(&text, path, columns, time)
}

/// As [`read_csv`], from bytes already in memory (`path` only names the source in errors).
///
/// # Errors
/// As [`read_csv`].
pub fn parse_csv(bytes: &[u8], path: &Path, columns: Option<&[String]>) -> Result<Table, InputError> {
    parse_csv_timed(bytes, path, columns, None)
}

/// As [`read_csv_timed`], from bytes already in memory.
///
/// # Errors
/// As [`read_csv_timed`].
pub fn parse_csv_timed(
    bytes: &[u8],
    path: &Path,
    columns: Option<&[String]>,
    time: Option<&TimeColumn>,
) -> Result<Table, InputError> {
    let file = || path.to_owned();
    let parser = time.map(|t| TimeParser::new(t.offset_secs));
    // A time column given by index is known before the header is: a first row whose time field
    // is a time and whose other fields are numbers is data.
    let time_index_hint = time.and_then(|t| t.column.parse::<usize>().ok());
    let mut time_col: Option<usize> = None;
    let mut ts: Vec<i64> = Vec::new();
    let row_err = |row: usize, reason: String| InputError::Row { file: file(), row, reason };
    let mut reader =
        csv::ReaderBuilder::new().has_headers(false).flexible(true).trim(csv::Trim::All).from_reader(bytes);
    let mut names: Option<Vec<String>> = None;
    let mut selected: Option<Vec<usize>> = None;
    let mut width: Option<usize> = None;
    let mut data = Vec::new();
    let mut n = 0;
    let mut first = true;
    let mut lines = LineCounter { bytes, at: 0, line: 1 };
    for rec in reader.records() {
        let rec = rec.map_err(|e| {
            let line = lines.line_of(e.position().map_or(bytes.len(), |p| p.byte() as usize));
            row_err(line, e.to_string())
        })?;
        let line = lines.line_of(rec.position().map_or(bytes.len(), |p| p.byte() as usize));
        if rec.len() == 1 && rec[0].is_empty() {
            continue; // blank line (only whitespace)
        }
        let not_data = |(i, f): (usize, &str)| match (&parser, time_index_hint) {
            (Some(p), Some(t)) if t == i => p.parse(f).is_none(),
            _ => f.parse::<f64>().is_err(),
        };
        if std::mem::take(&mut first) && rec.iter().enumerate().any(not_data) {
            names = Some(rec.iter().map(str::to_owned).collect());
            width = Some(rec.len());
            continue;
        }
        let w = *width.get_or_insert(rec.len());
        if rec.len() != w {
            return Err(row_err(line, format!("has {} fields, expected {w}", rec.len())));
        }
        let sel = match &selected {
            Some(s) => s,
            None => {
                let as_file = |reason| InputError::File { file: file(), reason };
                if let Some(t) = time {
                    let tc = select_columns(Some(std::slice::from_ref(&t.column)), names.as_deref(), w)
                        .map_err(|r| as_file(format!("--ts-column: {r}")))?[0];
                    time_col = Some(tc);
                }
                let chosen = match (columns, time_col) {
                    (None, Some(tc)) => (0..w).filter(|&c| c != tc).collect(),
                    _ => select_columns(columns, names.as_deref(), w).map_err(as_file)?,
                };
                if chosen.is_empty() {
                    return Err(as_file("no value column besides the time column".into()));
                }
                selected.insert(chosen)
            }
        };
        if let (Some(tc), Some(p)) = (time_col, &parser) {
            let field = &rec[tc];
            let t = p.parse(field).ok_or_else(|| {
                row_err(
                    line,
                    format!(
                        "column {} is not a time: {field:?} (RFC 3339, \"YYYY-MM-DD HH:MM:SS\" or epoch ms)",
                        tc + 1
                    ),
                )
            })?;
            ts.push(t);
        }
        for &c in sel.iter() {
            let field = &rec[c];
            let v: f64 = field.parse().map_err(|_| {
                row_err(line, format!("column {} is not a number: {field:?}{NOT_A_NUMBER_HINT}", c + 1))
            })?;
            if !v.is_finite() {
                return Err(row_err(line, format!("column {} is not finite: {field:?}", c + 1)));
            }
            data.push(v);
        }
        n += 1;
    }
    if n == 0 {
        return Err(InputError::File { file: file(), reason: "no numeric data rows".into() });
    }
    let sel = selected.expect("set with the first data row");
    let names = names.map(|all| sel.iter().map(|&c| all[c].clone()).collect());
    Ok(Table { data, n, d: sel.len(), names, ts: time_col.map(|_| ts) })
}

/// The line a record starts on. The csv reader skips empty lines without counting them as
/// records, and the position it gives a record is where it started looking (before the empty
/// lines), so neither a record's index nor its position's line is the line in the file: the
/// record starts at the first byte from there that is not a line end, and its line is one more
/// than the `\n`s before that (a lone `\r` ends a record but, as in the csv reader, not a line).
/// Records come in order, so the count only moves forward.
struct LineCounter<'a> {
    bytes: &'a [u8],
    at: usize,
    line: usize,
}

impl LineCounter<'_> {
    fn line_of(&mut self, byte: usize) -> usize {
        let mut start = byte.clamp(self.at, self.bytes.len());
        while start < self.bytes.len() && matches!(self.bytes[start], b'\r' | b'\n') {
            start += 1;
        }
        self.line += self.bytes[self.at..start].iter().filter(|&&b| b == b'\n').count();
        self.at = start;
        self.line
    }
}

fn select_columns(columns: Option<&[String]>, names: Option<&[String]>, width: usize) -> Result<Vec<usize>, String> {
    let Some(cols) = columns else {
        return Ok((0..width).collect());
    };
    if cols.is_empty() {
        return Err("--columns names no column".into());
    }
    cols.iter()
        .map(|c| {
            if let Some(pos) = names.and_then(|ns| ns.iter().position(|n| n == c)) {
                return Ok(pos);
            }
            match c.parse::<usize>() {
                Ok(idx) if idx < width => Ok(idx),
                Ok(idx) => Err(format!("column index {idx} is out of range (the file has {width} columns)")),
                Err(_) => Err(format!("no column named {c:?}")),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, cols: Option<&[String]>) -> Result<Table, InputError> {
        parse_csv(text.as_bytes(), Path::new("x.csv"), cols)
    }

    #[test]
    fn reads_with_and_without_a_header() {
        let t = parse("a,b\n1,2\n3,4\n", None).unwrap();
        assert_eq!((t.n, t.d, t.data.clone()), (2, 2, vec![1.0, 2.0, 3.0, 4.0]));
        assert_eq!(t.names, Some(vec!["a".into(), "b".into()]));
        let t = parse("1.5\n-2e3\n\n7\n", None).unwrap();
        assert_eq!((t.n, t.d, t.data), (3, 1, vec![1.5, -2000.0, 7.0]));
        // The header is the first line that is not blank, even when the blank line holds spaces
        // (found by fuzzing: a whitespace-only first line made the header a data row).
        let t = parse("  \n\na,b\n1,2\n", None).unwrap();
        assert_eq!((t.n, t.names), (1, Some(vec!["a".into(), "b".into()])));
    }

    #[test]
    fn selects_columns_by_name_or_index() {
        let cols = vec!["c".to_string(), "0".to_string()];
        let t = parse("a,b,c\n1,2,3\n4,5,6\n", Some(&cols)).unwrap();
        assert_eq!(t.data, vec![3.0, 1.0, 6.0, 4.0]);
        assert_eq!(t.names, Some(vec!["c".into(), "a".into()]));
        let bad = vec!["zz".to_string()];
        assert_eq!(parse("a\n1\n", Some(&bad)).unwrap_err().to_string(), "x.csv: no column named \"zz\"");
    }

    #[test]
    fn errors_name_the_row_and_the_reason() {
        assert_eq!(parse("x\n1\n2,3\n", None).unwrap_err().to_string(), "x.csv: row 3: has 2 fields, expected 1");
        assert_eq!(
            parse("x\n1\nNaN\n", None).unwrap_err().to_string(),
            "x.csv: row 3: column 1 is not finite: \"NaN\""
        );
        assert_eq!(
            parse("1\n2\nabc\n", None).unwrap_err().to_string(),
            format!("x.csv: row 3: column 1 is not a number: \"abc\"{NOT_A_NUMBER_HINT}")
        );
        assert_eq!(parse("x,y\n", None).unwrap_err().to_string(), "x.csv: no numeric data rows");
        // Blank and whitespace-only lines are counted: the row is the line in the file (found by
        // fuzzing: rows used to count records, and the csv reader skips empty lines).
        assert_eq!(
            parse("x\n1\n\n\nabc\n", None).unwrap_err().to_string(),
            format!("x.csv: row 5: column 1 is not a number: \"abc\"{NOT_A_NUMBER_HINT}")
        );
        assert_eq!(parse("\r\n \n1,2\n3\n", None).unwrap_err().to_string(), "x.csv: row 4: has 1 fields, expected 2");
        assert_eq!(parse("", None).unwrap_err().to_string(), "x.csv: no numeric data rows");
    }

    fn timed(text: &str, cols: Option<&[String]>, column: &str, tz: &str) -> Result<Table, InputError> {
        let t = TimeColumn { column: column.into(), offset_secs: parse_offset(tz).unwrap() };
        parse_csv_timed(text.as_bytes(), Path::new("x.csv"), cols, Some(&t))
    }

    #[test]
    fn reads_a_time_column_in_nab_rfc_3339_or_epoch_form() {
        // A NAB file: without --ts-column its time column is refused with a way out.
        let nab = "timestamp,value\n2014-07-01 00:00:00,10.5\n2014-07-01 00:30:00,11\n";
        let e = parse(nab, None).unwrap_err().to_string();
        assert!(
            e.contains("row 2: column 1 is not a number") && e.contains("--columns") && e.contains("--ts-column"),
            "{e}"
        );
        let t = timed(nab, None, "timestamp", "UTC").unwrap();
        assert_eq!((t.n, t.d, t.data.clone()), (2, 1, vec![10.5, 11.0]));
        assert_eq!(t.ts, Some(vec![1_404_172_800_000, 1_404_174_600_000]));
        assert_eq!(t.names, Some(vec!["value".into()]));
        // Naive times at an offset; RFC 3339 carries its own; epoch ms; by index, no header.
        let t = timed(nab, None, "timestamp", "+02:00").unwrap();
        assert_eq!(t.ts.unwrap()[0], 1_404_172_800_000 - 7_200_000);
        let t = timed("t,v\n2014-07-01T00:00:00.250+01:00,1\n", None, "t", "+05:00").unwrap();
        assert_eq!(t.ts.unwrap()[0], 1_404_172_800_250 - 3_600_000);
        let t =
            timed("2014-07-01 00:00:00,1,2\n2014-07-01 00:00:01,3,4\n", Some(&["2".to_string()]), "0", "UTC").unwrap();
        assert_eq!((t.names, t.data, t.ts), (None, vec![2.0, 4.0], Some(vec![1_404_172_800_000, 1_404_172_801_000])));
        let t = timed("ms,v\n1795780800000,1\n", None, "ms", "UTC").unwrap();
        assert_eq!(t.ts.unwrap()[0], 1_795_780_800_000);
        // Bad times and columns say which.
        assert_eq!(
            timed("t,v\n2014-07-01,1\n", None, "t", "UTC").unwrap_err().to_string(),
            "x.csv: row 2: column 1 is not a time: \"2014-07-01\" (RFC 3339, \"YYYY-MM-DD HH:MM:SS\" or epoch ms)"
        );
        assert_eq!(
            timed(nab, None, "time", "UTC").unwrap_err().to_string(),
            "x.csv: --ts-column: no column named \"time\""
        );
        assert!(parse_offset("Europe/Paris").unwrap_err().contains("named zones"));
        assert_eq!(parse_offset("-05:30"), Ok(-19_800));
    }
}
