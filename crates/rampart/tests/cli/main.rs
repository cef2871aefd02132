//! End-to-end tests of the `rampart` binary: real processes, real ports, signals.

mod support;

mod admin;
mod audit;
mod commands;
mod serve;
