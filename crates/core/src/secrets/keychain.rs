//! The `keychain` provider: entries of the OS keychain through the `keyring` crate
//! (macOS Keychain; on Linux the Secret Service over D-Bus: gnome-keyring, KeePassXC).
//! The crate's calls block on D-Bus, so they run on the blocking pool.

use std::collections::BTreeMap;

/// A keychain entry could not be read. The message never holds a value.
#[derive(Debug, thiserror::Error)]
pub enum KeychainError {
    #[error("the keychain has no entry for service `{service}`, account `{account}`; add it (Linux: `secret-tool store --label={service} service {service} username {account}`, macOS: `security add-generic-password -s {service} -a {account} -w`)")]
    NoEntry { service: String, account: String },
    #[error("cannot read keychain entry service `{service}`, account `{account}`: {source}")]
    Access {
        service: String,
        account: String,
        #[source]
        source: keyring::Error,
    },
    #[error("reading the keychain stopped: {0}")]
    Join(#[from] tokio::task::JoinError),
}

pub(super) async fn read(
    service: String,
    keys: BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, KeychainError> {
    tokio::task::spawn_blocking(move || {
        keys.iter()
            .map(|(key, account)| {
                let access = |source| KeychainError::Access {
                    service: service.clone(),
                    account: account.clone(),
                    source,
                };
                let entry = keyring::Entry::new(&service, account).map_err(access)?;
                match entry.get_password() {
                    Ok(v) => Ok((key.clone(), v)),
                    Err(keyring::Error::NoEntry) => Err(KeychainError::NoEntry {
                        service: service.clone(),
                        account: account.clone(),
                    }),
                    Err(e) => Err(access(e)),
                }
            })
            .collect()
    })
    .await?
}
