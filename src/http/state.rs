//! What every handler shares ([`ApiState`]): the service and the labeling loop below it, plus
//! what only HTTP needs (the token cache, rate buckets, the in-flight limits, and the Kafka
//! source's heartbeat for `/readyz`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

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
    /// API reads in progress, at most `http.max_in_flight`.
    pub reads: Arc<tokio::sync::Semaphore>,
    /// API writes in progress, at most `http.max_in_flight`, admitted apart from reads so
    /// slow writes cannot starve queries (nor the reverse).
    pub writes: Arc<tokio::sync::Semaphore>,
    /// Slots each token holds now, by (token name, write?): at most `http.token_share` of each.
    pub held: Arc<Mutex<HashMap<(String, bool), usize>>>,
    /// The Kafka consumer thread's heartbeat (read by `/readyz` when Kafka is on).
    pub kafka: Heartbeat,
}

impl ApiState {
    /// The state over the service, the labeling loop and the Kafka heartbeat.
    pub fn new(service: Service, labeling: Labeling, kafka: Heartbeat) -> Self {
        let slots = || Arc::new(tokio::sync::Semaphore::new(service.settings.http.max_in_flight));
        Self {
            reads: slots(),
            writes: slots(),
            held: Arc::default(),
            service,
            labeling,
            tokens: TokenCache::default(),
            limiter: RateLimiter::default(),
            kafka,
        }
    }
}
