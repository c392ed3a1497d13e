"""
Reading C{strace -f} output in the order system calls completed.

With several threads, strace splits a call that another thread interrupts
into an C{<unfinished ...>} line and a later C{<... resumed>} line; the
readers here join them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LINE = re.compile(r"^(?P<tid>\d+) +(?P<rest>.*)$")
_START = re.compile(r"^(?P<call>[a-z0-9_]+)\((?P<args>.*)$")
_RESUMED = re.compile(r"^<\.\.\. (?P<call>[a-z0-9_]+) resumed>(?P<args>.*)$")
_RESULT = re.compile(r"\)\s+=\s+(?P<result>-?\d+|\?)")


@dataclass(frozen=True)
class Call:
    """
    One completed system call: its name, its argument text (everything
    after the opening parenthesis) and its result.
    """

    name: str
    text: str
    result: str

    @property
    def first_argument(self) -> str:
        return self.text.split(",", 1)[0].split(")", 1)[0].strip()


def completed_calls(lines: list[str]) -> list[Call]:
    """
    Turn C{strace -f} lines into calls in order of completion.
    """
    pending: dict[str, tuple[str, str]] = {}
    calls = []
    for line in lines:
        match = _LINE.match(line)
        if match is None:
            continue
        tid, rest = match.group("tid"), match.group("rest")
        resumed = _RESUMED.match(rest)
        if resumed is not None:
            if tid in pending:
                name, text = pending.pop(tid)
                calls.append(
                    _call(
                        name,
                        text.replace("<unfinished ...>", "") + resumed.group("args"),
                    )
                )
            continue
        started = _START.match(rest)
        if started is None:
            continue
        if rest.endswith("<unfinished ...>"):
            pending[tid] = (started.group("call"), started.group("args"))
            continue
        calls.append(_call(started.group("call"), started.group("args")))
    return calls


def _call(name: str, text: str) -> Call:
    found = _RESULT.findall(text)
    return Call(name, text, found[-1] if found else "")
