"""Import hygiene: `import alphasignal` stays light, and imports only point down the layers."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "alphasignal"
HEAVY = ["torch", "unsloth", "llama_cpp", "yfinance", "matplotlib", "sentence_transformers", "langchain_core"]


def test_import_alphasignal_loads_no_heavy_dependency():
    code = "import sys, alphasignal; print(','.join(m for m in %r if m in sys.modules))" % HEAVY
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_cli_module_import_is_light():
    code = "import sys, alphasignal.cli; print(','.join(m for m in %r if m in sys.modules))" % HEAVY
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


# layer of each top-level part; a module may import only its own layer or lower ones
LAYERS = {
    "errors": 0, "schemas": 0, "config": 1, "inputs": 1,
    "backends": 2, "chains": 2, "chart": 2, "news": 2, "dataset": 2,
    "agent": 3, "finetune": 3,
    "cli": 4, "cli_data": 4, "cli_finetune": 4, "cli_export": 4, "cli_serve": 4, "serve": 4, "bench": 4, "render_text": 1, "__init__": 4, "__main__": 5,
}


def _part(module_path: Path) -> str:
    rel = module_path.relative_to(PKG)
    return rel.parts[0].removesuffix(".py")


def _imported_parts(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            # resolve "from ..x import y" relative to the module's package
            depth = len(path.relative_to(PKG).parts) - node.level
            base = list(path.relative_to(PKG).parts[:depth])
            target = base + (node.module.split(".") if node.module else [])
            if target:
                yield target[0].removesuffix(".py")
            else:
                yield from (alias.name for alias in node.names)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            for name in names:
                if name and name.startswith("alphasignal."):
                    yield name.split(".")[1]


@pytest.mark.parametrize("path", sorted(PKG.rglob("*.py")), ids=lambda p: str(p.relative_to(PKG)))
def test_imports_point_down(path):
    own = _part(path)
    for target in _imported_parts(path):
        if target == "__version__" or target not in LAYERS:
            continue
        assert LAYERS[target] <= LAYERS[own], f"{own} (layer {LAYERS[own]}) imports {target} (layer {LAYERS[target]})"
