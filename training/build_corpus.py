"""Build the training corpus: technical prose and Python source that may be redistributed.

Four sources, each found offline on a Debian machine with Python 3.11:

1. The Python Language Reference topics shipped as ``pydoc_data/topics.py``
   (PSF License Agreement; Python documentation, © Python Software Foundation).
2. Docstrings (module, class and function) of the Python standard library,
   excluding its test suites (PSF License Agreement).
3. The licence texts in ``/usr/share/common-licenses`` (each licence permits
   verbatim copying and distribution of its own text), deduplicated by content.
4. The Python source of the standard library itself (``Lib/*.py`` in sorted
   path order, test suites, code tables and generated modules excluded; PSF
   License Agreement), each file preceded by a ``# Lib/<path>`` line.

Parts 1-3 are the previous corpus (1.50 MB of prose) unchanged; part 4 makes
the corpus about eight times larger, so a 12-layer model trains for a few
epochs without memorising it.

The corpus is written as UTF-8 text, gzip-compressed with a zero mtime so the
bytes are reproducible, together with a provenance JSON. Because docstrings and
topics change between Python releases, the committed ``corpus.txt.gz`` — not
this script — is the training input; the script documents how it was made.

Usage: python training/build_corpus.py [--out training/corpus/corpus.txt.gz]
"""
from __future__ import annotations

import argparse
import ast
import gzip
import hashlib
import json
import sys
import sysconfig
from pathlib import Path

DOCSTRING_BUDGET_BYTES = 800_000  # caps the stdlib docstring share of the corpus
LICENSE_DIR = Path("/usr/share/common-licenses")
SKIP_DIRS = {"test", "tests", "idlelib", "lib2to3", "site-packages", "dist-packages",
             "__pycache__", "turtledemo", "ensurepip", "config-3.11-x86_64-linux-gnu"}
DOC_SEPARATOR = "\n\n"
# Part 4 skips, besides SKIP_DIRS: byte tables (encodings), the reference
# topics already in part 1 (pydoc_data) and machine-generated modules.
SOURCE_SKIP_DIRS = SKIP_DIRS | {"encodings", "pydoc_data"}
SOURCE_SKIP_PREFIXES = ("_sysconfigdata",)


def topics_text() -> str:
    """Python reference topics, in sorted key order."""
    from pydoc_data.topics import topics
    return DOC_SEPARATOR.join(topics[k].strip() for k in sorted(topics))


def _docstrings_of(path: Path) -> list[str]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return []
    nodes = [tree] + [n for n in ast.walk(tree)
                      if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))]
    docs = (ast.get_docstring(n, clean=True) for n in nodes)
    return [d.strip() for d in docs if d and len(d.split()) >= 8]


def stdlib_docstrings(budget_bytes: int) -> str:
    """Docstrings of the standard library, sorted by path, up to budget_bytes."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.rglob("*.py")
                   if not SKIP_DIRS.intersection(p.relative_to(root).parts))
    out, used, seen = [], 0, set()
    for path in files:
        for doc in _docstrings_of(path):
            if doc in seen:
                continue
            seen.add(doc)
            n = len(doc.encode("utf-8")) + len(DOC_SEPARATOR)
            if used + n > budget_bytes:
                return DOC_SEPARATOR.join(out)
            out.append(doc)
            used += n
    return DOC_SEPARATOR.join(out)


def stdlib_sources() -> str:
    """The standard library's own .py files, sorted by path, each headed by its path."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.rglob("*.py")
                   if not SOURCE_SKIP_DIRS.intersection(p.relative_to(root).parts)
                   and not p.name.startswith(SOURCE_SKIP_PREFIXES))
    out = []
    for path in files:
        try:
            body = path.read_text(encoding="utf-8").strip()
        except UnicodeDecodeError:
            continue
        if body:
            out.append(f"# Lib/{path.relative_to(root).as_posix()}\n{body}")
    return DOC_SEPARATOR.join(out)


def license_texts() -> tuple[str, list[str]]:
    """Distinct licence texts, sorted by file name; returns (text, names used)."""
    texts, names, seen = [], [], set()
    for path in sorted(p for p in LICENSE_DIR.iterdir() if p.is_file()):
        body = path.read_text(encoding="utf-8", errors="replace").strip()
        digest = hashlib.sha256(body.encode()).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        texts.append(body)
        names.append(path.name)
    return DOC_SEPARATOR.join(texts), names


def build() -> tuple[str, dict]:
    """Concatenate the four sources; return the text and its provenance."""
    topics = topics_text()
    docs = stdlib_docstrings(DOCSTRING_BUDGET_BYTES)
    lic, lic_names = license_texts()
    parts = [("python_reference_topics", topics), ("stdlib_docstrings", docs),
             ("common_licenses", lic), ("stdlib_source", stdlib_sources())]
    text = DOC_SEPARATOR.join(t for _, t in parts) + "\n"
    provenance = {
        "python_version": sys.version.split()[0],
        "sources": {name: len(t.encode("utf-8")) for name, t in parts},
        "license_files": lic_names,
        "total_bytes": len(text.encode("utf-8")),
        "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
    }
    return text, provenance


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "corpus" / "corpus.txt.gz")
    args = ap.parse_args()
    text, provenance = build()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0,
                                                     filename="") as gz:
        gz.write(text.encode("utf-8"))
    args.out.with_name("provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
    print(json.dumps(provenance, indent=2))


if __name__ == "__main__":
    main()
