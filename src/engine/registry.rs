//! What the engine runs with: playbooks (current and pinned versions), configured connectors,
//! and the people who approve.

use crate::config::Config;
use crate::playbook::{self, ActionCatalog, CompileOptions, Playbook, RenderError};
use crate::store::Store;
use floodgate_sdk::Connector;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, RwLock};

/// A playbook chosen for an alert, and the alert's rendered group key: `Ok(None)` when the
/// playbook does not group, `Err` when its key template failed for this alert.
pub type Routed = (Arc<Playbook>, Result<Option<String>, RenderError>);

/// Playbooks: the current set (for new alerts) and every version runs are pinned to.
pub struct Playbooks {
    current: RwLock<Vec<Arc<Playbook>>>,
    by_hash: RwLock<HashMap<String, Arc<Playbook>>>,
    catalog: ActionCatalog,
}

impl Playbooks {
    pub fn new(list: Vec<Playbook>, catalog: ActionCatalog) -> Self {
        let mut list: Vec<Arc<Playbook>> = list.into_iter().map(Arc::new).collect();
        list.sort_by(|a, b| b.priority.cmp(&a.priority).then_with(|| a.id.cmp(&b.id)));
        let by_hash = list.iter().map(|p| (p.hash.clone(), p.clone())).collect();
        Playbooks { current: RwLock::new(list), by_hash: RwLock::new(by_hash), catalog }
    }

    /// Loads every playbook of `dir`, checked against the config's groups and policy; any
    /// problem is an error listing all of them.
    pub fn load(dir: &Path, catalog: ActionCatalog, cfg: &Config) -> Result<Self, String> {
        let groups = cfg.group_members();
        let opts = CompileOptions { catalog: &catalog, groups: Some(&groups), policy: Some(&cfg.policy) };
        let (list, diags) = playbook::load_dir(dir, opts);
        if !diags.is_empty() {
            return Err(diags.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"));
        }
        Ok(Self::new(list, catalog))
    }

    pub fn current(&self) -> Vec<Arc<Playbook>> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The highest-priority playbook that takes this alert (its sources, rules and `when` all
    /// match), and its rendered group key. A key that fails to render does not change which
    /// playbook takes the alert: the caller decides what to do without a key.
    pub fn route(&self, alert: &serde_json::Value) -> Option<Routed> {
        let source = alert["source"].as_str().unwrap_or_default();
        let rule = alert["rule"].as_str();
        let mut ctx = tera::Context::new();
        ctx.insert("alert", alert);
        for p in self.current() {
            if !p.accepts(source, rule) {
                continue;
            }
            if let Some(c) = &p.when {
                // A condition that cannot be evaluated on this alert (a missing field) does not match.
                if !p.templates.eval(c, &ctx).unwrap_or(false) {
                    continue;
                }
            }
            let key = match &p.group {
                Some(g) => p.templates.render_text(&g.key, &ctx).map(Some),
                None => Ok(None),
            };
            return Some((p, key));
        }
        None
    }

    /// The exact version a run is pinned to, compiled from the stored source if it is not
    /// among the current files any more.
    pub async fn by_hash(&self, store: &Store, hash: &str) -> Result<Arc<Playbook>, String> {
        if let Some(p) = self.by_hash.read().unwrap_or_else(|p| p.into_inner()).get(hash) {
            return Ok(p.clone());
        }
        let (path, source) = store
            .playbook_source(hash)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("playbook version {hash} is not stored"))?;
        let p = playbook::compile(
            source.as_bytes(),
            &path,
            // A pinned version compiles without today's groups and policy, so a run finishes on the
            // version it started with even if the config changed since; the policy is still
            // enforced as its steps run.
            CompileOptions { catalog: &self.catalog, groups: None, policy: None },
        )
        .map_err(|d| d.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))?;
        let p = Arc::new(p);
        self.by_hash.write().unwrap_or_else(|p| p.into_inner()).insert(hash.to_string(), p.clone());
        Ok(p)
    }
}

/// Connectors by name, built from the config.
#[derive(Clone, Default)]
pub struct Connectors {
    map: HashMap<String, Arc<dyn Connector>>,
}

impl Connectors {
    /// Builds every known connector: configured ones from their table, the rest unconfigured
    /// (their `plan()` works, `execute()` says what to configure).
    pub fn build(config: &BTreeMap<String, serde_json::Value>) -> Result<Self, String> {
        let kinds = crate::connectors::kinds();
        for name in config.keys() {
            if !kinds.iter().any(|k| k.name() == name) {
                let known: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
                return Err(format!("[connectors.{name}]: unknown connector; known: {}", known.join(", ")));
            }
        }
        let mut map = HashMap::new();
        for k in &kinds {
            let c = k.build(config.get(k.name())).map_err(|e| e.to_string())?;
            map.insert(k.name().to_string(), c);
        }
        Ok(Connectors { map })
    }

    pub fn with(mut self, connector: Arc<dyn Connector>) -> Self {
        self.map.insert(connector.name().to_string(), connector);
        self
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Connector>> {
        self.map.get(name)
    }
}

/// A person, as approvals see them.
#[derive(Debug, Clone)]
pub struct Person {
    pub id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub slack_user_id: Option<String>,
}

/// Who is who, and who is in which group.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    pub people: BTreeMap<String, Person>,
    pub groups: BTreeMap<String, BTreeSet<String>>,
    /// The global approval policy.
    pub policy: crate::config::PolicyConfig,
}

impl Directory {
    pub fn from_config(cfg: &Config) -> Self {
        Directory {
            people: cfg
                .identities
                .iter()
                .map(|i| {
                    (
                        i.id.clone(),
                        Person {
                            id: i.id.clone(),
                            name: i.name.clone(),
                            email: i.email.clone(),
                            slack_user_id: i.slack_user_id.clone(),
                        },
                    )
                })
                .collect(),
            groups: cfg.group_members(),
            policy: cfg.policy.clone(),
        }
    }

    /// Everyone in any of `groups`.
    pub fn members(&self, groups: &[String]) -> BTreeSet<String> {
        groups.iter().filter_map(|g| self.groups.get(g)).flatten().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn compile(yaml: &str) -> Playbook {
        let catalog = crate::connectors::catalog();
        let opts = CompileOptions { catalog: &catalog, groups: None, policy: None };
        playbook::compile(yaml.as_bytes(), "test.yaml", opts).unwrap_or_else(|d| panic!("{d:?}"))
    }

    fn playbook(id: &str, priority: i32, extra: &str) -> Playbook {
        compile(&format!(
            "id: {id}\nname: {id}\nversion: 1\npriority: {priority}\n{extra}\nsteps:\n  triage:\n    - id: note\n      action: core.log\n      with:\n        message: hi\n"
        ))
    }

    #[test]
    fn a_step_without_retry_gets_three_attempts() {
        let pb = playbook("p", 0, "match: {}");
        let r = &pb.steps[0].retry;
        assert_eq!((r.max_attempts, r.backoff, r.max_backoff), (3, Duration::from_secs(5), Duration::from_secs(300)));
        let pb = compile(
            "id: p\nname: p\nmatch: {}\nsteps:\n  triage:\n    - {id: a, action: core.log, retry: {max_attempts: 1}, with: {message: x}}\n",
        );
        assert_eq!(pb.steps[0].retry.max_attempts, 1);
    }

    #[test]
    fn a_group_key_that_fails_keeps_the_playbook_whose_when_matched() {
        // The higher-priority playbook's `when` does not match; the other one's key fails.
        let critical = playbook("critical-only", 10, "match:\n  source: siem\n  when: alert.severity == \"critical\"");
        let grouped = playbook(
            "grouped",
            5,
            "match:\n  source: siem\ngroup:\n  key: \"{{ alert.entities.nope.deeper }}\"\n  window: 1h",
        );
        let pbs = Playbooks::new(vec![critical, grouped], crate::connectors::catalog());
        let alert = serde_json::json!({"source": "siem", "severity": "low", "entities": {}});
        let (pb, key) = pbs.route(&alert).expect("routed");
        assert_eq!(pb.id, "grouped");
        assert!(key.is_err(), "{key:?}");

        let alert = serde_json::json!({"source": "siem", "severity": "critical", "entities": {}});
        let (pb, key) = pbs.route(&alert).expect("routed");
        assert_eq!(pb.id, "critical-only");
        assert_eq!(key.ok(), Some(None));
    }

    #[test]
    fn an_alert_no_when_matches_is_not_routed_even_if_a_key_fails() {
        let pb = playbook(
            "grouped",
            5,
            "match:\n  source: siem\n  when: alert.severity == \"critical\"\ngroup:\n  key: \"{{ alert.entities.nope.deeper }}\"\n  window: 1h",
        );
        let pbs = Playbooks::new(vec![pb], crate::connectors::catalog());
        let alert = serde_json::json!({"source": "siem", "severity": "low", "entities": {}});
        assert!(pbs.route(&alert).is_none());
        let alert = serde_json::json!({"source": "siem", "severity": "critical", "entities": {}});
        let (pb, key) = pbs.route(&alert).expect("routed");
        assert_eq!(pb.id, "grouped");
        assert!(key.is_err());
    }
}
