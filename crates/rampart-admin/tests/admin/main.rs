//! The admin API on a real listener, with a real gateway and a real SQLite store.

mod support;

mod api;
