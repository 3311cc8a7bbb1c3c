use crate::ActionError;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Mutex;

/// A durable key/value store a connector uses to remember what it did at a vendor: the Jira
/// issue key of an incident, the Slack channel and `ts` of a message, the stage a secret
/// rotation reached. Writes are committed before `put` returns, so they survive a crash.
///
/// Values must never contain secrets.
#[async_trait::async_trait]
pub trait RefStore: Send + Sync {
    async fn get(&self, namespace: &str, key: &str) -> Result<Option<Value>, ActionError>;
    async fn put(&self, namespace: &str, key: &str, value: &Value) -> Result<(), ActionError>;
    async fn delete(&self, namespace: &str, key: &str) -> Result<(), ActionError>;
}

/// An in-memory `RefStore` for `simulate` and unit tests.
#[derive(Default)]
pub struct MemoryRefStore {
    map: Mutex<HashMap<(String, String), Value>>,
}

impl MemoryRefStore {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait::async_trait]
impl RefStore for MemoryRefStore {
    async fn get(&self, namespace: &str, key: &str) -> Result<Option<Value>, ActionError> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        Ok(map.get(&(namespace.to_string(), key.to_string())).cloned())
    }
    async fn put(&self, namespace: &str, key: &str, value: &Value) -> Result<(), ActionError> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.insert((namespace.to_string(), key.to_string()), value.clone());
        Ok(())
    }
    async fn delete(&self, namespace: &str, key: &str) -> Result<(), ActionError> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&(namespace.to_string(), key.to_string()));
        Ok(())
    }
}
