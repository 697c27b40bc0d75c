//! End-to-end tests: cos.
