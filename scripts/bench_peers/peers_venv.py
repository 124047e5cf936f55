"""Create (or reuse) the throwaway venv holding the peer engines (stdlib only).

The driver imports :func:`ensure_venv` from raytrade's own venv; the peers never enter that venv.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

REQUIREMENTS = Path(__file__).resolve().parent / "requirements.txt"
STAMP = ".bench-peers-requirements.sha256"


def _python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def _digest(base_python: str) -> str:
    version = subprocess.run(
        [base_python, "-c", "import sys; print(sys.version)"], check=True, capture_output=True, text=True
    ).stdout
    return hashlib.sha256(REQUIREMENTS.read_bytes() + version.encode()).hexdigest()


def ensure_venv(path: Path, base_python: str | None = None, quiet: bool = True) -> Path:
    """Return the python of a venv at ``path`` with ``requirements.txt`` installed.

    The venv is (re)built when it is missing or when the requirements (or the base interpreter's
    version) changed since it was built: a hash of both is stored in the venv. A folder at ``path``
    that is not a venv is never deleted. ``base_python`` defaults to the running interpreter.
    """
    path = Path(path)
    base = base_python or sys.executable
    digest = _digest(base)
    stamp = path / STAMP
    python = _python(path)
    if python.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return python
    if path.exists():
        if not (path / "pyvenv.cfg").exists():
            raise RuntimeError(f"{path} exists and is not a venv: not touching it")
        shutil.rmtree(path)
    subprocess.run([base, "-I", "-m", "venv", str(path)], check=True)
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check"] + (["-q"] if quiet else [])
    subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True)
    stamp.write_text(digest + "\n")
    return python


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("var/bench-peers")
    print(ensure_venv(target, quiet=False))
