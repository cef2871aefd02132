//! HTTP/1.1, Rampart's own: the message codec, the server side of client
//! connections, and the client side of upstream connections.
//!
//! The proxy's hot path is HTTP/1.1 in and out. Doing it here rather than through a
//! general-purpose HTTP library lets one connection task parse a head in place,
//! run the phases, write the upstream request in one system call, and read the
//! upstream response body directly from its pooled connection as the client side
//! writes it out, with no intermediate task or channel. HTTP/2 stays with hyper.

pub(crate) mod client;
pub mod codec;
pub(crate) mod server;
pub(crate) mod upgrade;
