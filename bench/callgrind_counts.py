#!/usr/bin/env python3
"""Per-request costs from one callgrind dump (used by bench/profile.sh).

Reads a dump written with `--dump-instr=yes --cache-sim=yes --branch-sim=yes`, and
prints one line of `key=value` pairs, each divided by the request count:

  instructions     instructions executed (Ir)
  l1i_misses       simulated first-level instruction-cache misses (I1mr)
  l1d_misses       simulated first-level data-cache misses (D1mr + D1mw)
  mispredicts      simulated conditional and indirect branch mispredictions (Bcm + Bim)
  locked           executed instructions with a bus lock: `lock`-prefixed ones and
                   `xchg` with memory (atomic read-modify-writes: reference counts,
                   mutexes, shared counters), found by disassembling every object the
                   dump names with objdump

With `--sites N` it also prints the N functions that execute the most bus-locked
instructions per request (from the symbols objdump reads; inlined code counts toward
the function it was inlined into).

Usage: callgrind_counts.py DUMP REQUESTS [--sites N]
"""

import collections
import re
import subprocess
import sys


def parse(path):
    """Self cost per (object, instruction address), and the totals per event."""
    events = []
    positions = ["line"]
    per_instr = collections.defaultdict(int)
    totals = collections.Counter()
    names = {}
    obj = None
    last = 0
    after_calls = False
    with open(path, encoding="utf-8", errors="replace") as dump:
        for line in dump:
            if line.startswith("positions:"):
                positions = line.split()[1:]
                continue
            if line.startswith("events:"):
                events = line.split()[1:]
                continue
            if line.startswith(("ob=", "cob=")):
                # Compressed names: `(id) name` the first time, `(id)` after.
                match = re.match(r"c?ob=\((\d+)\)(?: (.*))?", line.strip())
                if match is None:
                    continue
                if match.group(2):
                    names[match.group(1)] = match.group(2)
                if line.startswith("ob="):
                    obj = names.get(match.group(1))
                continue
            if line.startswith("calls="):
                # The next cost line is the call's inclusive cost: not this function's own.
                after_calls = True
                continue
            if not line or line[0] not in "0123456789+-*":
                continue
            fields = line.split()
            if positions[0] != "instr":
                # Without instruction positions, only the totals can be read.
                if after_calls:
                    after_calls = False
                    continue
                for event, value in zip(events, fields[len(positions) :]):
                    totals[event] += int(value)
                continue
            position = fields[0]
            if position.startswith("0x"):
                address = int(position, 16)
            elif position.startswith("+"):
                address = last + int(position[1:], 0)
            elif position.startswith("-"):
                address = last - int(position[1:], 0)
            elif position == "*":
                address = last
            else:
                address = int(position, 0)
            last = address
            if after_calls:
                after_calls = False
                continue
            # Fields: the positions (instruction, line), then the events in order.
            costs = [int(v) for v in fields[len(positions) :]]
            for event, value in zip(events, costs):
                totals[event] += value
            if costs:
                per_instr[(obj, address)] += costs[0]
    return per_instr, totals


def locked_addresses(path):
    """Bus-locking instructions in the object at `path`: address -> enclosing function."""
    try:
        listing = subprocess.run(
            ["objdump", "-d", "-C", "--no-show-raw-insn", path],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
    except OSError:
        return set()
    found = {}
    function = "?"
    for line in listing.splitlines():
        header = re.match(r"^[0-9a-f]+ <(.*)>:$", line)
        if header:
            function = header.group(1)
            continue
        match = re.match(r"^\s+([0-9a-f]+):\s+(\S+)\s*(.*)$", line)
        if not match:
            continue
        mnemonic, operands = match.group(2), match.group(3)
        if mnemonic == "lock" or (mnemonic.startswith("xchg") and "(" in operands):
            found[int(match.group(1), 16)] = function
    return found


def main():
    dump, requests = sys.argv[1], int(sys.argv[2])
    sites = int(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[3] == "--sites" else 0
    if requests <= 0:
        sys.exit("no requests counted")
    per_instr, totals = parse(dump)
    by_function = collections.Counter()
    objects = {obj for obj, _ in per_instr if obj and obj.startswith("/")}
    for obj in objects:
        functions = locked_addresses(obj)
        for (o, address), count in per_instr.items():
            if o == obj and address in functions:
                by_function[functions[address]] += count
    locked = sum(by_function.values())
    values = {
        "instructions": totals["Ir"],
        "l1i_misses": totals["I1mr"],
        "l1d_misses": totals["D1mr"] + totals["D1mw"],
        "mispredicts": totals["Bcm"] + totals["Bim"],
        "locked": locked,
    }
    print(" ".join(f"{k}={v / requests:.1f}" for k, v in values.items()))
    for function, count in by_function.most_common(sites):
        print(f"  {count / requests:6.2f}  {function[:150]}")


if __name__ == "__main__":
    main()
