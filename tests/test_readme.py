"""The README's commands run as written: the fast ones are run, the slow ones (whole
sweeps) are parsed and their specs expanded; a sweep cut to a few tokens feeds the
README's own plot commands."""

from __future__ import annotations

import io
import re
import shlex
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from speedsim.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
PROG = ".venv/bin/speedsim"


def readme_commands() -> list[list[str]]:
    """Every ``.venv/bin/speedsim …`` line of the README's ``sh`` blocks, continuations joined."""
    blocks = re.findall(r"```sh\n(.*?)```", README, flags=re.S)
    text = "\n".join(blocks).replace("\\\n", " ")
    return [shlex.split(line, comments=True)[1:] for line in text.splitlines()
            if line.strip().startswith(PROG)]


COMMANDS = readme_commands()
SLOW = {"sweep"}


def without_option(argv: list[str], option: str) -> list[str]:
    """``argv`` less ``option`` and its value."""
    i = argv.index(option)
    return argv[:i] + argv[i + 2:]


def speedsim(argv: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = main(argv)
    return rc, err.getvalue()


def test_the_readme_shows_the_commands():
    kinds = {tuple(c[:2]) if c[0] == "plot" else (c[0],) for c in COMMANDS}
    assert {("run",), ("serve",), ("trace",), ("sweep",), ("plot", "pareto"),
            ("plot", "speedup-map")} <= kinds


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_no_placeholders(argv):
    for word in argv:
        assert not re.search(r"[|<>…]|\.\.\.", word), f"placeholder syntax in {word!r}"


def test_paths_the_readme_names_exist():
    """Backticked repository paths exist, and nothing points outside the repository."""
    assert "../" not in README
    tops = {"docs", "hw_configs", "workloads", "sweeps", "speedsim", "tests", "notebooks",
            "benchmarks", "traffic"}
    named = {p for p in re.findall(r"`([\w./-]+)`", README) if p.split("/")[0] in tops}
    assert named and all((ROOT / p).exists() for p in named), sorted(
        p for p in named if not (ROOT / p).exists())


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A scratch folder that sees the repository's configs under their README names."""
    work = tmp_path_factory.mktemp("readme")
    for name in ("hw_configs", "workloads", "sweeps", "traffic"):
        (work / name).symlink_to(ROOT / name)
    return work


def test_fast_commands_run_in_order(workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    for argv in COMMANDS:
        if argv[0] in SLOW or argv[1:2] in (["pareto"], ["speedup-map"], ["sweep"]):
            continue
        rc, err = speedsim(argv)
        assert (rc, err) == (0, ""), argv
    assert (workdir / "out/gen/summary.json").is_file() and (workdir / "out/latency.png").is_file()
    # nothing is left beside the configs but out/ (ignored by git)
    assert sorted(p.name for p in workdir.iterdir()) == ["hw_configs", "out", "sweeps", "traffic",
                                                         "workloads"]


@pytest.mark.parametrize("argv", [c for c in COMMANDS if c[0] in SLOW], ids=" ".join)
def test_sweeps_expand(argv, monkeypatch):
    monkeypatch.chdir(ROOT)
    spec = argv[1]
    rc, err = speedsim(["sweep", spec, "--dry-run"])
    assert (rc, err) == (0, "")


def test_the_plots_work_on_the_readme_sweeps_results(workdir, monkeypatch):
    """The speed_space sweep at 4 new tokens (54 points, seconds) writes the file the
    README's speedup-map and pareto commands read."""
    monkeypatch.chdir(workdir)
    plots = {c[1]: c for c in COMMANDS if c[0] == "plot" and c[1] in ("speedup-map", "pareto",
                                                                        "sweep")}
    source = [c for c in COMMANDS if c[0] == "sweep" and plots["speedup-map"][2] in c]
    assert len(source) == 1, "the speedup-map example must read a README sweep's --out"
    fast = without_option(source[0], "--workers")
    assert speedsim(fast + ["--set", "workload.generation.new_tokens=4", "--quiet"]) == (0, "")
    assert speedsim(plots["speedup-map"]) == (0, "")
    assert plots["sweep"][2] == plots["speedup-map"][2]
    assert speedsim(plots["sweep"]) == (0, "")
    pareto = [w if w != plots["pareto"][2] else plots["speedup-map"][2] for w in plots["pareto"]]
    assert speedsim(pareto + ["--out", "out/pareto.png"])[0] == 0


def _paragraph(start: str) -> str:
    """The README paragraph that begins with ``start``."""
    i = README.index(start)
    return README[i:README.index("\n\n", i)]


def test_the_run_out_file_list_is_what_run_out_writes(tmp_path):
    """Every file the README says ``run --out`` writes, and no other, in order of mention."""
    from speedsim.cli.io import RESULT_FILES

    text = _paragraph("`run --out DIR` writes")
    named = [f for f in re.findall(r"`([\w<>]+\.(?:json|csv|yaml))`", text)]
    assert named == [f.replace("*", "<strategy>") for f in RESULT_FILES]
    out = tmp_path / "o"
    assert speedsim(["run", str(ROOT / "hw_configs/edge.yaml"), str(ROOT / "workloads/gen.yaml"),
                     "--set", "workload.generation.new_tokens=3", "--out", str(out)]) == (0, "")
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(f.replace("<strategy>", s) if "<strategy>" in f else f
                             for f in named for s in (["sequential", "speed"] if "<" in f else [""]))
    columns = re.findall(r"`(\w+)`", text[text.index("`tokens.csv`"):text.index("`timeline.json`")])
    import pandas as pd
    assert [c for c in columns if c not in ("committed", "flushed")] == \
        list(pd.read_csv(out / "tokens.csv").columns)


def test_the_catalogue_names_every_shipped_hardware_and_workload():
    for folder in ("hw_configs", "workloads", "traffic"):
        (row,) = [line for line in README.splitlines() if line.startswith(f"| `{folder}/` |")]
        named = set(re.findall(r"`(\w+)`", row))
        assert named == {p.stem for p in (ROOT / folder).glob("*.yaml")}, folder
