//! rampart-config
