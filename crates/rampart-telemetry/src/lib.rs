//! rampart-telemetry
