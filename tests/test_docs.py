"""The documentation is tested.

* The API reference is generated from the docstrings: every public name has one, and the
  committed ``docs/api.md`` is what the generator writes now (regenerate with
  ``python -m spikessm.cli.apidoc docs/api.md``).
* Every ```` ```python ```` block of every user guide (``docs/*.md`` except the generated
  ``api.md``) and of ``README.md`` runs. The blocks of one page run in order, in one
  namespace, in a fresh temporary working directory; a page is one test.

Conventions for writing the guides (checked here):

* A ```` ```python ```` block must run as it is. Anything that is not meant to run (shell
  commands, equations, printed output, file listings, configuration) uses another fence
  language: ```` ```bash ````, ```` ```text ````, ```` ```json ````.
* A block that needs the shared recordings says so with a comment line
  ``# requires: ../shared/data/<path>`` (paths as seen from the project's root, which is
  how the block refers to them too). Such a block is self-contained (its own imports and
  data) and no other block may use its names: it is left out of the page's run and run on
  its own by ``test_guide_examples_on_shared_data``, which skips, naming the missing
  path, when the recordings are absent (as on CI and in a user's clone).
"""

from __future__ import annotations

import inspect
import re
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest

import spikessm
from spikessm.cli.apidoc import render

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
GENERATED = {"api.md"}
NOT_RUNNABLE_FENCES = {"", "text", "bash", "console", "json", "toml", "yaml", "ini", "math"}
REQUIRES = re.compile(r"^\s*#\s*requires:\s*(\S+)\s*$")
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)\s*$")


def test_every_public_name_has_a_docstring():
    missing = [n for n in spikessm.__all__ if n != "__version__" and
               not (inspect.getdoc(getattr(spikessm, n)) or "").strip()]
    assert not missing, f"public names without a docstring: {missing}"


def test_api_reference_is_up_to_date():
    page = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    assert page == render(), "docs/api.md is stale: run python -m spikessm.cli.apidoc docs/api.md"
    for name in spikessm.__all__:
        if name != "__version__":
            assert f"### `{name}" in page


# ---------------------------------------------------------------------------
# runnable examples of the user guides
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Block:
    language: str
    line: int            # 1-based line number of the block's first code line
    code: str
    requires: tuple[str, ...]


def fenced_blocks(path: Path) -> list[Block]:
    """All fenced code blocks of a Markdown file, in order (raises on an unclosed fence)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, language = m.groups()
        body, j = [], i + 1
        while j < len(lines) and lines[j].strip() != fence:
            body.append(lines[j][len(indent):] if lines[j].startswith(indent) else lines[j])
            j += 1
        if j == len(lines):
            raise AssertionError(f"{path.name}:{i + 1}: unclosed code fence")
        requires = tuple(r.group(1) for r in map(REQUIRES.match, body) if r)
        blocks.append(Block(language.lower(), i + 2, "\n".join(body) + "\n", requires))
        i = j + 1
    return blocks


def guide_pages() -> list[Path]:
    pages = [p for p in sorted((ROOT / "docs").glob("*.md")) if p.name not in GENERATED]
    return [ROOT / "README.md", *pages]


def _page_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _present(required: str) -> bool:
    p = Path(required)
    if p.is_absolute() or p.parts[:2] != ("..", "shared"):
        raise AssertionError(f"'# requires: {required}' must name a path under ../shared/data")
    return (ROOT / p).exists()


@pytest.mark.parametrize("page", guide_pages(), ids=_page_id)
def test_fences_are_known_and_python_blocks_compile(page):
    """Every fence has a known language (a typo such as ```pyhton would silently turn a
    runnable example into text) and every python block is valid Python."""
    for block in fenced_blocks(page):
        assert block.language == "python" or block.language in NOT_RUNNABLE_FENCES, (
            f"{page.name}:{block.line - 1}: unknown fence language {block.language!r}; use "
            f"python (runs in the tests) or one of {sorted(NOT_RUNNABLE_FENCES)}")
        if block.language == "python":
            compile(block.code, f"{page.name}:{block.line}", "exec")


def python_blocks(page: Path, *, shared_data: bool) -> list[Block]:
    """The page's python blocks with (``shared_data=True``) or without a requires marker."""
    return [b for b in fenced_blocks(page)
            if b.language == "python" and bool(b.requires) == shared_data]


def _run_blocks(page: Path, blocks: list[Block], tmp_path: Path, monkeypatch, namespace):
    """Run ``blocks`` in order in ``namespace`` (a fresh one per block if None), in a scratch
    folder that stands in for the project's root: ../shared/data resolves to the real
    shared recordings (nothing else of ../shared is reachable from the examples)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    work = tmp_path / "project"
    work.mkdir()
    if SHARED_DATA.is_dir():
        (tmp_path / "shared").mkdir()
        (tmp_path / "shared" / "data").symlink_to(SHARED_DATA, target_is_directory=True)
    monkeypatch.chdir(work)
    try:
        for block in blocks:
            ns = {"__name__": "__docs__"} if namespace is None else namespace
            # Pad with newlines so that tracebacks give the line numbers of the page.
            code = compile("\n" * (block.line - 1) + block.code, str(page), "exec")
            try:
                exec(code, ns)
            except Exception as exc:
                raise AssertionError(
                    f"the example of {page.name} starting at line {block.line} failed:\n"
                    + "".join(traceback.format_exception(exc, limit=-3))) from exc
    finally:
        plt.close("all")


PAGES = [p for p in guide_pages() if python_blocks(p, shared_data=False)]
PAGES_ON_SHARED_DATA = [p for p in guide_pages() if python_blocks(p, shared_data=True)]


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_guide_examples_run(page, tmp_path, monkeypatch):
    """The page's python blocks (those without a requires marker) run in order, in one
    namespace, in a scratch folder."""
    _run_blocks(page, python_blocks(page, shared_data=False), tmp_path, monkeypatch,
                {"__name__": "__docs__"})


@pytest.mark.parametrize("page", PAGES_ON_SHARED_DATA, ids=_page_id)
def test_guide_examples_on_shared_data(page, tmp_path, monkeypatch):
    """The page's blocks marked ``# requires: ../shared/data/...`` run, each on its own;
    skipped with the missing paths named when the shared recordings are absent."""
    blocks = python_blocks(page, shared_data=True)
    missing = sorted({r for b in blocks for r in b.requires if not _present(r)})
    if missing:
        pytest.skip(f"{page.name}: the shared recordings are absent: {', '.join(missing)}")
    _run_blocks(page, blocks, tmp_path, monkeypatch, None)
