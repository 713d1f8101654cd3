"""`check_adapter_dir`: the one test of "is this a LoRA adapter directory" for every stage.

`--adapter`, eval's systems, both generators, the merge behind `aldlab export` and the
llama.cpp GGUF export all ask it here, so a wrong path fails the same way wherever it is
given.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aldlab.errors import UserError

#: What to pass instead, when a path is not an adapter directory.
ADAPTER_DIR_HINT = "aldlab train의 출력 디렉터리를 주세요 / pass the output dir of aldlab train"


def check_adapter_dir(path: str | Path, *, require: Sequence[str] = (), hint: str = ADAPTER_DIR_HINT) -> Path:
    """`path` (user-expanded) when it is a directory holding every file in `require`.

    Otherwise one bilingual `UserError` naming the path: "not found" for a missing
    directory, "not an adapter directory (no FILE)" for a directory without `FILE`.
    """
    directory = Path(path).expanduser()
    if not directory.is_dir():
        raise UserError(
            f"어댑터 디렉터리가 없습니다: {path}", f"Adapter directory not found: {path}", path=path, hint=hint
        )
    for name in require:
        if not (directory / name).exists():
            raise UserError(
                f"어댑터 디렉터리가 아닙니다 ({name} 없음).",
                f"Not an adapter directory (no {name}).",
                path=directory,
                hint=hint,
            )
    return directory
