"""cffi API-mode build of ``multistack._native``.

Each concern adds its own files to this folder, so no single file is a
merge point: every ``*.h`` is included, every ``*.c`` compiled and every
``*.cdef`` declared (in sorted order).  The kernel module's headers are on
the include path because the ABI (uapi/multistack.h) and the frame
classifier (multistack_classify.h) are shared with it.  The MS_STAT_*
indices are declared from the header's MS_STAT_LIST, so a new counter is
one line in the header and nothing here.
"""

import re
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
KMOD_INCLUDE = ROOT / "kmod" / "include"
UAPI = KMOD_INCLUDE / "uapi" / "multistack.h"


def _sorted(pattern: str) -> list[Path]:
    return sorted(HERE.glob(pattern))


def _stat_constants() -> str:
    """``#define MS_STAT_<NAME> ...`` for each entry of MS_STAT_LIST (the
    compiler supplies the values)."""
    text = UAPI.read_text()
    body = text[text.index("#define MS_STAT_LIST(X)"):]
    body = body[:body.index("\n\n")]
    return "\n".join(f"#define MS_STAT_{name} ..." for name in re.findall(r"\bX\((\w+),", body))


ffibuilder = FFI()
ffibuilder.cdef("\n".join([p.read_text() for p in _sorted("*.cdef")] + [_stat_constants()]))
ffibuilder.set_source(
    "multistack._native",
    "\n".join(f'#include "{p.name}"' for p in _sorted("*.h")),
    sources=[str(p.relative_to(ROOT)) for p in _sorted("*.c")],
    include_dirs=[str(HERE), str(KMOD_INCLUDE), str(KMOD_INCLUDE / "uapi")],
    extra_compile_args=["-O2", "-Wall", "-Wextra", "-std=gnu11"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
