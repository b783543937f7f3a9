//! The fuzz corpus as a smoke test of the normal suite: every file committed under
//! `fuzz/corpus/<target>/` goes through the same checks as the libFuzzer target of that name
//! (`fuzz/invariants.rs`: the decoders against a reference decoder, the CSV reader against a
//! reference reader, counts, reasons and row numbers), without libFuzzer or nightly flags.
//! Longer fuzzing is a separate command: `scripts/fuzz.sh`.

#[path = "../fuzz/invariants.rs"]
mod invariants;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

#[test]
fn every_committed_corpus_file_passes_its_targets_checks() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
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
