//! [`PipelineState`]: a pipeline's registry state plus what lives only in
//! the pipeline: distinct counters' HyperLogLog registers and the open
//! sessions of its trackers. [`Pipeline::export_state`] and
//! [`Pipeline::merge_state`]; bytes in `wire` (`encode_pipeline_state`).

use super::event::Kind;
use super::keyed::{DistinctConfig, SessionsConfig};
use super::shared::{lock, route_key, Target};
use super::{Pipeline, PipelineError};
use crate::stats::RegistryState;
use crate::sync::StdArc;

/// The full state of a pipeline's statistics.
///
/// Merge rules: the registry state merges as [`RegistryState`] says;
/// distinct counters take the register-wise max of their HyperLogLog
/// sketches (the union: the merged estimate is the one a single counter
/// that saw every key would give); open sessions are united by key (a key
/// open on both sides keeps the target's start, while the `{name}_open`
/// gauge, which adds, counts it twice: give each machine its own keys).
///
/// Restored or merged sketches count in
/// [`distinct_count`](Pipeline::distinct_count), not in
/// [`distinct_in_window`](Pipeline::distinct_in_window) (the window
/// sketches are not carried).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PipelineState {
    /// Every metric of the pipeline's registry (its own and the trackers'
    /// metrics included).
    pub registry: RegistryState,
    /// The distinct counters, by name.
    pub distinct: Vec<DistinctState>,
    /// The session trackers, by name.
    pub sessions: Vec<SessionsState>,
}

impl PipelineState {
    /// Makes this the state of a pipeline that is gone, as
    /// [`RegistryState::retire`](crate::stats::RegistryState::retire), and
    /// its open sessions closed without a duration (nobody is online there
    /// any more). Distinct counters stay.
    pub fn retire(&mut self) {
        self.registry.retire();
        for s in &mut self.sessions {
            s.open.clear();
        }
    }
}

/// One distinct counter of a [`PipelineState`].
#[derive(Debug, Clone, PartialEq)]
pub struct DistinctState {
    /// Its name.
    pub name: String,
    /// Its config.
    pub config: DistinctConfig,
    /// Its registers, every worker's merged: `2^precision` bytes.
    pub registers: Vec<u8>,
}

/// One session tracker of a [`PipelineState`].
#[derive(Debug, Clone, PartialEq)]
pub struct SessionsState {
    /// Its name.
    pub name: String,
    /// Its config.
    pub config: SessionsConfig,
    /// `(key, start ts)` of every open session, sorted by key.
    pub open: Vec<(u64, u64)>,
}

impl Pipeline {
    /// The full state of the pipeline's statistics (see [`PipelineState`]).
    /// Flushes first: the open sessions are read by the workers as they
    /// answer the flush. Exact when nothing is sent meanwhile (a
    /// checkpoint pauses its input); otherwise events sent during the
    /// export may be in some parts and not others.
    ///
    /// # Errors
    ///
    /// [`PipelineError::InvalidState`] on a closed or forked pipeline (its
    /// open sessions are gone with its workers).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::pipeline::{Event, Pipeline};
    /// use ringstat::Registry;
    ///
    /// let a = Pipeline::new(&Registry::new())?;
    /// let (users, online) = (a.distinct("users")?, a.sessions("online")?);
    /// a.send(Event::seen(users, 7))?;
    /// a.send(Event::start(online, 7).at(1_000_000))?;
    /// let state = a.export_state()?;
    ///
    /// let reg = Registry::new();
    /// let b = Pipeline::new(&reg)?;
    /// b.merge_state(&state)?;
    /// let online = b.sessions("online")?;
    /// b.send(Event::end(online, 7).at(3_000_000))?;
    /// b.flush();
    /// assert_eq!(b.distinct_count(b.distinct("users")?).round(), 1.0);
    /// assert_eq!(reg.counter("online_completed_total", &[])?.get(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn export_state(&self) -> Result<PipelineState, PipelineError> {
        self.check_live()?;
        let workers = self.shared.queues.len();
        let (sessions, distinct) = self.trackers();
        let mut ids = Vec::with_capacity(sessions.len());
        for (_, s) in &sessions {
            let mut ex = lock(&s.exchange);
            let id = ex.next_request;
            ex.next_request += 1;
            ex.requests.push((id, vec![None; workers]));
            ids.push(id);
        }
        self.flush();
        let mut out = PipelineState::default();
        for ((name, s), id) in sessions.into_iter().zip(ids) {
            let mut ex = lock(&s.exchange);
            let at = ex.requests.iter().position(|(i, _)| *i == id);
            let slots = at.map(|i| ex.requests.swap_remove(i).1).unwrap_or_default();
            drop(ex);
            let mut open = Vec::new();
            for slot in slots {
                // A worker that did not answer has exited: closed meanwhile.
                open.extend(slot.ok_or_else(|| PipelineError::InvalidState {
                    reason: "the pipeline closed during the export".into(),
                })?);
            }
            open.sort_unstable();
            out.sessions.push(SessionsState {
                name,
                config: s.config,
                open,
            });
        }
        for (name, d) in distinct {
            out.distinct.push(DistinctState {
                name,
                config: d.config,
                registers: d.registers(),
            });
        }
        out.registry = self.shared.registry.export_state();
        Ok(out)
    }

    /// Merges `state` into this pipeline: its registry state into the
    /// pipeline's registry, its sketches into the distinct counters and
    /// its open sessions into the trackers (created with the state's
    /// configs if missing), then flushes so the workers hold the sessions.
    ///
    /// # Errors
    ///
    /// [`PipelineError::ConfigMismatch`] for a distinct counter or tracker
    /// that exists with another config, [`PipelineError::InvalidState`]
    /// for registers of the wrong size or a closed pipeline, and the
    /// [`StatsError`](crate::stats::StatsError)s of
    /// [`Registry::merge_state`](crate::stats::Registry::merge_state); all
    /// checked before anything changes.
    pub fn merge_state(&self, state: &PipelineState) -> Result<(), PipelineError> {
        self.check_live()?;
        {
            let table = self.shared.lock_table();
            for d in &state.distinct {
                super::hll::check_precision(d.config.precision)?;
                if d.registers.len() != 1 << d.config.precision {
                    return Err(PipelineError::InvalidState {
                        reason: format!(
                            "distinct counter {:?}: {} registers for precision {}",
                            d.name,
                            d.registers.len(),
                            d.config.precision
                        ),
                    });
                }
                if let Some(&v) = d.registers.iter().find(|&&v| v > 65 - d.config.precision) {
                    return Err(PipelineError::InvalidState {
                        reason: format!("distinct counter {:?}: register value {v}", d.name),
                    });
                }
                let tick = d.config.window.as_nanos() / (d.config.buckets.max(1) as u128);
                if d.config.buckets == 0 || tick < 1_000_000 {
                    return Err(PipelineError::InvalidWindow {
                        window: d.config.window,
                        buckets: d.config.buckets,
                    });
                }
                if let Some(id) = table.find(Kind::Distinct, &d.name) {
                    if !matches!(&table.targets[id as usize], Target::Distinct(x, ..) if x.config == d.config)
                    {
                        return Err(PipelineError::ConfigMismatch {
                            name: d.name.clone(),
                        });
                    }
                }
            }
            for s in &state.sessions {
                if s.config.significant_digits > 5 || s.config.max_open == Some(0) {
                    return Err(PipelineError::InvalidState {
                        reason: format!("session tracker {:?}: config {:?}", s.name, s.config),
                    });
                }
                if let Some(id) = table.find(Kind::Sessions, &s.name) {
                    if !matches!(&table.targets[id as usize], Target::Sessions(x) if x.config == s.config)
                    {
                        return Err(PipelineError::ConfigMismatch {
                            name: s.name.clone(),
                        });
                    }
                }
            }
        }
        self.shared.registry.merge_state(&state.registry)?;
        let workers = self.shared.queues.len();
        for d in &state.distinct {
            let id = self.distinct_with(&d.name, d.config)?;
            // Cloned out first: no other lock is taken under the table's.
            let target = self.shared.lock_table().targets.get(id.0 as usize).cloned();
            if let Some(Target::Distinct(x, ..)) = target {
                x.import(&d.registers);
            }
        }
        for s in &state.sessions {
            let id = self.sessions_with(&s.name, s.config)?;
            let target = self.shared.lock_table().targets.get(id.0 as usize).cloned();
            if let Some(Target::Sessions(x)) = target {
                let mut ex = lock(&x.exchange);
                ex.imports.resize_with(workers, Vec::new);
                for &(key, ts) in &s.open {
                    let w = route_key(key, workers);
                    ex.imports[w].push((key, ts));
                }
            }
        }
        self.flush();
        Ok(())
    }

    fn check_live(&self) -> Result<(), PipelineError> {
        if self.is_closed() || self.is_forked_copy() {
            return Err(PipelineError::InvalidState {
                reason: "the pipeline is closed (or a forked copy): its workers are gone".into(),
            });
        }
        Ok(())
    }

    /// The session trackers and distinct counters, with their names.
    #[allow(clippy::type_complexity)]
    fn trackers(
        &self,
    ) -> (
        Vec<(String, StdArc<super::keyed::SessionsShared>)>,
        Vec<(String, StdArc<super::keyed::DistinctShared>)>,
    ) {
        let table = self.shared.lock_table();
        let mut sessions = Vec::new();
        let mut distinct = Vec::new();
        for (name, &id) in table.names(Kind::Sessions) {
            if let Some(Target::Sessions(s)) = table.targets.get(id as usize) {
                sessions.push((name.to_string(), StdArc::clone(s)));
            }
        }
        for (name, &id) in table.names(Kind::Distinct) {
            if let Some(Target::Distinct(d, ..)) = table.targets.get(id as usize) {
                distinct.push((name.to_string(), StdArc::clone(d)));
            }
        }
        sessions.sort_by(|a, b| a.0.cmp(&b.0));
        distinct.sort_by(|a, b| a.0.cmp(&b.0));
        (sessions, distinct)
    }
}
