"""``alphasignal export``: a fine-tuning run or checkpoint -> GGUF + mmproj + Ollama Modelfile.

Results on stdout (``--json`` for machines), progress on stderr. The llama.cpp
folder for non-Gemma models comes from ``--llama-cpp`` or ``ALPHASIGNAL_LLAMA_CPP``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

LLAMA_CPP_ENV = "ALPHASIGNAL_LLAMA_CPP"
QUANTS = ("q4_k_m", "q8_0", "f16")


def add_parsers(sub: Any) -> None:
    e = sub.add_parser(
        "export", help="merge a fine-tuned adapter and export GGUF + mmproj + an Ollama Modelfile",
        description="Run folder (adapter/ + summary.json) or HF checkpoint -> merged checkpoint -> "
                    "GGUF text model + mmproj -> quantized GGUF -> Ollama Modelfile. Never downloads anything.",
    )
    e.add_argument("source", type=Path, metavar="RUN_OR_CHECKPOINT", help="fine-tuning run folder or checkpoint folder")
    e.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder (must not exist or be empty)")
    e.add_argument("--quant", default="q4_k_m", metavar="TYPE",
                   help=f"quantization of the text model: {', '.join(QUANTS)} (default q4_k_m)")
    e.add_argument("--name", metavar="NAME", help="model name for Ollama (default: the folder name)")
    e.add_argument("--base", metavar="DIR_OR_ID",
                   help="base checkpoint to merge the adapter into (default: the run's summary.json)")
    e.add_argument("--llama-cpp", type=Path, metavar="DIR",
                   help=f"local llama.cpp source folder, for models other than Gemma 3 (or ${LLAMA_CPP_ENV})")
    e.add_argument("--no-verify", action="store_true", help="skip loading the result in llama.cpp")
    e.add_argument("--json", action="store_true", help="print export.json instead of a summary")


def run(args: argparse.Namespace) -> int:
    from .finetune.export import export_run

    llama_cpp = args.llama_cpp or (Path(os.environ[LLAMA_CPP_ENV]) if os.environ.get(LLAMA_CPP_ENV) else None)
    report = export_run(
        args.source, args.out, quant=args.quant, llama_cpp=llama_cpp, name=args.name,
        base_model=args.base, verify=not args.no_verify,
    )
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.summary())
    return 0
