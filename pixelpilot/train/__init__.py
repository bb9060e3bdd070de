"""Fine-tune Qwen3-VL on recorded runs: ``pixelpilot train DATA --model PATH_OR_ID --out CKPT``.

``DATA`` is an ``hf`` export (``pixelpilot export -f hf``); each sample's prompt is encoded as the
local backend encodes the request it stands for (:mod:`.data`), the loss is on the answer tokens,
with the prompt prefix every sample shares computed once per batch (:mod:`.loss`), and the run is
TRL's SFTTrainer with LoRA or full fine-tuning (:mod:`.trainer`). Needs the ``train`` extra.
"""

from .data import Collator, SampleEncoder, TrainDataError, load_export
from .trainer import TrainConfig, TrainReport, train

__all__ = ["Collator", "SampleEncoder", "TrainConfig", "TrainDataError", "TrainReport", "load_export", "train"]
