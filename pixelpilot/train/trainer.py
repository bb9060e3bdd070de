"""``pixelpilot train``: fine-tune a Qwen3-VL checkpoint on an ``hf`` export with TRL's SFTTrainer.

    pixelpilot train export/ --model Qwen/Qwen3-VL-2B-Instruct --out ckpt/

What TRL does here: the training loop (``SFTTrainer``, on transformers' ``Trainer``), LoRA through
PEFT (``peft_config``), bf16 on CUDA, the progress bar, checkpoints every ``save_steps`` and
resuming from the last one. What pixelpilot does instead of TRL, and why:

- **the collator** (:class:`~pixelpilot.train.data.Collator`): TRL's vision collator renders
  samples with the checkpoint's ``AutoProcessor``; pixelpilot encodes each prompt with the code
  its local backend encodes requests with (``ChatEncoder``: the chat template, the PIL image
  processor, images at their stored size), so that a sample's tokens and pixels are the ones the
  model is served — and Qwen3-VL's ``AutoProcessor`` also needs torchvision, which a CPU install
  lacks. The loss is on the answer's tokens and the ``<|im_end|>`` that ends it, nothing else.
- **the loss** (:func:`~pixelpilot.train.loss.answer_loss`): TRL runs the model over each sample
  whole; pixelpilot's samples share a prompt prefix of over a thousand tokens (the system prompt),
  which is computed once per batch, and logits are computed at the answer positions only.

The output folder holds the merged weights (LoRA merged into the base), the tokenizer and chat
template, the image processor's config — what ``pixelpilot serve --backend transformers`` and
SGLang load — plus ``pixelpilot-train.json`` (the settings and figures of the run) and
``checkpoints/`` (what ``--resume`` continues from).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Any, Literal

import torch
from datasets import Dataset
from transformers import AutoModelForImageTextToText, TrainerCallback
from trl import SFTConfig, SFTTrainer

from ..serving.local import ChatEncoder
from .data import Collator, TrainDataError, load_export
from .loss import answer_loss, answer_vocab

Method = Literal["lora", "full"]
#: The parts ``freeze`` can keep as they are, and how to find each in a Qwen3-VL.
FREEZABLE = {
    "vision": lambda m: m.model.visual,
    "embeddings": lambda m: m.get_input_embeddings(),
    "head": lambda m: m.get_output_embeddings(),
}
#: The language model's linear layers: where LoRA adapters go (the vision tower stays as it is).
LORA_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
#: The trainer's name for activation checkpointing (transformers 5 renamed ``gradient_checkpointing``).
_CHECKPOINTING = next(
    (f.name for f in dataclass_fields(SFTConfig) if f.name == "activation_checkpointing"), "gradient_checkpointing"
)
#: Written beside the weights: the run's settings and what it measured.
CONFIG_FILE = "pixelpilot-train.json"
#: Processor files of a checkpoint that are copied to the output as they are.
PROCESSOR_FILES = (
    "chat_template.jinja",
    "chat_template.json",
    "preprocessor_config.json",
    "video_preprocessor_config.json",
    "processor_config.json",
)


@dataclass
class TrainConfig:
    """A training run. ``method`` None picks LoRA on CUDA and full fine-tuning on CPU; ``lr`` None
    picks 2e-4 for LoRA and 1e-5 for full fine-tuning."""

    data: str
    model: str
    out: str
    method: Method | None = None
    epochs: float = 1.0
    #: Stop after this many optimizer steps (overrides ``epochs``).
    max_steps: int | None = None
    #: Stop (and save) once this many minutes of training have passed. The learning-rate schedule
    #: then follows the steps or the clock, whichever is further along, so its decay ends by the limit
    #: however fast the machine turns out to be.
    time_limit: float | None = None
    batch_size: int = 8
    grad_accum: int = 1
    lr: float | None = None
    warmup: float = 0.03
    scheduler: str = "cosine"
    weight_decay: float = 0.0
    lora_rank: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    #: Parts of the model full fine-tuning leaves as they are (``vision``, ``embeddings``, ``head``);
    #: LoRA trains adapters on the language model only.
    freeze: tuple[str, ...] = ()
    save_steps: int = 200
    logging_steps: int = 10
    seed: int = 0
    device: str | None = None
    threads: int | None = None
    gradient_checkpointing: bool = False
    #: Compute the prompt prefix the batch's samples share once (see pixelpilot.train.loss).
    share_prefix: bool = True
    #: Let the loss's gradient flow through the shared prefix's keys and values; False makes the prefix
    #: (the system prompt every sample starts with) a constant of each step, which helped the
    #: demonstration's from-scratch model find the screenshot (docs/training.md).
    prefix_grad: bool = True
    #: The softmax's tokens: ``full`` (the whole vocabulary) or ``answers`` (those the training answers
    #: are written with: for a small model trained from scratch, where the LM head dominates the cost).
    vocab: Literal["full", "answers"] = "full"
    resume: bool = False
    progress: bool = True

    def resolved(self, cuda: bool) -> TrainConfig:
        """The config with its automatic choices made for a machine with (or without) CUDA."""
        method: Method = self.method or ("lora" if cuda else "full")
        lr = self.lr if self.lr is not None else (2e-4 if method == "lora" else 1e-5)
        return TrainConfig(**{**asdict(self), "method": method, "lr": lr})


@dataclass
class TrainReport:
    """What a run did: where the merged checkpoint is, how long it took, how fast it went."""

    out: Path
    steps: int
    samples: int
    seconds: float
    final_loss: float | None
    token_accuracy: float | None
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        loss = f"; loss {self.final_loss:.4f}" if self.final_loss is not None else ""
        return (
            f"trained {self.steps} steps, {self.samples} samples in {self.seconds:.0f} s "
            f"({self.samples_per_second:.2f} samples/s){loss}; checkpoint: {self.out}"
        )


def train(config: TrainConfig) -> TrainReport:
    """Fine-tune ``config.model`` on the export ``config.data``; write the merged checkpoint to ``config.out``."""
    if config.threads:
        torch.set_num_threads(config.threads)
    device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
    cuda = device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: torch {torch.__version__} sees no CUDA device here; use cpu")
    cfg = config.resolved(cuda)
    unknown = [p for p in cfg.freeze if p not in FREEZABLE]
    if unknown:
        raise ValueError(f"cannot freeze {unknown}; the parts are {', '.join(FREEZABLE)}")
    if not cfg.prefix_grad and (cfg.gradient_checkpointing or not cfg.share_prefix):
        raise ValueError(
            "--no-prefix-grad keeps the shared prompt prefix constant, and activation checkpointing "
            "(or share_prefix=False) turns that prefix off: drop one of --no-prefix-grad and --gradient-checkpointing"
        )
    out = Path(cfg.out)
    rows = load_export(cfg.data)
    if len(rows) == 0:
        raise TrainDataError(f"{cfg.data}: the export has no samples")
    encoder = ChatEncoder.from_pretrained(cfg.model)
    dtype = torch.bfloat16 if cuda else torch.float32
    auto: Any = AutoModelForImageTextToText  # its stubs do not take a path
    model = auto.from_pretrained(cfg.model, dtype=dtype)
    for part in cfg.freeze:
        FREEZABLE[part](model).requires_grad_(False)
    _patch_embed_as_product(model)
    peft_config = None
    if cfg.method == "lora":
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=cfg.lora_rank,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules=LORA_TARGETS,
            task_type="CAUSAL_LM",
        )
    lr = cfg.lr
    assert lr is not None  # resolved() chose one
    checkpointing: dict[str, Any] = {_CHECKPOINTING: cfg.gradient_checkpointing}
    args = SFTConfig(
        output_dir=str(out / "checkpoints"),
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=lr,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps if cfg.max_steps is not None else -1,
        lr_scheduler_type=cfg.scheduler,
        warmup_steps=cfg.warmup,
        weight_decay=cfg.weight_decay,
        optim="adamw_torch_fused",  # one kernel for all parameters: on CPU several times the default's speed
        logging_steps=cfg.logging_steps,
        save_steps=cfg.save_steps,
        save_total_limit=2,
        seed=cfg.seed,
        bf16=cuda,
        use_cpu=not cuda,
        **checkpointing,
        report_to="none",
        disable_tqdm=not cfg.progress,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        dataset_kwargs={"skip_prepare_dataset": True},
        max_length=None,
    )
    clock = _Clock(cfg.time_limit)
    # The rows stay in the export (images decoded when a batch needs them); the trainer deals out indices.
    indices = Dataset.from_dict({"index": list(range(len(rows)))})
    collator = Collator(rows, encoder)
    trainer = _AnswerTrainer(
        model=model,
        args=args,
        train_dataset=indices,
        data_collator=collator,
        processing_class=encoder.tokenizer,
        peft_config=peft_config,
        callbacks=[clock],
    )
    trainer.share_prefix = cfg.share_prefix
    trainer.prefix_grad = cfg.prefix_grad
    trainer.clock = clock
    if cfg.vocab == "answers":
        answers = [m[-1]["content"][0]["text"] for m in rows.select_columns(["messages"])["messages"]]
        trainer.vocab = answer_vocab(answers, encoder.tokenizer, collator.encode.end_id)
    elif cfg.vocab != "full":
        raise ValueError(f"vocab must be full or answers, not {cfg.vocab!r}")
    checkpoints = list((out / "checkpoints").glob("checkpoint-*"))
    trainer.train(resume_from_checkpoint=True if cfg.resume and checkpoints else None)
    state = trainer.state
    trained: Any = trainer.model
    if cfg.method == "lora":
        trained = trained.merge_and_unload()
    trained.save_pretrained(out)
    _save_processor(cfg.model, encoder, out)
    losses = [e["loss"] for e in state.log_history if "loss" in e]
    accuracy = [e["mean_token_accuracy"] for e in state.log_history if "mean_token_accuracy" in e]
    steps = state.global_step - clock.first_step
    report = TrainReport(
        out=out,
        steps=steps,
        samples=steps * cfg.batch_size * cfg.grad_accum,
        seconds=clock.seconds,
        final_loss=losses[-1] if losses else None,
        token_accuracy=accuracy[-1] if accuracy else None,
        config=asdict(cfg),
    )
    record = {
        "format": "pixelpilot.train/1",
        "config": report.config,
        "samples_in_data": len(rows),
        "softmax_tokens": len(trainer.vocab) if trainer.vocab is not None else None,
        "device": device,
        "steps": report.steps,
        "total_steps": state.global_step,
        "samples": report.samples,
        "seconds": round(report.seconds, 1),
        "samples_per_second": round(report.samples_per_second, 3),
        "final_loss": report.final_loss,
        "token_accuracy": report.token_accuracy,
        "log": state.log_history,
    }
    (out / CONFIG_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return report


def _patch_embed_as_product(model: Any) -> None:
    """Compute the vision tower's patch embedding as the matrix product it is.

    Qwen3-VL embeds each patch with a Conv3d whose kernel and stride are the whole patch (2×16×16
    pixels, 3 channels): one output per input, a linear map of the flattened patch. On CPU, oneDNN's
    3-D convolution and its backward cost several times a plain product (a quarter of a small
    model's training step); the weights and the result are the same.
    """
    conv = getattr(getattr(getattr(model.model, "visual", None), "patch_embed", None), "proj", None)
    if (
        not isinstance(conv, torch.nn.Conv3d)
        or tuple(conv.kernel_size) != tuple(conv.stride)
        or conv.padding != (0, 0, 0)
    ):
        return

    def forward(patches: torch.Tensor) -> torch.Tensor:  # patches × channels × time × height × width
        out = torch.nn.functional.linear(patches.flatten(1), conv.weight.flatten(1), conv.bias)
        return out.view(*out.shape, 1, 1, 1)

    conv.forward = forward  # type: ignore[method-assign,assignment]


def _save_processor(model: str, encoder: ChatEncoder, out: Path) -> None:
    """What a server needs besides the weights: the tokenizer with its chat template, the image
    processor, and the base checkpoint's other processor files (SGLang's AutoProcessor reads them)."""
    import shutil

    encoder.tokenizer.save_pretrained(out)
    encoder.images.save_pretrained(out)
    base = Path(model)
    if not base.is_dir():
        from huggingface_hub import snapshot_download

        try:
            base = Path(snapshot_download(model, allow_patterns=list(PROCESSOR_FILES), local_files_only=True))
        except Exception:  # not in the local cache: the tokenizer and image processor saved above must do
            return
    for name in PROCESSOR_FILES:
        if (base / name).is_file() and not (out / name).exists():
            shutil.copyfile(base / name, out / name)


class _Clock(TrainerCallback):
    """Measures training time (not loading or saving) and stops the run at its time limit."""

    def __init__(self, minutes: float | None) -> None:
        self.limit = minutes * 60 if minutes is not None else None
        self.started = 0.0
        self.seconds = 0.0
        self.first_step = 0

    def fraction(self) -> float:
        """How much of the time limit has passed (0 without one, or before training starts)."""
        if self.limit is None or not self.started:
            return 0.0
        return min((time.monotonic() - self.started) / self.limit, 1.0) if self.limit > 0 else 1.0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.started = time.monotonic()
        self.first_step = state.global_step  # a resumed run counts its own steps

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.seconds = time.monotonic() - self.started
        if self.limit is not None and self.seconds >= self.limit:
            control.should_training_stop = True
            control.should_save = True


class _AnswerTrainer(SFTTrainer):
    """SFTTrainer with pixelpilot's loss: answer tokens only, the shared prefix computed once."""

    share_prefix = True
    prefix_grad = True
    #: The token ids the softmax runs over (None: the whole vocabulary).
    vocab: Any = None
    clock: _Clock | None = None

    def create_scheduler(self, num_training_steps: int, optimizer: Any = None) -> Any:
        """The configured schedule, paced by the clock under a time limit: at each step it is taken at
        the step or at the share of the time spent, whichever is later. On a machine slower than
        planned (two shared cores, a busy neighbour) the run then still decays its learning rate to
        the end instead of stopping at the limit halfway down the curve."""
        scheduler = super().create_scheduler(num_training_steps, optimizer)
        clock = self.clock
        if clock is None or clock.limit is None or not isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR):
            return scheduler

        def paced(shape: Callable[[int], float]) -> Callable[[int], float]:
            return lambda step: shape(max(step, round(clock.fraction() * num_training_steps)))

        scheduler.lr_lambdas = [paced(shape) for shape in scheduler.lr_lambdas]
        return scheduler

    def compute_loss(
        self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(next(model.parameters()).dtype)
        # The accuracy costs an argmax over the vocabulary: only for the steps whose figures are logged.
        logged = (self.state.global_step + 1) % self.args.logging_steps == 0 or not model.training
        vocab = self.vocab.to(inputs["input_ids"].device) if self.vocab is not None else None
        result = answer_loss(
            model, inputs, share_prefix=self.share_prefix, prefix_grad=self.prefix_grad, accuracy=logged, vocab=vocab
        )
        mode = "train" if model.training else "eval"
        if result.correct is not None:
            self._metrics[mode]["mean_token_accuracy"].append(result.correct / max(result.tokens, 1))
        return (result.loss, None) if return_outputs else result.loss
