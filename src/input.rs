//! Reading series from CSV files. Owns the file format rules: an optional header line (a first
//! row with any non-numeric field), one column per dimension or a `--columns` selection, and
//! errors that name the file, the row (1-based line number) and the reason.

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
}

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
    let text = std::fs::read(path).map_err(|source| InputError::Io { file: path.to_owned(), source })?;
    parse_csv(&text, path, columns)
}

/// As [`read_csv`], from bytes already in memory (`path` only names the source in errors).
///
/// # Errors
/// As [`read_csv`].
pub fn parse_csv(bytes: &[u8], path: &Path, columns: Option<&[String]>) -> Result<Table, InputError> {
    let file = || path.to_owned();
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
        if std::mem::take(&mut first) && rec.iter().any(|f| f.parse::<f64>().is_err()) {
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
            None => selected.insert(
                select_columns(columns, names.as_deref(), w)
                    .map_err(|reason| InputError::File { file: file(), reason })?,
            ),
        };
        for &c in sel.iter() {
            let field = &rec[c];
            let v: f64 =
                field.parse().map_err(|_| row_err(line, format!("column {} is not a number: {field:?}", c + 1)))?;
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
    Ok(Table { data, n, d: sel.len(), names })
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
            "x.csv: row 3: column 1 is not a number: \"abc\""
        );
        assert_eq!(parse("x,y\n", None).unwrap_err().to_string(), "x.csv: no numeric data rows");
        // Blank and whitespace-only lines are counted: the row is the line in the file (found by
        // fuzzing: rows used to count records, and the csv reader skips empty lines).
        assert_eq!(
            parse("x\n1\n\n\nabc\n", None).unwrap_err().to_string(),
            "x.csv: row 5: column 1 is not a number: \"abc\""
        );
        assert_eq!(parse("\r\n \n1,2\n3\n", None).unwrap_err().to_string(), "x.csv: row 4: has 1 fields, expected 2");
        assert_eq!(parse("", None).unwrap_err().to_string(), "x.csv: no numeric data rows");
    }
}
