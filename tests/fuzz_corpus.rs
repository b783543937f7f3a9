//! The fuzz corpus as a smoke test of the normal suite: every file committed under
//! `fuzz/corpus/<target>/` goes through the same checks as the libFuzzer target of that name
//! (`fuzz/invariants.rs`: the decoders against a reference decoder, the CSV reader against a
//! reference reader, counts, reasons and row numbers), without libFuzzer or nightly flags.
//! Longer fuzzing is a separate command: `scripts/fuzz.sh`. Inputs the targets failed on are kept
//! below as tests after the fix, each through the target's own checks, stating the expectation
//! it broke.

mod common;
#[path = "../fuzz/invariants.rs"]
mod invariants;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use driftwatch::input::parse_csv;

#[test]
fn every_committed_corpus_file_passes_its_targets_checks() {
    let root = common::root().join("fuzz/corpus");
    let mut failures = Vec::new();
    for (target, check) in invariants::TARGETS {
        let dir = root.join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file() && !p.file_name().unwrap().to_string_lossy().starts_with('.'))
            .collect();
        files.sort();
        assert!(files.len() >= 10, "{}: only {} corpus files", dir.display(), files.len());
        for file in files {
            let data = std::fs::read(&file).unwrap();
            if let Err(e) = catch_unwind(AssertUnwindSafe(|| check(&data))) {
                let why =
                    e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()));
                failures.push(format!("{}: {}", file.display(), why.unwrap_or_default()));
            }
        }
    }
    assert!(failures.is_empty(), "{} corpus files fail:\n{}", failures.len(), failures.join("\n"));
}

/// The error without the hint every non-numeric field's error ends with.
fn csv_error(text: &[u8]) -> String {
    let e = parse_csv(text, Path::new("fuzz.csv"), None).unwrap_err().to_string();
    e.strip_suffix(driftwatch::input::NOT_A_NUMBER_HINT).map_or(e.clone(), str::to_owned)
}

/// `csv` target, first minutes: a blank line between the header and a bad row. The error named
/// row 2 (the csv reader's position of the record is where it started looking, before the
/// skipped empty line); the bad value is on line 3.
#[test]
fn csv_rows_are_lines_of_the_file_after_blank_lines() {
    let input = b"x\n\ne3-1e308\n4e-324\ninf\n\ninf\n";
    invariants::check_csv(input);
    assert_eq!(csv_error(input), "fuzz.csv: row 3: column 1 is not a number: \"e3-1e308\"");
    // The same with CRLF and lone CR line ends (a lone CR ends a record, not a line).
    assert_eq!(csv_error(b"x\r\n\r\n1\r\n\r\nz\r\n"), "fuzz.csv: row 5: column 1 is not a number: \"z\"");
    assert_eq!(csv_error(b"x\r1\r\rz\n"), "fuzz.csv: row 1: column 1 is not a number: \"z\"");
    invariants::check_csv(b"x\r\n\r\n1\r\n\r\nz\r\n");
    invariants::check_csv(b"x\r1\r\rz\n");
}
