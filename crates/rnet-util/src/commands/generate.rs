//! `generate`, `chat` and `serve`: run a checkpoint locally with the `rnet-inference` engine.

use super::checkpoint::load;
use anyhow::{Context, bail};
use clap::Args;
use rnet_inference::generate::GenerateParams;
use rnet_inference::sampling::SamplingParams;
use rnet_inference::server::{DEFAULT_ADDR, DEFAULT_MODEL_ID, run_blocking};
use rnet_inference::{Conversation, Engine, Precision, ServerConfig, ServerState, generate};
use std::io::{BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Instant;

/// Which checkpoint to run, and how.
#[derive(Args)]
pub struct ModelArgs {
    /// Checkpoint file.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Weight precision: f32 or int8 (per-row scaled, about 4x less memory traffic).
    #[arg(long, default_value = "int8")]
    precision: Precision,
    /// Threads one decode step may use (default: every core; at most the number of cores).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=4096))]
    threads: Option<u32>,
}

impl ModelArgs {
    /// `--threads`, or every core.
    fn threads(&self) -> usize {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        self.threads.map_or(cores, |t| t as usize)
    }
}

/// Sampling options shared by `generate` and `chat`.
#[derive(Args)]
pub struct SamplingArgs {
    /// Most bytes to generate (tokens are bytes).
    #[arg(long, default_value_t = 256)]
    max_tokens: usize,
    /// Sampling temperature (0 = greedy).
    #[arg(long, default_value_t = 0.8)]
    temperature: f32,
    /// Keep only the k most likely bytes (0 = off).
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    /// Nucleus sampling: keep the most likely bytes up to this probability (1 = off).
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// Repetition penalty over the last 64 bytes (1 = off).
    #[arg(long, default_value_t = 1.0)]
    repetition_penalty: f32,
    /// Seed (default: random).
    #[arg(long)]
    seed: Option<u64>,
    /// Stop sequence (may be given several times); not printed.
    #[arg(long = "stop")]
    stop: Vec<String>,
}

impl SamplingArgs {
    fn params(&self) -> anyhow::Result<GenerateParams> {
        if self.max_tokens > 1 << 20 {
            bail!("--max-tokens must be at most {}", 1 << 20);
        }
        let sampling = SamplingParams {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            repetition_penalty: self.repetition_penalty,
            seed: self.seed,
            ..SamplingParams::default()
        };
        sampling
            .validate()
            .map_err(|e| anyhow::anyhow!("--{}", e.to_string().replace('_', "-")))?;
        Ok(GenerateParams {
            max_tokens: self.max_tokens,
            sampling,
            stop: self
                .stop
                .iter()
                .filter(|s| !s.is_empty())
                .map(|s| s.as_bytes().to_vec())
                .collect(),
        })
    }
}

/// Arguments of `rnet-util generate`.
#[derive(Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Print the prompt before the completion.
    #[arg(long)]
    echo: bool,
    /// Print prompt/completion sizes and speeds to stderr.
    #[arg(long)]
    stats: bool,
    /// The prompt ("-" reads it from stdin).
    prompt: String,
}

/// Arguments of `rnet-util chat`.
#[derive(Args)]
pub struct ChatArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// System message at the start of the conversation.
    #[arg(long)]
    system: Option<String>,
}

/// Arguments of `rnet-util serve`.
#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Listening address.
    #[arg(long, default_value = DEFAULT_ADDR)]
    addr: SocketAddr,
    /// Require `Authorization: Bearer KEY` (default: the RNET_API_KEY environment variable, if
    /// set; otherwise no key).
    #[arg(long)]
    api_key: Option<String>,
    /// Model id served and listed by /v1/models.
    #[arg(long, default_value = DEFAULT_MODEL_ID)]
    model_id: String,
    /// Longest prompt in bytes.
    #[arg(long, default_value_t = 16 * 1024)]
    max_prompt_bytes: usize,
    /// Largest max_tokens a request may ask for.
    #[arg(long, default_value_t = 4096)]
    max_tokens_limit: usize,
    /// Generations running at once (default: the number of cores).
    #[arg(long)]
    max_sessions: Option<usize>,
    /// Decoding device: cpu (default: the CPU inference engine, f32 or int8), cuda[:N],
    /// vulkan[:N] or metal (f32 weights on the device, one decoder per session; needs the binary
    /// built with --features cuda / vulkan / metal), or auto (the best GPU present, else cpu). A
    /// named device that is missing is an error, never a silent CPU run.
    #[arg(long, default_value = "cpu")]
    device: rnet_gpu::Device,
}

fn engine(args: &ModelArgs) -> anyhow::Result<(Engine, u64)> {
    let checkpoint = load(&args.checkpoint)?;
    let engine = Engine::new(&checkpoint.model, args.precision).with_threads(args.threads());
    Ok((engine, checkpoint.height))
}

fn write_text(out: &mut impl Write, text: &str) -> ControlFlow<()> {
    if out.write_all(text.as_bytes()).and_then(|_| out.flush()).is_err() {
        ControlFlow::Break(())
    } else {
        ControlFlow::Continue(())
    }
}

/// Runs `rnet-util generate`.
pub fn run_generate(args: GenerateArgs) -> anyhow::Result<()> {
    let params = args.sampling.params()?;
    let prompt = if args.prompt == "-" {
        let mut s = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut s).context("reading the prompt")?;
        s
    } else {
        args.prompt.clone().into_bytes()
    };
    let (engine, _) = engine(&args.model)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    generate_to(&engine, &prompt, &params, args.echo, args.stats, &mut out)
}

fn generate_to(
    engine: &Engine,
    prompt: &[u8],
    params: &GenerateParams,
    echo: bool,
    stats: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    if echo {
        out.write_all(prompt)?;
    }
    let mut session = engine.new_session();
    let t0 = Instant::now();
    let mut first: Option<f64> = None;
    let result = generate(engine, &mut session, prompt, params, |text| {
        first.get_or_insert_with(|| t0.elapsed().as_secs_f64());
        write_text(out, text)
    })?;
    writeln!(out)?;
    if stats {
        let secs = t0.elapsed().as_secs_f64();
        let prefill = first.unwrap_or(secs);
        eprintln!(
            "prompt {} bytes, completion {} bytes ({}), {:.2} s, {:.0} bytes/s decode, {}, decode threads: {}",
            result.prompt_bytes,
            result.completion_bytes,
            result.finish_reason.as_str(),
            secs,
            result.completion_bytes as f64 / (secs - prefill).max(1e-9),
            engine.precision(),
            engine.threads()
        );
    }
    Ok(())
}

/// Runs `rnet-util chat`: one user message per line of stdin (`/reset` starts over, `/quit` or
/// end of input ends); the conversation stays in one recurrent state.
pub fn run_chat(args: ChatArgs) -> anyhow::Result<()> {
    let params = args.sampling.params()?;
    let (engine, height) = engine(&args.model)?;
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        eprintln!(
            "ResonanceNet chat (checkpoint height {height}, {}). /reset starts over, /quit or Ctrl-D ends.",
            engine.precision()
        );
    }
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    chat_loop(
        &engine,
        args.system.as_deref(),
        &params,
        stdin.lock(),
        &mut stdout.lock(),
        interactive,
    )
}

fn chat_loop(
    engine: &Engine,
    system: Option<&str>,
    params: &GenerateParams,
    input: impl BufRead,
    out: &mut impl Write,
    interactive: bool,
) -> anyhow::Result<()> {
    let mut conversation = Conversation::new(engine, system)?;
    let prompt = |out: &mut dyn Write| -> std::io::Result<()> {
        if interactive {
            write!(out, "> ")?;
            out.flush()?;
        }
        Ok(())
    };
    prompt(out)?;
    for line in input.lines() {
        let line = line.context("reading stdin")?;
        let line = line.trim_end_matches('\r');
        match line.trim() {
            "/quit" | "/exit" => break,
            "/reset" => {
                conversation = Conversation::new(engine, system)?;
                prompt(out)?;
                continue;
            }
            "" => {
                prompt(out)?;
                continue;
            }
            _ => {}
        }
        conversation.reply(engine, line, params, |text| write_text(out, text))?;
        writeln!(out)?;
        prompt(out)?;
    }
    Ok(())
}

/// Runs `rnet-util serve` until Ctrl-C.
pub fn run_serve(args: ServeArgs) -> anyhow::Result<()> {
    // `auto` that finds no GPU serves on the CPU engine (faster on a CPU than the device engine's
    // CPU reference backend); a named device must open.
    let device = match args.device {
        rnet_gpu::Device::Cpu => None,
        requested => match requested.resolve().with_context(|| format!("--device {requested}"))? {
            rnet_gpu::Device::Cpu => {
                eprintln!("--device {requested}: no GPU found; serving on the CPU engine");
                None
            }
            device => Some(device),
        },
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let checkpoint = load(&args.model.checkpoint)?;
    let api_key =
        args.api_key.or_else(|| std::env::var("RNET_API_KEY").ok()).filter(|k| !k.is_empty());
    let defaults = ServerConfig::default();
    let config = ServerConfig {
        model_id: args.model_id,
        precision: args.model.precision,
        api_key,
        max_prompt_bytes: args.max_prompt_bytes,
        max_tokens_limit: args.max_tokens_limit,
        default_max_tokens: defaults.default_max_tokens.min(args.max_tokens_limit),
        max_sessions: args.max_sessions.unwrap_or(defaults.max_sessions).max(1),
        decode_threads: Some(args.model.threads()),
        ..defaults
    };
    let state = match device {
        None => ServerState::new(config, &checkpoint),
        Some(device) => {
            let state = ServerState::on_device(config, &checkpoint, device)?;
            let name = state.model().device.as_ref().map(|d| d.name.clone()).unwrap_or_default();
            eprintln!("decoding on {device} ({name}), f32 weights, one decoder per session");
            state
        }
    };
    drop(checkpoint);
    run_blocking(args.addr, state, |addr| {
        eprintln!("serving the OpenAI-compatible API on http://{addr}/v1 (Ctrl-C stops)");
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rnet_model::{Model, ModelConfig, ModelNetwork};

    fn engine() -> Engine {
        Engine::new(
            &Model::init(ModelConfig::genesis(ModelNetwork::Regtest), 0).unwrap(),
            Precision::F32,
        )
    }

    #[test]
    fn generate_streams_the_completion() {
        let e = engine();
        let params = GenerateParams {
            max_tokens: 12,
            sampling: SamplingParams {
                logit_bias: vec![(b'a', 100.0)],
                ..SamplingParams::greedy()
            },
            stop: vec![],
        };
        let mut out = Vec::new();
        generate_to(&e, b"In the beginning", &params, true, false, &mut out).unwrap();
        assert_eq!(out, b"In the beginningaaaaaaaaaaaa\n");
    }

    #[test]
    fn chat_reads_lines_and_keeps_the_conversation() {
        let e = engine();
        let params = GenerateParams {
            max_tokens: 3,
            sampling: SamplingParams {
                logit_bias: vec![(b'o', 100.0)],
                ..SamplingParams::greedy()
            },
            stop: vec![],
        };
        let mut out = Vec::new();
        let input = &b"hello\n\n/reset\nagain\n/quit\nignored\n"[..];
        chat_loop(&e, Some("be nice"), &params, input, &mut out, false).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "ooo\nooo\n");
    }
}
