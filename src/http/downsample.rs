//! Min/max downsampling for charts: a time range is cut into equal buckets and each bucket keeps
//! its count and, per dimension, its smallest and largest value, so spikes survive however many
//! points fall into a bucket. Pure.

use serde_json::{Value, json};

/// One bucket of the range: `[from, to)`, how many points fell in, per-dimension extremes.
struct Bucket {
    from: i64,
    to: i64,
    count: usize,
    min: Vec<f64>,
    max: Vec<f64>,
}

/// Min/max buckets filled one point at a time, so a range of any length is downsampled in the
/// memory of its buckets (the points API streams stored blocks through it).
pub struct Bucketer {
    from: i128,
    span: i128,
    buckets: i128,
    out: Vec<Bucket>,
}

impl Bucketer {
    /// About `max / 2` equal buckets over `[from_ts, to_ts)`.
    pub fn new(from_ts: i64, to_ts: i64, max: usize) -> Self {
        Self {
            from: from_ts as i128,
            span: (to_ts as i128 - from_ts as i128).max(1),
            buckets: (max / 2).max(1) as i128,
            out: Vec::new(),
        }
    }

    /// Adds a point (in time order).
    pub fn push(&mut self, ts: i64, values: &[f64]) {
        let b = ((ts as i128 - self.from) * self.buckets / self.span).clamp(0, self.buckets - 1);
        let lo = self.from + self.span * b / self.buckets;
        let hi = self.from + self.span * (b + 1) / self.buckets;
        match self.out.last_mut() {
            Some(last) if last.from == lo as i64 => {
                last.count += 1;
                for (j, v) in values.iter().enumerate() {
                    last.min[j] = last.min[j].min(*v);
                    last.max[j] = last.max[j].max(*v);
                }
            }
            _ => self.out.push(Bucket {
                from: lo as i64,
                to: hi as i64,
                count: 1,
                min: values.to_vec(),
                max: values.to_vec(),
            }),
        }
    }

    /// `{"downsampled": true, "buckets": [...]}`.
    pub fn finish(self) -> Value {
        let buckets: Vec<Value> = self
            .out
            .iter()
            .map(|b| json!({"from": b.from, "to": b.to, "count": b.count, "min": b.min, "max": b.max}))
            .collect();
        json!({"downsampled": true, "buckets": buckets})
    }
}

/// Points as `[[ts, [values…]], …]`, or, when there are more than `max_points`, about
/// `max_points / 2` buckets `{"from", "to", "count", "min": [...], "max": [...]}` covering the
/// requested `[from_ts, to_ts)` narrowed to the points' own span (so an open-ended request is
/// bucketed over the data, not over all of time); empty buckets are left out.
pub fn points_json(points: &[(i64, Vec<f64>)], from_ts: i64, to_ts: i64, max_points: Option<usize>) -> Value {
    let from_ts = from_ts.max(points.first().map_or(from_ts, |p| p.0));
    let to_ts = to_ts.min(points.last().map_or(to_ts, |p| p.0.saturating_add(1)));
    match max_points {
        Some(max) if points.len() > max && max >= 2 && to_ts > from_ts => {
            let mut b = Bucketer::new(from_ts, to_ts, max);
            for (ts, values) in points {
                b.push(*ts, values);
            }
            b.finish()
        }
        _ => json!({"downsampled": false, "points": points.iter().map(|(ts, v)| json!([ts, v])).collect::<Vec<_>>()}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_million_points_keep_their_extremes_in_a_few_hundred_buckets() {
        let mut pts: Vec<(i64, Vec<f64>)> =
            (0..1_000_000).map(|i| (i as i64, vec![(i % 100) as f64 / 100.0])).collect();
        pts[777_777].1[0] = 42.0; // one spike
        let v = points_json(&pts, 0, 1_000_000, Some(1000));
        let buckets = v["buckets"].as_array().unwrap();
        assert_eq!(buckets.len(), 500);
        assert_eq!(buckets.iter().map(|b| b["count"].as_u64().unwrap()).sum::<u64>(), 1_000_000);
        let spike = buckets
            .iter()
            .find(|b| (b["from"].as_i64().unwrap()..b["to"].as_i64().unwrap()).contains(&777_777))
            .unwrap();
        assert_eq!(spike["max"][0], 42.0);
        assert_eq!(buckets[0]["min"][0], 0.0);
    }

    #[test]
    fn few_points_come_back_as_they_are() {
        let pts = vec![(1, vec![1.0, 2.0]), (2, vec![3.0, 4.0])];
        assert_eq!(
            points_json(&pts, 0, 10, Some(100)),
            json!({"downsampled": false, "points": [[1, [1.0, 2.0]], [2, [3.0, 4.0]]]})
        );
        assert_eq!(points_json(&pts, 0, 10, None)["points"].as_array().unwrap().len(), 2);
    }
}
