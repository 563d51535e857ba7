"""A PEFT LoRA adapter as a GGUF LoRA for llama.cpp (``Llama(lora_path=...)``).

llama.cpp's own converter (``convert_lora_to_gguf.py``) ships only in its source tree and needs the
base model's Hugging Face config; a memory specialist trained on a GGUF base already has everything
in that GGUF: the architecture, the layer count, the head counts and the tensor names. So the
conversion reads those with the ``gguf`` library, maps PEFT's module names to GGUF tensor names
with gguf's own name map, and writes ``NAME.weight.lora_a`` / ``.lora_b`` pairs and the adapter's
alpha the way llama.cpp's loader expects them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from automem.errors import AutomemError

ADAPTER_FILE = "adapter.gguf"

# Architectures whose converter permutes the rows of the query and key projections (llama.cpp
# applies rotary embeddings to interleaved pairs, Hugging Face to halves): a LoRA's B matrix,
# which produces those rows, must be permuted the same way. Only architectures we know stay here;
# others are refused rather than converted wrongly.
PERMUTES_QK = {"llama": True, "qwen2": False, "qwen3": False}

_PEFT_KEY = re.compile(r"base_model\.model\.(?P<module>.+)\.lora_(?P<which>[AB])\.weight")


class ConversionError(AutomemError, ValueError):
    """An adapter or base model this converter cannot turn into a GGUF LoRA, with the reason."""


def _field(reader: Any, key: str) -> Any:
    field = reader.fields.get(key)
    if field is None:
        return None
    return field.contents()


def _permute_rows(rows: Any, n_head: int) -> Any:
    """The row order of llama.cpp's rotary layout: within each head, interleave the two halves."""
    out = rows.shape[0]
    return rows.reshape(n_head, 2, out // n_head // 2, *rows.shape[1:]).swapaxes(1, 2).reshape(rows.shape)


def adapter_settings(adapter_dir: Path) -> dict[str, Any]:
    path = adapter_dir / "adapter_config.json"
    if not path.is_file():
        raise ConversionError(f"not a PEFT adapter folder (no adapter_config.json): {adapter_dir}")
    config = json.loads(path.read_text(encoding="utf-8"))
    if config.get("peft_type", "LORA") != "LORA":
        raise ConversionError(f"only LoRA adapters convert, not {config.get('peft_type')}")
    if config.get("alpha_pattern") or config.get("rank_pattern"):
        raise ConversionError("per-module ranks or alphas cannot be expressed: llama.cpp has one alpha per adapter")
    if config.get("use_rslora") or config.get("use_dora"):
        raise ConversionError("rsLoRA and DoRA adapters are not supported by the GGUF LoRA format used here")
    if config.get("modules_to_save"):
        raise ConversionError(f"modules saved whole ({config['modules_to_save']}) have no place in a GGUF LoRA")
    return config


def convert_adapter(adapter_dir: str | Path, base_gguf: str | Path, out: str | Path | None = None) -> Path:
    """Write the adapter in ``adapter_dir`` as a GGUF LoRA for the GGUF model ``base_gguf``."""
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    adapter_dir = Path(adapter_dir).expanduser()
    base_gguf = Path(base_gguf).expanduser()
    config = adapter_settings(adapter_dir)
    weights = adapter_dir / "adapter_model.safetensors"
    if not weights.is_file():
        raise ConversionError(f"no adapter_model.safetensors in {adapter_dir}")
    try:
        reader = gguf.GGUFReader(str(base_gguf))
    except (OSError, ValueError) as exc:
        raise ConversionError(f"cannot read the base model {base_gguf}: {exc}") from None
    arch = _field(reader, "general.architecture")
    if arch not in PERMUTES_QK:
        raise ConversionError(
            f"the base's architecture {arch!r} is not one this converter knows ({', '.join(PERMUTES_QK)}); "
            "use llama.cpp's convert_lora_to_gguf.py"
        )
    n_blocks = int(_field(reader, f"{arch}.block_count"))
    n_head = int(_field(reader, f"{arch}.attention.head_count"))
    n_head_kv = int(_field(reader, f"{arch}.attention.head_count_kv") or n_head)
    base_names = {t.name for t in reader.tensors}
    arch_enum = {name: value for value, name in gguf.MODEL_ARCH_NAMES.items()}[arch]
    name_map = gguf.get_tensor_name_map(arch_enum, n_blocks)

    pairs: dict[str, dict[str, Any]] = {}
    for key, value in load_file(str(weights)).items():
        match = _PEFT_KEY.fullmatch(key)
        if match is None:
            raise ConversionError(f"adapter tensor {key!r} is not a LoRA A or B matrix of a linear layer")
        module = match["module"]
        name = name_map.get_name(module + ".weight", try_suffixes=(".weight",))
        if name is None or name not in base_names:
            raise ConversionError(f"adapter module {module!r} has no tensor in the base model {base_gguf.name}")
        pairs.setdefault(name, {"module": module})[match["which"]] = value.astype(np.float32)

    for pair in pairs.values():
        if "A" not in pair or "B" not in pair:
            raise ConversionError(f"adapter module {pair['module']!r} lacks its A or B matrix")

    target = Path(out).expanduser() if out else adapter_dir / ADAPTER_FILE
    partial = target.with_name(target.name + ".partial")
    writer = gguf.GGUFWriter(str(partial), arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(config["lora_alpha"]))
    for name in sorted(pairs):
        pair = pairs[name]
        lora_b = pair["B"]
        if PERMUTES_QK[arch] and name.endswith("attn_q.weight"):
            lora_b = _permute_rows(lora_b, n_head)
        elif PERMUTES_QK[arch] and name.endswith("attn_k.weight"):
            lora_b = _permute_rows(lora_b, n_head_kv)
        # numpy shapes (r, in) and (out, r) are ggml's [in, r] and [r, out]: what llama.cpp multiplies
        writer.add_tensor(name + ".lora_a", np.ascontiguousarray(pair["A"]))
        writer.add_tensor(name + ".lora_b", np.ascontiguousarray(lora_b))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    partial.rename(target)  # llama.cpp never sees a half-written adapter under the final name
    return target
