//! The proxy-wasm contexts of the `emotion-stats` plugin, the only module that
//! calls the host; the logic lives in the other modules.
//!
//! Every callback returns `Continue`: the response is never held, changed or buffered by Envoy.
//! Body chunks are copied as they pass and read once the stream is over: when the host deletes
//! the request's context (`proxy_on_delete`, the SDK drops it), which Envoy does for every
//! stream, however it ended, right after `proxy_on_done`. Counting on drop instead of in
//! `on_done` spares the module that export, one VM entry per request.

use crate::metrics::EmotionMetrics;
use crate::models::{ModelNames, SharedModelList};
use crate::response::{ResponseHead, ResponseTracker};
use crate::{compiled, models};
use plugin_kit::headers::text;
use plugin_kit::host::{HostMetrics, HostSharedData, RequestHeaders};
use plugin_kit::istio::normalize_path;
use plugin_kit::shared::{SetError, SharedData};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, MapType};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::SystemTime;

pub(crate) const PLUGIN: &str = "emotion-stats";

/// Shared-data key of the proxy-wide list of admitted model names.
const MODELS_KEY: &str = "emotion-stats.models";

/// What the HTTP contexts of one VM share: the configuration and the counting state.
struct Configured {
    config: compiled::Compiled,
    counting: RefCell<Counting>,
}

struct Counting {
    metrics: EmotionMetrics,
    models: ModelNames,
}

/// The plugin's root context: the configuration and counting state its requests share.
#[derive(Default)]
pub struct PluginRoot {
    state: Option<Rc<Configured>>,
}

impl PluginRoot {
    /// The HTTP context of one request, `None` before a configuration was accepted.
    pub fn filter(&self) -> Option<Filter> {
        Some(Filter {
            state: self.state.clone()?,
            tracked: None,
        })
    }
}

plugin_kit::root_context!(PluginRoot, PLUGIN, compiled::compile);

impl PluginRoot {
    /// Takes a configuration [`compiled::compile`] accepted (`on_configure` reads it from the
    /// host; a module linking several plugins passes its section).
    pub fn configure(&mut self, config: compiled::Compiled) -> bool {
        HostModelList.initialize();
        let metrics = EmotionMetrics::define(&config, &mut HostMetrics { plugin: PLUGIN });
        let models = ModelNames::new(config.max_models);
        self.state = Some(Rc::new(Configured {
            config,
            counting: RefCell::new(Counting { metrics, models }),
        }));
        true
    }
}

/// One request/response on a configured path.
struct Tracked {
    /// Model name from the path, before bounding.
    model: Option<String>,
    /// When the request headers were seen (`None` if the host gave no time).
    started: SystemTime,
    response: ResponseTracker,
}

/// The HTTP context of one request and its response: counts the model's answer.
pub struct Filter {
    state: Rc<Configured>,
    /// `None` when the path is not configured: then every callback does nothing.
    tracked: Option<Tracked>,
}

impl Context for Filter {}

impl Drop for Filter {
    fn drop(&mut self) {
        self.count_answer();
    }
}

impl HttpContext for Filter {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.on_request(&mut RequestHeaders::default());
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        if let Some(tracked) = &mut self.tracked {
            // One hostcall for the three headers: each read is a call into Envoy and, for a
            // header present, one back into the module to allocate its copy.
            let all = plugin_kit::host::headers(MapType::HttpResponseHeaders);
            let header = |name: &str| all.first(name).map(text);
            let status = header(":status");
            let content_type = header("content-type");
            let content_encoding = header("content-encoding");
            let head = ResponseHead {
                status: status.as_deref(),
                content_type: content_type.as_deref(),
                content_encoding: content_encoding.as_deref(),
            };
            tracked.response.on_headers(&head, end_of_stream);
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if let Some(tracked) = &mut self.tracked {
            if tracked.response.wants_chunk(body_size) {
                let chunk = hostcalls::get_buffer(BufferType::HttpResponseBody, 0, body_size);
                if let Err(status) = &chunk {
                    log::warn!("{PLUGIN}: cannot read a response body chunk: {status:?}");
                }
                let chunk = chunk.ok().map(Option::unwrap_or_default);
                tracked.response.on_body_chunk(chunk.as_deref());
            }
            if end_of_stream {
                tracked.response.on_end_of_stream();
            }
        }
        Action::Continue
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        if let Some(tracked) = &mut self.tracked {
            tracked.response.on_end_of_stream();
        }
        Action::Continue
    }
}

impl Filter {
    /// Starts tracking the request whose headers are `headers` if its path is a configured one.
    /// Never holds the request.
    pub fn on_request(&mut self, headers: &mut RequestHeaders) {
        let Some(raw_path) = headers.first(":path") else {
            return;
        };
        let raw_path = text(&raw_path);
        // A path that cannot be normalized is not one of the model endpoints; leave it alone.
        let Ok(normalized) = normalize_path(&raw_path, compiled::PATH_NORMALIZATION) else {
            return;
        };
        let config = &self.state.config;
        let response = if config.openai_paths.matches(&normalized.path) {
            ResponseTracker::for_usage(config.max_body_bytes)
        } else if config.paths.matches(&normalized.path) {
            ResponseTracker::new(config.max_body_bytes)
        } else {
            return;
        };
        self.tracked = Some(Tracked {
            model: models::model_from_path(&normalized.path).map(str::to_string),
            started: headers.now(),
            response,
        });
    }

    /// Counts the model's answer once the stream is over.
    fn count_answer(&mut self) {
        let Some(tracked) = self.tracked.take() else {
            return;
        };
        let by_index = self.state.config.labels_by_index(tracked.model.as_deref());
        let Some(mut verdict) = tracked.response.finish(by_index) else {
            return;
        };
        if verdict.outcome.wants_code_details() {
            if let Some(bytes) = plugin_kit::host::property(&["response", "code_details"]) {
                let details = String::from_utf8_lossy(&bytes);
                verdict.outcome = verdict.outcome.with_code_details(&details);
            }
        }
        let duration_ms = plugin_kit::host::now()
            .duration_since(tracked.started)
            .ok()
            .and_then(|elapsed| u64::try_from(elapsed.as_millis()).ok());
        let Ok(mut counting) = self.state.counting.try_borrow_mut() else {
            return;
        };
        let Counting { metrics, models } = &mut *counting;
        // An OpenAI-style answer names its model; a classifier's path does.
        let named = verdict.answer_model.as_deref().or(tracked.model.as_deref());
        let model = models.resolve(named, verdict.outcome.is_2xx(), &HostModelList);
        metrics.count(
            &verdict,
            &model,
            duration_ms,
            &self.state.config.labels,
            &mut HostMetrics { plugin: PLUGIN },
        );
    }
}

/// The admitted model names in the proxy's shared data.
struct HostModelList;

impl HostModelList {
    /// Stores an empty list if there is none, so that every later store can be a
    /// compare-and-swap (Envoy cannot compare-and-swap a key that does not exist yet).
    fn initialize(&self) {
        if self.load().is_none() {
            if let Err(error) = HostSharedData.set(MODELS_KEY, b"\n", None) {
                log::warn!("{PLUGIN}: cannot initialize shared data: {error:?}");
            }
        }
    }
}

impl SharedModelList for HostModelList {
    fn load(&self) -> Option<(Vec<u8>, u32)> {
        match HostSharedData.get(MODELS_KEY) {
            Ok(entry) => entry,
            Err(error) => {
                log::warn!("{PLUGIN}: cannot read shared data: {error:?}");
                None
            }
        }
    }

    fn store(&self, list: &[u8], version: Option<u32>) -> bool {
        match HostSharedData.set(MODELS_KEY, list, version) {
            Ok(()) => true,
            Err(SetError::CasMismatch) => false,
            Err(error) => {
                log::warn!("{PLUGIN}: cannot write shared data: {error:?}");
                false
            }
        }
    }
}
