//! YAML bytes -> checked config model, the way `devenv validate` loads a project file:
//! any input must give a config or located errors, quickly, without a panic, a stack
//! overflow or unbounded memory (libFuzzer's -rss_limit_mb and -timeout catch those).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = Path::new("/fuzz/.devenv/config.yml");
    match devenv_core::config::load_str(file, text) {
        Ok(loaded) => {
            assert!(!loaded.environment.name.is_empty());
        }
        Err(errors) => {
            assert!(!errors.0.is_empty(), "an error list is never empty");
        }
    }
});
