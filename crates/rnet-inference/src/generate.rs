//! Text generation: prefill a prompt, then sample and feed one byte at a time until a stop
//! sequence, the byte budget, or the caller says stop; text streams out as whole UTF-8
//! characters.

use std::ops::ControlFlow;

use crate::decoder::{CpuDecoder, Decoder};
use crate::engine::{Engine, EngineError, Session};
use crate::sampling::{Sampler, SamplingParams};
use crate::text::{StopMatcher, Utf8Stream};

/// What a session with no input yet is fed when the prompt is empty (the model has no
/// beginning-of-text symbol; a newline is the most neutral context in the corpus).
pub const EMPTY_PROMPT: &[u8] = b"\n";

/// Parameters of one generation.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateParams {
    /// Most bytes to sample.
    pub max_tokens: usize,
    /// Sampling parameters.
    pub sampling: SamplingParams,
    /// Stop sequences: generation ends when one appears; it is not part of the text.
    pub stop: Vec<Vec<u8>>,
}

impl Default for GenerateParams {
    fn default() -> Self {
        Self { max_tokens: 256, sampling: SamplingParams::default(), stop: Vec::new() }
    }
}

/// Why a generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// A stop sequence appeared.
    Stop,
    /// `max_tokens` bytes were sampled.
    Length,
    /// The caller's callback asked to stop (e.g. the client went away).
    Cancelled,
}

impl FinishReason {
    /// The OpenAI `finish_reason` string (`"stop"` or `"length"`; a cancelled generation reports
    /// `"stop"`).
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop | FinishReason::Cancelled => "stop",
            FinishReason::Length => "length",
        }
    }
}

/// The result of [`generate`].
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateOutput {
    /// The generated text (stop sequence excluded), lossy UTF-8.
    pub text: String,
    /// Every sampled byte, in order (a matched stop sequence included).
    pub sampled: Vec<u8>,
    /// Why it ended.
    pub finish_reason: FinishReason,
    /// Which stop sequence ended it (index into [`GenerateParams::stop`]).
    pub stop_index: Option<usize>,
    /// Prompt bytes fed to the model.
    pub prompt_bytes: usize,
    /// Bytes sampled (`sampled.len()`): the usage count of the completion.
    pub completion_bytes: usize,
}

impl GenerateOutput {
    /// The last sampled byte, which the session has *not* consumed yet (feed it with
    /// [`Engine::step`] to continue the same text).
    pub fn last_byte(&self) -> Option<u8> {
        self.sampled.last().copied()
    }
}

/// Feeds `prompt` to `session`, then samples up to `params.max_tokens` bytes, each fed back before
/// the next is drawn. `on_text` receives the text as it becomes final (whole characters, never a
/// partial stop sequence) and may return `Break` to end early.
///
/// On return the session has consumed the prompt and every sampled byte except the last one
/// ([`GenerateOutput::last_byte`]). If the session has consumed nothing and `prompt` is empty,
/// [`EMPTY_PROMPT`] is fed instead.
pub fn generate(
    engine: &Engine,
    session: &mut Session,
    prompt: &[u8],
    params: &GenerateParams,
    on_text: impl FnMut(&str) -> ControlFlow<()>,
) -> Result<GenerateOutput, EngineError> {
    generate_cancellable(engine, session, prompt, params, || false, on_text)
}

/// [`generate`] that stops as soon as `cancelled` returns `true`: it is asked between blocks of
/// the prefill ([`Engine::prefill_until`]) and before each sampled byte, so an abandoned request
/// stops within one block of work even in the middle of a long prompt. A cancelled generation
/// ends with [`FinishReason::Cancelled`]; its `prompt_bytes` counts the prompt bytes actually fed.
pub fn generate_cancellable(
    engine: &Engine,
    session: &mut Session,
    prompt: &[u8],
    params: &GenerateParams,
    cancelled: impl Fn() -> bool,
    on_text: impl FnMut(&str) -> ControlFlow<()>,
) -> Result<GenerateOutput, EngineError> {
    generate_on(&mut CpuDecoder { engine, session }, prompt, params, cancelled, on_text)
}

/// [`generate_cancellable`] on any [`Decoder`]: the CPU engine's session or a device's.
pub fn generate_on(
    decoder: &mut dyn Decoder,
    prompt: &[u8],
    params: &GenerateParams,
    cancelled: impl Fn() -> bool,
    mut on_text: impl FnMut(&str) -> ControlFlow<()>,
) -> Result<GenerateOutput, EngineError> {
    let prompt =
        if prompt.is_empty() && decoder.logits().is_none() { EMPTY_PROMPT } else { prompt };
    let fed = decoder.prefill_until(prompt, &cancelled)?;
    if fed < prompt.len() || cancelled() {
        return Ok(GenerateOutput {
            text: String::new(),
            sampled: Vec::new(),
            finish_reason: FinishReason::Cancelled,
            stop_index: None,
            prompt_bytes: fed,
            completion_bytes: 0,
        });
    }
    let mut sampler = Sampler::new(params.sampling.clone());
    sampler.observe_all(prompt);
    let mut stops = StopMatcher::new(params.stop.clone());
    let mut utf8 = Utf8Stream::new();
    let mut text = String::new();
    let mut sampled = Vec::with_capacity(params.max_tokens.min(1 << 16));
    let mut finish = FinishReason::Length;
    let mut stop_index = None;
    let mut emit = |bytes: &[u8], utf8: &mut Utf8Stream, text: &mut String| {
        let s = utf8.push(bytes);
        if s.is_empty() {
            return ControlFlow::Continue(());
        }
        text.push_str(&s);
        on_text(&s)
    };
    let mut cancelled_early = false;
    while sampled.len() < params.max_tokens {
        if cancelled() {
            cancelled_early = true;
            finish = FinishReason::Cancelled;
            break;
        }
        if let Some(&prev) = sampled.last() {
            decoder.step(prev)?;
        }
        let Some(logits) = decoder.logits() else { break };
        let byte = sampler.sample(logits);
        sampler.observe(byte);
        sampled.push(byte);
        let push = stops.push(byte);
        if emit(&push.emit, &mut utf8, &mut text).is_break() {
            cancelled_early = true;
            finish = FinishReason::Cancelled;
            break;
        }
        if push.stopped.is_some() {
            finish = FinishReason::Stop;
            stop_index = push.stopped;
            break;
        }
    }
    if !cancelled_early {
        let rest = stops.flush();
        let mut tail = utf8.push(&rest);
        tail.push_str(&utf8.finish());
        if !tail.is_empty() {
            text.push_str(&tail);
            if on_text(&tail).is_break() {
                finish = FinishReason::Cancelled;
            }
        }
    }
    // Map the matcher's index (empty stops dropped) back to the caller's list.
    let stop_index = stop_index.and_then(|i| {
        let s = &stops.stops()[i];
        params.stop.iter().position(|p| p == s)
    });
    Ok(GenerateOutput {
        text,
        completion_bytes: sampled.len(),
        sampled,
        finish_reason: finish,
        stop_index,
        prompt_bytes: prompt.len(),
    })
}
