//! Inputs the fuzz targets (`fuzz/`, `scripts/fuzz.sh`) failed on, kept as tests after the fix.
//! Each goes through the target's own checks (`fuzz/invariants.rs`) and states the expectation
//! it broke.

#[path = "../fuzz/invariants.rs"]
mod invariants;

use std::path::Path;

use driftwatch::input::parse_csv;

fn csv_error(text: &[u8]) -> String {
    parse_csv(text, Path::new("fuzz.csv"), None).unwrap_err().to_string()
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
