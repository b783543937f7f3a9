//! Point-wise ranking metrics: average precision (area under the precision-recall curve, the
//! step-wise sum `Σ (R_k − R_{k−1}) P_k` as scikit-learn computes it, ties grouped) and ROC-AUC
//! (Mann-Whitney with tied ranks averaged). Used by the simulation and by tests.

/// Average precision of `scores` against `truth`; 0 when there is no positive.
pub fn average_precision(scores: &[f64], truth: &[bool]) -> f64 {
    let pos = truth.iter().filter(|&&t| t).count();
    if pos == 0 {
        return 0.0;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut fp, mut ap, mut last_recall) = (0usize, 0usize, 0.0, 0.0);
    let mut k = 0;
    while k < order.len() {
        let s = scores[order[k]];
        while k < order.len() && scores[order[k]] == s {
            if truth[order[k]] {
                tp += 1;
            } else {
                fp += 1;
            }
            k += 1;
        }
        let recall = tp as f64 / pos as f64;
        let precision = tp as f64 / (tp + fp) as f64;
        ap += (recall - last_recall) * precision;
        last_recall = recall;
    }
    ap
}

/// ROC-AUC of `scores` against `truth`; 0.5 when one class is missing.
pub fn roc_auc(scores: &[f64], truth: &[bool]) -> f64 {
    let pos = truth.iter().filter(|&&t| t).count();
    let neg = truth.len() - pos;
    if pos == 0 || neg == 0 {
        return 0.5;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum = 0.0;
    let mut k = 0;
    while k < order.len() {
        let mut e = k;
        while e < order.len() && scores[order[e]] == scores[order[k]] {
            e += 1;
        }
        let avg = (k + e + 1) as f64 / 2.0; // ranks k+1..=e averaged
        rank_sum += avg * order[k..e].iter().filter(|&&i| truth[i]).count() as f64;
        k = e;
    }
    (rank_sum - (pos * (pos + 1)) as f64 / 2.0) / (pos as f64 * neg as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_match_hand_computed_values() {
        let s = [0.9, 0.8, 0.7, 0.6, 0.5];
        let t = [true, false, true, false, false];
        // AP = 0.5·1 + 0.5·(2/3)
        assert!((average_precision(&s, &t) - (0.5 + 1.0 / 3.0)).abs() < 1e-12);
        // pairs (pos, neg) ordered right: 0.9 > all three negatives, 0.7 > two of three → 5/6.
        assert!((roc_auc(&s, &t) - 5.0 / 6.0).abs() < 1e-12);
        assert_eq!(roc_auc(&[1.0, 1.0], &[true, false]), 0.5);
        assert!((average_precision(&[1.0, 1.0], &[true, false]) - 0.5).abs() < 1e-12);
    }
}
