//! The durable `RefStore` connectors keep vendor references in (`external_refs`).

use super::Store;
use crate::args;
use floodgate_sdk::{ActionError, RefStore};
use serde_json::Value;

/// Connector references stored in floodgate's database; each write commits at once.
#[derive(Clone)]
pub struct StoreRefs {
    pub store: Store,
    pub clock: crate::clock::SharedClock,
}

fn db_error(e: super::StoreError) -> ActionError {
    ActionError::retryable("database", format!("cannot reach floodgate's database: {e}"))
}

#[async_trait::async_trait]
impl RefStore for StoreRefs {
    async fn get(&self, namespace: &str, key: &str) -> Result<Option<Value>, ActionError> {
        let row = self
            .store
            .opt("SELECT value FROM external_refs WHERE namespace = $1 AND key = $2", args![namespace, key])
            .await
            .map_err(db_error)?;
        row.map(|r| r.json("value").map_err(db_error)).transpose()
    }

    async fn put(&self, namespace: &str, key: &str, value: &Value) -> Result<(), ActionError> {
        let mut tx = self.store.begin_durable().await.map_err(db_error)?;
        tx.exec(
            "INSERT INTO external_refs (namespace, key, value, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            args![namespace, key, value.to_string(), self.clock.now_ms()],
        )
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    async fn delete(&self, namespace: &str, key: &str) -> Result<(), ActionError> {
        let mut tx = self.store.begin_durable().await.map_err(db_error)?;
        tx.exec("DELETE FROM external_refs WHERE namespace = $1 AND key = $2", args![namespace, key])
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }
}
