//! Model state, and the one path by which a model's own storage work (its
//! state, its blocks) runs: through its actor, which takes the model's rate
//! tokens and holds what a write costs until the write commits; the work
//! itself runs off the actor's thread.

use actix::prelude::*;
use hvs_storage::{Filter, NewVector, SearchQuery, VectorUpdate};
use uuid::Uuid;

use crate::admission::Admission;
use crate::error::{ActorError, Result};
use crate::hub::{ModelRef, ModelState, STATE_SCHEMA, STATES_NAMESPACE};
use crate::model::ModelActor;
use crate::namespace::{Caller, blocking, search_records};
use crate::vectors::{Cost, pay};

type Work<T> = Box<dyn FnOnce() -> Result<T> + Send>;

/// Storage work done as the model, once it has paid `cost`.
pub(crate) struct Act<T> {
    pub(crate) cost: Option<Cost>,
    pub(crate) work: Work<T>,
}

impl<T: Send + 'static> Message for Act<T> {
    type Result = Result<T>;
}

impl<T: Send + 'static> Handler<Act<T>> for ModelActor {
    type Result = ResponseFuture<Result<T>>;

    fn handle(&mut self, msg: Act<T>, _: &mut Self::Context) -> Self::Result {
        let caller = Caller::Model(self.profile.clone());
        let ready = match msg.cost {
            Some(cost) => pay(&caller, cost),
            None => Ok(None),
        };
        let work = msg.work;
        Box::pin(async move {
            let admission: Option<Admission> = ready?;
            let done = blocking(work).await?;
            if let Some(a) = admission {
                a.commit();
            }
            Ok(done)
        })
    }
}

impl ModelRef {
    /// Runs `work` as this model, through its actor.
    pub(crate) async fn as_model<T: Send + 'static>(
        &self,
        cost: Option<Cost>,
        work: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let addr = self.live()?;
        let msg = Act {
            cost,
            work: Box::new(work),
        };
        addr.send(msg).await?
    }

    /// Registers the schema of this model's state (any JSON); required
    /// before [`update_state`](Self::update_state).
    pub async fn register_state(&self, schema: serde_json::Value) -> Result<()> {
        let store = self.hub.inner.store.clone();
        let id = self.id().to_string();
        self.as_model(None, move || {
            let bytes = serde_json::to_vec(&schema)
                .map_err(|e| ActorError::InvalidRequest(e.to_string()))?;
            Ok(store.catalog_put(STATE_SCHEMA, &id, bytes)?)
        })
        .await
    }

    /// Replaces this model's state; its vector (the text encoder's, of the
    /// state's JSON) makes it findable by similarity. Returns the version.
    pub async fn update_state(&self, state: serde_json::Value) -> Result<u64> {
        let hub = self.hub.clone();
        let id = self.id().to_string();
        let bytes = state.to_string().len() as u64;
        let cost = Cost::Vectors { n: 1, bytes };
        self.as_model(Some(cost), move || {
            let inner = &hub.inner;
            let registered = inner
                .store
                .catalog_list(STATE_SCHEMA)?
                .into_iter()
                .any(|(k, _)| k == id);
            if !registered {
                return Err(ActorError::InvalidRequest(format!(
                    "model {id:?} has no registered state schema: call register_state first"
                )));
            }
            let data = inner.text.encode(&state.to_string());
            let mut metadata = hvs_storage::Metadata::new();
            metadata.insert("hvs_kind".into(), serde_json::json!("model_state"));
            metadata.insert("model".into(), serde_json::json!(id));
            metadata.insert("state".into(), state);
            // The entry's lock orders concurrent updates of one model.
            let mut slot = inner.states.entry(id.clone()).or_insert(Uuid::nil());
            let r = if slot.is_nil() {
                let mut v = NewVector::new(STATES_NAMESPACE, data);
                v.metadata = metadata;
                inner.store.store_vector(v)?
            } else {
                let update = VectorUpdate {
                    data: Some(data),
                    metadata: Some(metadata),
                    ..VectorUpdate::default()
                };
                inner.store.update_vector(*slot, update)?
            };
            *slot = r.id;
            Ok(r.version)
        })
        .await
    }

    /// A model's current state, if it has one.
    pub async fn get_state(&self, model: &str) -> Result<Option<ModelState>> {
        let hub = self.hub.clone();
        let model = model.to_string();
        self.as_model(Some(Cost::Query), move || {
            let Some(id) = hub.inner.states.get(&model).map(|e| *e.value()) else {
                return Ok(None);
            };
            let r = hub.inner.store.retrieve_vector(id)?;
            Ok(r.map(|r| ModelState {
                model,
                state: r.metadata.get("state").cloned().unwrap_or_default(),
                version: r.version,
            }))
        })
        .await
    }

    /// The `k` models whose states are most similar to `state`.
    pub async fn find_similar_states(
        &self,
        state: &serde_json::Value,
        k: usize,
    ) -> Result<Vec<(ModelState, f64)>> {
        let store = self.hub.inner.store.clone();
        let data = self.hub.inner.text.encode(&state.to_string());
        self.as_model(Some(Cost::Query), move || {
            let mut q = SearchQuery::new(STATES_NAMESPACE, data, k);
            q.filter = Some(Filter::Eq(
                "hvs_kind".into(),
                serde_json::json!("model_state"),
            ));
            Ok(search_records(&store, &q)?
                .into_iter()
                .filter_map(|(h, r)| similar(h.score, &r))
                .collect())
        })
        .await
    }
}

fn similar(score: f64, r: &hvs_storage::VectorRecord) -> Option<(ModelState, f64)> {
    let model = r.metadata.get("model")?.as_str()?.to_string();
    let state = r.metadata.get("state").cloned().unwrap_or_default();
    let version = r.version;
    Some((
        ModelState {
            model,
            state,
            version,
        },
        score,
    ))
}
