"""README.md and docs/: every relative link resolves, every script command of their code blocks parses
(with its --config files), and README stays a short entry point."""
import pathlib
import re
import shlex

import pytest

from tests.test_cli_vocabulary import PARSERS
from transfer import options

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def relative_links(path):
    for target in LINK.findall(path.read_text()):
        if not re.match(r"[a-z]+:", target) and not target.startswith("#"):
            yield target.split("#")[0]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_every_relative_link_resolves(document):
    missing = [t for t in relative_links(document) if not (document.parent / t).exists()]
    assert not missing, f"{document.name} links to missing files: {missing}"


def test_readme_links_every_document_and_stays_short():
    readme = (ROOT / "README.md").read_text()
    linked = {pathlib.Path(t).name for t in relative_links(ROOT / "README.md")}
    assert {p.name for p in DOCUMENTS[1:]} <= linked
    assert len(readme.splitlines()) < 260


def test_link_pattern_finds_a_broken_link(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("see [a](missing.md) and [b](https://example.org) and [c](#anchor)\n")
    assert list(relative_links(page)) == ["missing.md"]


SCRIPTS = dict(PARSERS, **{"-m transfer.online_probe": options.probe_curve_parser})
BLOCK = re.compile(r"^```[a-z]*\n(.*?)^```", re.S | re.M)


def _tokens(line):
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&")
    lexer.whitespace_split = True
    return list(lexer)


def script_commands(path):
    """(script, argv) of every `python SCRIPT ...` command in the code blocks of `path`: continuation lines
    joined, `VAR=value` lines substituted, comments dropped, `&&`- or `;`-chained commands taken apart."""
    for block in BLOCK.findall(path.read_text()):
        variables = {}
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\$(\w+)", lambda m: variables.get(m[1], m[0]), line)
            if not re.search(r"(^|[\s/])python3?\s|^\s*[A-Z]\w*=\S+\s*$", line):
                continue  # prose, a listing, a shell line of another program
            command = []
            for token in _tokens(line) + [";"]:
                if token not in (";", "&&", "&"):
                    command.append(token)
                    continue
                if len(command) == 1 and re.fullmatch(r"[A-Z]\w*=\S*", command[0]):
                    name, _, value = command[0].partition("=")
                    variables[name] = value
                python = [i for i, t in enumerate(command) if re.search(r"(^|/)python3?$", t)]
                if python and len(command) > python[0] + 1:
                    rest = command[python[0] + 1:]
                    script, argv = (" ".join(rest[:2]), rest[2:]) if rest[0] == "-m" else (rest[0], rest[1:])
                    if script not in ("-m pytest", "-m venv", "-m pip"):
                        yield script, argv
                command = []


COMMANDS = [(document.name, script, argv) for document in DOCUMENTS for script, argv in script_commands(document)]


def test_the_docs_hold_the_commands_of_the_studies():
    written = {(script, " ".join(argv)) for _, script, argv in COMMANDS}
    for script, study in (("reproduce.py", "real-photo-study"), ("scaling_study.py", "tiny-imagenet-scaling"),
                          ("verdict_study.py", "verdict")):
        assert (script, f"--config configs/{study}.json") in written, study
    assert len(COMMANDS) > 30


@pytest.mark.parametrize("document, script, argv", COMMANDS, ids=lambda v: v if isinstance(v, str) else None)
def test_every_command_in_the_docs_parses(document, script, argv, monkeypatch):
    assert script in SCRIPTS, f"{document}: no parser known for {script}"
    monkeypatch.chdir(ROOT)  # the commands run from the repository root (their --config files too)
    SCRIPTS[script]().parse(argv)


def test_the_command_finder_reads_continuations_variables_and_comments(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("```bash\nR=../data\n.venv/bin/python train_colorizer.py --dataset folder:$R/x \\\n"
                    "    --epochs 2   # two\npip install -e . && python -m transfer.online_probe a --out b.png\n```\n")
    assert list(script_commands(page)) == [("train_colorizer.py", ["--dataset", "folder:../data/x", "--epochs", "2"]),
                                           ("-m transfer.online_probe", ["a", "--out", "b.png"])]
