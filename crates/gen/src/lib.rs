//! A deterministic generator of realistic CloudTrail records ([`Generator`]).
//!
//! The same seed and options give byte-identical records on every machine and
//! build: the PRNG is specified in this crate and the JSON is written with a
//! fixed key order. `cairn loadgen`, the benchmarks and tests use it; it knows
//! nothing of the network, the server or the pipeline, so anything that needs
//! realistic records can depend on it without pulling in a client.

pub mod generator;
mod json;
mod rng;

pub use generator::{
    DEFAULT_ACCOUNTS, DEFAULT_EVENTS_PER_SECOND, DEFAULT_REGIONS, Generator, GeneratorOptions,
};
