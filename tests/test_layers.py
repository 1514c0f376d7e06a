"""Layers import one way, data -> pretext package -> downstream package -> scripts, with no circles;
inside the pretext package too: constants and the shipped colorizers -> networks -> pretexts -> training
engine -> user-facing commands.

Every import is read from the source with `ast`, function-level ones included (a circle hidden
inside a function is still a circle), and the registry's "module:function" names count as imports.
"""

import ast
import re
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGES = ("data", "cgan_colorization", "transfer", "benchmarks")
# Each layer imports only itself and those before it; a module's layer is the longest one it falls under.
LAYERS = ("data", "cgan_colorization", "cgan_colorization.constants", "cgan_colorization.pretrained",
          "cgan_colorization.networks", "cgan_colorization.pretexts", "cgan_colorization.engine",
          "cgan_colorization.apps", "transfer", "benchmarks")


def _module_name(path, root):
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path, name, known):
    """The project modules that module `name` (at `path`) imports, anywhere in its body."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            # `from package import module` imports the module; `from module import name`, the module.
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and path.name == "registry.py":
            # the registry's "module" and "module:function" names
            targets = re.findall(rf"^((?:{'|'.join(PACKAGES)})(?:\.\w+)+)(?::\w+)?$", node.value)
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph(root):
    """{module: set of project modules it imports} for the layered packages under `root`."""
    root = Path(root)
    paths = {_module_name(p, root): p for package in PACKAGES for p in (root / package).rglob("*.py")}
    return {name: _imports(path, name, set(paths)) for name, path in paths.items()}


def _layer(module):
    return max((i for i, layer in enumerate(LAYERS) if module == layer or module.startswith(layer + ".")),
               key=lambda i: len(LAYERS[i]))


def upward_imports(graph):
    """(importer, imported) pairs where a lower layer imports a higher one."""
    return sorted((a, b) for a, targets in graph.items() for b in targets if _layer(b) > _layer(a))


def cycles(graph):
    """Every import circle, each as the list of its modules (found by depth-first search)."""
    found, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return found


def test_the_package_imports_one_way_without_circles():
    graph = import_graph(ROOT)
    assert {"data.labelled", "cgan_colorization.pretexts.gan", "transfer.experiment"} <= set(graph)
    assert upward_imports(graph) == []
    assert cycles(graph) == []


def test_the_registry_names_only_modules_of_its_own_package():
    graph = import_graph(ROOT)
    named = graph["cgan_colorization.pretexts.registry"]
    assert {"cgan_colorization.pretexts.gan", "cgan_colorization.pretexts.multitask", "cgan_colorization.networks.backbones"} <= named
    assert all(_layer(m) <= _layer("cgan_colorization.pretexts.registry") for m in named)


def _tree(tmp_path, files):
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for package in PACKAGES:
        (tmp_path / package).mkdir(exist_ok=True)
        (tmp_path / package / "__init__.py").touch()
    return import_graph(tmp_path)


def test_a_planted_upward_import_is_found_even_inside_a_function(tmp_path):
    graph = _tree(tmp_path, {
        "data/pipeline.py": "def f():\n    from transfer import metrics\n",
        "transfer/metrics.py": "import numpy\n",
        "cgan_colorization/pretexts/gan.py": "from data.pipeline import f\n",
    })
    assert upward_imports(graph) == [("data.pipeline", "transfer.metrics")]


def test_a_planted_upward_import_inside_the_pretext_package_is_found(tmp_path):
    graph = _tree(tmp_path, {
        "cgan_colorization/engine/__init__.py": "",
        "cgan_colorization/engine/training.py": "def f():\n    from cgan_colorization.apps import demo\n",
        "cgan_colorization/apps/__init__.py": "",
        "cgan_colorization/apps/demo.py": "from cgan_colorization.engine.training import f\n",
    })
    assert upward_imports(graph) == [("cgan_colorization.engine.training", "cgan_colorization.apps.demo")]
    assert cycles(graph) == [["cgan_colorization.apps.demo", "cgan_colorization.engine.training",
                              "cgan_colorization.apps.demo"]]


@pytest.mark.parametrize("style", ["from data.a import x\n", "def g():\n    import data.a\n",
                                   "from . import a\n"])
def test_a_planted_circle_is_found(tmp_path, style):
    graph = _tree(tmp_path, {"data/a.py": "from data.b import y\nx = 1\n", "data/b.py": style + "y = 2\n"})
    assert cycles(graph) == [["data.a", "data.b", "data.a"]]
