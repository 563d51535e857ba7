from __future__ import annotations

from pathlib import Path

import pytest

from automem.engines.base import Completion, EngineError
from automem.engines.profiles import (
    TEST_GRAMMAR,
    ConfigError,
    config_path,
    engine_test,
    list_profiles,
    load_config,
    resolve_engine,
)

GOOD = """\
# engines I use
[engines.local32b]
spec = "openai:http://gpu-box:8000/v1#Qwen2.5-32B-Instruct"
api_key_env = "MY_KEY"        # optional
[engines.local32b.options]
timeout = 120
structured = "vllm"

[engines.laptop]
spec = "ollama:qwen2.5:7b"
description = "the small one"
options = { num_ctx = 8192 }
"""


@pytest.fixture(autouse=True)
def no_user_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # never read the config of whoever runs the tests
    monkeypatch.delenv("AUTOMEM_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_profiles_resolve_to_spec_and_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, GOOD)
    config = load_config(path)
    assert config.path == path and list(config.engines) == ["local32b", "laptop"]
    assert resolve_engine("local32b", path) == (
        "openai:http://gpu-box:8000/v1#Qwen2.5-32B-Instruct",
        {"timeout": 120, "structured": "vllm", "api_key_env": "MY_KEY"},
    )
    assert resolve_engine("laptop", path) == ("ollama:qwen2.5:7b", {"num_ctx": 8192})
    assert resolve_engine("llamacpp", path) == ("llamacpp", {})  # not a profile: the spec itself
    assert list(list_profiles(path)) == ["local32b", "laptop"]
    assert list_profiles(path)["laptop"].description == "the small one"
    # AUTOMEM_CONFIG names the file when no path is given
    monkeypatch.setenv("AUTOMEM_CONFIG", str(path))
    assert config_path() == path
    assert resolve_engine("laptop")[0] == "ollama:qwen2.5:7b"


def test_default_location_and_missing_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    default = config_path()
    assert default.name == "config.toml" and default.parent.name == "automem"
    assert not default.exists()
    assert load_config().engines == {} and load_config().path is None  # no file: no profiles
    assert resolve_engine("anything") == ("anything", {})
    default.parent.mkdir(parents=True)
    default.write_text(GOOD)
    assert "laptop" in list_profiles()
    # a file named explicitly must exist
    monkeypatch.setenv("AUTOMEM_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match="config file not found: .*nope.toml"):
        load_config()
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "other.toml")


def test_specs_never_read_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOMEM_CONFIG", str(write(tmp_path, "this is [not toml")))
    assert resolve_engine("openai:http://h:8000/v1#m") == ("openai:http://h:8000/v1#m", {})
    assert resolve_engine("models/x.gguf") == ("models/x.gguf", {})
    with pytest.raises(EngineError, match="invalid TOML"):  # ConfigError is an EngineError: the CLI shows it
        resolve_engine("local32b")


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[engines.x]\nspec = "llamacpp"\ntimeout = = 3\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message and "line 3" in message and "\n" not in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[engines.a]\nspek = 'llamacpp'\n", ["line 2: engines.a.spek: unknown key", "engines.a.spec: Field required"]),
        ("[engines.a]\nspec = 42\n", ["line 2: engines.a.spec: Input should be a valid string"]),
        ("[engines.a]\nspec = ''\n", ["line 2: engines.a.spec: String should have at least 1 character"]),
        ("[engines.a]\nspec = 'x'\n[engines.a.options]\napi_key = 'sk-1'\n", ["line 3: engines.a.options", "secret"]),
        ("[engines.'a:b']\nspec = 'x'\n", ["line 1: engines.a:b: a profile name is letters"]),
        ("[engine.a]\nspec = 'x'\n", ["line 1: engine: unknown key"]),
        ("engines = 3\n", ["line 1: engines: Input should be a valid dictionary"]),
    ],
)
def test_invalid_config_names_file_line_and_field(tmp_path: Path, text: str, expected: list[str]) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"invalid config file {path}: ") and "\n" not in message
    for part in expected:
        assert part in message


class FakeEngine:
    name = "fake"
    model = "fake-1"

    def __init__(self, supports_grammar: bool) -> None:
        self.supports_grammar = supports_grammar
        self.calls: list[dict[str, object]] = []

    def complete(self, messages, *, grammar=None, max_tokens=64, temperature=0.7, seed=None) -> Completion:
        self.calls.append({"grammar": grammar, "max_tokens": max_tokens, "temperature": temperature})
        return Completion("ACT north", 40, 0, 4, 0.5, "stop")

    def close(self) -> None:
        pass


def test_engine_test_reports_one_call() -> None:
    engine = FakeEngine(supports_grammar=True)
    report = engine_test(engine)
    assert engine.calls == [{"grammar": TEST_GRAMMAR, "max_tokens": 16, "temperature": 0.0}]
    assert report["engine"] == "fake" and report["model"] == "fake-1" and report["structured"] == "grammar"
    assert (report["latency_s"], report["output_tokens"], report["tokens_per_s"]) == (0.5, 4, 8.0)
    assert report["text"] == "ACT north" and report["parses"]
    plain = FakeEngine(supports_grammar=False)
    assert engine_test(plain)["grammar"] is False and plain.calls[0]["grammar"] is None


# -- engine options: declared per engine, checked before anything runs --------------------------
def test_every_builtin_engine_declares_its_options() -> None:
    from automem.engines import _BUILTIN, engine_names
    from automem.engines.options import options_of
    from automem.plugins import load

    for name in engine_names():
        model = options_of(load(_BUILTIN[name]))
        assert model is not None, name
        # vLLM hands unknown keywords to vllm.LLM, which refuses what it does not know itself
        assert model.model_config.get("extra") == ("allow" if name == "vllm" else "forbid"), name


def test_a_mistyped_option_is_one_line_before_any_model_loads() -> None:
    from automem.engines import make_engine

    with pytest.raises(EngineError, match=r"^unknown option 'n_thread' for the llamacpp engine; known: .*n_threads"):
        make_engine("llamacpp", n_thread=2)
    with pytest.raises(EngineError, match=r"^option 'n_ctx' of the llamacpp engine: .* got 'lots'$"):
        make_engine("llamacpp", n_ctx="lots")
    with pytest.raises(EngineError, match="option 'top_p' of the transformers engine"):
        make_engine("transformers", top_p=3)


def test_options_from_text_are_converted_and_defaults_stay_the_engines() -> None:
    from automem.engines.llamacpp import LlamaCppOptions
    from automem.engines.options import check_options

    assert check_options("llamacpp", LlamaCppOptions, {"n_ctx": "2048", "constrained": "false"}) == {
        "n_ctx": 2048,
        "constrained": False,
    }
    assert check_options("llamacpp", LlamaCppOptions, {}) == {}


def test_a_profile_with_a_typo_names_the_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from automem.cli import app
    from automem.engines import resolve_engine_spec

    path = write(tmp_path, '[engines.box]\nspec = "openai:http://127.0.0.1:9/v1#m"\noptions = { timout = 30 }\n')
    monkeypatch.setenv("AUTOMEM_CONFIG", str(path))
    with pytest.raises(EngineError, match=r"^engine profile 'box': unknown option 'timout' for the openai engine"):
        resolve_engine_spec("box")
    result = CliRunner().invoke(app, ["run", "crafter", "--engine", "box", "--steps", "1"])
    assert result.exit_code == 2, result.output
    assert "unknown option 'timout'" in result.output and "Traceback" not in result.output
