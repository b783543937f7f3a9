//! Wall-clock time as the service stores it: milliseconds since the Unix epoch. The one place
//! that reads the system clock for timestamps (stored audit times, leases, claims, heartbeats).

/// Now, in epoch milliseconds (0 if the clock is before 1970).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
