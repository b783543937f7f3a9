//! Parsers for the Time Series Segmentation Benchmark's files (Ermshaus, Schäfer and Leser 2023,
//! repository ermshaua/time-series-segmentation-benchmark): `desc.txt`, the per-series value
//! files, and the sheet of published covering scores. Text in, data out; no file access.
//!
//! TSSB's change points are 0-based indices where a new segment starts, the convention of
//! [`crate::cpd`], so a series' change points go to [`crate::cpd::covering`] as one annotator.

use std::collections::BTreeMap;

use crate::EvalError;

/// One line of `desc.txt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TssbSeries {
    /// Series name (its values are in `NAME.txt`).
    pub name: String,
    /// The benchmark's hand-picked pattern width (a hint, not a change point).
    pub window: usize,
    /// 0-based indices where a new segment starts, as listed.
    pub change_points: Vec<usize>,
}

/// The covering scores of published methods, from `published_covering.csv`
/// (`dataset,METHOD1,METHOD2,...`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PublishedCovering {
    /// Method names in the header's order.
    pub methods: Vec<String>,
    /// Series name → method → covering.
    pub scores: BTreeMap<String, BTreeMap<String, f64>>,
}

fn parse_error(line: usize, message: String) -> EvalError {
    EvalError::Parse { line, message }
}

fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())).filter(|(_, l)| !l.is_empty())
}

/// Parses `desc.txt`: one line per series, `NAME,WINDOW,CP1,CP2,...` (a series may have no
/// change point). Blank lines are skipped.
///
/// # Errors
/// [`EvalError::Parse`] for a line without a name and window, or a field that is not a
/// non-negative integer.
pub fn parse_desc(text: &str) -> Result<Vec<TssbSeries>, EvalError> {
    lines(text)
        .map(|(line, l)| {
            let mut fields = l.split(',').map(str::trim);
            let name = fields.next().filter(|n| !n.is_empty());
            let (Some(name), Some(window)) = (name, fields.next()) else {
                return Err(parse_error(line, "expected NAME,WINDOW,CP1,...".into()));
            };
            let int = |f: &str| {
                f.parse::<usize>().map_err(|_| parse_error(line, format!("{f:?} is not a non-negative integer")))
            };
            Ok(TssbSeries {
                name: name.to_string(),
                window: int(window)?,
                change_points: fields.map(int).collect::<Result<_, _>>()?,
            })
        })
        .collect()
}

/// Parses a series file: one number per line. Blank lines are skipped.
///
/// # Errors
/// [`EvalError::Parse`] for a line that is not a number.
pub fn parse_values(text: &str) -> Result<Vec<f64>, EvalError> {
    lines(text)
        .map(|(line, l)| l.parse::<f64>().map_err(|_| parse_error(line, format!("{l:?} is not a number"))))
        .collect()
}

/// Parses `published_covering.csv`: a header `dataset,METHOD,...`, then one row per series.
///
/// # Errors
/// [`EvalError::Parse`] for a missing or bad header, a row with another number of fields, a
/// value that is not a number, or a series listed twice.
pub fn parse_published_covering(text: &str) -> Result<PublishedCovering, EvalError> {
    let mut it = lines(text);
    let (hline, header) = it.next().ok_or_else(|| parse_error(1, "empty file".into()))?;
    let cols: Vec<&str> = header.split(',').map(str::trim).collect();
    if cols.len() < 2 || cols[0] != "dataset" {
        return Err(parse_error(hline, "expected a header dataset,METHOD,...".into()));
    }
    let methods: Vec<String> = cols[1..].iter().map(|m| m.to_string()).collect();
    let mut scores = BTreeMap::new();
    for (line, l) in it {
        let fields: Vec<&str> = l.split(',').map(str::trim).collect();
        if fields.len() != cols.len() {
            return Err(parse_error(line, format!("{} fields, header has {}", fields.len(), cols.len())));
        }
        let row = methods
            .iter()
            .zip(&fields[1..])
            .map(|(m, v)| {
                v.parse::<f64>()
                    .map(|x| (m.clone(), x))
                    .map_err(|_| parse_error(line, format!("{v:?} is not a number")))
            })
            .collect::<Result<BTreeMap<_, _>, _>>()?;
        if scores.insert(fields[0].to_string(), row).is_some() {
            return Err(parse_error(line, format!("series {:?} listed twice", fields[0])));
        }
    }
    Ok(PublishedCovering { methods, scores })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn desc_lines() {
        let d = parse_desc("Adiac,10,572,1012,1232\nArrowHead,10,753\r\n\nSolo,5\n").unwrap();
        assert_eq!(d.len(), 3);
        assert_eq!(d[0], TssbSeries { name: "Adiac".into(), window: 10, change_points: vec![572, 1012, 1232] });
        assert_eq!(d[1].change_points, vec![753]);
        assert!(d[2].change_points.is_empty());
        assert!(matches!(parse_desc("A,10\nB,x,3\n"), Err(EvalError::Parse { line: 2, .. })));
        assert!(parse_desc("A\n").is_err());
        assert!(parse_desc("A,10,-3\n").is_err());
    }

    #[test]
    fn values() {
        assert_eq!(parse_values("1.5\n-2\n\n3e-1\n").unwrap(), vec![1.5, -2.0, 0.3]);
        assert!(parse_values("1\nx\n").is_err());
    }

    #[test]
    fn published_covering() {
        let p =
            parse_published_covering("dataset,ESPRESSO,ClaSP\nAdiac,0.408,0.816\nArrowHead,0.6559999999999999,0.996\n")
                .unwrap();
        assert_eq!(p.methods, ["ESPRESSO", "ClaSP"]);
        assert_eq!(p.scores["Adiac"]["ClaSP"], 0.816);
        assert_eq!(p.scores["ArrowHead"]["ESPRESSO"], 0.6559999999999999);
        assert!(parse_published_covering("name,A\nx,1\n").is_err());
        assert!(parse_published_covering("dataset,A\nx,1,2\n").is_err());
        assert!(parse_published_covering("dataset,A\nx,y\n").is_err());
        assert!(parse_published_covering("dataset,A\nx,1\nx,2\n").is_err());
    }

    #[test]
    fn desc_feeds_covering() {
        let d = parse_desc("S,10,30,70\n").unwrap();
        let truth = vec![d[0].change_points.clone()];
        assert_eq!(crate::cpd::covering(&truth, &[30, 70], 100), 1.0);
    }
}
