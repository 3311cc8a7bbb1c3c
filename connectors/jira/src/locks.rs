//! Per-key async locks: writes to one Jira issue (and creates for one incident) run one at a
//! time inside this process.
//!
//! Jira Cloud throttles writes to a single issue separately (`jira-per-issue-on-write`), and
//! a comment racing a transition on the same issue can hit a 409. Serialising per issue avoids
//! both without slowing writes to other issues. The map never grows without bound: an entry is
//! removed when its last holder or waiter lets go. This is a process-local lock; it must never
//! be mistaken for dedup across workers, which refs and the vendor-side label provide.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::OwnedMutexGuard;

#[derive(Default)]
pub struct KeyedLocks {
    map: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

pub struct KeyedGuard<'a> {
    locks: &'a KeyedLocks,
    key: String,
    mutex: Arc<tokio::sync::Mutex<()>>,
    guard: Option<OwnedMutexGuard<()>>,
}

impl KeyedLocks {
    pub async fn lock(&self, key: &str) -> KeyedGuard<'_> {
        let mutex = {
            let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(key.to_string()).or_default().clone()
        };
        let guard = mutex.clone().lock_owned().await;
        KeyedGuard { locks: self, key: key.to_string(), mutex, guard: Some(guard) }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Drop for KeyedGuard<'_> {
    fn drop(&mut self) {
        self.guard.take();
        let mut map = self.locks.map.lock().unwrap_or_else(|p| p.into_inner());
        // Two owners left (the map and this guard) means nobody else holds or awaits it; other
        // tasks clone under the same map lock, so this count cannot race them.
        if Arc::strong_count(&self.mutex) == 2 {
            map.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn same_key_serialises_and_entries_are_dropped() {
        let locks = Arc::new(KeyedLocks::default());
        let order = Arc::new(Mutex::new(Vec::new()));
        let g = locks.lock("SEC-1").await;
        let (l2, o2) = (locks.clone(), order.clone());
        let t = tokio::spawn(async move {
            let _g = l2.lock("SEC-1").await;
            o2.lock().unwrap().push("second");
        });
        let _other = locks.lock("SEC-2").await; // a different issue is not blocked
        tokio::time::sleep(Duration::from_millis(20)).await;
        order.lock().unwrap().push("first");
        drop(g);
        t.await.unwrap();
        assert_eq!(*order.lock().unwrap(), ["first", "second"]);
        drop(_other);
        assert_eq!(locks.len(), 0);
    }
}
