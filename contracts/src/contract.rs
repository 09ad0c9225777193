//! [`Contract`]: the typed form of `model_contract_hvs.json`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use hvs_geometry::{
    AnyManifold, DeSitter, Euclidean, GeometryError, Hyperboloid, PoincareBall, Product, Sphere,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::encoder::{self, Encoder, MessageEncoder};
use crate::error::{ContractError, Problem};
use crate::limits::RateLimiter;
use crate::permissions::Permissions;
use crate::text::fnv1a;
use crate::validate;

/// Fields a contract does not define, kept as they were written so that
/// re-serialising a contract loses nothing.
pub type Extra = BTreeMap<String, Value>;

/// A model's contract with HVS, as `model_contract_hvs.json` states it.
///
/// Build one with [`Contract::from_json`] or [`Contract::load`], which accept
/// only contracts that pass validation and list every problem otherwise.
/// Fields are public so that a contract can also be written in code; call
/// [`Contract::validate`] on such a contract before trusting it. Unknown
/// fields at every level land in the `extra` maps, are reported by
/// [`Contract::warnings`] and are written back by serialisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contract {
    /// `$schema`: the JSON Schema the file claims to follow (informative).
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// `MAJOR.MINOR.PATCH`; this crate reads major version 1.
    pub contract_version: String,
    /// Who the model is.
    pub model: ModelInfo,
    /// Where in HVS the model lives.
    pub hvs_binding: HvsBinding,
    /// How the model's vectors become points of its space.
    pub vector_spec: VectorSpec,
    /// How it talks.
    pub communication_protocol: CommunicationProtocol,
    /// What it may read and write.
    pub permissions: Permissions,
    /// How much it may use.
    pub resource_limits: ResourceLimits,
    /// How HVS checks it is alive (optional: in-process models have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// Unknown top-level fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `model`: the model's identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Unique id: 1–128 of `A–Z a–z 0–9 . _ -`, starting with a letter or digit.
    pub id: String,
    /// Display name.
    pub name: String,
    /// The model's own version (free text).
    pub version: String,
    /// `type`: what kind of model (`"llm"`, `"agent"`, … — free text).
    #[serde(rename = "type")]
    pub kind: String,
    /// What it can do (free text tags).
    pub capabilities: Vec<String>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `hvs_binding`: the HVS instance, region, namespace and space of the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HvsBinding {
    /// The HVS instance (an id).
    pub hvs_id: String,
    /// The region (an id).
    pub region: String,
    /// The model's own namespace.
    pub namespace: String,
    /// The geometry of the namespace's space.
    pub geometry: GeometryKind,
    /// The space's *intrinsic* dimension `n`. Points on the wire have the
    /// manifold's ambient coordinates: `n` for `euclidean` and `poincare`,
    /// `n + 1` for `hyperboloid`, `sphere` and `lorentzian`, the sum over
    /// the factors for `product`.
    pub dimension: usize,
    /// The curvature parameter `c > 0` (default 1): curvature `-c` for the
    /// hyperbolic geometries, `+c` for `sphere` and `lorentzian`. Not
    /// allowed for `euclidean` (flat) and `product` (set it per factor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub curvature: Option<f64>,
    /// The factors of a `product` space, in coordinate order; their
    /// dimensions add up to `dimension`. Only for `product`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factors: Option<Vec<Factor>>,
    /// How the search graph of the model's namespace is built when the
    /// model's first connect creates it (`m`, `ef_construction`; absent:
    /// the server's; docs/STORAGE.md, "Graph settings").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph: Option<hvs_types::GraphSettings>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One factor of a `product` space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Factor {
    /// Its geometry (anything but `product`).
    pub geometry: GeometryKind,
    /// Its intrinsic dimension.
    pub dimension: usize,
    /// Its curvature parameter (default 1; not for `euclidean`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub curvature: Option<f64>,
    /// Its weight in the product metric `Σ wᵢ gᵢ` (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The geometries a contract can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GeometryKind {
    /// The Poincaré ball.
    Poincare,
    /// The hyperboloid (Lorentz) model of hyperbolic space.
    Hyperboloid,
    /// Flat space.
    Euclidean,
    /// de Sitter space.
    Lorentzian,
    /// The round sphere.
    Sphere,
    /// A product of the others (`hvs_binding.factors`).
    Product,
}

impl GeometryKind {
    /// Every geometry, in the order error messages list them.
    pub const ALL: [GeometryKind; 6] = [
        Self::Poincare,
        Self::Hyperboloid,
        Self::Euclidean,
        Self::Lorentzian,
        Self::Sphere,
        Self::Product,
    ];

    /// The name a contract uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Poincare => "poincare",
            Self::Hyperboloid => "hyperboloid",
            Self::Euclidean => "euclidean",
            Self::Lorentzian => "lorentzian",
            Self::Sphere => "sphere",
            Self::Product => "product",
        }
    }

    /// The manifold of this geometry (not `product`) in `dim` dimensions.
    fn build(self, dim: usize, curvature: Option<f64>) -> Result<AnyManifold, GeometryError> {
        let c = curvature.unwrap_or(1.0);
        Ok(match self {
            Self::Poincare => PoincareBall::new(dim, c)?.into(),
            Self::Hyperboloid => Hyperboloid::new(dim, c)?.into(),
            Self::Euclidean => Euclidean::new(dim)?.into(),
            Self::Lorentzian => DeSitter::new(dim, c)?.into(),
            Self::Sphere => Sphere::new(dim, c)?.into(),
            Self::Product => {
                return Err(GeometryError::InvalidProduct {
                    reason: "a product factor cannot itself be a product".into(),
                });
            }
        })
    }
}

/// `vector_spec`: the model's vectors and how they become points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VectorSpec {
    /// Length of the model's own embeddings (the encoder's input).
    pub input_dimension: usize,
    /// The encoder's output: a tangent vector at the space's origin, so it
    /// equals `hvs_binding.dimension`.
    pub output_dimension: usize,
    /// `"geometric"`: vectors are points of the binding's manifold (the one
    /// encoding HVS implements).
    pub encoding: String,
    /// The encoder; absent means `identity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder: Option<EncoderSpec>,
    /// The model's decoder, described for other models; HVS never runs it,
    /// so it is kept as written (an object with a string `type`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decoder: Option<serde_json::Map<String, Value>>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `vector_spec.encoder`: the map from a model's embeddings to tangent
/// vectors at the space's origin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderSpec {
    /// `type`: which encoder.
    #[serde(rename = "type")]
    pub kind: EncoderKind,
    /// `random_projection`: the seed of the matrix (default: derived from
    /// `model.id`, see [`Contract::projection_seed`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// `mlp`: the weights file, relative to the contract's directory.
    /// Without one the contract is valid (with a warning) but its encoder
    /// refuses embeddings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<String>,
    /// `mlp`: the hidden layers' widths; when given, the weights file must
    /// have exactly these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden_dims: Option<Vec<usize>>,
    /// `mlp`: the activation after each hidden layer (default `relu`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation: Option<Activation>,
    /// `mlp`: the activation after the last layer (default `identity`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_activation: Option<Activation>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The encoders a contract can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EncoderKind {
    /// The embedding is the tangent vector (`input_dimension` must equal
    /// `hvs_binding.dimension`).
    Identity,
    /// A seeded Johnson–Lindenstrauss Gaussian projection.
    RandomProjection,
    /// A multi-layer perceptron read from a weights file.
    Mlp,
}

impl EncoderKind {
    /// Every encoder, in the order error messages list them.
    pub const ALL: [EncoderKind; 3] = [Self::Identity, Self::RandomProjection, Self::Mlp];

    /// The name a contract uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Identity => "identity",
            Self::RandomProjection => "random_projection",
            Self::Mlp => "mlp",
        }
    }
}

/// An activation function of an `mlp` encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// `max(0, x)`.
    Relu,
    /// `tanh(x)`.
    Tanh,
    /// `x`.
    Identity,
}

impl Activation {
    /// Every activation, in the order error messages list them.
    pub const ALL: [Activation; 3] = [Self::Relu, Self::Tanh, Self::Identity];

    /// The name a contract uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Relu => "relu",
            Self::Tanh => "tanh",
            Self::Identity => "identity",
        }
    }

    /// Applies the function.
    pub fn apply(self, x: f64) -> f64 {
        match self {
            Self::Relu => x.max(0.0),
            Self::Tanh => x.tanh(),
            Self::Identity => x,
        }
    }
}

/// `communication_protocol`: how the model's messages travel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommunicationProtocol {
    /// `"json"` or `"msgpack"`.
    pub message_format: String,
    /// Text encoding of payloads: `"utf-8"`.
    pub encoding: String,
    /// The largest message accepted, in bytes (1 B to 64 MiB).
    pub max_message_size_bytes: u64,
    /// How long a request may take, in milliseconds (1 ms to 1 h).
    pub timeout_ms: u64,
    /// How failed sends are retried.
    pub retry: RetryPolicy,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `communication_protocol.retry`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// How many times a failed send is retried after the first try (0–100).
    pub max_attempts: u32,
    /// The wait before each retry, in milliseconds; the last entry repeats
    /// for later retries and an empty list means no wait.
    pub backoff_ms: Vec<u64>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1 for the first retry), or
    /// `None` when the policy allows no such retry.
    pub fn backoff(&self, retry: u32) -> Option<Duration> {
        if retry == 0 || retry > self.max_attempts {
            return None;
        }
        let i = (retry as usize - 1).min(self.backoff_ms.len().saturating_sub(1));
        Some(Duration::from_millis(
            self.backoff_ms.get(i).copied().unwrap_or(0),
        ))
    }
}

/// `resource_limits`: the model's budgets, each at least 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceLimits {
    /// Vectors it may store or send per second (burst: one second's worth).
    pub max_vectors_per_second: u64,
    /// Storage it may hold, in MiB.
    pub max_storage_mb: u64,
    /// Searches it may run per second (burst: one second's worth).
    pub max_queries_per_second: u64,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `health_check`: how HVS polls a model that serves an endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// The endpoint (a path such as `/health`, or a URL).
    pub endpoint: String,
    /// Seconds between checks (1 s to 1 day).
    pub interval_seconds: u64,
    /// Seconds a check may take: at least 1, at most `interval_seconds`.
    pub timeout_seconds: u64,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Extra,
}

impl Contract {
    /// Parses and validates a contract. Syntax errors are
    /// [`ContractError::Json`] (with line and column); every other problem
    /// is listed, with its JSON path, in one [`ContractError::Invalid`].
    pub fn from_json(text: &str) -> Result<Self, ContractError> {
        Self::from_value(serde_json::from_str(text)?)
    }

    /// [`from_json`](Contract::from_json) on bytes (which must be UTF-8).
    pub fn from_slice(bytes: &[u8]) -> Result<Self, ContractError> {
        Self::from_value(serde_json::from_slice(bytes)?)
    }

    /// Reads, parses and validates the contract file at `path`. The files an
    /// `mlp` encoder names are read by [`Contract::encoder`], relative to
    /// `path`'s directory.
    pub fn load(path: &Path) -> Result<Self, ContractError> {
        let bytes = std::fs::read(path).map_err(|source| ContractError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_slice(&bytes)
    }

    /// Validates an already parsed JSON document and converts it.
    pub fn from_value(value: Value) -> Result<Self, ContractError> {
        let problems = validate::check(&value);
        if !problems.is_empty() {
            return Err(ContractError::Invalid(problems));
        }
        // The checks above cover every field the types read, so this only
        // fails if they and the types disagree; report it, never panic.
        serde_json::from_value(value)
            .map_err(|e| ContractError::Invalid(vec![Problem::new("$", e.to_string())]))
    }

    /// Checks a contract built or edited in code by the same rules as
    /// [`from_json`](Contract::from_json).
    pub fn validate(&self) -> Result<(), ContractError> {
        let value = serde_json::to_value(self)
            .map_err(|e| ContractError::Invalid(vec![Problem::new("$", e.to_string())]))?;
        match validate::check(&value) {
            p if p.is_empty() => Ok(()),
            p => Err(ContractError::Invalid(p)),
        }
    }

    /// The contract as pretty-printed JSON, unknown fields included.
    pub fn to_json_pretty(&self) -> String {
        // Serialising these types cannot fail: every map key is a string.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Things that are allowed but probably unintended: every unknown field
    /// (with its path), a model that may not write its own namespace, and an
    /// `mlp` encoder without a weights file (embeddings will be refused).
    pub fn warnings(&self) -> Vec<Problem> {
        let mut w = Vec::new();
        let mut unknown = |path: &str, extra: &Extra| {
            for key in extra.keys() {
                let at = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                w.push(Problem::new(at, "unknown field (kept, but HVS ignores it)"));
            }
        };
        unknown("", &self.extra);
        unknown("model", &self.model.extra);
        unknown("hvs_binding", &self.hvs_binding.extra);
        for (i, f) in self.hvs_binding.factors.iter().flatten().enumerate() {
            unknown(&format!("hvs_binding.factors[{i}]"), &f.extra);
        }
        unknown("vector_spec", &self.vector_spec.extra);
        if let Some(e) = &self.vector_spec.encoder {
            unknown("vector_spec.encoder", &e.extra);
        }
        let cp = &self.communication_protocol;
        unknown("communication_protocol", &cp.extra);
        unknown("communication_protocol.retry", &cp.retry.extra);
        unknown("permissions", &self.permissions.extra);
        unknown("resource_limits", &self.resource_limits.extra);
        if let Some(h) = &self.health_check {
            unknown("health_check", &h.extra);
        }
        if let Some(e) = &self.vector_spec.encoder
            && e.kind == EncoderKind::Mlp
            && e.weights.is_none()
        {
            w.push(Problem::new(
                "vector_spec.encoder.weights",
                "is absent, so the mlp encoder cannot run: messages must carry a point of the \
                 space (`vector`) or text alone; an `embedding` is refused (encoder_unavailable)",
            ));
        }
        if !self.permissions.can_write(&self.hvs_binding.namespace) {
            w.push(Problem::new(
                "permissions.write_namespaces",
                format!(
                    "no pattern matches the model's own namespace {:?}",
                    self.hvs_binding.namespace
                ),
            ));
        }
        w
    }

    /// The manifold of the model's space: `hvs_binding.dimension` intrinsic
    /// dimensions, [`ambient_dim`](hvs_geometry::Manifold::ambient_dim)
    /// coordinates per point. Fails only for a contract that does not
    /// validate.
    pub fn manifold(&self) -> Result<AnyManifold, ContractError> {
        let b = &self.hvs_binding;
        if b.geometry != GeometryKind::Product {
            return Ok(b.geometry.build(b.dimension, b.curvature)?);
        }
        let factors = b.factors.as_deref().unwrap_or_default();
        let components = factors
            .iter()
            .map(|f| {
                Ok((
                    f.geometry.build(f.dimension, f.curvature)?,
                    f.weight.unwrap_or(1.0),
                ))
            })
            .collect::<Result<Vec<_>, GeometryError>>()?;
        Ok(Product::new(components)?.into())
    }

    /// The seed of a `random_projection` encoder: `encoder.seed`, or else
    /// the 64-bit FNV-1a hash of `model.id`, so that one model always gets
    /// the same matrix.
    pub fn projection_seed(&self) -> u64 {
        self.vector_spec
            .encoder
            .as_ref()
            .and_then(|e| e.seed)
            .unwrap_or_else(|| fnv1a(self.model.id.as_bytes(), 0))
    }

    /// The encoder of the model's messages into its space. `base_dir` is the
    /// directory the contract came from: an `mlp` encoder's weights file is
    /// read relative to it, and a missing or mis-shaped file is a
    /// [`ContractError::Invalid`] naming `vector_spec.encoder.weights`, the
    /// file, and the expected and found shapes. An `mlp` encoder that names
    /// no weights file gives an encoder that places points and text but
    /// refuses embeddings ([`ContractError::EncoderUnavailable`]).
    pub fn encoder(&self, base_dir: &Path) -> Result<MessageEncoder, ContractError> {
        // Contracts edited in code get the same checks (and the size cap on
        // projection matrices) as parsed ones.
        self.validate()?;
        let manifold = self.manifold()?;
        let (input, dim) = (self.vector_spec.input_dimension, self.hvs_binding.dimension);
        let encoder = match &self.vector_spec.encoder {
            None => Encoder::identity(input),
            Some(e) => match e.kind {
                EncoderKind::Identity => Encoder::identity(input),
                EncoderKind::RandomProjection => {
                    Encoder::random_projection(input, dim, self.projection_seed())
                }
                EncoderKind::Mlp => match &e.weights {
                    // The specification's own example names no weights: the
                    // contract still connects, for vectors and text.
                    None => Encoder::mlp_without_weights(input, dim),
                    Some(weights) => encoder::load_mlp(
                        &base_dir.join(weights),
                        input,
                        dim,
                        e.hidden_dims.as_deref(),
                        e.activation.unwrap_or(Activation::Relu),
                        e.output_activation.unwrap_or(Activation::Identity),
                    )?,
                },
            },
        };
        MessageEncoder::new(manifold, encoder)
    }

    /// The model's rate limiter, with full buckets at `now`.
    pub fn rate_limiter(&self, now: Instant) -> RateLimiter {
        RateLimiter::new(
            &self.resource_limits,
            self.communication_protocol.max_message_size_bytes,
            now,
        )
    }
}
