"""In-process Hugging Face transformers engine (optional extra ``automem[transformers]``).

Loads a model folder, or a GGUF file through transformers' ``gguf_file=`` (dequantized to float
weights), optionally with a PEFT LoRA adapter: the engine for checking a LoRA trained with peft
before it is converted for llama.cpp.

Decoding is a small loop of our own rather than ``model.generate``: it keeps the previous call's
token ids and KV cache (a ``DynamicCache``), crops the cache back to the longest common prefix with
the new prompt and evaluates only the rest, so ``cached_tokens`` is measured, not estimated. The
loop also stops at the first newline after some text, since every command is one line.

transformers has no GBNF support, so ``supports_grammar`` is False and the agent relies on its
parser's feedback instead. torch, transformers and peft are imported only when an engine is built.
"""

from __future__ import annotations

import inspect
import time
from pathlib import Path
from typing import Any

from pydantic import Field

from automem.engines.adapters import adapter_base, is_adapter
from automem.engines.base import Completion, EngineError, Message
from automem.engines.options import EngineOptions, takes_options

GGUF_MAGIC = b"GGUF"
# end-of-turn markers of common chat templates; any of them present in the vocabulary ends a reply
END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "</s>")
DTYPES = ("float32", "float16", "bfloat16")


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def first_line(text: str) -> tuple[str, bool]:
    """(the reply up to the first newline after some text, whether such a newline was seen)."""
    body = text.lstrip()
    cut = body.find("\n")
    if cut < 0:
        return body, False
    return body[:cut], True


def resolve_model(path: str | Path) -> tuple[Path, str | None]:
    """(folder to load, GGUF file name inside it or None) for a model folder or a .gguf file."""
    p = Path(path).expanduser()
    if not p.exists():
        raise EngineError(f"model not found: {p}")
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise EngineError(f"not a transformers model folder (no config.json): {p}")
        return p, None
    with p.open("rb") as fh:
        if fh.read(4) != GGUF_MAGIC:
            raise EngineError(f"not a model: {p} is neither a transformers model folder nor a GGUF file")
    return p.parent, p.name


def _first_line_of(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class TransformersEngine:
    name = "transformers"
    supports_grammar = False

    def __init__(
        self,
        model_path: str | Path,
        *,
        adapter: str | Path | None = None,
        device: str = "auto",
        dtype: str | None = None,
        n_threads: int | None = None,
        top_k: int = 40,
        top_p: float = 0.95,
        merge_adapter: bool = True,
        reuse_prefix: bool = True,
    ) -> None:
        folder, gguf_file = resolve_model(model_path)
        adapter_dir = None
        if adapter:
            adapter_dir = Path(adapter).expanduser()
            if not (adapter_dir / "adapter_config.json").is_file():
                raise EngineError(f"not a PEFT adapter folder (no adapter_config.json): {adapter_dir}")
        if dtype is not None and dtype not in DTYPES:
            raise EngineError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}")
        if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
            raise EngineError(f"unknown device {device!r}; use auto, cpu or cuda")
        try:
            import torch  # heavy: imported only when an engine is built
            import transformers  # noqa: F401  (checked here: load_pretrained imports it)
        except ImportError as exc:
            raise EngineError(f"transformers engine needs torch and transformers: {exc}") from None
        self._torch = torch
        if n_threads:
            torch.set_num_threads(int(n_threads))
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        elif device.startswith("cuda") and not torch.cuda.is_available():
            raise EngineError("device cuda requested but torch sees no CUDA device")
        self.device = device
        # float32 on CPU (half precision is slow there); the checkpoint's own dtype on a GPU
        torch_dtype: Any = getattr(torch, dtype) if dtype else (torch.float32 if device == "cpu" else "auto")

        self.model = gguf_file or folder.name
        self.model_path = str(folder / gguf_file) if gguf_file else str(folder)
        self._tokenizer, model = load_pretrained(folder, gguf_file, torch_dtype)
        if adapter_dir is not None:
            model = self._load_adapter(model, adapter_dir, merge_adapter)
            self.model = f"{self.model}+{adapter_dir.name}"
        model.to(device)
        model.eval()
        self._model = model
        self._forward_kwargs = self._logits_kwargs(model)
        self._eos = self._end_tokens()
        self._top_k = int(top_k)
        self._top_p = float(top_p)
        self._generator = torch.Generator(device="cpu")
        self._generator.seed()
        self._reuse = reuse_prefix
        self._cache: Any = None
        self._cached_ids: list[int] = []  # the tokens whose keys/values are in self._cache

    # -- loading ---------------------------------------------------------------------------
    @staticmethod
    def _load_adapter(model: Any, adapter_dir: Path, merge: bool) -> Any:
        try:
            from peft import PeftModel
        except ImportError as exc:
            raise EngineError(f"a LoRA adapter needs peft: pip install peft ({exc})") from None
        try:
            model = PeftModel.from_pretrained(model, str(adapter_dir))
        except Exception as exc:
            raise EngineError(f"cannot load adapter {adapter_dir}: {_first_line_of(exc)}") from None
        if merge:
            # folding the LoRA into the weights makes each step as cheap as the base model's
            try:
                model = model.merge_and_unload()
            except Exception:  # e.g. quantized base weights: keep the adapter unmerged
                pass
        return model

    @staticmethod
    def _logits_kwargs(model: Any) -> dict[str, int]:
        # only the last position's logits are needed; the vocabulary projection of a long prompt is costly
        base = getattr(model, "get_base_model", lambda: model)()
        params = inspect.signature(base.forward).parameters
        if "logits_to_keep" in params:
            return {"logits_to_keep": 1}
        if "num_logits_to_keep" in params:
            return {"num_logits_to_keep": 1}
        return {}

    def _end_tokens(self) -> set[int]:
        tok = self._tokenizer
        ids: set[int] = set()
        if tok.eos_token_id is not None:
            ids.add(int(tok.eos_token_id))
        gen_eos = getattr(getattr(self._model, "generation_config", None), "eos_token_id", None)
        if isinstance(gen_eos, int):
            ids.add(gen_eos)
        elif isinstance(gen_eos, (list, tuple)):
            ids.update(int(i) for i in gen_eos)
        vocab = tok.get_vocab()
        ids.update(vocab[t] for t in END_OF_TURN if t in vocab)
        return ids

    # -- prompt and cache ------------------------------------------------------------------
    def encode(self, messages: list[Message]) -> list[int]:
        """Token ids of the chat prompt, ending with the assistant's turn header."""
        tok = self._tokenizer
        plain = [{"role": m["role"], "content": str(m["content"])} for m in messages]
        if getattr(tok, "chat_template", None):
            text = tok.apply_chat_template(plain, tokenize=False, add_generation_prompt=True)
        else:  # a base model without a template: a plain transcript
            text = "".join(f"{m['role']}: {m['content']}\n" for m in plain) + "assistant:"
        # the template already holds the special tokens (BOS included where the model wants one)
        return list(tok(text, add_special_tokens=False)["input_ids"])

    def _new_cache(self) -> Any:
        from transformers import DynamicCache

        try:
            return DynamicCache(config=self._model.config)
        except TypeError:  # older transformers: no config argument
            return DynamicCache()

    def _prepare_cache(self, prompt: list[int]) -> int:
        """Crop the cache to the prefix shared with ``prompt``; return how many tokens it keeps."""
        # at least the last prompt token is evaluated, for the logits of the first new token
        keep = min(common_prefix(self._cached_ids, prompt), len(prompt) - 1) if self._reuse else 0
        cache = self._cache
        if cache is not None and keep > 0 and getattr(cache, "is_croppable", True):
            try:
                extra = cache.get_seq_length() - keep
                if extra > 0:
                    # a negative count removes that many tokens, in transformers 4.x and 5.x alike
                    cache.crop(-extra)
                if cache.get_seq_length() == keep:
                    self._cached_ids = self._cached_ids[:keep]
                    return keep
            except Exception:  # a cache kind that cannot be cut back: start afresh
                pass
        self._cache = self._new_cache()
        self._cached_ids = []
        return 0

    def reset(self) -> None:
        """Forget the KV cache (e.g. between episodes that share nothing)."""
        self._cache = None
        self._cached_ids = []

    # -- decoding --------------------------------------------------------------------------
    def _forward(self, ids: list[int]) -> Any:
        torch = self._torch
        input_ids = torch.tensor([ids], dtype=torch.long, device=self.device)
        out = self._model(input_ids=input_ids, past_key_values=self._cache, use_cache=True, **self._forward_kwargs)
        self._cache = out.past_key_values
        self._cached_ids.extend(ids)
        return out.logits[0, -1].float()

    def _sample(self, logits: Any, temperature: float) -> int:
        torch = self._torch
        if temperature <= 0:
            return int(torch.argmax(logits))
        logits = (logits / temperature).cpu()
        if 0 < self._top_k < logits.shape[-1]:
            kth = torch.topk(logits, self._top_k).values[-1]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        probs = torch.softmax(logits, dim=-1)
        if 0 < self._top_p < 1:
            sorted_probs, order = torch.sort(probs, descending=True)
            # drop tokens once the mass before them already reaches top_p (the top token always stays)
            drop = torch.cumsum(sorted_probs, dim=-1) - sorted_probs >= self._top_p
            sorted_probs[drop] = 0.0
            probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
        return int(torch.multinomial(probs, 1, generator=self._generator))

    def complete(
        self,
        messages: list[Message],
        *,
        grammar: str | None = None,  # ignored: supports_grammar is False
        max_tokens: int = 64,
        temperature: float = 0.7,
        seed: int | None = None,
    ) -> Completion:
        if self._model is None:
            raise EngineError("engine is closed")
        torch = self._torch
        prompt = self.encode(messages)
        if not prompt:
            raise EngineError("empty prompt")
        if seed is not None:
            self._generator.manual_seed(int(seed))
        start = time.perf_counter()
        tok = self._tokenizer
        generated: list[int] = []
        finish = "length"
        text = ""
        try:
            cached = self._prepare_cache(prompt)
            with torch.inference_mode():
                logits = self._forward(prompt[cached:])
                while len(generated) < max_tokens:
                    token = self._sample(logits, temperature)
                    generated.append(token)
                    if token in self._eos:
                        generated_text = generated[:-1]
                        text, _ = first_line(tok.decode(generated_text, skip_special_tokens=True))
                        finish = "stop"
                        break
                    text, ended = first_line(tok.decode(generated, skip_special_tokens=True))
                    if ended:
                        finish = "stop"
                        break
                    if len(generated) < max_tokens:
                        logits = self._forward([token])
        except EngineError:
            raise
        except Exception as exc:  # e.g. out of memory, a prompt longer than the model's positions
            self.reset()  # the cache may hold a half-evaluated step
            raise EngineError(f"transformers call failed: {_first_line_of(exc)}") from None
        return Completion(
            text=text.strip(),
            input_tokens=len(prompt),
            cached_tokens=cached,
            output_tokens=len(generated),
            latency_s=time.perf_counter() - start,
            finish_reason=finish,
        )

    def close(self) -> None:
        self._model = None
        self.reset()


def load_pretrained(folder: Path, gguf_file: str | None, torch_dtype: Any) -> tuple[Any, Any]:
    """(tokenizer, causal LM) from a model folder or a GGUF file in it, local files only, quietly;
    shared by the engine and loop 2's trainer."""
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {"local_files_only": True}
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    # transformers renamed torch_dtype to dtype (4.56); both spellings work in between
    dtype_key = "dtype" if _version_at_least(transformers.__version__, (4, 56)) else "torch_dtype"
    logging = transformers.utils.logging
    bars = logging.is_progress_bar_enabled()
    verbosity = logging.get_verbosity()
    logging.disable_progress_bar()
    logging.set_verbosity_error()
    quiet = _QuietGGUF() if gguf_file else None
    where = folder / gguf_file if gguf_file else folder
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), **kwargs)
        model = AutoModelForCausalLM.from_pretrained(str(folder), **kwargs, **{dtype_key: torch_dtype})
    except Exception as exc:  # transformers raises many kinds (OSError, ValueError, KeyError...)
        raise EngineError(f"cannot load model {where}: {_first_line_of(exc)}") from None
    finally:
        if bars:
            logging.enable_progress_bar()
        logging.set_verbosity(verbosity)
        if quiet is not None:
            quiet.restore()
    return tokenizer, model


class _QuietGGUF:
    """Silence the GGUF dequantization progress bar, a plain tqdm that ignores transformers' switch."""

    def __init__(self) -> None:
        try:
            import transformers.modeling_gguf_pytorch_utils as module
        except ImportError:
            module = None
        self._module = module
        self._tqdm = getattr(module, "tqdm", None)
        if self._tqdm is not None:
            module.tqdm = _no_bar  # type: ignore[union-attr]

    def restore(self) -> None:
        if self._tqdm is not None:
            self._module.tqdm = self._tqdm  # type: ignore[union-attr]


def _no_bar(iterable: Any, *args: Any, **kwargs: Any) -> Any:
    return iterable


def _version_at_least(version: str, wanted: tuple[int, ...]) -> bool:
    parts: list[int] = []
    for piece in version.split(".")[: len(wanted)]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts) >= wanted


class TransformersOptions(EngineOptions):
    adapter: str | Path | None = Field(None, description="a PEFT adapter folder loaded on the model")
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N or mps")
    dtype: str | None = Field(None, description="weights' dtype (default: float32 on CPU, bfloat16 on GPU)")
    n_threads: int | None = Field(None, ge=1, description="torch's CPU threads")
    top_k: int = Field(40, ge=0, description="sampling: the k most likely tokens")
    top_p: float = Field(0.95, gt=0, le=1, description="sampling: nucleus probability")
    merge_adapter: bool = Field(True, description="merge the adapter into the weights (faster generation)")
    reuse_prefix: bool = Field(True, description="keep the key/value cache of a shared prompt prefix")


@takes_options(TransformersOptions, "transformers")
def factory(target: str, **options: Any) -> TransformersEngine:
    """``transformers:PATH`` (a model folder or a .gguf file); bare ``transformers`` loads the bundled GGUF;
    ``transformers:ADAPTER`` (a PEFT adapter folder made by ``automem finetune``) loads its base with it."""
    if is_adapter(target) and "adapter" not in options:
        adapter = Path(target).expanduser()
        return TransformersEngine(adapter_base(adapter), adapter=adapter, **options)
    if not target:
        from automem.engines.bundled import bundled_model_path

        target = str(bundled_model_path())
    return TransformersEngine(target, **options)


def unmark_gguf(model: Any) -> None:
    """transformers dequantizes GGUF weights to plain tensors on load but keeps the model marked as
    GGUF-quantized, which its Trainer and save_pretrained refuse; the weights really are float now."""
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def hf_folder_of(gguf_path: Path, cache: Path) -> Path:
    """A transformers folder (config, tokenizer, float weights) made once from a GGUF model, for
    trainers and servers that cannot read GGUF themselves (Unsloth, vLLM)."""
    import torch

    target = cache / gguf_path.stem
    if (target / "config.json").is_file():
        return target
    tokenizer, model = load_pretrained(gguf_path.parent, gguf_path.name, torch.bfloat16)
    unmark_gguf(model)
    partial = target.with_name(target.name + ".partial")
    model.save_pretrained(str(partial))
    tokenizer.save_pretrained(str(partial))
    partial.rename(target)  # only a complete folder is ever found under the final name
    return target
