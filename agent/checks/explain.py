"""Turn what torch or safetensors said about a file into one line a person can act on.

Pure string work, so it is tested on its own. torch's own advice ("load with weights_only=False",
"use add_safe_globals") is dropped: it tells a user to run the code we refused to run.
"""

from __future__ import annotations

import re

_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")
_BLOCKED = re.compile(r"unsupported GLOBAL ([\w.]+) whose module")
_REDUCE = re.compile(r"unrecognized function (.+?)(?: which belongs|$)")
_WRONG_TARGET = re.compile(r"Can only (\w+) (?:to|for) .*?but got <class '([\w.]+)'>")
_DTYPE_NAME = re.compile(r"^(?:float|bfloat|int|uint|complex|bool|qint|quint)\w*$")
# modules whose callables run code or touch the system when a pickle calls them
_CODE_MODULES = {
    "os": "os",
    "posix": "os",
    "nt": "os",
    "subprocess": "subprocess",
    "builtins": "builtins",
    "__builtin__": "builtins",
    "sys": "sys",
    "shutil": "shutil",
    "socket": "socket",
    "importlib": "importlib",
    "runpy": "runpy",
    "pty": "pty",
    "code": "code",
    "webbrowser": "webbrowser",
    "ctypes": "ctypes",
    "pickle": "pickle",
    "marshal": "marshal",
    "types": "types",
    "operator": "operator",
    "functools": "functools",
    "timeit": "timeit",
    "pdb": "pdb",
    "io": "io",
    "tempfile": "tempfile",
    "pathlib": "pathlib",
    "urllib": "urllib",
    "http": "http",
    "multiprocessing": "multiprocessing",
}
MAX_DETAIL = 200


def global_message(full: str) -> str:
    """Why a pickle asking for the global ``full`` (``module.name``) is refused."""
    module, _, name = full.rpartition(".")
    if not module:
        module, name = "builtins", full
    top = module.split(".")[0]
    if top == "torch" and _DTYPE_NAME.match(name):
        return f"unknown dtype torch.{name}"
    if top in _CODE_MODULES:
        return f"could run code: it calls {_CODE_MODULES[top]}.{name}" + (
            "" if _CODE_MODULES[top] == module else f" ({module}.{name})"
        )
    if top == "numpy":
        return f"holds numpy objects ({full}); the safe loader reads tensors, not numpy arrays"
    if top == "torch":
        return f"needs {full}, which torch's safe loader does not allow"
    return f"needs arbitrary pickled objects ({full}), which could run code"


def torch_load_message(exc: BaseException) -> str:
    """One line for an exception raised by ``torch.load(weights_only=True)``."""
    text = str(exc)
    found = _BLOCKED.search(text) or _GLOBAL.search(text)
    if found:
        return global_message(found.group(1))
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    elif text.startswith("Weights only load failed."):
        text = text.split("\n\n", 1)[-1]
    first = _first_line(text)
    reduce = _REDUCE.search(first)
    if reduce:
        return f"could run code: it calls {reduce.group(1)}"
    if "failed locating file data.pkl" in first:
        return "not a torch checkpoint (a zip archive without data.pkl)"
    if "invalid load key" in first or first.startswith(("unpickling stack underflow", "EOF")):
        return "not a torch checkpoint: neither a torch zip archive nor a pickle"
    wrong = _WRONG_TARGET.search(first)
    if wrong:
        return f"not a plain state dict: its pickle does {wrong.group(1)} on a {wrong.group(2)}"
    if first.startswith(("Can only", "Only persistent_load", "persistent_load id")):
        return f"not a plain state dict: {first}"
    if "Cannot use ``weights_only=True`` with TorchScript" in text or "TorchScript" in first:
        return "a TorchScript archive (torch.jit.save), not a state dict"
    if "Unknown endianness type" in first:
        return "its byteorder record is neither 'little' nor 'big'"
    return f"torch cannot load it: {type(exc).__name__}: {first}"


def safetensors_message(exc: BaseException) -> str:
    return f"the safetensors library refuses it: {_first_line(str(exc))}"


def _first_line(text: str) -> str:
    line = next((ln.strip() for ln in text.strip().splitlines() if ln.strip()), "")
    line = line.replace("\x1b[1m", "").replace("\x1b[0m", "")
    return line if len(line) <= MAX_DETAIL else line[: MAX_DETAIL - 1] + "…"
