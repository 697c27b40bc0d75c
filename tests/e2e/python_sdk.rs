//! End-to-end tests: python_sdk.
