"""House rules that a reviewer should not have to remember (STYLE.md), checked on every run.

- Rows are locked only in `lock_objects.py` modules, and always FOR NO KEY UPDATE
  (`select_for_update(no_key=True)`): a lock taken anywhere else is a lock nobody audits,
  and plain FOR UPDATE would block every order insert that references the product.
  Hand-written SQL may lock rows only in the load tools (`stress/`), which replay the
  shop's own statement against the database, and only FOR NO KEY UPDATE.
- No `# ---` banners: a module that needs them wants splitting.
"""

import ast
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIP_DIRS = {".venv", ".data", ".git", "node_modules", "vendor", "__pycache__", ".hypothesis", ".ruff_cache"}

SQL_ROW_LOCK = re.compile(r"\bFOR\s+(NO\s+KEY\s+UPDATE|UPDATE|KEY\s+SHARE|SHARE)\b", re.IGNORECASE)
SQL_STATEMENT = re.compile(r"\bSELECT\b.*\bFROM\b", re.IGNORECASE | re.DOTALL)
BANNER = re.compile(r"^\s*(#|//|/\*|<!--|\{#)\s*(-{3,}|={3,})")


def _files(*suffixes: str) -> list[Path]:
    tracked = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                             capture_output=True, text=True, check=False)
    if tracked.returncode == 0:
        paths = [ROOT / line for line in tracked.stdout.splitlines()]
    else:  # not a git checkout (a tarball): walk the tree
        paths = [path for path in ROOT.rglob("*") if not SKIP_DIRS & set(path.relative_to(ROOT).parts)]
    return sorted(path for path in paths if path.is_file() and path.name.endswith(suffixes)
                  and not SKIP_DIRS & set(path.relative_to(ROOT).parts))


def _row_locks(path: Path, root: Path = ROOT) -> list[str]:
    """Every place in one module that locks rows against the rule, as `path:line: why`."""
    where = path.relative_to(root).as_posix()
    in_lock_objects = path.name == "lock_objects.py"
    problems = []
    for node in ast.walk(ast.parse(path.read_text(), filename=where)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "select_for_update":
            no_key = any(k.arg == "no_key" and isinstance(k.value, ast.Constant) and k.value.value is True
                         for k in node.keywords)
            if not in_lock_objects:
                problems.append(f"{where}:{node.lineno}: select_for_update outside a lock_objects.py module")
            elif not no_key:
                problems.append(f"{where}:{node.lineno}: select_for_update without no_key=True")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            lock = SQL_ROW_LOCK.search(node.value)
            if not lock or not SQL_STATEMENT.search(node.value):
                continue  # prose that names the clause, not a statement that takes it
            load_tool = where.startswith("stress/")
            if not (load_tool and lock.group(1).upper().split() == ["NO", "KEY", "UPDATE"]):
                problems.append(f"{where}:{node.lineno}: hand-written SQL takes a row lock (FOR {lock.group(1)})")
    return problems


def test_rows_are_locked_only_in_lock_objects_and_always_for_no_key_update():
    modules = [module for module in _files(".py") if module != Path(__file__).resolve()]  # its probes are below
    assert len(modules) > 50, "the source files were not found"
    assert [m for m in modules if m.name == "lock_objects.py"], "no lock_objects.py module found"
    problems = [problem for module in modules for problem in _row_locks(module)]
    assert problems == []


def test_the_rule_catches_what_it_is_for(tmp_path):
    (tmp_path / "orders").mkdir()
    (tmp_path / "stress").mkdir()
    shop, lock_objects, load_tool = tmp_path / "orders/services.py", tmp_path / "orders/lock_objects.py", tmp_path / "stress/x.py"
    shop.write_text('Order.objects.select_for_update(no_key=True).get(pk=1)\n'
                    'SQL = "SELECT 1 FROM orders_order WHERE id = 1 FOR UPDATE"\n'
                    '"""Prose may say SELECT ... FOR UPDATE."""\n')
    lock_objects.write_text("Order.objects.select_for_update().get(pk=1)\n"
                            "Order.objects.select_for_update(no_key=True).get(pk=1)\n")
    load_tool.write_text('A = "SELECT 1 FROM t WHERE id = 1 FOR NO KEY UPDATE"\n'
                         'B = "SELECT 1 FROM t WHERE id = 1 FOR UPDATE"\n')
    found = sorted(problem for path in (shop, lock_objects, load_tool) for problem in _row_locks(path, tmp_path))
    assert found == [
        "orders/lock_objects.py:1: select_for_update without no_key=True",
        "orders/services.py:1: select_for_update outside a lock_objects.py module",
        "orders/services.py:2: hand-written SQL takes a row lock (FOR UPDATE)",
        "stress/x.py:2: hand-written SQL takes a row lock (FOR UPDATE)",
    ]


def test_no_banner_comments():
    files = _files(".py", ".html", ".js", ".css", ".toml", ".yml", ".yaml", ".conf", "Makefile", ".sh")
    banners = [f"{path.relative_to(ROOT)}:{number}" for path in files
               for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1) if BANNER.match(line)]
    assert banners == []


def test_the_docs_link_only_to_files_in_the_repository():
    """The repository holds its own truth: README and docs/ link to files that are here."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                if page.name == "README.md" and page.parent == ROOT:
                    broken.append(f"README.md links outside the repository: {target}")
                continue
            path = target.split("#", 1)[0]
            if not path:
                continue  # a link to a heading of the same page
            resolved = (page.parent / path).resolve()
            if ROOT not in resolved.parents and resolved != ROOT or not resolved.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert broken == []
