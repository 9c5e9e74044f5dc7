#!/usr/bin/env python3
"""ld.lld-19 with a record of what it linked: kernel.sh's stock build runs this as
LD. Each link appends one JSON line, {"output": the -o path as given, "bitcode":
whether any input is LLVM bitcode}, to $THINFARM_STOCK_LINKS, then ld.lld-19 runs
with the same arguments. The links with bitcode are the ThinLTO links kbuild
ran, found without thinfarm's help; the relink through thinfarm-ld must split
every one of them.

An input is any argument (after expanding @response files, as kbuild's .mod
lists are passed) that names a regular file: a bitcode file, or an archive with
a bitcode member (thin archives: the member's own file). Option values that are
files (a linker script, a version script) are never bitcode, so reading them
does no harm."""
import json
import os
import shlex
import sys

BITCODE = (b"BC\xc0\xde", b"\xde\xc0\x17\x0b")  # raw bitcode, bitcode wrapper


def is_bitcode(data):
    return data[:4] in BITCODE


def archive_has_bitcode(path, data):
    thin = data.startswith(b"!<thin>\n")
    pos, names = 8, b""
    while pos + 60 <= len(data):
        header = data[pos:pos + 60]
        name = header[:16].decode("latin-1").rstrip()
        size = int(header[48:58].decode("latin-1").strip() or 0)
        body = pos + 60
        if name == "//":  # the long-name table
            names = data[body:body + size]
        elif name not in ("/", "/SYM64/"):  # not a symbol table
            if thin:
                if name.startswith("/") and name[1:].isdigit():
                    start = int(name[1:])
                    name = names[start:names.index(b"/\n", start)].decode()
                else:
                    name = name.rstrip("/")
                member = name if os.path.isabs(name) else os.path.join(os.path.dirname(path), name)
                if file_has_bitcode(member):
                    return True
            elif is_bitcode(data[body:body + 4]):
                return True
        if thin and name not in ("/", "//", "/SYM64/"):
            body_size = 0  # a thin archive stores no member data
        else:
            body_size = size
        pos = body + body_size + (body_size & 1)
    return False


def file_has_bitcode(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return False
    if is_bitcode(data):
        return True
    if data.startswith((b"!<arch>\n", b"!<thin>\n")):
        return archive_has_bitcode(path, data)
    return False


def expand(args):
    out = []
    for a in args:
        if a.startswith("@") and os.path.isfile(a[1:]):
            with open(a[1:]) as f:
                out += expand(shlex.split(f.read()))
        else:
            out.append(a)
    return out


def main():
    args = sys.argv[1:]
    words = expand(args)
    output = None
    for i, w in enumerate(words):
        if w == "-o" and i + 1 < len(words):
            output = words[i + 1]
        elif w.startswith("--output="):
            output = w[len("--output="):]
    if output is not None and os.environ.get("THINFARM_STOCK_LINKS"):
        bitcode = any(os.path.isfile(w) and file_has_bitcode(w)
                      for w in words if not w.startswith("-") and w != output)
        with open(os.environ["THINFARM_STOCK_LINKS"], "a") as log:
            log.write(json.dumps({"output": output, "bitcode": bitcode}) + "\n")
    os.execvp("ld.lld-19", ["ld.lld-19"] + args)


main()
