"""Named engine profiles from the user's config file, and a one-call engine check.

The file is TOML, by default ``config.toml`` in the platform's user config folder for automem
(``~/.config/automem/config.toml`` on Linux); ``AUTOMEM_CONFIG`` names another one::

    [engines.local32b]
    spec = "openai:http://gpu-box:8000/v1#Qwen2.5-32B-Instruct"
    api_key_env = "MY_KEY"        # optional: the NAME of the variable holding the key
    [engines.local32b.options]
    timeout = 120
    structured = "vllm"

Keys never go in the file, only the names of environment variables that hold them, so nothing
secret reaches the options that runs record.
"""

from __future__ import annotations

import os
import re
import time
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StringConstraints, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from automem.engines.base import Engine, EngineError

CONFIG_ENV = "AUTOMEM_CONFIG"
_SECRET_OPTIONS = frozenset({"api_key", "key", "token", "password", "secret"})
PROFILE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"
_TOML_FILE: ContextVar[Path | None] = ContextVar("automem_toml_file", default=None)


class ConfigError(EngineError):
    """An unreadable or invalid config file; the message names the file, and the line where known."""


class EngineProfile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spec: str = Field(min_length=1, description="engine spec, e.g. openai:http://host:8000/v1#model")
    api_key_env: str | None = Field(default=None, description="name of the environment variable holding the key")
    description: str | None = None
    options: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of the engine")

    @field_validator("options")
    @classmethod
    def _no_secrets(cls, options: dict[str, Any]) -> dict[str, Any]:
        secret = sorted(_SECRET_OPTIONS & set(options))
        if secret:
            raise ValueError(
                f"option {secret[0]!r} would store a secret: put the key in an environment variable "
                "and give its name as api_key_env"
            )
        return options

    def engine_options(self) -> dict[str, Any]:
        """The options handed to the engine factory (api_key_env included when set)."""
        merged = dict(self.options)
        if self.api_key_env:
            merged["api_key_env"] = self.api_key_env
        return merged


class _TomlSource(TomlConfigSettingsSource):
    """pydantic-settings' TOML source, reading with tomli where tomllib is missing (Python 3.10)."""

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        try:
            import tomllib
        except ImportError:  # pragma: no cover - Python 3.10
            import tomli as tomllib  # type: ignore[no-redef]
        with file_path.open(mode="rb") as fh:
            return tomllib.load(fh)


class AutomemConfig(BaseSettings):
    """The whole user config file; only the TOML file feeds it (no environment variables)."""

    model_config = SettingsConfigDict(extra="forbid")

    # a ':' in a name would make it read as a spec
    engines: dict[Annotated[str, StringConstraints(pattern=PROFILE_NAME)], EngineProfile] = Field(default_factory=dict)
    _path: Path | None = PrivateAttr(default=None)

    @property
    def path(self) -> Path | None:
        """The file it was read from; None when there was none."""
        return self._path

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = _TOML_FILE.get()
        if toml_file is None:
            return (init_settings,)
        return (init_settings, _TomlSource(settings_cls, toml_file=toml_file))


def config_path() -> Path:
    """Where the config file is looked for: ``$AUTOMEM_CONFIG``, else the user config folder."""
    override = os.environ.get(CONFIG_ENV)
    if override:
        return Path(override).expanduser()
    from platformdirs import user_config_path

    return user_config_path("automem") / "config.toml"


def _toml_key(text: str) -> list[str]:
    """``engines."my box".options`` -> ['engines', 'my box', 'options'] (enough TOML for locating)."""
    parts = re.findall(r'\s*("(?:[^"\\]|\\.)*"|\'[^\']*\'|[^.\s]+)\s*(?:\.|$)', text)
    return [p[1:-1] if p[:1] in "\"'" else p for p in parts]


def _locate(text: str, loc: tuple[str | int, ...]) -> int | None:
    """Best-effort line of the key or table that an error location points into."""
    want = [str(p) for p in loc]
    best, best_len = None, 0
    table: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        header = re.match(r"^\[\s*([^\[\]]+?)\s*\]\s*(?:#.*)?$", stripped)
        if header:
            table = _toml_key(header.group(1))
            path = table
        else:
            key = re.match(r"^([A-Za-z0-9_\-.\"' ]+?)\s*=", stripped)
            if not key:
                continue
            path = table + _toml_key(key.group(1))
        # a key on the way to the location, the location, or a table inside it (which defines it)
        n = min(len(path), len(want))
        if n > best_len and path[:n] == want[:n]:
            best, best_len = number, n
    return best


def _validation_message(path: Path, exc: ValidationError) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        text = ""
    problems = []
    for error in exc.errors():
        loc = tuple(p for p in error["loc"] if p != "[key]")
        field = ".".join(str(p) for p in loc) or "(top level)"
        line = _locate(text, loc)
        where = f"line {line}: " if line else ""
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif "[key]" in error["loc"]:
            message = "a profile name is letters, digits, '_' and '-'"
        problems.append(f"{where}{field}: {message}")
    return f"invalid config file {path}: " + "; ".join(problems)


def load_config(path: str | Path | None = None) -> AutomemConfig:
    """Read the config file (``path``, else :func:`config_path`); no default file means no profiles."""
    explicit = path is not None or bool(os.environ.get(CONFIG_ENV))
    file = Path(path).expanduser() if path is not None else config_path()
    if not file.is_file():
        if explicit:
            raise ConfigError(f"config file not found: {file}")
        return AutomemConfig()
    token = _TOML_FILE.set(file)
    try:
        config = AutomemConfig()
    except ValidationError as exc:
        raise ConfigError(_validation_message(file, exc)) from None
    except ValueError as exc:  # tomllib.TOMLDecodeError is a ValueError; its message carries line and column
        raise ConfigError(f"invalid TOML in config file {file}: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {file}: {exc}") from None
    finally:
        _TOML_FILE.reset(token)
    config._path = file
    return config


def list_profiles(path: str | Path | None = None) -> dict[str, EngineProfile]:
    """The profiles in the config file, in file order."""
    return dict(load_config(path).engines)


def looks_like_spec(name_or_spec: str) -> bool:
    text = name_or_spec.strip()
    return ":" in text or text.endswith(".gguf")


def resolve_engine(name_or_spec: str, path: str | Path | None = None) -> tuple[str, dict[str, Any]]:
    """A profile name -> (its spec, its options with api_key_env); anything else -> (itself, {}).

    A spec (it has a ``:`` or ends in ``.gguf``) is returned without reading the config file, so
    a broken file only gets in the way of runs that name a profile or a bare engine name.
    """
    if looks_like_spec(name_or_spec):
        return name_or_spec, {}
    profile = load_config(path).engines.get(name_or_spec.strip())
    if profile is None:
        return name_or_spec, {}
    return profile.spec, profile.engine_options()


#: what engine_test asks for; with a grammar the answer is one of three commands
TEST_MESSAGES = [
    {"role": "system", "content": "You play a game. Answer with exactly one line: ACT <action>."},
    {"role": "user", "content": "Actions: north, south, wait. Which one?"},
]
TEST_GRAMMAR = 'root ::= "ACT " ("north" | "south" | "wait")'


def engine_test(engine: Engine, *, max_tokens: int = 16) -> dict[str, Any]:
    """One real call with a tiny prompt (grammar-constrained when the engine supports it).

    Returns what ``automem engines test`` shows: latency, tokens, tokens/s, the text and whether
    it parses as a command. Raises EngineError when the call fails.
    """
    from automem.memory.syntax import ParseError, parse_command

    start = time.perf_counter()
    use_grammar = bool(engine.supports_grammar)  # may probe the server: counted in setup_s
    setup_s = time.perf_counter() - start
    completion = engine.complete(
        list(TEST_MESSAGES),
        grammar=TEST_GRAMMAR if use_grammar else None,
        max_tokens=max_tokens,
        temperature=0.0,
        seed=0,
    )
    latency = completion.latency_s
    return {
        "engine": engine.name,
        "model": engine.model,
        "structured": getattr(engine, "structured_mode", "grammar" if use_grammar else "none"),
        "grammar": use_grammar,
        "setup_s": round(setup_s, 4),
        "latency_s": round(latency, 4),
        "input_tokens": completion.input_tokens,
        "cached_tokens": completion.cached_tokens,
        "output_tokens": completion.output_tokens,
        "tokens_per_s": round(completion.output_tokens / latency, 2) if latency > 0 else None,
        "text": completion.text,
        "finish_reason": completion.finish_reason,
        "parses": not isinstance(parse_command(completion.text.strip()), ParseError),
    }
