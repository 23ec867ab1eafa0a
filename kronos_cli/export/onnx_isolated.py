"""Run the exported ONNX driver where torch and kronos_cli cannot be imported: proof that it needs neither.

`python -I onnx_isolated.py DRIVER ARGS...` blocks both before anything else is loaded, then runs DRIVER as
`__main__` with ARGS. Imports nothing but the standard library, so it also runs as a plain script.
"""

from __future__ import annotations

import runpy
import sys

if __name__ == "__main__":
    for name in ("torch", "kronos_cli"):
        sys.modules[name] = None  # type: ignore[assignment]  # an import of either now fails
    driver, *args = sys.argv[1:]
    sys.argv = [driver, *args]
    runpy.run_path(driver, run_name="__main__")
