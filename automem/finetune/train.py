"""Fine-tuning a memory specialist: LoRA on a mined dataset, loss on the assistant's tokens only.

``auto`` picks Unsloth when a CUDA GPU is present and Unsloth imports, else transformers + peft +
trl (which also runs, slowly, on a CPU). Every run is a ``training_runs`` row with its
configuration, losses as they come, checkpoints and the adapter folder that the transformers
engine loads (``transformers:BASE`` with ``adapter=FOLDER``, or ``--memory-engine`` in two-model play).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from automem.errors import AutomemError
from automem.store.db import Store


class TrainingError(AutomemError, ValueError):
    """Bad fine-tuning input (unknown dataset, base model, backend) or a failed run."""


@dataclass
class TrainConfig:
    dataset: str
    base: str  # a transformers model folder or a .gguf file ("bundled": the bundled SmolLM2 GGUF)
    out: str
    backend: str = "auto"  # auto | unsloth | peft
    lora_r: int = 8
    lora_alpha: int = 16
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    epochs: float = 1.0
    lr: float = 2e-4
    max_length: int = 4096  # tokens per example; the CLI, the jobs form and this default agree (test_cli_defaults)
    max_steps: int = -1  # > 0 caps the optimizer steps (quick CPU runs)
    batch_size: int = 1
    save_steps: int = 50
    seed: int = 0
    #: auto: bf16 on a CUDA GPU that has it, else fp32 (see resolve_precision for why)
    precision: str = "auto"  # auto | bf16 | fp32
    #: recomputing activations saves memory a 135M model on a CPU does not need and costs one more
    #: forward pass per step: None turns it on only on a GPU
    gradient_checkpointing: bool | None = None


PRECISIONS = ("auto", "bf16", "fp32")
#: what ``--backend`` accepts; auto is resolved by choose_backend (the jobs form checks against this too)
BACKENDS = ("auto", "unsloth", "peft")


def resolve_precision(requested: str, cuda: bool) -> str:
    """bf16 or fp32 for this machine. On a CPU, auto is fp32: bf16 autocast measured slower than
    fp32 on a 2-core AVX512-BF16 machine without AMX (bench/finetune_speed.py, docs/finetune.md);
    AMX machines may gain from ``--precision bf16``, not measured here."""
    if requested not in PRECISIONS:
        raise TrainingError(f"--precision must be one of {', '.join(PRECISIONS)}, not {requested!r}")
    if requested != "auto":
        return requested
    if cuda:
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "fp32"


def choose_backend(requested: str) -> str:
    if requested not in BACKENDS:
        raise TrainingError(f"--backend must be {', '.join(BACKENDS[:-1])} or {BACKENDS[-1]}, not {requested!r}")
    if requested == "peft":
        return "peft"
    import torch

    if not torch.cuda.is_available():
        if requested == "unsloth":
            raise TrainingError("Unsloth needs a CUDA GPU; use --backend peft on this machine")
        return "peft"
    try:
        import unsloth  # noqa: F401  (an optional extra: pip install 'automem[unsloth]')
    except (ImportError, NotImplementedError) as exc:
        if requested == "unsloth":
            raise TrainingError(f"Unsloth is not usable here: {exc}") from None
        return "peft"
    return "unsloth"


def _base_path(base: str) -> str:
    if base in ("bundled", "llamacpp"):
        from automem.engines.bundled import bundled_model_path

        return str(bundled_model_path())
    return base


def _prompt_completion(path: Path) -> list[dict[str, Any]]:
    """Chat examples as trl's conversational prompt-completion pairs, so the loss covers only the
    assistant's answer (the memory command), never the prompt."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            messages = json.loads(line)["messages"]
            rows.append({"prompt": messages[:-1], "completion": messages[-1:]})
    return rows


def finetune(
    store: Store, config: TrainConfig, *, resume: bool = False, on_log: Callable[[dict[str, Any]], None] | None = None
) -> dict[str, Any]:
    row = store.dataset_by_name(config.dataset)
    if row is None:
        raise TrainingError(f"no dataset named {config.dataset!r} (make one with automem mine)")
    dataset_id, folder = int(row["id"]), row["folder"]
    train_rows = _prompt_completion(Path(folder) / "train.jsonl")
    val_path = Path(folder) / "val.jsonl"
    val_rows = _prompt_completion(val_path) if val_path.exists() else []
    if not train_rows:
        raise TrainingError(f"dataset {config.dataset!r} has no training examples")
    backend = choose_backend(config.backend)
    if config.precision not in PRECISIONS:  # before anything is recorded
        raise TrainingError(f"--precision must be one of {', '.join(PRECISIONS)}, not {config.precision!r}")
    out_dir = store.path.parent / "models" / config.out
    existing = store.training_run_by_name(config.out)
    if existing and not resume:
        raise TrainingError(f"training run {config.out!r} exists; use --resume to continue it or another --out")
    if existing:
        run_id = int(existing["id"])
        store.update_training_run(run_id, status="running")
    else:
        run_id = store.create_training_run(
            name=config.out, dataset_id=dataset_id, base=config.base, backend=backend,
            config=asdict(config), adapter=str(out_dir / "adapter"),
        )  # fmt: skip
    try:
        result = _train_peft(config, backend, train_rows, val_rows, out_dir, resume, store, run_id, on_log)
    except BaseException as exc:
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        store.finish_training_run(run_id, status, error=str(exc)[:500])
        raise
    store.finish_training_run(
        run_id, "finished", train_loss=result["train_loss"], eval_loss=result.get("eval_loss"), steps=result["steps"]
    )
    return {"training_run_id": run_id, "adapter": str(out_dir / "adapter"), "backend": backend, **result}


def _train_peft(
    config: TrainConfig,
    backend: str,
    train_rows: list[dict[str, Any]],
    val_rows: list[dict[str, Any]],
    out_dir: Path,
    resume: bool,
    store: Store,
    run_id: int,
    on_log: Callable[[dict[str, Any]], None] | None,
) -> dict[str, Any]:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from automem.engines.transformers_engine import load_pretrained, resolve_model, unmark_gguf

    folder, gguf_file = resolve_model(_base_path(config.base))
    cuda = torch.cuda.is_available()
    precision = resolve_precision(config.precision, cuda)
    peft_config = None
    if backend == "unsloth":  # pragma: no cover - needs a CUDA GPU
        tokenizer, model = _unsloth_model(config, folder, gguf_file, store.path.parent / "models" / "bases")
    else:
        tokenizer, model = load_pretrained(folder, gguf_file, torch.float32 if not cuda else "auto")
        if gguf_file:
            unmark_gguf(model)
        peft_config = LoraConfig(
            r=config.lora_r, lora_alpha=config.lora_alpha, target_modules=config.target_modules,
            lora_dropout=0.0, task_type="CAUSAL_LM",
        )  # fmt: skip
    # a resumed run keeps the entries logged before its interruption (the steps after its checkpoint
    # are logged again; automem.finetune.losses keeps the later entry of a step)
    previous = store.training_run_by_name(config.out) if resume else None
    log: list[dict[str, Any]] = json.loads(previous["log"] or "[]") if previous else []

    class ToStore(TrainerCallback):  # type: ignore[misc]
        """Losses into the training_runs row as they come, so a job screen or a crash sees them."""

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any) -> None:
            entry = {"step": state.global_step, **{k: v for k, v in (logs or {}).items() if isinstance(v, int | float)}}
            log.append(entry)
            store.update_training_run(run_id, log=json.dumps(log), steps=state.global_step)
            if on_log is not None:
                # the planned number of steps, for a progress bar (known once training has started)
                on_log({**entry, "total_steps": int(state.max_steps or 0)})

    args = SFTConfig(
        output_dir=str(out_dir / "checkpoints"), num_train_epochs=config.epochs, max_steps=config.max_steps,
        learning_rate=config.lr, per_device_train_batch_size=config.batch_size, max_length=config.max_length,
        # validation in the training batch size: eval's default of 8 pads every example to the
        # longest of its batch, which a CPU pays for in full
        per_device_eval_batch_size=config.batch_size,
        logging_steps=1, save_steps=config.save_steps, save_total_limit=2, report_to=[], seed=config.seed,
        completion_only_loss=True, eval_strategy="epoch" if val_rows else "no", use_cpu=not cuda,
        disable_tqdm=True, bf16=precision == "bf16",
        gradient_checkpointing=cuda if config.gradient_checkpointing is None else config.gradient_checkpointing,
    )  # fmt: skip
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(val_rows) if val_rows else None, processing_class=tokenizer,
        peft_config=peft_config, callbacks=[ToStore()],
    )  # fmt: skip
    # the CLI prints each loss itself; the trainer's own printer would repeat every log as a dict
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    checkpoints = sorted((out_dir / "checkpoints").glob("checkpoint-*")) if resume else []
    with warnings.catch_warnings():
        # peft looks for a config.json beside a GGUF base to check the vocabulary, finds none and
        # says so at every save; the vocabulary is the GGUF's own, unchanged
        warnings.filterwarnings("ignore", message="Could not find a config file", category=UserWarning)
        output = trainer.train(resume_from_checkpoint=str(checkpoints[-1]) if checkpoints else None)
        trainer.save_model(str(out_dir / "adapter"))
    # the base it was trained on, so `transformers:ADAPTER_FOLDER` is enough to load it
    base_file = folder / gguf_file if gguf_file else folder
    record: dict[str, Any] = {"base": str(base_file)}
    (out_dir / "adapter" / "automem.json").write_text(json.dumps(record), encoding="utf-8")
    if gguf_file:
        # the same adapter for llama.cpp (grammar-constrained play with llamacpp:ADAPTER)
        from automem.engines.gguf_lora import ConversionError, convert_adapter

        try:
            record["gguf_lora"] = str(convert_adapter(out_dir / "adapter", base_file))
        except ConversionError as exc:
            record["gguf_lora_error"] = str(exc)
        (out_dir / "adapter" / "automem.json").write_text(json.dumps(record), encoding="utf-8")
    result: dict[str, Any] = {
        "train_loss": float(output.training_loss),
        "steps": int(output.global_step),
        "train_seconds": float(output.metrics.get("train_runtime", 0.0)),
        "gguf_lora": record.get("gguf_lora"),
    }
    if val_rows:
        # the evaluation at the end of the last epoch already measured this adapter: reuse it
        # rather than run the validation set again (minutes on a CPU)
        logged = [
            e["eval_loss"] for e in trainer.state.log_history if "eval_loss" in e and e.get("step") == result["steps"]
        ]
        result["eval_loss"] = float(logged[-1]) if logged else float(trainer.evaluate()["eval_loss"])
    return result


def _unsloth_model(config: TrainConfig, folder: Path, gguf_file: str | None, cache: Path) -> tuple[Any, Any]:
    """(tokenizer, LoRA model) through Unsloth, which loads the base itself to patch its kernels."""
    from unsloth import FastLanguageModel  # pragma: no cover - needs a CUDA GPU

    from automem.engines.transformers_engine import hf_folder_of

    if gguf_file:
        folder = hf_folder_of(folder / gguf_file, cache)
    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=str(folder), max_seq_length=config.max_length, dtype=None, load_in_4bit=False,
        local_files_only=True,
    )  # fmt: skip
    model = FastLanguageModel.get_peft_model(
        model, r=config.lora_r, lora_alpha=config.lora_alpha, target_modules=config.target_modules,
        lora_dropout=0.0, bias="none", use_gradient_checkpointing="unsloth", random_state=config.seed,
    )  # fmt: skip
    return tokenizer, model
