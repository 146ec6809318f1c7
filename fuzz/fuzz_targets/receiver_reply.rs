//! The sync receiver's output (reply lines and tree listings) as a session parses it:
//! the receiver runs in a pod devenv does not control, so any bytes must parse without
//! a panic, in the byte-level reader the session uses and the text-level one.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let lines = data.split(|b| *b == b'\n').count();
    let (replies, entries, bad, _pinned) = devenv_core::sync::parse_receiver_bytes(data);
    assert!(replies + entries + bad <= lines);
    if let Ok(text) = std::str::from_utf8(data) {
        let (replies, entries, bad) = devenv_core::sync::parse_receiver_output(text);
        assert!(replies + entries + bad <= lines);
    }
});
