//! End-to-end tests: scenarios.
