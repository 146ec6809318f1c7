//! Who wants a service in dev mode: `up --dev` (until `down` or an `up` without
//! `--dev`) or a `devenv dev` session (while it lasts). Pure data, kept on the
//! status board.

/// Who asked for a service's dev mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevOwner {
    /// `up --dev`: until `down` or an `up` without `--dev`.
    Up,
    /// A `devenv dev SERVICE` session (its id): until the client goes away.
    Session(u64),
}
