//! (being built)

use crate::http::AppState;
use axum::Router;

/// This module's routes (method, path).
pub const ROUTES: &[(&str, &str)] = &[];

/// This module's texts `(key, ja, en)`.
pub static TEXTS: &[(&str, &str, &str)] = &[];

pub fn routes() -> Router<AppState> {
    Router::new()
}
