//! config.toml.
//!
//! Invariants: no panic; a file is either refused with a message or gives
//! settings within their documented limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tether::config::Config;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match Config::parse(&text) {
        Ok(config) => {
            assert!(config.scrollback_cells <= tether::config::MAX_SCROLLBACK_CELLS);
            assert!((1..=100_000).contains(&config.max_connections));
            assert!((1..=1024).contains(&config.max_channels));
            assert!(config.per_address_burst <= 100_000);
            assert!((1..=100_000).contains(&config.per_address_rate));
            assert!(config.segment_bytes >= 64 * 1024);
            assert!(config.listen.parse::<std::net::SocketAddr>().is_ok());
            assert!(!config.default_term.is_empty());
        }
        Err(message) => assert!(!message.is_empty()),
    }
});
