//! The plain-text chat template, and a multi-turn conversation kept in one recurrent state.
//!
//! A conversation is rendered as plain bytes, one block per message:
//!
//! ```text
//! <|system|>
//! You are a helpful assistant.
//! <|user|>
//! Hello!
//! <|assistant|>
//! Hi. How can I help?
//! <|user|>
//! ...
//! <|assistant|>
//! ```
//!
//! i.e. `"<|" role "|>\n" content "\n"` per message (roles `system`, `user`, `assistant`;
//! OpenAI's `developer` is rendered as `system`), followed by `"<|assistant|>\n"` to ask for the
//! reply. Content is inserted verbatim (no escaping). Generation stops at [`CHAT_STOP`] (`"\n<|"`),
//! the start of the next message header. The model sees no other special symbols: tokens are
//! bytes.

use std::ops::ControlFlow;

use crate::engine::{Engine, EngineError, Session};
use crate::generate::{GenerateOutput, GenerateParams, generate};

/// The stop sequence of chat generation: the start of the next message header.
pub const CHAT_STOP: &str = "\n<|";

/// A chat role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Instructions (`system`, or OpenAI's `developer`).
    System,
    /// The person.
    User,
    /// The model.
    Assistant,
}

impl Role {
    /// The name used in the template.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }

    /// Parses an OpenAI role name (`system`, `developer`, `user`, `assistant`).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "system" | "developer" => Some(Role::System),
            "user" => Some(Role::User),
            "assistant" => Some(Role::Assistant),
            _ => None,
        }
    }
}

/// One message of a conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatMessage {
    /// Who speaks.
    pub role: Role,
    /// What they say.
    pub content: String,
}

/// `"<|role|>\ncontent\n"`.
pub fn render_message(role: Role, content: &str) -> String {
    format!("<|{}|>\n{content}\n", role.as_str())
}

/// The header that asks the model for the assistant's reply.
pub const ASSISTANT_PROMPT: &str = "<|assistant|>\n";

/// Renders `messages` with the template, followed by [`ASSISTANT_PROMPT`].
pub fn render_chat(messages: &[ChatMessage]) -> String {
    let mut s: String = messages.iter().map(|m| render_message(m.role, &m.content)).collect();
    s.push_str(ASSISTANT_PROMPT);
    s
}

/// A conversation whose whole history lives in one recurrent [`Session`]: each turn feeds only
/// the new user message, so a turn costs the same however long the conversation is. The bytes
/// the model has consumed always equal [`render_chat`] of the conversation so far (up to the
/// reply's end), because a reply ends exactly at [`CHAT_STOP`], which begins the next header.
#[derive(Clone, Debug)]
pub struct Conversation {
    session: Session,
    /// The consumed text ends with `"\n<|"` (the next header has begun).
    header_open: bool,
    turns: usize,
}

impl Conversation {
    /// A new conversation, with an optional system message consumed right away.
    pub fn new(engine: &Engine, system: Option<&str>) -> Result<Self, EngineError> {
        let mut session = engine.new_session();
        if let Some(system) = system {
            engine.prefill(&mut session, render_message(Role::System, system).as_bytes())?;
        }
        Ok(Self { session, header_open: false, turns: 0 })
    }

    /// User turns taken.
    pub fn turns(&self) -> usize {
        self.turns
    }

    /// Bytes the model has consumed so far.
    pub fn position(&self) -> u64 {
        self.session.position()
    }

    /// Takes one turn: feeds the user message and generates the assistant's reply (streamed to
    /// `on_text`). [`CHAT_STOP`] is always a stop sequence, in addition to `params.stop`.
    pub fn reply(
        &mut self,
        engine: &Engine,
        user: &str,
        params: &GenerateParams,
        on_text: impl FnMut(&str) -> ControlFlow<()>,
    ) -> Result<GenerateOutput, EngineError> {
        let mut prompt =
            if self.header_open { String::from("user|>\n") } else { String::from("<|user|>\n") };
        prompt.push_str(user);
        prompt.push('\n');
        prompt.push_str(ASSISTANT_PROMPT);
        let mut params = params.clone();
        params.stop.insert(0, CHAT_STOP.as_bytes().to_vec());
        // A fixed seed gives a reproducible conversation, with a different stream per turn.
        if let Some(seed) = params.sampling.seed.as_mut() {
            *seed = seed.wrapping_add(self.turns as u64);
        }
        let out = generate(engine, &mut self.session, prompt.as_bytes(), &params, on_text)?;
        // Close the reply so the consumed text ends with "\n<|": the sampled bytes (with the
        // last one, not yet fed) and, unless they already end so, the start of the next header.
        if let Some(last) = out.last_byte() {
            engine.step(&mut self.session, last)?;
        }
        if !out.sampled.ends_with(CHAT_STOP.as_bytes()) {
            engine.prefill(&mut self.session, CHAT_STOP.as_bytes())?;
        }
        self.header_open = true;
        self.turns += 1;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_renders_plain_bytes() {
        let messages = vec![
            ChatMessage { role: Role::System, content: "Be brief.".into() },
            ChatMessage { role: Role::User, content: "Hi".into() },
            ChatMessage { role: Role::Assistant, content: "Hello.".into() },
            ChatMessage { role: Role::User, content: "Who?".into() },
        ];
        assert_eq!(
            render_chat(&messages),
            "<|system|>\nBe brief.\n<|user|>\nHi\n<|assistant|>\nHello.\n<|user|>\nWho?\n<|assistant|>\n"
        );
        assert_eq!(Role::parse("developer"), Some(Role::System));
        assert_eq!(Role::parse("tool"), None);
    }
}
