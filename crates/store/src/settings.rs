//! Installation settings (outgoing mail), with secret values sealed by the installation's
//! own data key.

use crate::orgs::now_micros;
use crate::secrets::{KeyOwner, Place, open_for, seal_for};
use crate::tenant::with_conn;
use crate::{Store, StoreError};
use secrecy::{ExposeSecret, SecretString};

impl Store {
    /// Stores a setting; `secret` (if any) is sealed, never stored in plain text.
    pub async fn put_system_setting(
        &self,
        key: &str,
        value: &str,
        secret: Option<&SecretString>,
    ) -> Result<(), StoreError> {
        let mut g = self.begin_global(true).await?;
        let sealed = match secret {
            Some(s) => {
                let place = Place {
                    table: "system_settings",
                    column: "secret",
                    row_id: key,
                };
                Some(
                    seal_for(
                        &mut g.tx,
                        &g.vault,
                        KeyOwner::System,
                        place,
                        s.expose_secret().as_bytes(),
                    )
                    .await?,
                )
            }
            None => None,
        };
        with_conn!(g.tx, c => {
            sqlx::query("INSERT INTO system_settings (key, value, secret, updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT (key) DO UPDATE SET value = excluded.value, secret = excluded.secret, updated_at = excluded.updated_at")
                .bind(key)
                .bind(value)
                .bind(sealed)
                .bind(now_micros())
                .execute(c)
                .await?;
        });
        g.commit().await
    }

    /// A setting's value and its secret, opened.
    pub async fn system_setting(
        &self,
        key: &str,
    ) -> Result<Option<(String, Option<SecretString>)>, StoreError> {
        let mut g = self.begin_global(false).await?;
        let row: Option<(String, Option<Vec<u8>>)> = with_conn!(g.tx, c => {
            sqlx::query_as("SELECT value, secret FROM system_settings WHERE key = $1")
                .bind(key)
                .fetch_optional(c)
                .await?
        });
        let Some((value, sealed)) = row else {
            g.commit().await?;
            return Ok(None);
        };
        let secret = match sealed {
            Some(ct) => {
                let place = Place {
                    table: "system_settings",
                    column: "secret",
                    row_id: key,
                };
                let plain = open_for(&mut g.tx, &g.vault, KeyOwner::System, place, &ct).await?;
                let text = std::str::from_utf8(&plain)
                    .map_err(|_| StoreError::Corrupt("setting secret is not UTF-8".into()))?;
                Some(SecretString::from(text.to_owned()))
            }
            None => None,
        };
        g.commit().await?;
        Ok(Some((value, secret)))
    }
}
