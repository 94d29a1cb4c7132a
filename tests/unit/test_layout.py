"""The package layout holds: layers only import downwards, no import cycles, Redis only in
dms/state/, and docs/architecture.md maps every module that exists and no other.

The layers, lowest first, are listed here and nowhere else. A module may import from its
own layer and the layers below it; within a layer, only without cycles.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DMS = ROOT / "dms"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("dms.errors", "dms.sizes", "dms.defaults", "dms.options", "dms.native"),  # no DMS logic below
    ("dms.config", "dms.settings", "dms.model"),  # configuration and the records that cross processes
    ("dms.fs",),  # file-system rules
    ("dms.state",),  # every Redis key and call
    ("dms.route",),  # queues, lanes, policies, placement
    ("dms.request",),  # building a request
    ("dms.plan",),  # stage 1
    ("dms.transfer",),  # stage 2
    ("dms.finalize",),  # stage 3
    ("dms.worker", "dms.chains"),  # the Celery app and what runs beside it; the caller's chains
    ("dms.tasks",),  # thin task shells over the stages
    ("dms.client",),  # what a submitting process loads
    ("dms.api", "dms.cli", "dms.scheduling", "dms"),  # the ways in
)


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {_module_name(p): p for p in DMS.rglob("*.py") if "third_party" not in p.parts}
    found["dms.native._core"] = DMS / "native" / "_core.pyx"
    return found


MODULES = _modules()


def _imports(path: Path) -> Iterator[str]:
    """Every dms module `path` imports, at any depth (lazy imports in functions count too)."""
    text = path.read_text()
    if path.suffix == ".pyx":  # Cython: its Python-level imports are plain lines
        for m in re.finditer(r"^(?:from (dms[\w.]*) (?:c?import) ([\w, ]+)|import (dms[\w.]*))", text, re.M):
            base = m.group(1) or m.group(3)
            names = [n.split(" as ")[0].strip() for n in (m.group(2) or "").split(",") if n.strip()]
            yield from _resolve(base, names)
        return
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "dms":
                    yield from _resolve(alias.name, [])
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            yield f"relative import at line {node.lineno}: use absolute imports, so the graph is complete"
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] == "dms":
                yield from _resolve(node.module, [a.name for a in node.names])
        elif isinstance(node, ast.Call) and _called(node) in ("import_module", "__import__"):
            yield f"dynamic import at line {node.lineno}: the graph cannot see it"
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in MODULES:
            own = _module_name(path) if path.suffix == ".py" else ""
            if node.value not in TASK_NAMES | {"dms", own} and (path, node.value) not in NAMED_BY_STRING:
                yield f"module {node.value} named in a string at line {node.lineno}: import it, or allow it here"


#: Celery task names, which coincide with package names (dms.plan is a task and a package);
#: "dms" alone is the Celery app's name (`celery -A dms`), and a module may name itself (its logger).
TASK_NAMES = frozenset({"dms.plan", "dms.walk", "dms.transfer", "dms.finalize", "dms.sync"})
#: Modules another names by string on purpose: Celery's app lists its task modules (it
#: imports them itself, after the app exists), and the node step starts the receiver with -m.
NAMED_BY_STRING = frozenset(
    {
        (DMS / "worker" / "app.py", "dms.tasks.plan"),
        (DMS / "worker" / "app.py", "dms.tasks.transfer"),
        (DMS / "worker" / "app.py", "dms.tasks.finalize"),
        (DMS / "worker" / "node_step.py", "dms.worker.receiver"),
    }
)


def _called(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _resolve(base: str, names: list[str]) -> Iterator[str]:
    submodules = [f"{base}.{n}" for n in names if f"{base}.{n}" in MODULES]
    if submodules:
        yield from submodules
    if len(submodules) < len(names) or not names:
        yield base


def _layer(module: str) -> int:
    best, layer = -1, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            below = prefix != "dms" and module.startswith(prefix + ".")  # "dms" is the package itself only
            if (module == prefix or below) and len(prefix) > best:
                best, layer = len(prefix), index
    assert layer >= 0, f"{module} belongs to no layer: add it to LAYERS"
    return layer


GRAPH = {name: sorted(set(_imports(path)) - {name}) for name, path in MODULES.items()}


def test_every_module_belongs_to_a_layer() -> None:
    for module in MODULES:
        _layer(module)
    with pytest.raises(AssertionError):
        _layer("dms_other")
    assert _layer("dms") == len(LAYERS) - 1 and _layer("dms.tasks.plan") == 10


def test_every_import_is_one_the_graph_can_see() -> None:
    hidden = [f"{name}: {edge}" for name, edges in GRAPH.items() for edge in edges if " " in edge]
    assert not hidden, "\n".join(hidden)


def test_docs_list_the_same_layers() -> None:
    """docs/architecture.md shows the layer table for readers; it must say what LAYERS says."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    rows = re.findall(r"^\| (\d+) \| (.+) \|$", text, re.M)
    shown = {int(n): {m.strip(" `") for m in re.findall(r"`[\w.]+`", mods)} for n, mods in rows}
    wanted = {i: {p.removeprefix("dms.") if p != "dms" else "dms" for p in ps} for i, ps in enumerate(LAYERS)}
    assert shown == wanted


def test_no_module_imports_from_a_higher_layer() -> None:
    upward = [
        f"{importer} (layer {_layer(importer)}) imports {imported} (layer {_layer(imported)})"
        for importer, imports in GRAPH.items()
        for imported in imports
        if imported in MODULES and _layer(imported) > _layer(importer)
    ]
    assert not upward, "\n".join(upward)


def test_there_are_no_import_cycles() -> None:
    """Package __init__ modules are left out: importing dms.x.y runs dms.x's __init__ first,
    which is not an import of dms.x.y's making (and `dms` itself loads its API lazily)."""
    graph = {m: [i for i in imports if i in GRAPH and not _is_package(i)] for m, imports in GRAPH.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[str] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for nxt in graph[module]:
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*path[path.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(cycles)


def _is_package(module: str) -> bool:
    return MODULES[module].name == "__init__.py"


def test_the_layer_test_sees_a_violation() -> None:
    """The checks above find what they look for: dms.fs.paths importing dms.tasks would fail."""
    assert _layer("dms.tasks.plan") > _layer("dms.fs.paths")
    assert "dms.fs.paths" in GRAPH["dms.request"]  # edges are found (request builds paths)
    assert "dms.native._core" in GRAPH["dms.native"] and "dms.errors" in GRAPH["dms.native._core"]


# -- Redis only in dms/state/ ---------------------------------------------------------------

#: Methods only a Redis client has (get/set/delete are left out: dicts and files have them too).
REDIS_METHODS = frozenset(
    [
        "hset",
        "hget",
        "hgetall",
        "hkeys",
        "hdel",
        "hincrby",
        "hmget",
        "sadd",
        "srem",
        "smembers",
        "sismember",
        "scard",
        "lpush",
        "rpush",
        "lrange",
        "llen",
        "lpop",
        "rpop",
        "zadd",
        "zrange",
        "zrem",
        "zrangebyscore",
        "scan_iter",
        "pipeline",
        "mget",
        "expire",
        "pexpire",
        "register_script",
        "setbit",
        "getbit",
        "bitcount",
        "evalsha",
    ]
)


def _redis_uses(path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "redis" for a in node.names):
            yield f"line {node.lineno}: imports redis-py"
        elif isinstance(node, ast.Import) and any(a.name.startswith("kombu.transport.redis") for a in node.names):
            yield f"line {node.lineno}: imports kombu's Redis transport"
        elif isinstance(node, ast.ImportFrom) and node.module and (
            node.module.split(".")[0] == "redis" or node.module.startswith("kombu.transport.redis") or
            (node.module == "kombu.transport" and any(a.name == "redis" for a in node.names))
        ):  # fmt: skip
            yield f"line {node.lineno}: imports a Redis client"
        elif (
            isinstance(node, ast.Call)
            and _called(node) in ("import_module", "__import__", "getattr")
            and any(isinstance(a, ast.Constant) and a.value in ("redis", "r", "client") for a in node.args)
        ):
            yield f"line {node.lineno}: reaches Redis indirectly"
        elif (
            isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Attribute) and node.func.value.attr in ("client", "redis")
        ):  # fmt: skip
            yield f"line {node.lineno}: calls {node.func.attr} on a Redis connection"
        elif isinstance(node, ast.Attribute) and node.attr == "r" and isinstance(node.ctx, ast.Load):
            yield f"line {node.lineno}: reaches into a store's Redis client (.r)"
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in REDIS_METHODS:
            yield f"line {node.lineno}: calls Redis's {node.func.attr}"
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str | bytes)
            and (node.value[:4] in ("dms:", b"dms:"))
        ):
            yield f"line {node.lineno}: spells a Redis key {node.value!r}"


def test_no_module_outside_dms_state_spells_a_redis_key_or_calls_redis() -> None:
    found = [
        f"{path.relative_to(ROOT)} {use}"
        for name, path in MODULES.items()
        if path.suffix == ".py" and not name.startswith("dms.state")
        for use in _redis_uses(path)
    ]
    assert not found, "\n".join(found)


def test_the_redis_check_sees_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text('import redis\n\ndef f(store):\n    store.r.hset(f"dms:req:{1}", "a", 1)\n    return "dms:x"\n')
    assert len(list(_redis_uses(bad))) == 5  # import, .r, hset, the f-string's "dms:" head, the constant
    sly = tmp_path / "sly.py"
    sly.write_text(
        "import importlib\nimport kombu.transport.redis\n\ndef f(store, channel):\n"
        '    getattr(store, "r").set(b"dms:k", 1)\n    channel.client.info("server")\n'
        '    return importlib.import_module("redis")\n'
    )
    assert len(list(_redis_uses(sly))) == 5  # kombu's transport, getattr, the bytes key, .client.info, import_module


# -- docs/architecture.md's module map ---------------------------------------------------------

MAP_ROW = re.compile(r"^\| `(dms/[\w/]+\.pyx?)` \|", re.M)


def _mapped() -> set[str]:
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text.split("## Module map", 1)[1].split("\n## ", 1)[0]
    return set(MAP_ROW.findall(section))


def test_the_architecture_module_map_names_exactly_the_modules_there_are() -> None:
    there = {str(p.relative_to(ROOT)) for p in MODULES.values() if p.name not in ("__main__.py",)}
    mapped = _mapped()
    assert not there - mapped, f"missing from docs/architecture.md's module map: {sorted(there - mapped)}"
    assert not mapped - there, f"in the module map but not in dms/: {sorted(mapped - there)}"


@pytest.mark.parametrize("package", sorted(p.parent.name for p in DMS.glob("*/__init__.py")))
def test_every_package_says_what_it_is_for(package: str) -> None:
    doc = ast.get_docstring(ast.parse((DMS / package / "__init__.py").read_text()))
    assert doc and len(doc) > 40, f"dms/{package}/__init__.py needs a docstring saying what the package is for"
