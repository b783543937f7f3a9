//! Labeling functions and the vote matrix. An LF is stored sparsely as its non-abstain votes
//! (sorted by pooled index), so it can be listed, vetoed and undone without touching other LFs;
//! [`VoteMatrix`] is the per-point (CSR) view of the active LFs that the label model and the
//! active-learning score read, rebuilt in one pass over the stored votes.

use crate::detectors::Detector;

/// Where an LF came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LfKind {
    /// A seed detector's three-way threshold LF.
    Seed(Detector),
    /// "Looks like these confirmed anomalies" on the causal features (inner product ball).
    StatPrototype,
    /// The same on the representation Z (cosine ball).
    ReprPrototype,
    /// The labels-only model's top and bottom slices.
    Golden,
}

impl LfKind {
    /// Short name for reports.
    pub fn name(&self) -> String {
        match self {
            Self::Seed(d) => format!("seed:{}", d.name()),
            Self::StatPrototype => "stat_prototype".into(),
            Self::ReprPrototype => "repr_prototype".into(),
            Self::Golden => "golden_model".into(),
        }
    }
}

/// One labeling function.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelingFunction {
    /// Stable id (never reused).
    pub id: u64,
    /// What produced it.
    pub kind: LfKind,
    /// Labels whose data it was built from; undoing any of them removes the LF.
    pub from_labels: Vec<u64>,
    /// Non-abstain votes `(pooled index, anomaly?)`, sorted by index, one per index.
    pub votes: Vec<(u32, bool)>,
    /// Vetoed by a user: kept for the record, left out of the label model.
    pub vetoed: bool,
}

impl LabelingFunction {
    /// Builds an LF from dense three-way votes (`None` = abstain).
    pub fn from_dense(id: u64, kind: LfKind, from_labels: Vec<u64>, dense: &[Option<bool>]) -> Self {
        let votes = dense.iter().enumerate().filter_map(|(i, v)| v.map(|v| (i as u32, v))).collect();
        Self { id, kind, from_labels, votes, vetoed: false }
    }
}

/// Votes of the active LFs per point: `lf` column numbers are positions in the active list.
#[derive(Debug, Clone, Default)]
pub struct VoteMatrix {
    /// Active LFs (columns).
    pub m: usize,
    /// `starts[i]..starts[i+1]` indexes point `i`'s votes.
    pub starts: Vec<u32>,
    /// `(column, anomaly?)`.
    pub entries: Vec<(u16, bool)>,
}

impl VoteMatrix {
    /// Builds the matrix of `lfs` over `n` points.
    pub fn build<'a>(n: usize, lfs: impl Iterator<Item = &'a LabelingFunction> + Clone) -> Self {
        let mut counts = vec![0u32; n + 1];
        let mut m = 0;
        for lf in lfs.clone() {
            m += 1;
            for &(i, _) in &lf.votes {
                counts[i as usize + 1] += 1;
            }
        }
        for i in 0..n {
            counts[i + 1] += counts[i];
        }
        let mut fill = counts.clone();
        let mut entries = vec![(0u16, false); counts[n] as usize];
        for (j, lf) in lfs.enumerate() {
            for &(i, v) in &lf.votes {
                let at = &mut fill[i as usize];
                entries[*at as usize] = (j as u16, v);
                *at += 1;
            }
        }
        Self { m, starts: counts, entries }
    }

    /// Points.
    pub fn n(&self) -> usize {
        self.starts.len() - 1
    }

    /// Votes of point `i`.
    pub fn row(&self, i: usize) -> &[(u16, bool)] {
        &self.entries[self.starts[i] as usize..self.starts[i + 1] as usize]
    }

    /// `(anomaly votes, normal votes)` of point `i`.
    pub fn tally(&self, i: usize) -> (u32, u32) {
        self.row(i).iter().fold((0, 0), |(a, b), &(_, v)| if v { (a + 1, b) } else { (a, b + 1) })
    }
}
