"""The package imports only downwards: every import checked against the layer order
written in ``speedsim/__init__.py``'s docstring, and no two packages import each other."""

import ast
import re
from pathlib import Path

import speedsim

ROOT = Path(speedsim.__file__).parent


def layer_order() -> list[str]:
    line = next(ln for ln in speedsim.__doc__.splitlines() if ln.startswith("config →"))
    return [name.strip() for name in line.split("→")]


def package_of(module: str) -> str:
    """``speedsim.x.y`` -> ``x``; top-level modules (``speedsim.api``) are their own layer;
    ``python -m speedsim`` belongs to the CLI; ``""``: the root (``__version__``), below all."""
    parts = module.split(".")
    name = parts[1] if len(parts) > 1 else ""
    return {"__main__": "cli", "__version__": ""}.get(name, name)


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every speedsim import in the file, lazy ones included."""
    tree = ast.parse(path.read_text(), str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("speedsim.")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "speedsim":
                out += [(node.lineno, f"speedsim.{a.name}") for a in node.names]
            elif node.module.startswith("speedsim."):
                out.append((node.lineno, node.module))
    return out


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        found[".".join(parts)] = path
    return found


def edges() -> list[tuple[str, str, str]]:
    """(importing module, imported module, where) for imports between layers."""
    out = []
    for name, path in modules().items():
        src = package_of(name)
        for line, target in imports(path):
            dst = package_of(target)
            if src and dst and src != dst:
                out.append((src, dst, f"{path.relative_to(ROOT.parent)}:{line} imports {target}"))
    return out


def test_the_docstring_names_every_package_once():
    order = layer_order()
    assert len(order) == len(set(order))
    packages = {package_of(n) for n in modules() if n != "speedsim"}
    assert packages == set(order)


def test_no_module_imports_a_later_layer():
    rank = {name: i for i, name in enumerate(layer_order())}
    upward = [where for src, dst, where in edges() if rank[dst] > rank[src]]
    assert not upward, "imports against the layer order:\n" + "\n".join(upward)


def test_no_two_packages_import_each_other():
    pairs = {(src, dst) for src, dst, _ in edges()}
    cycles = sorted(f"{a} <-> {b}" for a, b in pairs if (b, a) in pairs and a < b)
    assert not cycles, cycles


def test_the_checker_sees_lazy_imports(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from speedsim.api import simulate\n    import speedsim.sim.engine\n")
    assert imports(f) == [(2, "speedsim.api"), (3, "speedsim.sim.engine")]
    assert re.fullmatch(r"\w+", package_of("speedsim.report.summary"))
