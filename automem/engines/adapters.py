"""LoRA adapter folders made by ``automem finetune`` (or any PEFT LoRA) as engine targets.

An adapter folder names the base it was trained on (``automem.json``, else PEFT's
``base_model_name_or_path``), so ``transformers:ADAPTER``, ``llamacpp:ADAPTER`` and
``vllm:ADAPTER`` are each enough to load the specialist: the transformers engine applies the PEFT
adapter, llama.cpp a GGUF LoRA converted from it, vLLM a ``LoRARequest`` on the base.
"""

from __future__ import annotations

import json
from pathlib import Path

from automem.engines.base import EngineError

RECORD = "automem.json"


def is_adapter(path: str | Path | None) -> bool:
    return bool(path) and (Path(path).expanduser() / "adapter_config.json").is_file()  # type: ignore[arg-type]


def adapter_base(adapter: Path) -> str:
    """The base model an adapter folder was trained on: a GGUF file, a model folder or a hub id."""
    recorded = adapter / RECORD
    try:
        if recorded.is_file():
            base = json.loads(recorded.read_text(encoding="utf-8")).get("base")
        else:
            base = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8")).get(
                "base_model_name_or_path"
            )
    except (OSError, ValueError) as exc:
        raise EngineError(f"cannot read adapter {adapter}: {exc}") from None
    if not base:
        raise EngineError(f"adapter {adapter} does not say which base model it was trained on")
    return str(base)


def gguf_lora_for(adapter: Path, base_gguf: Path) -> Path:
    """The adapter as a GGUF LoRA for llama.cpp: the file written after training, else converted now."""
    from automem.engines.gguf_lora import ADAPTER_FILE, ConversionError, convert_adapter

    converted = adapter / ADAPTER_FILE
    if converted.is_file() and converted.stat().st_mtime >= (adapter / "adapter_model.safetensors").stat().st_mtime:
        return converted
    try:
        return convert_adapter(adapter, base_gguf)
    except ImportError as exc:
        raise EngineError(f"converting a LoRA for llama.cpp needs gguf and safetensors: {exc}") from None
    except ConversionError as exc:
        raise EngineError(f"cannot use adapter {adapter} with llama.cpp: {exc}") from None
