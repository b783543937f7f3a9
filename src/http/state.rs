//! What every handler shares ([`ApiState`]): the service and the labeling loop below it, plus
//! what only HTTP needs (the token cache, rate buckets, the in-flight limit, and the Kafka
//! source's heartbeat for `/readyz`).

use std::sync::Arc;

use super::rate::RateLimiter;
use crate::auth::TokenCache;
use crate::labeling::Labeling;
use crate::service::{Heartbeat, Service};

/// The handlers' state: cheap handles.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// The write path, series administration, storage, settings and metrics.
    pub service: Service,
    /// The labeling loop.
    pub labeling: Labeling,
    /// Recently validated API tokens.
    pub tokens: TokenCache,
    /// Per-token request buckets.
    pub limiter: RateLimiter,
    /// API requests in progress, at most `http.max_in_flight`.
    pub in_flight: Arc<tokio::sync::Semaphore>,
    /// The Kafka consumer thread's heartbeat (read by `/readyz` when Kafka is on).
    pub kafka: Heartbeat,
}

impl ApiState {
    /// The state over the service, the labeling loop and the Kafka heartbeat.
    pub fn new(service: Service, labeling: Labeling, kafka: Heartbeat) -> Self {
        let in_flight = Arc::new(tokio::sync::Semaphore::new(service.settings.http.max_in_flight));
        Self { service, labeling, tokens: TokenCache::default(), limiter: RateLimiter::default(), in_flight, kafka }
    }
}
