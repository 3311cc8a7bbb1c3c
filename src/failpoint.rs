//! Failpoints: named places where a crash test makes the process die.
//!
//! `failpoint!("step.after_intent")` is compiled into debug builds and into builds with the
//! `failpoints` feature; in release builds without it the macro expands to nothing. Even where
//! compiled in, it is inert unless the environment variable `FLOODGATE_FAILPOINTS` names it:
//!
//! `FLOODGATE_FAILPOINTS="step.after_intent=kill@2,intake.before_commit=kill"`
//!
//! `kill` sends SIGKILL to the process itself on the first hit, `kill@N` on the N-th hit — the
//! same death a crash or the OOM killer causes: no destructors, no flushing, no goodbyes.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

struct Point {
    kill_on: u64,
    hits: u64,
}

fn points() -> &'static Mutex<HashMap<String, Point>> {
    static POINTS: OnceLock<Mutex<HashMap<String, Point>>> = OnceLock::new();
    POINTS.get_or_init(|| {
        let mut map = HashMap::new();
        if let Ok(spec) = std::env::var("FLOODGATE_FAILPOINTS") {
            for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let Some((name, action)) = item.split_once('=') else {
                    continue;
                };
                let kill_on = match action.strip_prefix("kill") {
                    Some("") => 1,
                    Some(n) => n.strip_prefix('@').and_then(|n| n.parse().ok()).unwrap_or(1),
                    None => continue,
                };
                map.insert(name.to_string(), Point { kill_on, hits: 0 });
            }
        }
        Mutex::new(map)
    })
}

/// Called by `failpoint!`; do not call directly.
pub fn hit(name: &str) {
    let mut map = points().lock().unwrap_or_else(|p| p.into_inner());
    let Some(p) = map.get_mut(name) else { return };
    p.hits += 1;
    if p.hits == p.kill_on {
        eprintln!("failpoint {name}: killing the process (hit {})", p.hits);
        // SAFETY: getpid and kill have no preconditions; SIGKILL ends the process at once.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

/// Marks a place a crash test may kill the process. Expands to nothing in release builds
/// without the `failpoints` feature.
#[macro_export]
macro_rules! failpoint {
    ($name:expr) => {
        #[cfg(any(debug_assertions, feature = "failpoints"))]
        {
            $crate::failpoint::hit($name);
        }
    };
}
