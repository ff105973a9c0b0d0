//! External trainers: mining past one machine. Instead of training in-process, the miner hands
//! the model to any program (a PyTorch script on a GPU box, a cluster job launcher) and takes the
//! weights it writes back, strictly checked.
//!
//! One run: the miner writes the model to `{input}` (safetensors, see
//! `rnet_model::interchange`), deletes any stale `{output}`, runs the command template through
//! `sh -c` in the work directory with the placeholders substituted, logs every line the command
//! prints on stdout or stderr as it comes, and waits at most the timeout (then kills the command's
//! whole process group). Exit status 0 means "weights written": `{output}` is then imported with
//! `rnet_model::checkpoint_from_safetensors` against the input model, so it must have exactly the
//! input's tensor names, F32 dtype and shapes, and no NaN, infinite or subnormal value. Any other
//! outcome is a [`TrainerError`]; the miner logs it and runs the command again (from the last good
//! weights), it never panics or exits because of a trainer. `docs/training.md` ("External
//! trainers") is the protocol as a trainer author sees it.

use std::borrow::Cow;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rnet_model::{Checkpoint, InterchangeError, checkpoint_from_safetensors};
use thiserror::Error;

/// File name of the model the trainer starts from, inside the work directory.
pub const INPUT_FILE: &str = "input.safetensors";
/// File name the trainer must write its weights to, inside the work directory.
pub const OUTPUT_FILE: &str = "output.safetensors";
/// File name of the training data the miner writes when it trains on bytes without a path (the
/// bundled corpus), inside the work directory.
pub const DATA_FILE: &str = "training-data.bin";

/// Default `{steps}`: the step budget of one run.
pub const DEFAULT_STEPS: u64 = 500;
/// Default timeout of one run.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);
/// Default number of runs per block before the miner gives up on a job (and asks for a new one).
pub const DEFAULT_RUNS: u32 = 10;
/// How long the output of a finished command is still drained (a background process that
/// inherited its pipes must not stall the miner).
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// How often a running command is polled.
const POLL: Duration = Duration::from_millis(20);

/// Why one run of an external trainer produced no usable model.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum TrainerError {
    /// A file of the exchange could not be written, read or removed.
    #[error("{action} {}: {message}", path.display())]
    Io {
        /// What the miner was doing (`writing`, `reading`, `removing`).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error's kind.
        kind: std::io::ErrorKind,
        /// The I/O error's message.
        message: String,
    },
    /// `sh` could not be started.
    #[error("cannot start the trainer command: {0}")]
    Spawn(String),
    /// The command exited with a non-zero status.
    #[error("trainer exited with status {0}")]
    ExitCode(i32),
    /// The command was ended by a signal.
    #[error("trainer killed by signal {0}")]
    Signal(i32),
    /// The command ran past its timeout; its process group was killed.
    #[error("trainer still running after {} s; killed its process group", timeout.as_secs_f64())]
    Timeout {
        /// The timeout.
        timeout: Duration,
    },
    /// The command exited 0 without writing the output file.
    #[error("trainer exited 0 but wrote no {}", .0.display())]
    NoOutput(PathBuf),
    /// The output file is not the model it must be (wrong names, dtype, shapes, NaN, …).
    #[error("trainer output refused: {0}")]
    Import(#[from] InterchangeError),
}

impl TrainerError {
    fn io(action: &'static str, path: &Path, e: &std::io::Error) -> Self {
        TrainerError::Io {
            action,
            path: path.to_path_buf(),
            kind: e.kind(),
            message: e.to_string(),
        }
    }
}

/// One failed run of a block's training, as reported in `MinedBlock::trainer_failures`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrainerFailure {
    /// Run number within the block, from 0.
    pub run: u32,
    /// What went wrong.
    pub error: TrainerError,
}

/// An external trainer: the command template and its budget (module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalTrainer {
    /// The command, run as `sh -c COMMAND` after substituting `{input}`, `{output}`, `{data}` and
    /// `{steps}` ([`substitute`]).
    pub command: String,
    /// `{steps}`: the step budget of one run.
    pub steps: u64,
    /// Longest a run may take before its process group is killed.
    pub timeout: Duration,
    /// `{data}`: the training data file; `None` writes the miner's data to [`DATA_FILE`] in the
    /// work directory.
    pub data: Option<PathBuf>,
    /// Directory of the exchange files (created when missing); the command runs in it.
    pub work_dir: PathBuf,
    /// Runs per block before the miner gives up on the job.
    pub runs: u32,
}

impl ExternalTrainer {
    /// A trainer running `command` in `work_dir` with the default budget ([`DEFAULT_STEPS`],
    /// [`DEFAULT_TIMEOUT`], [`DEFAULT_RUNS`]) on the miner's own data.
    pub fn new(command: impl Into<String>, work_dir: impl Into<PathBuf>) -> Self {
        Self {
            command: command.into(),
            steps: DEFAULT_STEPS,
            timeout: DEFAULT_TIMEOUT,
            data: None,
            work_dir: work_dir.into(),
            runs: DEFAULT_RUNS,
        }
    }

    /// Path of the input file.
    pub fn input_path(&self) -> PathBuf {
        self.work_dir.join(INPUT_FILE)
    }

    /// Path of the output file.
    pub fn output_path(&self) -> PathBuf {
        self.work_dir.join(OUTPUT_FILE)
    }

    /// The shell command line of a run on data file `data`.
    pub fn command_line(&self, data: &Path) -> String {
        substitute(
            &self.command,
            &self.input_path().to_string_lossy(),
            &self.output_path().to_string_lossy(),
            &data.to_string_lossy(),
            self.steps,
        )
    }

    /// One run from `start` (the model the block's weights continue from) on data file `data`:
    /// the imported result, at `start`'s height and of exactly its shape, or why there is none.
    /// Never leaves the command (or anything in its process group) running.
    pub fn run(&self, start: &Checkpoint, data: &Path) -> Result<Checkpoint, TrainerError> {
        std::fs::create_dir_all(&self.work_dir)
            .map_err(|e| TrainerError::io("creating", &self.work_dir, &e))?;
        let (input, output) = (self.input_path(), self.output_path());
        let bytes = start.to_safetensors_bytes().map_err(|e| TrainerError::Io {
            action: "exporting",
            path: input.clone(),
            kind: std::io::ErrorKind::InvalidData,
            message: e.to_string(),
        })?;
        std::fs::write(&input, bytes).map_err(|e| TrainerError::io("writing", &input, &e))?;
        match std::fs::remove_file(&output) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(TrainerError::io("removing", &output, &e)),
        }
        let line = self.command_line(data);
        tracing::info!("trainer: running `{line}` (timeout {} s)", self.timeout.as_secs());
        let status = run_logged(&line, &self.work_dir, self.timeout)?;
        if !status.success() {
            return Err(exit_error(status));
        }
        let bytes = match std::fs::read(&output) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(TrainerError::NoOutput(output));
            }
            Err(e) => return Err(TrainerError::io("reading", &output, &e)),
        };
        Ok(checkpoint_from_safetensors(&bytes, start)?)
    }
}

fn exit_error(status: ExitStatus) -> TrainerError {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return TrainerError::Signal(signal);
        }
    }
    TrainerError::ExitCode(status.code().unwrap_or(-1))
}

/// A line printed by the command, or the end of one of its streams.
enum Event {
    Line(&'static str, String),
    Closed,
}

/// Forwards the lines of `stream` (lossily decoded) to `tx`, then `Closed`.
fn forward(stream: impl Read + Send + 'static, name: &'static str, tx: mpsc::Sender<Event>) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&buf).trim_end().to_string();
                    if tx.send(Event::Line(name, text)).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = tx.send(Event::Closed);
    });
}

fn log(event: &Event) {
    if let Event::Line(stream, text) = event {
        tracing::info!("trainer {stream}: {text}");
    }
}

/// Kills `child`'s process group (it leads its own, see [`spawn`]) and reaps `child`.
fn kill_group(child: &mut Child) {
    #[cfg(unix)]
    {
        // The group may already be gone (ESRCH): nothing to do then.
        let _ = rustix::process::kill_process_group(
            rustix::process::Pid::from_child(child),
            rustix::process::Signal::KILL,
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn spawn(line: &str, dir: &Path) -> Result<Child, TrainerError> {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(line)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // Its own process group, so a timeout kills everything the command started.
        command.process_group(0);
    }
    command.spawn().map_err(|e| TrainerError::Spawn(e.to_string()))
}

/// Runs `sh -c line` in `dir`, logging its output lines as they come (on the calling thread, so
/// a caller's tracing subscriber sees them), for at most `timeout`; afterwards kills whatever is
/// left of its process group.
fn run_logged(line: &str, dir: &Path, timeout: Duration) -> Result<ExitStatus, TrainerError> {
    let mut child = spawn(line, dir)?;
    let (tx, rx) = mpsc::channel();
    let mut open = 0;
    if let Some(out) = child.stdout.take() {
        forward(out, "stdout", tx.clone());
        open += 1;
    }
    if let Some(err) = child.stderr.take() {
        forward(err, "stderr", tx.clone());
        open += 1;
    }
    drop(tx);
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => {
                kill_group(&mut child);
                return Err(TrainerError::Spawn(format!("waiting for the trainer: {e}")));
            }
        }
        if Instant::now() >= deadline {
            kill_group(&mut child);
            while let Ok(event) = rx.try_recv() {
                log(&event);
            }
            return Err(TrainerError::Timeout { timeout });
        }
        match rx.recv_timeout(POLL) {
            Ok(Event::Closed) => open -= 1,
            Ok(event) => log(&event),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(POLL),
        }
    };
    // Leftover background processes of the command end with it.
    kill_group(&mut child);
    let grace = Instant::now() + DRAIN_GRACE;
    while open > 0 {
        let left = grace.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(Event::Closed) => open -= 1,
            Ok(event) => log(&event),
            Err(_) => break,
        }
    }
    Ok(status)
}

/// A value as one shell word: unchanged when it consists only of characters the shell never
/// interprets, else single-quoted.
pub fn shell_word(value: &str) -> Cow<'_, str> {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+:,@%=".contains(c);
    if !value.is_empty() && value.chars().all(plain) {
        Cow::Borrowed(value)
    } else {
        Cow::Owned(format!("'{}'", value.replace('\'', r"'\''")))
    }
}

/// The template with `{input}`, `{output}`, `{data}` (each as one shell word, [`shell_word`]) and
/// `{steps}` replaced, in one pass (a substituted value is never substituted again); any other
/// `{…}` (shell syntax such as `${VAR}`) is left as it is.
pub fn substitute(template: &str, input: &str, output: &str, data: &str, steps: u64) -> String {
    let steps = steps.to_string();
    let mut out = String::with_capacity(template.len() + input.len() + output.len());
    let mut rest = template;
    while let Some(at) = rest.find('{') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let found = [("{input}", input), ("{output}", output), ("{data}", data)]
            .into_iter()
            .map(|(key, v)| (key, shell_word(v)))
            .chain(std::iter::once(("{steps}", Cow::Borrowed(steps.as_str()))))
            .find(|(key, _)| tail.starts_with(key));
        match found {
            Some((key, value)) => {
                out.push_str(&value);
                rest = &tail[key.len()..];
            }
            None => {
                out.push('{');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use rnet_model::{BadValue, Model, ModelConfig, ModelNetwork};

    use super::*;

    fn start() -> Checkpoint {
        Checkpoint::new(1, Model::init(ModelConfig::genesis(ModelNetwork::Regtest), 3).unwrap())
    }

    fn trainer(dir: &Path, command: &str) -> ExternalTrainer {
        let mut t = ExternalTrainer::new(command, dir);
        t.timeout = Duration::from_secs(20);
        t
    }

    fn data(dir: &Path) -> PathBuf {
        let path = dir.join("data.txt");
        std::fs::write(&path, b"hello").unwrap();
        path
    }

    #[test]
    fn placeholders_are_substituted_once_and_quoted() {
        let line = substitute(
            "train --in {input} --out={output} --data {data} --steps {steps} ${HOME} {other}",
            "/tmp/w/input.safetensors",
            "/tmp/my dir/out's.safetensors",
            "{steps}",
            250,
        );
        assert_eq!(
            line,
            "train --in /tmp/w/input.safetensors --out='/tmp/my dir/out'\\''s.safetensors' \
             --data '{steps}' --steps 250 ${HOME} {other}"
        );
        // The quoting survives the shell.
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("printf %s {}", shell_word("a b'c$d")))
            .output()
            .unwrap();
        assert_eq!(out.stdout, b"a b'c$d");
    }

    #[test]
    fn a_copying_trainer_gives_back_the_input_and_its_lines_are_logged() {
        let dir = tempfile::tempdir().unwrap();
        let t = trainer(
            dir.path(),
            "echo \"steps={steps}\"; echo oops >&2; test -f {data} && cp {input} {output}",
        );
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = {
            let buffer = buffer.clone();
            move || CaptureWriter(buffer.clone())
        };
        let subscriber = tracing_subscriber::fmt().with_writer(writer).with_ansi(false).finish();
        let result =
            tracing::subscriber::with_default(subscriber, || t.run(&start(), &data(dir.path())));
        assert_eq!(result.unwrap(), start());
        let log = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
        assert!(log.contains("trainer stdout: steps=500"), "{log}");
        assert!(log.contains("trainer stderr: oops"), "{log}");
    }

    /// A `MakeWriter` target collecting the log in memory.
    struct CaptureWriter(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for CaptureWriter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_non_zero_exit_is_an_exit_code_error() {
        let dir = tempfile::tempdir().unwrap();
        let t = trainer(dir.path(), "cp {input} {output}; exit 3");
        assert_eq!(t.run(&start(), &data(dir.path())), Err(TrainerError::ExitCode(3)));
        let t = trainer(dir.path(), "kill -TERM $$");
        assert_eq!(t.run(&start(), &data(dir.path())), Err(TrainerError::Signal(15)));
    }

    #[test]
    fn exit_zero_without_output_is_refused_even_with_a_stale_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(OUTPUT_FILE), start().to_safetensors_bytes().unwrap())
            .unwrap();
        let t = trainer(dir.path(), "true");
        assert_eq!(
            t.run(&start(), &data(dir.path())),
            Err(TrainerError::NoOutput(dir.path().join(OUTPUT_FILE)))
        );
    }

    /// The pid's process is gone (or a zombie awaiting its reaper).
    fn dead(pid: u32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat.rsplit(')').next().is_some_and(|s| s.trim_start().starts_with('Z')),
        }
    }

    #[test]
    fn a_hanging_trainer_times_out_and_its_process_group_is_killed() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = trainer(dir.path(), "sleep 60 & echo $! > sleeper.pid; wait");
        t.timeout = Duration::from_millis(700);
        let started = Instant::now();
        let err = t.run(&start(), &data(dir.path())).unwrap_err();
        assert_eq!(err, TrainerError::Timeout { timeout: Duration::from_millis(700) });
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
        let pid: u32 = std::fs::read_to_string(dir.path().join("sleeper.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !dead(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(dead(pid), "the background sleep {pid} was killed with the group");
    }

    #[test]
    fn wrong_shapes_and_nans_are_import_errors() {
        let dir = tempfile::tempdir().unwrap();
        // Another shape: the next regtest width.
        let other = Checkpoint::new(
            1,
            Model::init(ModelConfig::genesis(ModelNetwork::Regtest).with_shape(34, 2), 3).unwrap(),
        );
        let wrong = dir.path().join("wrong.safetensors");
        std::fs::write(&wrong, other.to_safetensors_bytes().unwrap()).unwrap();
        let t = trainer(dir.path(), &format!("cp {} {{output}}", wrong.display()));
        let err = t.run(&start(), &data(dir.path())).unwrap_err();
        assert!(
            matches!(err, TrainerError::Import(InterchangeError::MetadataMismatch { .. })),
            "{err}"
        );
        let mut nan = start();
        nan.model.tensor_mut("layers.0.slot.wq").unwrap()[12] = f32::NAN;
        let nan_file = dir.path().join("nan.safetensors");
        std::fs::write(&nan_file, nan.to_safetensors_bytes().unwrap()).unwrap();
        let t = trainer(dir.path(), &format!("cp {} {{output}}", nan_file.display()));
        assert_eq!(
            t.run(&start(), &data(dir.path())),
            Err(TrainerError::Import(InterchangeError::BadValue {
                tensor: "layers.0.slot.wq".into(),
                index: 12,
                kind: BadValue::NaN,
            }))
        );
    }
}
