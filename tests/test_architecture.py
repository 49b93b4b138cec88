"""The layout's import rules (docs/architecture.md): each sub-package of c2f_format may
import only the layers below it, so that the format and the networks never reach up into
the codec, the integrations or the tools. An AST walk over every module, function-level
imports included; imports under `if TYPE_CHECKING:` are for annotations and do not count."""

from __future__ import annotations

import ast
from pathlib import Path

import c2f_format.plugins  # binds c2f_format too

PACKAGE = Path(c2f_format.__file__).parent
PLUGINS = Path(c2f_format.plugins.__file__).parent  # plugins/, installed inside the package

# What each part of c2f_format may import from c2f_format ("" is the top-level package,
# `c2f_format/__init__.py`, which the plugins and the public API live behind).
MAY_IMPORT: dict[str, set[str]] = {
    "format": {"format"},
    "networks": {"format", "networks"},
    "codec": {"format", "networks", "codec"},
    "plugins": {"", "format", "codec", "plugins"},
    "train": {"", "format", "networks", "codec", "train"},
    "tools": {"", "format", "networks", "codec", "plugins", "train", "tools"},
    "": {"", "format", "codec", "plugins"},
}

# Modules that a decode-only install (no torch) imports: torch only inside functions.
TORCH_FREE_PACKAGES = {"c2f_format.format", "c2f_format.plugins"}
TORCH_FREE = {
    "c2f_format",
    "c2f_format.networks.numpy_layers",
    "c2f_format.networks.numpy_model",
    "c2f_format.networks.numpy_context_model",
    "c2f_format.networks.pyramid_weights",
    "c2f_format.codec.pyramid_coding",
    "c2f_format.codec.pyramid_stream",
    "c2f_format.codec.api",
    "c2f_format.codec.images",
    "c2f_format.codec.streaming",
    "c2f_format.codec.batch",
    "c2f_format.codec.conversion",
    "c2f_format.codec.convert",
    "c2f_format.codec.files",
    "c2f_format.codec.manifest",
    "c2f_format.codec.safe_write",
    "c2f_format.codec.decoding",
    "c2f_format.codec.effort",
    "c2f_format.codec.options",
    "c2f_format.codec.precision",
    "c2f_format.codec.engines",
    "c2f_format.codec.metrics",
    "c2f_format.codec.numpy_engine",
    "c2f_format.codec.progress",
    "c2f_format.codec.threads",
    "c2f_format.codec.workers",
    "c2f_format.codec.tiling",
    "c2f_format.tools.conformance",
}

# Known exceptions to MAY_IMPORT, each with its reason: (importer, imported).
# None today; an entry would name the module, what it imports and why.
ALLOWED: set[tuple[str, str]] = set()


def _modules() -> dict[str, Path]:
    """Dotted name -> file, for c2f_format and the installed plugins."""
    out = {}
    for root, name in ((PACKAGE, "c2f_format"), (PLUGINS, "c2f_format.plugins")):
        for path in sorted(root.rglob("*.py")):
            parts = [name, *path.relative_to(root).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in MAY_IMPORT else ""


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(module: str, path: Path) -> list[tuple[str, bool]]:
    """(imported module, at module level) for each import of `path`, resolved to absolute
    names; `from X import a` counts as X.a where X.a is a module of ours."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit(sub, top)
                continue
            if isinstance(child, ast.Import):
                found.extend((a.name, top) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")[: len(package.split(".")) - child.level + 1]
                    name = ".".join([*base, child.module] if child.module else base)
                else:
                    name = child.module or ""
                found.append((name, top))
                found.extend((f"{name}.{a.name}", top) for a in child.names)
            inner = top and not isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
            )
            visit(child, inner)

    visit(tree, True)
    return found


MODULES = _modules()


def test_the_layout_is_the_documented_one() -> None:
    layers = {_layer(m) for m in MODULES}
    assert layers == set(MAY_IMPORT), "docs/architecture.md and MAY_IMPORT name the layers"
    top = sorted(
        m for m in MODULES if m.count(".") == 1 and _layer(m) == "" and m != "c2f_format._weights"
    )
    assert "c2f_format.plugins.pillow_c2f" in MODULES
    assert top == [], f"modules outside the role packages: {top}"


def test_each_layer_imports_only_the_layers_below_it() -> None:
    broken = []
    for module, path in MODULES.items():
        layer = _layer(module)
        for name, _ in _imports(module, path):
            if name != "c2f_format" and not name.startswith("c2f_format."):
                continue
            if name not in MODULES and name.rpartition(".")[0] in MODULES:
                continue  # `from c2f_format.x import name`: counted as c2f_format.x
            if name == "c2f_format" or name in MODULES:
                target = _layer(name)
                if target not in MAY_IMPORT[layer] and (module, name) not in ALLOWED:
                    broken.append(f"{module} ({layer or 'top'}) imports {name}")
    assert not broken, "\n".join(broken)


def test_the_format_and_networks_never_import_the_codec_integrations_or_tools() -> None:
    """The issue's rule, stated on its own (MAY_IMPORT implies it)."""
    for layer in ("format", "networks"):
        assert not MAY_IMPORT[layer] & {"codec", "plugins", "tools", "train", ""}


def test_the_decode_only_modules_import_torch_inside_functions_only() -> None:
    broken = []
    for module, path in MODULES.items():
        if module not in TORCH_FREE and module.rpartition(".")[0] not in TORCH_FREE_PACKAGES:
            continue
        for name, top in _imports(module, path):
            if top and (name == "torch" or name.startswith("torch.")):
                broken.append(module)
    assert not broken, f"torch imported at module level by {sorted(set(broken))}"


def test_the_rules_see_function_level_imports() -> None:
    """The walk counts an import inside a function (the codec imports torch_engine so)."""
    imports = {
        n
        for n, top in _imports("c2f_format.codec.engines", MODULES["c2f_format.codec.engines"])
        if not top
    }
    assert "c2f_format.codec.torch_engine" in imports
