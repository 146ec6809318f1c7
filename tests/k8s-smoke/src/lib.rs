//! See tests/smoke.rs.
