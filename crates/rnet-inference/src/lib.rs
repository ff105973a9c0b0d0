//! Local inference for ResonanceNet (layer 7, not consensus): run the chain's shared byte-level
//! model on your own machine.
//!
//! * [`engine`]: the recurrent decode engine. A checkpoint's weights are repacked at load (f32, or
//!   int8 with one f32 scale per output row); a [`Session`] holds O(1) state (per layer the minGRU
//!   `h` and a conv ring buffer), prefill runs the prompt in position blocks, decode runs one byte
//!   at a time with vectorised (AVX2 + FMA, and VNNI for int8, where available)
//!   matrix–vector products, split by rows across a persistent thread pool when the engine is
//!   built [`Engine::with_threads`].
//! * [`sampling`]: temperature, top-k, top-p, repetition / presence / frequency penalties, logit
//!   bias, seeded; temperature 0 is greedy.
//! * [`text`]: stop sequences and incremental UTF-8 decoding that never splits a character.
//! * [`generate()`]: prefill + sample loop with streaming output ([`generate_cancellable`] can be
//!   abandoned mid-prefill; [`generate_on`] runs on any [`Decoder`], e.g. a GPU's).
//! * [`decoder`]: the CPU session and `rnet_gpu` device decoders behind one [`Decoder`] trait.
//! * [`chat`]: the plain-text chat template and multi-turn conversations in one state.
//! * [`server`]: the OpenAI-compatible HTTP API (`/v1/models`, `/v1/completions`,
//!   `/v1/chat/completions`, SSE streaming) with a hot-swappable model for the node; it computes
//!   on its own thread pool, bounds requests, connections and bodies, times out stalled
//!   connections, and cancels the work of a client that leaves.
//! * [`bench`](mod@bench): memory-bandwidth measurement for the decode benchmark.
//!
//! Tokens are bytes: `max_tokens` and usage counts are bytes. The design and the API are written
//! up in `docs/inference.md`.
//!
//! # Chat template
//!
//! ```text
//! <|system|>
//! {system message}
//! <|user|>
//! {user message}
//! <|assistant|>
//! {reply}
//! ...
//! <|assistant|>
//! ```
//!
//! One `"<|role|>\n" content "\n"` block per message, then `"<|assistant|>\n"`; the reply stops at
//! `"\n<|"` ([`chat::CHAT_STOP`]).

pub mod bench;
pub mod chat;
mod connection;
pub mod decoder;
pub mod engine;
pub mod generate;
pub mod kernels;
mod line_buf;
mod pool;
mod request_body;
pub mod sampling;
pub mod server;
pub mod text;

pub use chat::{ChatMessage, Conversation, Role, render_chat};
pub use decoder::{CpuDecoder, Decoder, DeviceSession};
pub use engine::{Engine, EngineError, Precision, Session};
pub use generate::{
    FinishReason, GenerateOutput, GenerateParams, generate, generate_cancellable, generate_on,
};
pub use sampling::{Sampler, SamplingParams};
pub use server::{
    ApiError, DEFAULT_ADDR, DEFAULT_MODEL_ID, DevicePool, LoadedModel, ServerConfig, ServerError,
    ServerState, router, serve, serve_listener,
};
