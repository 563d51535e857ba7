"""The protocol as one job: the pipeline file's checks, and a small real pipeline (bundled model,
one seed per set, 3 steps) that is interrupted after a stage and resumes to its report."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from automem.cli import app
from automem.jobs import JobError, pipeline_job_argv
from automem.jobs.pipeline import STAGES, Pipeline
from automem.jobs.pipeline_spec import PipelineError, example_pipelines, load_pipeline
from automem.store.db import Store

SMALL = """\
name: small
game: crafter
steps: 3
seeds:
  eval: 42
  search: 1
  train: 1000
optimize: {iterations: 1, candidates: 1}
mine: {min_score: 0, done_share: 1.0}
finetune: {backend: peft, train_steps: 1}
"""


def _file(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_every_game_ships_an_example_that_loads():
    examples = example_pipelines()
    assert set(examples) == {"crafter", "minihack", "nethack"}
    for game, path in examples.items():
        spec = load_pipeline(path)
        assert spec.game == game and spec.seeds.eval == "42-51"
        lists = spec.seeds.lists()
        assert not set(lists["eval"]) & (set(lists["search"]) | set(lists["train"]))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (SMALL.replace("search: 1", "search: 40-45"), "the evaluation seeds must be apart from the search seeds"),
        (SMALL.replace("train: 1000", "train: 42"), "apart from the train seeds; both have 42"),
        (SMALL.replace("steps: 3", "steps: 0"), "steps: Input should be greater than or equal to 1"),
        (SMALL.replace("game: crafter", "game: chess"), "unknown game 'chess'"),
        (SMALL + "colour: red\n", "colour: Extra inputs are not permitted"),
        (SMALL.replace("name: small", "name: a/b"), "name: Value error, letters, digits"),
        (SMALL.replace("eval: 42", "eval: 4x"), "seeds: "),
        ("- a list\n", "a mapping of settings expected"),
        ("name: [", "not YAML"),
    ],
)
def test_a_bad_pipeline_file_is_refused_with_its_field(tmp_path, text, message):
    with pytest.raises(Exception, match=None) as info:
        load_pipeline(_file(tmp_path, text))
    assert message in str(info.value)
    result = CliRunner().invoke(app, ["pipeline", str(tmp_path / "p.yaml"), "--db", str(tmp_path / "a.db")])
    assert result.exit_code == 2 and message.split(":")[0] in result.output
    with pytest.raises(JobError, match="file: "):
        pipeline_job_argv(file=str(tmp_path / "p.yaml"), db=tmp_path / "a.db")


def test_the_form_resolves_an_example_and_refuses_a_missing_file(tmp_path):
    argv = pipeline_job_argv(file="minihack", db=tmp_path / "a.db")
    assert argv[0] == "pipeline" and argv[1].endswith("minihack.yaml") and argv[-2:] == ["--db", str(tmp_path / "a.db")]
    with pytest.raises(JobError, match="pipeline file not found"):
        pipeline_job_argv(file=str(tmp_path / "none.yaml"))
    with pytest.raises(JobError, match="crafter, minihack, nethack"):
        pipeline_job_argv(file=" ")
    shown = CliRunner().invoke(app, ["pipeline", "nethack", "--show"])
    assert shown.exit_code == 0 and "game: nethack" in shown.output


@pytest.mark.model
def test_a_small_pipeline_is_interrupted_and_resumes_to_its_report(tmp_path):
    spec = load_pipeline(_file(tmp_path, SMALL))
    store = Store(tmp_path / "runs.db")
    events: list[tuple[str, str]] = []

    def stop_after_collect(stage: str, message: str) -> None:
        events.append((stage, message))
        if stage == "collect" and message.startswith("finished"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Pipeline(store, spec, on_stage=stop_after_collect).run()
    assert store.pipeline_by_name("small")["status"] == "interrupted"
    stages = store.pipeline_stages(1)
    assert list(stages) == ["root", "optimize", "collect"] and all(s["status"] == "finished" for s in stages.values())
    best = stages["optimize"]["output"]["best"]
    assert best and stages["optimize"]["output"]["candidates"] >= 1
    jobs_before = store.db["jobs"].count
    assert jobs_before == 3 and all(j["status"] == "finished" for j in store.db["jobs"].rows)

    # a threshold of a stage not run yet may change on the rerun; one a finished stage used may not
    changed = _file(tmp_path, SMALL.replace("steps: 3", "steps: 4"), "changed.yaml")
    with pytest.raises(PipelineError, match="steps changed, but stages that used them have finished"):
        Pipeline(store, load_pipeline(changed)).run()
    spec = load_pipeline(_file(tmp_path, SMALL.replace("backend: peft", "backend: peft, lora_r: 4"), "r4.yaml"))
    result = CliRunner().invoke(app, ["pipeline", str(tmp_path / "r4.yaml"), "--db", str(tmp_path / "runs.db")])
    assert result.exit_code == 0, result.output
    for stage in ("root", "optimize", "collect"):
        assert f"{stage}: finished before" in result.output
    assert store.pipeline_by_name("small")["status"] == "finished"
    stages = store.pipeline_stages(1)
    assert list(stages) == list(STAGES) and all(s["status"] == "finished" for s in stages.values())
    assert store.db["jobs"].count == jobs_before + 4  # mine, finetune, base, specialist; no stage twice
    # each stage's output fed the next: the optimized structure, the dataset, the adapter
    argv = {j["kind"]: j["argv"] for j in store.db["jobs"].rows}
    assert best in argv["pipeline:collect"] and best in argv["pipeline:base"]
    assert '"--lora-r", "4"' in argv["pipeline:finetune"]
    assert stages["specialist"]["output"]["run"] == "small/specialist"
    assert f"llamacpp:{stages['finetune']['output']['adapter']}" in argv["pipeline:specialist"]
    report = (tmp_path / "reports" / "small.md").read_text()
    assert report.startswith("# Pipeline small (crafter)")
    for heading in ("## Stages", "## Loop 1 on the search seeds", "## Loop 2", "## The evaluation seeds"):
        assert heading in report
    assert "| small/root | 1 |" in report and "| small/specialist | 1 |" in report
    assert "| step | loss | eval loss |" in report and "Dataset small-mem:" in report
    store.close()


def test_an_interrupt_while_a_stage_starts_waits_until_it_is_recorded():
    """SIGTERM between a stage's start and its wait would leave the stage running: it is held and
    delivered to the handler it was meant for once the stage's job is recorded."""
    import os
    import signal

    from automem.jobs.pipeline import _HeldInterrupts

    seen: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda number, _frame: seen.append(number))
    # Python's own Ctrl+C handler, also where the suite was started in the background (`cmd &`
    # starts it with SIGINT ignored, and the held signal would go to that)
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        held = _HeldInterrupts()
        with held:
            os.kill(os.getpid(), signal.SIGTERM)
            assert seen == [] and held.pending == [signal.SIGTERM]
        assert signal.getsignal(signal.SIGTERM) is not None and seen == []
        held.deliver()
        assert seen == [signal.SIGTERM] and held.pending == []
        with _HeldInterrupts() as again:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl+C: held too, then Python's own handler
        assert again.pending == [signal.SIGINT]
        with pytest.raises(KeyboardInterrupt):
            again.deliver()
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
