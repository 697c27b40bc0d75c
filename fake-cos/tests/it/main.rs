//! End-to-end tests of the fake COS over real TCP on 127.0.0.1, one module per family.

mod client;
mod faults;
mod journal;
mod resume;
mod serving;
mod signing;
