"""Every use of a private pipecat name in product code, checked against PIPECAT_SEAMS.md.

A use is one of:

- `override`: a method named `_x` defined in a class whose pipecat ancestor defines `_x`;
- `attribute`: `self._x` read or written where a pipecat ancestor owns `_x` (assigns it, or
  defines it on the class);
- `foreign`: `obj._x` on anything but `self`, where `_x` is a private name of pipecat's and
  of no product class (reaching into a pipecat object from outside);
- `import`: a private name imported from a pipecat module;
- `skip`: a call that skips a parent: `super(Other, self)` or `Base.method(self, …)`.

Each is counted once per occurrence. `python -m tools.pipecat_internals` lists them and exits 1
if one is not budgeted in PIPECAT_SEAMS.md (a row `| path | Class.name | kind | uses | why |`),
or if the document budgets more than the code uses (the budget only goes down).
"""

import argparse
import ast
import importlib
import inspect
import re
import sys
from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = [
    "bot.py",
    "models",
    "pipelines",
    "processors",
    "server",
    "services",
    "telephony",
    "turns",
    "harness/terminal_call.py",
]
SEAMS = ROOT / "PIPECAT_SEAMS.md"
ROW = re.compile(
    r"^\|\s*`?([\w/.]+\.py)`?\s*\|\s*`?([\w.<>]+)`?\s*\|\s*(\w+)\s*\|\s*(\d+)\s*\|(.*)\|"
)


@dataclass(frozen=True)
class Use:
    """One use of a private pipecat name."""

    path: str
    line: int
    scope: str  # the class (or module) it is in
    name: str
    kind: str

    @property
    def key(self) -> tuple[str, str, str]:
        """What the seams document budgets: file, Class.name, kind."""
        return (self.path, f"{self.scope}.{self.name}", self.kind)


def product_files() -> list[Path]:
    """The product's Python files."""
    files: list[Path] = []
    for entry in PRODUCT:
        path = ROOT / entry
        files += [path] if path.is_file() else sorted(path.rglob("*.py"))
    return [f for f in files if f.exists()]


def module_name(path: Path) -> str:
    """`services/deepgram_tts.py` → `services.deepgram_tts`."""
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def is_pipecat(cls: type) -> bool:
    """Whether `cls` is pipecat's own."""
    return cls.__module__.split(".")[0] == "pipecat"


@cache
def owned_names(cls: type) -> frozenset[str]:
    """Private names a pipecat class owns: defined on it, or assigned to `self` in its code."""
    names = {name for name in vars(cls) if _private(name)}
    try:
        tree = ast.parse(inspect.getsource(cls))
    except (OSError, TypeError, SyntaxError):
        return frozenset(names)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _on_self(node) and _private(node.attr):
            if isinstance(node.ctx, ast.Store):
                names.add(node.attr)
    return frozenset(names)


@cache
def pipecat_private_names() -> frozenset[str]:
    """Every private name pipecat defines anywhere (for uses on objects other than `self`)."""
    import pipecat

    names: set[str] = set()
    for path in Path(pipecat.__file__).parent.rglob("*.py"):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _private(node.name):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and _private(node.attr):
                if isinstance(node.ctx, ast.Store):
                    names.add(node.attr)
    return frozenset(names)


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _on_self(node: ast.Attribute) -> bool:
    return isinstance(node.value, ast.Name) and node.value.id == "self"


def uses() -> list[Use]:
    """Every use in the product, in file order."""
    sys.path.insert(0, str(ROOT))
    files = product_files()
    trees = {path: ast.parse(path.read_text(encoding="utf-8")) for path in files}
    own = _own_names(trees.values())
    found: set[Use] = set()
    for path, tree in trees.items():
        relative = str(path.relative_to(ROOT))
        module = importlib.import_module(module_name(path))
        found |= _imports(relative, tree)
        found |= _foreign(relative, tree, own)
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                cls = getattr(module, node.name, None)
                if inspect.isclass(cls):
                    found |= _class_uses(relative, node, cls, trees)
    return sorted(found, key=lambda use: (use.path, use.line, use.name))


def _own_names(trees) -> frozenset[str]:
    """Private names the product defines itself (its own methods and attributes)."""
    names: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _private(node.name):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                if _private(node.attr):
                    names.add(node.attr)
    return frozenset(names)


def _class_uses(path: str, node: ast.ClassDef, cls: type, trees) -> set[Use]:
    """Overrides, `self._x` and parent skips in `node`, and in the product mixins of `cls`."""
    bases = [base for base in cls.__mro__ if is_pipecat(base)]
    if not bases:
        return set()
    owned = frozenset().union(*(owned_names(base) for base in bases))
    found: set[Use] = set()
    for mixin in cls.__mro__:
        if mixin is cls or is_pipecat(mixin) or mixin.__module__ in ("builtins", "abc"):
            continue
        mixin_node = _class_node(mixin, trees)
        if mixin_node:
            mixin_path = str(Path(inspect.getfile(mixin)).resolve().relative_to(ROOT))
            found |= _uses_in(mixin_path, mixin_node, owned, mixin)
    return found | _uses_in(path, node, owned, cls)


def _class_node(cls: type, trees) -> ast.ClassDef | None:
    try:
        path = Path(inspect.getfile(cls)).resolve()
    except TypeError:
        return None
    tree = trees.get(path)
    if tree is None:
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == cls.__name__:
            return node
    return None


def _uses_in(path: str, node: ast.ClassDef, owned: frozenset[str], cls: type) -> set[Use]:
    found: set[Use] = set()
    for item in node.body:
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name in owned:
            found.add(Use(path, item.lineno, node.name, item.name, "override"))
    for sub in ast.walk(node):
        if isinstance(sub, ast.Attribute) and _on_self(sub) and sub.attr in owned:
            found.add(Use(path, sub.lineno, node.name, sub.attr, "attribute"))
        elif isinstance(sub, ast.Call):
            skipped = _skipped_parent(sub, cls)
            if skipped:
                found.add(Use(path, sub.lineno, node.name, skipped, "skip"))
    return found


def _skipped_parent(call: ast.Call, cls: type) -> str | None:
    """`super(Other, self)` or `Base.method(self, …)` naming a pipecat class: its name."""
    func = call.func
    if isinstance(func, ast.Name) and func.id == "super" and len(call.args) == 2:
        named = call.args[0]
        if isinstance(named, ast.Name) and named.id != cls.__name__:
            return f"super({named.id})"
    if (
        isinstance(func, ast.Attribute)
        and isinstance(func.value, ast.Name)
        and call.args
        and isinstance(call.args[0], ast.Name)
        and call.args[0].id == "self"
    ):
        base = next((b for b in cls.__mro__ if b.__name__ == func.value.id), None)
        if base is not None and is_pipecat(base):
            return f"{base.__name__}.{func.attr}"
    return None


def _imports(path: str, tree: ast.Module) -> set[Use]:
    found: set[Use] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pipecat"):
            for alias in node.names:
                if _private(alias.name) or any(_private(p) for p in node.module.split(".")):
                    found.add(Use(path, node.lineno, "<module>", alias.name, "import"))
    return found


def _foreign(path: str, tree: ast.Module, own: frozenset[str]) -> set[Use]:
    """`obj._x` on something other than `self`, where `_x` is pipecat's and not the product's."""
    private = pipecat_private_names()
    found: set[Use] = set()
    scopes = {
        id(sub): node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        for sub in ast.walk(node)
    }
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and not _on_self(node)
            and node.attr in private
            and node.attr not in own
        ):
            found.add(
                Use(path, node.lineno, scopes.get(id(node), "<module>"), node.attr, "foreign")
            )
    return found


def budget() -> Counter:
    """The uses PIPECAT_SEAMS.md allows, by (path, Class.name, kind)."""
    allowed: Counter = Counter()
    if not SEAMS.exists():
        return allowed
    for line in SEAMS.read_text(encoding="utf-8").splitlines():
        match = ROW.match(line.strip())
        if match and match.group(5).strip():
            path, name, kind, count, _why = match.groups()
            allowed[(path, name, kind)] += int(count)
    return allowed


def main() -> int:
    """List the uses; fail on any the seams document does not give a reason for."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="print every use, one per line")
    args = parser.parse_args()
    found = uses()
    counted = Counter(use.key for use in found)
    allowed = budget()
    if args.list:
        for use in found:
            print(f"{use.path}:{use.line}: {use.kind:9} {use.scope}.{use.name}")
    by_kind = Counter(use.kind for use in found)
    kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(by_kind.items()))
    print(f"{len(found)} uses of private pipecat names in product code ({kinds or 'none'})")
    over = {key: n - allowed[key] for key, n in counted.items() if n > allowed[key]}
    stale = {key: allowed[key] - counted[key] for key in allowed if allowed[key] > counted[key]}
    for (path, name, kind), extra in sorted(over.items()):
        print(
            f"NOT BUDGETED: {path} {name} ({kind}): {extra} use(s) with no reason in {SEAMS.name}"
        )
    for (path, name, kind), extra in sorted(stale.items()):
        print(f"STALE BUDGET: {path} {name} ({kind}): {SEAMS.name} allows {extra} more than used")
    skips = by_kind.get("skip", 0)
    if skips:
        print(f"{skips} call(s) skip a parent class: none may")
    return 1 if over or stale or skips else 0


if __name__ == "__main__":
    sys.exit(main())
