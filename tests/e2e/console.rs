//! End-to-end tests: the web console in a real browser.
