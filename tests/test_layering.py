"""The structure holds: no import cycle among the project's modules (imports inside functions
count; ``if TYPE_CHECKING:`` blocks do not, they never run), and the layers point one way."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("agent", "providers")
MAX_LINES = 400
HEAVY = ("torch", "boto3", "botocore", "pydrive2", "googleapiclient", "numpy", "safetensors")

# (importer prefix, imported prefix): an import from the first into the second is a violation
FORBIDDEN = [
    ("providers", "agent"),
    ("agent.rules", "agent."),  # pure logic imports nothing of ours but other pure logic
    ("agent.local", "agent.remote"),
    ("agent.local", "agent.cli"),
    ("agent.checks", "agent.remote"),
    ("agent.remote", "agent.cli"),
    ("agent.validation", "agent.remote"),
    ("agent.validation", "agent.cli"),
    ("agent.guard", "agent.cli"),
    ("agent.integrations", "agent.cli"),
    # the training callbacks sit on top: nothing of the agent depends on a training framework
    ("agent", "agent.integrations"),
]
ALLOWED = {("agent.rules", "agent.rules"), ("agent.integrations", "agent.integrations")}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    found = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            found[module_name(path)] = path
    return found


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node except what sits under ``if TYPE_CHECKING:``."""
    out: list[ast.AST] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        out.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return out


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()
    for node in _runtime_nodes(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = name.split(".")
                parts = parts if is_pkg else parts[:-1]
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, base] if base else parts)
            # `from pkg import mod` imports pkg.mod; `from pkg import name` imports pkg
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names
            ]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in g:
        if root in index:
            continue
        work = [(root, iter(sorted(g[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on.add(child)
                    work.append((child, iter(sorted(g.get(child, ())))))
                elif child in on:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    top = stack.pop()
                    on.discard(top)
                    comp.append(top)
                    if top == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def _is_package_init(name: str, known: dict[str, Path]) -> bool:
    return known[name].name == "__init__.py"


def test_no_import_cycle():
    g = graph()
    known = modules()
    # a package's __init__ re-exporting its own modules is not a cycle of design
    g = {
        n: {t for t in ts if not (_is_package_init(t, known) and n.startswith(t + "."))}
        for n, ts in g.items()
    }
    assert cycles(g) == []


def test_layers_point_one_way():
    bad = []
    for name, targets in graph().items():
        for target in targets:
            for src, dst in FORBIDDEN:
                hit = (name == src or name.startswith(src + ".")) and (
                    target == dst or target.startswith(dst if dst.endswith(".") else dst + ".")
                )
                if hit and not any(name.startswith(a) and target.startswith(b) for a, b in ALLOWED):
                    bad.append(f"{name} imports {target}")
    assert bad == []


def test_no_module_over_400_lines():
    long = {
        name: n
        for name, path in modules().items()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def test_heavy_imports_only_inside_functions():
    """torch, boto3, pydrive2 load on first use: `model-safety --help` never pays for them."""
    bad = []
    for name, path in modules().items():
        if not name.startswith("agent"):
            continue  # a backend module is itself imported only when its remote is opened
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            mods = []
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                mods = [node.module or ""]
            bad += [f"{name}: {m}" for m in mods if m.split(".")[0] in HEAVY]
    allowed_top = {"agent.checks.child"}  # runs only in the checker's own process
    assert [b for b in bad if b.split(":")[0] not in allowed_top] == []
