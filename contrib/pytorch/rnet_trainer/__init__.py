"""Reference PyTorch trainer for ResonanceNet V5 (issue 18): the model, the data sampler and the
optimizer of the Rust engine, with torchrun data parallelism (DDP, FSDP). See ../README.md."""

__all__ = ["model", "scan", "data", "optim", "io", "train", "cli"]
