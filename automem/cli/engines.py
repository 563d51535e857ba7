"""Engines: ``engines list``, ``engines test`` and ``serve`` (a local model over the OpenAI API)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from automem.cli.app import (
    app,
    console,
    engines_app,
    fail,
)


@engines_app.command("list")
def engines_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Engine kinds (from the automem.engines entry points) and the profiles of the config file."""
    from automem.engines import engine_names
    from automem.engines.profiles import config_path, list_profiles

    profiles = list_profiles()
    data = {
        "engines": engine_names(),
        "config": str(config_path()),
        "profiles": {
            n: {"spec": p.spec, "api_key_env": p.api_key_env, "options": p.options} for n, p in profiles.items()
        },
    }
    if as_json:
        console.print_json(json.dumps(data))
        return
    console.print("engines: " + ", ".join(data["engines"]), highlight=False)
    table = Table(title=f"profiles in {data['config']}")
    for col in ("profile", "spec", "api key from", "options"):
        table.add_column(col)
    for name, p in data["profiles"].items():
        table.add_row(name, p["spec"], p["api_key_env"] or "-", json.dumps(p["options"]) if p["options"] else "-")
    console.print(table)


@engines_app.command("test")
def engines_test(
    name: Annotated[str, typer.Argument(help="A profile name or an engine spec (e.g. llamacpp, openai:URL#MODEL).")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """One real call: prints latency, tokens and tokens per second."""
    import time

    from automem.engines import EngineError, build_engine
    from automem.engines.profiles import engine_test

    try:
        t0 = time.perf_counter()
        engine = build_engine(name)
        load_s = time.perf_counter() - t0
        try:
            result = engine_test(engine)
        finally:
            engine.close()
    except EngineError as exc:
        fail(str(exc), code=1)
    result["load_s"] = round(load_s, 3)
    if as_json:
        console.print_json(json.dumps(result))
        return
    console.print(
        f"{result['engine']} · {result['model']}: {result['latency_s'] * 1000:.0f} ms, "
        f"{result['input_tokens']} in / {result['output_tokens']} out, {result['tokens_per_s']} tok/s, "
        f"structured: {result['structured']}, load {result['load_s']} s\n→ {result['text']!r}"
        + ("" if result["parses"] else " (does not parse as a command)"),
        highlight=False,
    )


@app.command()
def serve(
    spec: Annotated[
        str, typer.Argument(help="llamacpp (the bundled model), llamacpp:PATH.gguf or llamacpp:ADAPTER.")
    ] = "llamacpp",
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", min=0, max=65535, help="Port (0: a free one).")] = 8080,
    parallel: Annotated[
        int,
        typer.Option(
            "--parallel", "-n", min=1, max=64, help="Slots: requests decoded together, each with a prompt cache."
        ),
    ] = 4,
    n_ctx: Annotated[int, typer.Option("--n-ctx", min=256, help="Context tokens of each slot.")] = 4096,
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="CPU threads (default: all cores).")] = None,
    api_key_env: Annotated[
        str | None, typer.Option("--api-key-env", help="Require the key held by this environment variable.")
    ] = None,
) -> None:
    """Serve a local model over the OpenAI-compatible API (llama.cpp's own server, with parallel
    slots and continuous batching); use it with --engine openai:http://HOST:PORT/v1."""
    import signal
    import threading

    from automem.engines import EngineError, split_spec
    from automem.engines.base import api_key_from_env

    name, target = split_spec(spec)
    if name != "llamacpp":
        fail(f"automem serve serves llama.cpp models (llamacpp, llamacpp:PATH or llamacpp:ADAPTER), not {name!r}")
    from automem.engines.llamacpp import factory

    try:
        key = api_key_from_env(api_key_env) if api_key_env else None
        engine = factory(target, host=host, port=port, n_parallel=parallel, n_ctx=n_ctx, n_threads=threads, api_key=key)
    except EngineError as exc:
        fail(str(exc), code=1)
    console.print(
        f"serving {engine.model} at [bold]{engine.url}/v1[/] ({parallel} slots of {n_ctx} tokens)"
        f"{'; key from $' + api_key_env if api_key_env else ''}\n"
        f"use it with: --engine openai:{engine.url}/v1  ·  ctrl+c stops",
        highlight=False,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        engine.close()
