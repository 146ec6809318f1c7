//! The second local user that tests run impostors and clients as (created by
//! scripts/install-test-tools.sh when it runs as root).

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

pub const OTHER_USER: &str = "devenv-test-other";

/// (uid, gid) of [`OTHER_USER`]; panics with what to do when this is not root or the
/// user does not exist. `doing` finishes "it runs ... as the other user".
pub fn other_user(doing: &str) -> (u32, u32) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test must run as root (it runs {doing} as {OTHER_USER}); run scripts/test.sh"
    );
    let user = nix::unistd::User::from_name(OTHER_USER)
        .expect("look up user")
        .unwrap_or_else(|| {
            panic!("user {OTHER_USER} does not exist; create it with scripts/install-test-tools.sh")
        });
    (user.uid.as_raw(), user.gid.as_raw())
}

/// chmod that panics naming the path.
pub fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}
