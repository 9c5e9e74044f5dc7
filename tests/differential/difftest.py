#!/usr/bin/env python3
"""Differential tester: stock ld.lld-19 against thinfarm-ld on random ThinLTO links.

For every seed it generates a program (rotating between three generators),
compiles it to ThinLTO bitcode, and links it once or twice with a command line
drawn from the same seed. Each link runs twice in the same directory with the
same arguments, `-o out` included (the output's name can end up inside it),
once with `ld.lld-19` and once with `thinfarm-ld` (THINFARM_COORDINATOR=off:
the backends run in thinfarm-ld itself); the outputs, renamed to stock.out and
tf.out, are compared with cmp. THINFARM_LOG tells
whether thinfarm-ld really split the link: only a split link whose output is
identical counts as passed; a link thinfarm-ld handed to ld.lld-19 (a
"fallback") is counted apart and compared for nothing.

Generators (seed % 6):
  0, 2, 4  tmpl    C (or C++) files from templates: cross-file calls, static,
                   hidden, protected, weak, TLS and common globals, aliases,
                   IFUNCs, constructors, module asm, named sections with
                   __start_/__stop_ references (live and dead), cold code,
                   -fcf-protection, native objects among the bitcode.
  1, 5     csmith  a csmith program compiled to one bitcode module, split with
                   llvm-split-19 into parts (each re-summarized with opt-19
                   -module-summary) so that the backends import across modules.
  3        stress  llvm-stress-19 functions, one per module, called from C.
The link kind (-r, static executable, -pie, -shared), the way inputs are given
(objects, archive, thin archive, --start-lib, --whole-archive, groups) and the
options are drawn from the seed as well: the same seed is the same link.

A difference is one of: output bytes differ (both links succeeded), exit
status differs, stderr or stdout text differs (output names normalized). Each
is saved under OUT/repro-SEED[.L]/ with the inputs, run.sh, both outputs, their
stderr and `llvm-readelf-19 -a` diff, and a classification; --reduce then
shrinks it (options, inputs, then llvm-reduce-19 on each bitcode module) into
OUT/repro-SEED[.L]/reduced/.

usage: difftest.py --seeds A-B --out DIR --ld PATH/thinfarm-ld [--jobs N]
                   [--reduce] [--keep] [--time-limit SECONDS] [--gen NAME]
The last line printed is `differential: N passed, M failed`.
"""

import argparse
import concurrent.futures
import difflib
import json
import os
import random
import re
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
CSMITH_INCLUDE = os.path.join(HERE, "csmith")
CLANG = "clang-19"
LLD = "ld.lld-19"
TIMEOUT = 120

# ----------------------------------------------------------------------------
# Running tools


class GenError(Exception):
    """The generator could not produce a program (not a linker difference)."""


def run(cmd, cwd, env=None, timeout=TIMEOUT, check=True, stdin=None):
    try:
        p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, timeout=timeout,
                           stdin=subprocess.DEVNULL if stdin is None else stdin)
    except subprocess.TimeoutExpired:
        if check:
            raise GenError("timeout: " + " ".join(cmd)[:200])
        return None
    if check and p.returncode != 0:
        raise GenError("%s failed (%d): %s" % (" ".join(cmd)[:300], p.returncode,
                                               p.stderr.decode(errors="replace")[-800:]))
    return p


def base_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("THINFARM_")}
    env["LC_ALL"] = "C"
    env.pop("LLVM_SYMBOLIZER_PATH", None)
    env["LLVM_DISABLE_SYMBOLIZATION"] = "1"
    return env


# ----------------------------------------------------------------------------
# Programs


class Program:
    """What a generator produced in its directory."""

    def __init__(self, gen):
        self.gen = gen
        self.desc = []               # short words describing the program
        self.build = []              # the commands that built it (for the record)
        self.modules = []            # bitcode files (relative paths), reducible
        self.objects = []            # every object file made (relative paths)
        self.pic = False             # compiled position-independent
        self.cf = None               # -fcf-protection: None, "branch", "full", "mixed"
        self.root = None             # object defining the entry / root function
        self.others = []             # the other objects, in an order the seed chose
        self.libc = None             # object defining memcpy & co (or None)
        self.entry = None            # entry symbol, if the program has one
        self.has_start_stop = []     # section names whose __start_ is referenced
        self.dead_start_stop = []    # ... only from code LTO removes
        self.exported = []           # global function names (version scripts, -u, ...)
        self.common = False
        self.debug = False
        self.extra_files = []        # other files the link needs (payloads)


def ccmd(rng_flags, src, obj, lto=True, lang="c"):
    cmd = [CLANG, "--target=x86_64-linux-gnu", "-c", src, "-o", obj]
    if lto:
        cmd.insert(1, "-flto=thin")
    if lang == "c++":
        cmd[1:1] = ["-x", "c++", "-std=c++17", "-fno-exceptions", "-fno-rtti",
                    "-fno-threadsafe-statics", "-nostdinc++"]
    return cmd[:1] + rng_flags + cmd[1:]


def compile_all(prog, wd, jobs):
    """Runs prog.build's compile commands (a list of argv lists)."""
    for cmd in jobs:
        run(cmd, wd)
        prog.build.append(cmd)


LIBC_C = r"""
#include <stddef.h>
/* The few library functions the code generator may call. */
void *memcpy(void *d, const void *s, size_t n) { char *dd = d; const char *ss = s; while (n--) *dd++ = *ss++; return d; }
void *memmove(void *d, const void *s, size_t n) {
  char *dd = d; const char *ss = s;
  if (dd < ss) while (n--) *dd++ = *ss++; else while (n--) dd[n] = ss[n];
  return d;
}
void *memset(void *d, int c, size_t n) { char *dd = d; while (n--) *dd++ = (char)c; return d; }
int memcmp(const void *a, const void *b, size_t n) {
  const unsigned char *x = a, *y = b;
  for (; n; n--, x++, y++) if (*x != *y) return *x - *y;
  return 0;
}
void __stack_chk_fail(void) { for (;;) __asm__ volatile("hlt"); }
"""

EXIT_ASM = ('__asm__ volatile("mov %0, %%edi\\n\\tmov $60, %%eax\\n\\tsyscall" :: "r"(rc) : "rdi", "rax");\n'
            '  __builtin_unreachable();\n')


def common_cflags(rng, prog, pic_needed):
    """Compile flags shared by every module of a program."""
    flags = ["-O" + rng.choice(["1", "2", "2", "2", "3", "s"]), "-ffreestanding", "-w"]
    if pic_needed or rng.random() < 0.4:
        flags.append(rng.choice(["-fPIC", "-fPIE"]) if not pic_needed else "-fPIC")
        prog.pic = True
    else:
        flags.append("-fno-pic")
    r = rng.random()
    if r < 0.12:
        prog.cf = rng.choice(["branch", "full"])
        flags.append("-fcf-protection=" + prog.cf)
    elif r < 0.17:
        prog.cf = "mixed"          # per file below
    if rng.random() < 0.1:
        flags.append(rng.choice(["-g", "-gline-tables-only", "-g1"]))
        prog.debug = True
    if rng.random() < 0.15:
        flags += ["-ffunction-sections", "-fdata-sections"]
    if rng.random() < 0.08:
        flags.append("-fstack-protector-strong")
    if rng.random() < 0.08:
        flags.append("-fno-plt")
    if rng.random() < 0.05:
        flags.append("-fno-unique-section-names")
    return flags


def file_flags(rng, prog, base):
    f = list(base)
    if prog.cf == "mixed" and rng.random() < 0.6:
        f.append("-fcf-protection=" + rng.choice(["branch", "full"]))
    return f


# ---------------------------------------------------------------- tmpl

def gen_tmpl(rng, wd, mode_hint):
    prog = Program("tmpl")
    cxx = rng.random() < 0.2
    lang = "c++" if cxx else "c"
    nfiles = rng.randint(2, 5)
    feat = {
        "tls": rng.random() < 0.3,
        "common": (not cxx) and rng.random() < 0.25,
        "section": rng.random() < 0.45,
        "deadsec": rng.random() < 0.3,
        "asm": rng.random() < 0.3,
        "asmref": rng.random() < 0.15,
        "alias": rng.random() < 0.3,
        "ifunc": (not cxx) and rng.random() < 0.15,
        "ctor": rng.random() < 0.3,
        "weak": rng.random() < 0.4,
        "weakundef": rng.random() < 0.3,
        "hidden": rng.random() < 0.4,
        "protected": rng.random() < 0.15,
        "cold": rng.random() < 0.25,
        "textsec": rng.random() < 0.15,
        "strings": rng.random() < 0.4,
        "switch": rng.random() < 0.3,
        "retain": rng.random() < 0.15,
        "native": rng.random() < 0.2,
        "fvis": rng.random() < 0.1,
        "incbin": rng.random() < 0.04,
        "wpd": cxx and rng.random() < 0.1,
    }
    prog.desc.append("c++" if cxx else "c")
    prog.desc += sorted(k for k, v in feat.items() if v)
    prog.common = feat["common"]
    mode_shared = mode_hint in ("shared", "pie")
    base = common_cflags(rng, prog, mode_shared)
    if prog.cf:
        prog.desc.append("cf=" + prog.cf)
    if feat["common"]:
        base.append("-fcommon")
    if feat["wpd"]:
        base += ["-fwhole-program-vtables", "-fvisibility=hidden"]

    # Symbols per file.
    funcs = {i: ["f%d_%d" % (i, j) for j in range(rng.randint(2, 4))] for i in range(1, nfiles + 1)}
    fattr = {}
    for i, fs in funcs.items():
        for j, f in enumerate(fs):
            kinds = ["plain"] * 6
            if feat["hidden"]:
                kinds += ["hidden"] * 2
            if feat["protected"]:
                kinds.append("protected")
            if feat["weak"]:
                kinds += ["weak"] * 2
            if feat["cold"]:
                kinds.append("cold")
            if feat["textsec"]:
                kinds.append("textsec")
            kinds.append("noinline")
            fattr[f] = "plain" if j == 0 and rng.random() < 0.5 else rng.choice(kinds)
    globs = {}
    for i in range(1, nfiles + 1):
        for j in range(rng.randint(1, 3)):
            kinds = ["data", "bss", "const", "static"]
            if feat["hidden"]:
                kinds.append("hidden")
            if feat["weak"]:
                kinds.append("weak")
            if feat["tls"]:
                kinds += ["tls", "tls"]
            globs["g%d_%d" % (i, j)] = (i, rng.choice(kinds))
    sections = ["tfs%d" % k for k in range(rng.randint(1, 2))] if feat["section"] else []
    commons = ["cm%d" % k for k in range(rng.randint(1, 3))] if feat["common"] else []
    # Weak definitions duplicated in two files: which one prevails is the linker's call.
    dup_weak = []
    if feat["weak"] and nfiles >= 2 and rng.random() < 0.6:
        dup_weak = ["wdup%d" % k for k in range(rng.randint(1, 2))]

    # The shared header.
    h = ["#pragma once", "#include <stdint.h>", "#include <stddef.h>"]
    if cxx:
        h += ["#ifdef __cplusplus", 'extern "C" {', "#endif"]
    attr_of = {"hidden": '__attribute__((visibility("hidden"))) ',
               "protected": '__attribute__((visibility("protected"))) '}
    for i, fs in funcs.items():
        for f in fs:
            h.append("%sint %s(int);" % (attr_of.get(fattr[f], ""), f))
    for g, (i, kind) in globs.items():
        if kind == "static":
            continue
        pre = "extern __thread " if kind == "tls" else "extern "
        pre += attr_of.get(kind, "")
        typ = "const int" if kind == "const" else "int"
        h.append("%s%s %s;" % (pre, typ, g))
    for c in commons:
        h.append("extern int %s[];" % c)
    for w in dup_weak:
        h.append("int %s(int);" % w)
    if feat["weakundef"]:
        h.append("extern int tf_missing(int) __attribute__((weak));")
        h.append("extern int tf_missing_data __attribute__((weak));")
    if feat["asm"]:
        for i in range(1, nfiles + 1):
            h.append("int asm_fn%d(void);" % i)
    if feat["alias"]:
        for i in range(1, nfiles + 1):
            h.append("int fa%d(int);" % i)
    if feat["ifunc"]:
        for i in range(1, nfiles + 1):
            h.append("int ifn%d(int);" % i)
    if feat["deadsec"]:
        h.append("extern const int __start_tfdead[], __stop_tfdead[];")
    for s in sections:
        h.append("extern const int __start_%s[] __attribute__((weak));" % s if rng.random() < 0.2
                 else "extern const int __start_%s[];" % s)
        h.append("extern const int __stop_%s[];" % s)
    if cxx:
        h += ["#ifdef __cplusplus", "}", "#endif"]
        h += [
            "template <int N> struct TfBox { static int count; int get(int x) const { return x * N + count++; } };",
            "template <int N> int TfBox<N>::count = N;",
            "inline int tf_inline_shared(int x) { static int calls; return x + ++calls; }",
            "struct TfBase { virtual int v(int x) { return x + 1; } };",
            "struct TfDer : TfBase { int v(int x) override { return x * 2; } };",
            "inline TfBase *tf_make(int k) { static TfDer d; static TfBase b; return k ? (TfBase *)&d : &b; }",
            "inline int tf_inline_var = 7;",
        ]
    open(os.path.join(wd, "tf.h"), "w").write("\n".join(h) + "\n")

    def attrs(f):
        a = fattr[f]
        return {"hidden": '__attribute__((visibility("hidden"))) ',
                "protected": '__attribute__((visibility("protected"))) ',
                "weak": "__attribute__((weak)) ",
                "cold": "__attribute__((cold, noinline)) ",
                "textsec": '__attribute__((section("tftext"))) ',
                "noinline": "__attribute__((noinline)) "}.get(a, "")

    files = {}
    for i in range(1, nfiles + 1):
        c = ['#include "tf.h"']
        if cxx:
            c.append('extern "C" {')
        for g, (gi, kind) in globs.items():
            if gi != i:
                continue
            v = rng.randint(1, 1000)
            if kind == "data":
                c.append("int %s = %d;" % (g, v))
            elif kind == "bss":
                c.append("int %s;" % g if not feat["common"] else "int %s = 0;" % g)
            elif kind == "const":
                c.append("const int %s = %d;" % (g, v))
            elif kind == "static":
                c.append("static int %s = %d;" % (g, v))
            elif kind == "hidden":
                c.append('__attribute__((visibility("hidden"))) int %s = %d;' % (g, v))
            elif kind == "weak":
                c.append("__attribute__((weak)) int %s = %d;" % (g, v))
            elif kind == "tls":
                c.append("__thread int %s = %d;" % (g, v) if rng.random() < 0.7 else "__thread int %s;" % g)
        for cm in commons:
            if rng.random() < 0.7:
                c.append("int %s[%d];" % (cm, rng.choice([1, 2, 4, 8, 16, 64])))
        for s in sections:
            for k in range(rng.randint(1 if i == 1 else 0, 2)):
                used = "used, retain" if feat["retain"] or rng.random() < 0.5 else "used"
                c.append('static const int %s_e%d_%d __attribute__((section("%s"), %s)) = %d;'
                         % (s, i, k, s, used, rng.randint(1, 99)))
        for w in dup_weak:
            strong = (i == 1 and rng.random() < 0.3)
            if i == 1 or i == nfiles or rng.random() < 0.3:
                c.append("%sint %s(int x) { return x + %d; }"
                         % ("" if strong else "__attribute__((weak)) ", w, rng.randint(1, 50)))
        if feat["asm"]:
            sec = ".text.asm%d" % i if rng.random() < 0.5 else ".text"
            c.append('__asm__(".pushsection %s,\\"ax\\",@progbits\\n.globl asm_fn%d\\n.type asm_fn%d,@function\\n'
                     'asm_fn%d:\\n  movl $%d, %%eax\\n  ret\\n.size asm_fn%d, .-asm_fn%d\\n.popsection\\n");'
                     % (sec, i, i, i, rng.randint(1, 99), i, i))
        if feat["asmref"]:
            tgt = funcs[i][0]
            c.append('__asm__(".pushsection .data.asmref%d,\\"aw\\",@progbits\\n.globl asm_ref%d\\n.p2align 3\\n'
                     'asm_ref%d:\\n  .quad %s\\n.popsection\\n");' % (i, i, i, tgt))
        if feat["incbin"] and i == 1:
            payload = "payload%d.bin" % i
            open(os.path.join(wd, payload), "wb").write(bytes(rng.randrange(256) for _ in range(rng.randint(1, 64))))
            prog.extra_files.append(payload)
            c.append('__asm__(".pushsection .rodata.payload,\\"a\\"\\n.globl tf_payload\\ntf_payload:\\n'
                     '.incbin \\"%s\\"\\n.popsection\\n");' % payload)
        # Static helpers.
        helpers = []
        for k in range(rng.randint(0, 2)):
            hname = "helper%d_%d" % (i, k)
            helpers.append(hname)
            c.append("static int %s(int x) { return x * %d + %d; }" % (hname, rng.randint(2, 9), rng.randint(0, 9)))
        for j, f in enumerate(funcs[i]):
            body = ["  int r = x + %d;" % rng.randint(1, 100)]
            for _ in range(rng.randint(0, 2)):
                k = rng.randint(i, nfiles)
                cands = [g for g in funcs[k] if (k > i or funcs[k].index(g) > j)]
                if cands:
                    body.append("  r += %s(r & 0xff);" % rng.choice(cands))
            for hname in helpers:
                if rng.random() < 0.6:
                    body.append("  r ^= %s(r);" % hname)
            visible = [g for g, (gi, kind) in globs.items() if gi == i or kind != "static"]
            for g in rng.sample(visible, min(len(visible), rng.randint(0, 2))):
                if globs[g][1] == "const" or rng.random() < 0.5:
                    body.append("  r += %s;" % g)
                else:
                    body.append("  %s += r;" % g)
            if commons and rng.random() < 0.5:
                body.append("  r += %s[0]++;" % rng.choice(commons))
            if dup_weak and rng.random() < 0.4:
                body.append("  r += %s(r);" % rng.choice(dup_weak))
            if feat["weakundef"] and rng.random() < 0.4:
                body.append("  if (tf_missing) r += tf_missing(r);")
                body.append("  if (&tf_missing_data) r += tf_missing_data;")
            if feat["asm"] and rng.random() < 0.4:
                body.append("  r += asm_fn%d();" % rng.randint(1, nfiles))
            if feat["alias"] and rng.random() < 0.3 and i < nfiles:
                body.append("  r += fa%d(r);" % rng.randint(i + 1, nfiles))
            if feat["ifunc"] and rng.random() < 0.3:
                body.append("  r += ifn%d(r);" % rng.randint(1, nfiles))
            if sections and rng.random() < 0.4:
                s = rng.choice(sections)
                prog.has_start_stop.append(s)
                body.append("  r += (int)(__stop_%s - __start_%s);" % (s, s))
            if feat["strings"] and rng.random() < 0.5:
                strs = ["hello", "world", "lo", "thinfarm", "farm", "o"]
                body.append('  { const char *s = r & 1 ? "%s" : "%s"; while (*s) r += *s++; }'
                            % (rng.choice(strs), rng.choice(strs)))
            if feat["switch"] and rng.random() < 0.5:
                cases = " ".join("case %d: r = r * %d + %d; break;" % (n, rng.randint(2, 7), rng.randint(0, 99))
                                 for n in range(rng.randint(5, 9)))
                body.append("  switch (r & 15) { %s default: r--; }" % cases)
            if cxx and rng.random() < 0.6:
                body.append("  r += TfBox<%d>().get(r) + tf_inline_shared(r) + tf_make(r & 1)->v(r) + tf_inline_var;"
                            % rng.randint(0, 2))
            body.append("  return r;")
            c.append("%sint %s(int x) {\n%s\n}" % (attrs(f), f, "\n".join(body)))
        if feat["alias"]:
            weak = "weak, " if rng.random() < 0.4 else ""
            c.append('int fa%d(int) __attribute__((%salias("%s")));' % (i, weak, funcs[i][0]))
        if feat["ifunc"]:
            c.append("static int ifn_impl%d(int x) { return x + %d; }" % (i, i))
            c.append("static int (*ifn_resolve%d(void))(int) { return ifn_impl%d; }" % (i, i))
            c.append('int ifn%d(int) __attribute__((ifunc("ifn_resolve%d")));' % (i, i))
        if feat["ctor"] and rng.random() < 0.6:
            prio = "(%d)" % rng.randint(101, 300) if rng.random() < 0.5 else ""
            kind = rng.choice(["constructor", "constructor", "destructor"])
            tgt = rng.choice([g for g, (gi, kd) in globs.items() if gi == i and kd not in ("const", "tls")] or ["0"])
            stmt = "%s++;" % tgt if tgt != "0" else "%s(1);" % funcs[i][0]
            c.append("__attribute__((%s%s)) static void ctor%d(void) { %s }" % (kind, prio, i, stmt))
        # __start_ references only from code LTO removes (unreferenced, not exported): a
        # section of its own that no live code refers to, and sometimes a live one.
        if feat["deadsec"] and (i == 1 or rng.random() < 0.4):
            prog.dead_start_stop.append("tfdead")
            c.append('__attribute__((section("tfdead"), used)) static const int tfdead%d = %d;'
                     % (i, rng.randint(1, 99)))
            c.append('__attribute__((visibility("hidden"), noinline)) long dead_size%d(void) '
                     '{ return __stop_tfdead - __start_tfdead; }' % i)
        if sections and feat["deadsec"] and rng.random() < 0.6:
            s = rng.choice(sections)
            prog.dead_start_stop.append(s)
            c.append('__attribute__((visibility("hidden"), noinline)) long dead_count%d(void) '
                     '{ return __stop_%s - __start_%s; }' % (i, s, s))
        if cxx:
            c.append("}")
            c.append("int tf_dyn%d = tf_inline_shared(%d);" % (i, i))
        files[i] = "\n".join(c) + "\n"

    # The root file: entry or root function calling the first function of each file.
    entry = None
    root_name = "tf_root"
    if mode_hint in ("exe", "pie"):
        entry = rng.choice(["_start", "_start", "main", "tf_entry"])
    prog.entry = entry
    called = [funcs[i][0] for i in range(1, nfiles + 1) if i == 1 or rng.random() < 0.8]
    rc = ['#include "tf.h"']
    if cxx:
        rc.append('extern "C" {')
    body = ["  int rc = x;"] + ["  rc += %s(rc);" % f for f in called]
    if feat["tls"] and rng.random() < 0.5:
        tl = [g for g, (gi, kd) in globs.items() if kd == "tls"]
        if tl:
            body.append("  rc += %s;" % rng.choice(tl))
    if sections and rng.random() < 0.5:
        s = rng.choice(sections)
        prog.has_start_stop.append(s)
        body.append("  rc += (int)(__stop_%s - __start_%s);" % (s, s))
    body.append("  return rc;")
    rc.append("int %s(int x) {\n%s\n}" % (root_name, "\n".join(body)))
    if entry in ("_start", "tf_entry"):
        rc.append("void %s(void) {\n  int rc = %s(3) & 0xff;\n  %s}" % (entry, root_name, EXIT_ASM))
    elif entry == "main":
        rc.append("int main(void) { return %s(3); }" % root_name)
    if cxx:
        rc.append("}")
    files[0] = "\n".join(rc) + "\n"

    src_ext = ".cc" if cxx else ".c"
    compile_jobs = []
    native = set()
    if feat["native"]:
        native.add(rng.randint(1, nfiles))
    for i, text in files.items():
        src = "m%d%s" % (i, src_ext)
        open(os.path.join(wd, src), "w").write(text)
        flags = file_flags(rng, prog, base)
        if feat["fvis"] and rng.random() < 0.5:
            flags.append("-fvisibility=hidden")
        obj = "m%d.o" % i
        lto = i not in native
        compile_jobs.append(ccmd(flags, src, obj, lto=lto, lang=lang))
        prog.objects.append(obj)
        if lto:
            prog.modules.append(obj)
    if native:
        prog.desc.append("native=m%d" % min(native))
    compile_all(prog, wd, compile_jobs)
    add_libc(rng, prog, wd, base, mode_hint)
    prog.root = "m0.o"
    prog.others = ["m%d.o" % i for i in range(1, nfiles + 1)]
    rng.shuffle(prog.others)
    prog.exported = [root_name] + [f for fs in funcs.values() for f in fs if fattr[f] not in ("hidden",)]
    return prog


def add_libc(rng, prog, wd, base, mode_hint):
    """memcpy & co, as bitcode or native; always there for executables."""
    if mode_hint == "r" and rng.random() < 0.5:
        return
    open(os.path.join(wd, "libc.c"), "w").write(LIBC_C)
    lto = rng.random() < 0.6
    flags = [f for f in base if not f.startswith("-fcf-protection") and f not in (
        "-fstack-protector-strong", "-fwhole-program-vtables")]
    flags += ["-fno-builtin", "-fno-stack-protector"]
    if prog.cf and prog.cf != "mixed":
        flags.append("-fcf-protection=" + prog.cf)
    elif prog.cf == "mixed" and rng.random() < 0.5:
        flags.append("-fcf-protection=branch")
    cmd = ccmd(flags, "libc.c", "libc.o", lto=lto)
    run(cmd, wd)
    prog.build.append(cmd)
    prog.libc = "libc.o"
    prog.objects.append("libc.o")
    if lto:
        prog.modules.append("libc.o")
    prog.desc.append("libc=" + ("bc" if lto else "native"))


# ---------------------------------------------------------------- csmith

def gen_csmith(rng, wd, mode_hint, seed):
    prog = Program("csmith")
    base = common_cflags(rng, prog, mode_hint in ("shared", "pie"))
    if prog.cf:
        prog.desc.append("cf=" + prog.cf)
    cs = ["csmith", "--seed", str(seed), "--no-argc", "--max-funcs", str(rng.randint(4, 12)),
          "--max-block-depth", "3", "-o", "prog.c"]
    if rng.random() < 0.5:
        cs.insert(1, "--no-safe-math")
    run(cs, wd, timeout=60)
    prog.build.append(cs)
    text = open(os.path.join(wd, "prog.c")).read()
    # Functions external so that they survive the pre-link inliner and spread across parts.
    text = re.sub(r"^static (.*\bfunc_\d+\()", r"\1", text, flags=re.M)
    if rng.random() < 0.5:
        text = re.sub(r"^static ((?:const )?(?:volatile )?(?:struct \w+|union \w+|u?int\d+_t)\b[^(]*\bg_\d+)",
                      r"\1", text, flags=re.M)
        prog.desc.append("global-g")
    open(os.path.join(wd, "prog.c"), "w").write(text)
    flags = base + ["-I" + CSMITH_INCLUDE, "-Dmain=csmith_main"]
    if prog.cf == "mixed":
        flags.append("-fcf-protection=branch")
    whole = ccmd(flags, "prog.c", "whole.bc")
    run(whole, wd, timeout=90)
    prog.build.append(whole)
    nparts = rng.randint(2, 5)
    split = ["llvm-split-19", "-j", str(nparts), "-o", "part", "whole.bc"]
    if rng.random() < 0.5:
        split.insert(1, "--round-robin")
    run(split, wd)
    prog.build.append(split)
    parts = []
    for k in range(nparts):
        obj = "p%d.o" % k
        cmd = ["opt-19", "-module-summary", "part%d" % k, "-o", obj]
        run(cmd, wd)
        prog.build.append(cmd)
        parts.append(obj)
    prog.desc += ["parts=%d" % nparts, "-".join(f for f in base if f.startswith("-O"))]
    entry = rng.choice(["_start", "main"]) if mode_hint in ("exe", "pie") else None
    prog.entry = entry
    start = ["#include <stdint.h>", "int csmith_main(void);", "static volatile uint32_t checksum;",
             "void csmith_report(uint32_t c, int flag) { checksum = c + flag; }",
             "int tf_root(int x) { csmith_main(); return (int)checksum + x; }"]
    if entry == "_start":
        start.append("void _start(void) {\n  int rc = tf_root(0) & 0xff;\n  %s}" % EXIT_ASM)
    elif entry == "main":
        start.append("int main(void) { return tf_root(0); }")
    open(os.path.join(wd, "start.c"), "w").write("\n".join(start) + "\n")
    sflags = file_flags(rng, prog, base)
    cmd = ccmd(sflags, "start.c", "start.o")
    run(cmd, wd)
    prog.build.append(cmd)
    prog.root = "start.o"
    prog.modules = ["start.o"] + parts
    prog.objects = ["start.o"] + parts
    prog.others = list(parts)
    rng.shuffle(prog.others)
    add_libc(rng, prog, wd, base, "exe")
    prog.exported = ["tf_root", "csmith_main"] + ["func_1"]
    return prog


# ---------------------------------------------------------------- stress

TRIPLE = 'target datalayout = "e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-i128:128-f80:128-n8:16:32:64-S128"\n' \
         'target triple = "x86_64-unknown-linux-gnu"\n'


def gen_stress(rng, wd, mode_hint, seed):
    prog = Program("stress")
    base = common_cflags(rng, prog, mode_hint in ("shared", "pie"))
    if prog.cf:
        prog.desc.append("cf=" + prog.cf)
    n = rng.randint(2, 4)
    names = []
    for k in range(n):
        s = seed * 16 + k + 1
        ll = "s%d.ll" % k
        cmd = ["llvm-stress-19", "-seed", str(s), "-size", str(rng.randint(20, 80)), "-o", ll]
        run(cmd, wd)
        prog.build.append(cmd)
        text = open(os.path.join(wd, ll)).read()
        if rng.random() < 0.8:
            text = text.replace('source_filename = "/tmp/autogen.bc"', 'source_filename = "s%d.ll"' % k)
        text = text.replace("define void @", "define %svoid @" % rng.choice(["", "", "hidden ", "dso_local "]))
        open(os.path.join(wd, ll), "w").write(TRIPLE + text)
        obj = "s%d.o" % k
        opt = ["opt-19", "-O" + rng.choice(["1", "2"]), "-module-summary", ll, "-o", obj]
        run(opt, wd)
        prog.build.append(opt)
        prog.modules.append(obj)
        prog.objects.append(obj)
        names.append("autogen_SD%d" % s)
    entry = rng.choice(["_start", "main"]) if mode_hint in ("exe", "pie") else None
    prog.entry = entry
    c = ["#include <stdint.h>"]
    for nm in names:
        c.append("void %s(void *, void *, void *, int, long, char);" % nm)
    c.append("static char buf[4][4096];")
    c.append("int tf_root(int x) {")
    for nm in names:
        c.append("  %s(buf[0], buf[1], buf[2], x, x * 3L, (char)x);" % nm)
    c.append("  return buf[0][x & 63];\n}")
    if entry == "_start":
        c.append("void _start(void) {\n  int rc = tf_root(1) & 0xff;\n  %s}" % EXIT_ASM)
    elif entry == "main":
        c.append("int main(void) { return tf_root(1); }")
    open(os.path.join(wd, "start.c"), "w").write("\n".join(c) + "\n")
    cmd = ccmd(file_flags(rng, prog, base), "start.c", "start.o")
    run(cmd, wd)
    prog.build.append(cmd)
    prog.root = "start.o"
    prog.modules.insert(0, "start.o")
    prog.objects.insert(0, "start.o")
    prog.others = [m for m in prog.objects if m != "start.o"]
    rng.shuffle(prog.others)
    add_libc(rng, prog, wd, base, "exe")
    prog.exported = ["tf_root"] + names
    prog.desc.append("modules=%d" % n)
    return prog


GENERATORS = {"tmpl": gen_tmpl, "csmith": gen_csmith, "stress": gen_stress}


HAVE_CSMITH = shutil.which("csmith") is not None


def generator_for(seed):
    gen = ["tmpl", "csmith", "tmpl", "stress", "tmpl", "csmith"][seed % 6]
    return gen if gen != "csmith" or HAVE_CSMITH else "tmpl"


# ----------------------------------------------------------------------------
# Link command lines


def arrange_inputs(rng, prog, wd, mode):
    """Objects, archives (regular or thin), --start-lib, --whole-archive."""
    args = [prog.root]
    archives = {}
    how = rng.choice(["objects", "objects", "archive", "thin", "startlib", "whole", "group"])
    others = list(prog.others)
    libc = [prog.libc] if prog.libc else []
    if how == "objects":
        args += others + libc
        if rng.random() < 0.3:  # root not first
            rng.shuffle(args)
    elif how in ("archive", "thin", "whole", "group"):
        k = rng.randint(1, len(others))
        direct, members = others[:len(others) - k], others[len(others) - k:]
        if libc and rng.random() < 0.12:
            members += libc
            libc = []
        name = "libtf.a"
        thin = how == "thin" or (how != "archive" and rng.random() < 0.3)
        cmd = ["llvm-ar-19", "rcsT" if thin else "rcs", name] + members
        run(["rm", "-f", name], wd)
        run(cmd, wd)
        prog.build.append(cmd)
        archives[name] = {"members": members, "thin": thin}
        args += direct
        if how == "whole":
            args += ["--whole-archive", name, "--no-whole-archive"]
        elif how == "group":
            args += ["--start-group", name] + libc + ["--end-group"]
            libc = []
        else:
            args.append(name)
        args += libc
    elif how == "startlib":
        k = rng.randint(1, len(others))
        direct, lazy = others[:len(others) - k], others[len(others) - k:]
        if libc and rng.random() < 0.12:
            lazy += libc
            libc = []
        args += direct + ["--start-lib"] + lazy + ["--end-lib"] + libc
    return args, archives, how


def version_script(rng, prog, wd):
    names = prog.exported
    pick = rng.sample(names, min(len(names), rng.randint(1, 3)))
    glob = [p if rng.random() < 0.7 else p.rsplit("_", 1)[0] + "_*" for p in pick]
    if rng.random() < 0.5:
        text = "{\n  global: %s;\n  local: *;\n};\n" % "; ".join(glob)
    else:
        glob = [g for g in glob if g != names[0]]
        text = "TF_1 {\n%s  local: *;\n};\nTF_2 {\n  global: %s;\n} TF_1;\n" % (
            "  global: %s;\n" % "; ".join(glob) if glob else "", names[0])
    open(os.path.join(wd, "vs.map"), "w").write(text)
    return "vs.map"


def linker_script(rng, prog, wd):
    """A script that adds to the default layout: symbol assignments (which keep what they
    name alive through LTO), PROVIDE, and sometimes an output section for a named section."""
    lines = []
    if prog.exported and rng.random() < 0.7:
        lines.append("tf_script_alias = %s;" % rng.choice(prog.exported))
    lines.append("PROVIDE(tf_provided = 0x%x);" % rng.randint(1, 1 << 20))
    if prog.has_start_stop and rng.random() < 0.5:
        s = prog.has_start_stop[0]
        lines.append("SECTIONS { %s_out : { *(%s) } } INSERT AFTER .data;" % (s, s))
    elif rng.random() < 0.3:
        lines.append("SECTIONS { .tf_marker : { LONG(0x74686e66) } } INSERT AFTER .text;")
    open(os.path.join(wd, "tf.lds"), "w").write("\n".join(lines) + "\n")
    return "tf.lds"


def choose_options(rng, prog, wd, mode):
    o = []
    if mode == "r":
        o.append(rng.choice(["-r", "--relocatable", "-r"]))
    elif mode == "exe":
        o.append(rng.choice(["-static", "-static", "--no-pie", ""]))
    elif mode == "pie":
        o += ["-pie"] + (["--no-dynamic-linker"] if rng.random() < 0.5 else [])
    elif mode == "shared":
        o.append("-shared")
        if rng.random() < 0.2:
            o += ["-soname", "libtf.so.1"]
    o = [x for x in o if x]
    if prog.entry and mode != "r":
        o += (["-e", prog.entry] if rng.random() < 0.7 else ["--entry=" + prog.entry])
    elif mode in ("exe", "pie"):
        o += ["--unresolved-symbols=ignore-all"]
    r = rng.random
    if mode != "r":
        if r() < 0.3: o.append("--gc-sections")
        if r() < 0.2: o.append("--icf=" + rng.choice(["all", "safe"]))
        if r() < 0.2: o += ["-z", rng.choice(["now", "lazy"])]
        if r() < 0.2: o += ["-z", rng.choice(["relro", "norelro"])]
        if r() < 0.15: o += ["-z", rng.choice(["separate-code", "noseparate-code"])]
        if r() < 0.1: o += ["-z", "max-page-size=4096"]
        if r() < 0.1: o.append("--hash-style=" + rng.choice(["gnu", "sysv", "both"]))
        if mode in ("exe", "pie") and r() < 0.2: o.append(rng.choice(["--export-dynamic", "-E"]))
        if mode in ("shared",) and r() < 0.4 or mode in ("exe", "pie") and r() < 0.08:
            o.append("--version-script=" + version_script(rng, prog, wd))
        if mode == "shared" and r() < 0.2: o.append(rng.choice(["-Bsymbolic", "-Bsymbolic-functions"]))
        if mode in ("pie", "shared") and r() < 0.1: o.append("--pack-dyn-relocs=relr")
        if r() < 0.1: o.append("--emit-relocs")
        if r() < 0.05: o.append(rng.choice(["--strip-all", "--discard-all", "--strip-debug"]))
        if r() < 0.08: o += ["-z", "keep-text-section-prefix"]
        if r() < 0.05: o.append("--no-rosegment")
    else:
        if r() < 0.2: o.append("--gc-sections")
        if r() < 0.1: o.append("--emit-relocs")
        if r() < 0.05: o.append("--discard-locals")
    if r() < 0.3: o.append("--build-id" + rng.choice(["", "=sha1", "=md5", "=fast", "=0x1234abcd"]))
    if r() < 0.2: o.append("-O" + rng.choice(["0", "1", "2"]))
    if r() < 0.3: o.append("--lto-O" + rng.choice(["0", "1", "2", "3"]))
    if r() < 0.08: o.append("--lto-CGO" + rng.choice(["1", "2", "3"]))
    if r() < 0.08: o.append("--thinlto-jobs=" + rng.choice(["1", "2"]))
    if r() < 0.08: o += ["-plugin-opt=O" + rng.choice(["1", "2", "3"])]
    if prog.cf or r() < 0.05:
        if r() < 0.5: o += ["-z", "force-ibt"]
        if r() < 0.3: o += ["-z", "cet-report=" + rng.choice(["warning", "warning", "error", "none"])]
        if r() < 0.1: o += ["-z", "shstk"]
    if prog.common and r() < 0.3: o.append("--warn-common")
    if prog.debug and r() < 0.3: o.append("--compress-debug-sections=zlib")
    if r() < 0.1 and prog.exported:
        o.append("--defsym=tf_defsym=" + rng.choice(prog.exported))
    if r() < 0.1 and prog.exported:
        o += [rng.choice(["-u", "--undefined="]), rng.choice(prog.exported)]
        if o[-2].endswith("="):
            o[-2:] = [o[-2] + o[-1]]
    if r() < 0.01 and prog.exported:
        o += ["-y", rng.choice(prog.exported)]
    if mode != "r" and r() < 0.08:
        o += ["-T", linker_script(rng, prog, wd)]
    if r() < 0.015:  # options thinfarm-ld hands to ld.lld-19: fall-backs must be counted as such
        o += rng.choice([["-Map", "out.map"], ["--wrap", "f1_0"], ["--print-gc-sections"]])
    return o


def choose_mode(rng):
    return rng.choice(["r", "r", "exe", "exe", "pie", "shared", "shared"])


# ----------------------------------------------------------------------------
# Comparing


def norm_text(b):
    return b.decode(errors="replace")


def link_both(wd, args, tfld, timeout=TIMEOUT):
    """Runs both links, each with `-o out` in wd (the output's name can end up in
    it: a version definition's base name, lld's own names for LTO objects), and
    renames the outputs to stock.out and tf.out. Returns what each did."""
    env = base_env()
    res = {}
    for f in ("stock.out", "tf.out", "out", "log.jsonl"):
        try:
            os.unlink(os.path.join(wd, f))
        except FileNotFoundError:
            pass
    for who in ("stock", "tf"):
        if who == "stock":
            cmd = [LLD] + args + ["-o", "out"]
            e = env
        else:
            cmd = [tfld] + args + ["-o", "out"]
            e = dict(env, THINFARM_COORDINATOR="off", THINFARM_LOG=os.path.join(wd, "log.jsonl"),
                     THINFARM_JOBS="1", THINFARM_CACHE_DIR=os.path.join(wd, ".tfcache"))
        t0 = time.time()
        try:
            p = subprocess.run(cmd, cwd=wd, env=e, capture_output=True, timeout=timeout,
                               stdin=subprocess.DEVNULL)
            rc, so, se = p.returncode, p.stdout, p.stderr
        except subprocess.TimeoutExpired:
            rc, so, se = "timeout", b"", b"timeout"
        if os.path.exists(os.path.join(wd, "out")):
            os.rename(os.path.join(wd, "out"), os.path.join(wd, who + ".out"))
        open(os.path.join(wd, who + ".err"), "wb").write(se)
        res[who] = {"rc": rc, "stdout": so, "stderr": se, "secs": time.time() - t0}
    # What thinfarm-ld did: its log line (the log is new for every link).
    log = None
    try:
        for line in open(os.path.join(wd, "log.jsonl")):
            try:
                log = json.loads(line)
            except ValueError:
                continue
    except FileNotFoundError:
        pass
    res["log"] = log
    return res


def diagnostic_blocks(text):
    """lld's diagnostics, sorted, each as its first line and its sorted items
    (">>> referenced by X" with the ">>>    " lines that continue it)."""
    blocks = []  # [first line, [item, ...]]
    for line in text.split("\n"):
        if not line.strip():
            continue
        if blocks and line.startswith(">>>"):
            items = blocks[-1][1]
            if items and line.startswith(">>>  "):
                items[-1] += "\n" + line
            else:
                items.append(line)
        else:
            blocks.append([line, []])
    return sorted((head, sorted(items)) for head, items in blocks)


def same_blocks(a, b):
    """When a link fails, lld prints the errors of its parallel relocation scan
    in the order its threads finish, which differs from run to run (stock
    against stock, too): two failed links compare their diagnostics as a
    multiset. A successful link's must match line for line. Past lld's error
    limit, which errors made it into the first 20 is up to the threads as
    well: then only the number of diagnostics is compared."""
    limit = "too many errors emitted, stopping now"
    if limit in a and limit in b:
        return len(diagnostic_blocks(a)) == len(diagnostic_blocks(b))
    return diagnostic_blocks(a) == diagnostic_blocks(b)


def verdict(wd, res):
    """-> (status, kinds) with status in pass, fail, fallback, notsplit, bothfail, stockcrash."""
    s, t = res["stock"], res["tf"]
    log = res["log"]
    kinds = []
    if s["rc"] == "timeout" or (isinstance(s["rc"], int) and s["rc"] < 0):
        return "stockcrash", ["stock ld.lld-19 crashed or timed out (%s)" % s["rc"]]
    if s["rc"] != t["rc"]:
        kinds.append("exit status %s vs %s" % (s["rc"], t["rc"]))
    serr, terr = norm_text(s["stderr"]), norm_text(t["stderr"])
    fell_back = log is not None and "fallback" in log
    if fell_back:
        terr = "\n".join(l for l in terr.split("\n") if not l.startswith("thinfarm-ld: note: "))
    if serr != terr and not (s["rc"] == t["rc"] != 0 and same_blocks(serr, terr)):
        kinds.append("stderr differs")
    if norm_text(s["stdout"]) != norm_text(t["stdout"]):
        kinds.append("stdout differs")
    if s["rc"] == 0 and t["rc"] == 0:
        a, b = os.path.join(wd, "stock.out"), os.path.join(wd, "tf.out")
        if subprocess.run(["cmp", "-s", a, b]).returncode != 0:
            kinds.append("output bytes differ")
    if kinds:
        return "fail", kinds
    if fell_back:
        return "fallback", [log["fallback"]]
    if s["rc"] != 0:
        return "bothfail", [norm_text(s["stderr"]).split("\n")[0][:160]]
    if log is None or not log.get("modules"):
        return "notsplit", ["no THINFARM_LOG line with modules > 0"]
    return "pass", []


# ----------------------------------------------------------------------------
# ELF comparison: what differs, in words, for grouping differences into classes.


def read_elf(path):
    try:
        d = open(path, "rb").read()
    except OSError:
        return None
    if d[:4] != b"\x7fELF" or d[4] != 2:
        return None
    shoff, = struct.unpack_from("<Q", d, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", d, 0x3A)
    phoff, = struct.unpack_from("<Q", d, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", d, 0x36)
    secs = []
    for k in range(shnum):
        secs.append(struct.unpack_from("<IIQQQQIIQQ", d, shoff + k * shentsize))
    names = secs[shstrndx] if shstrndx < len(secs) else None

    def cstr(off, base):
        end = d.index(b"\0", base + off)
        return d[base + off:end].decode(errors="replace")

    out = {"sections": {}, "symbols": {}, "phdrs": [], "type": struct.unpack_from("<H", d, 0x10)[0],
           "ident": d[:16], "header": struct.unpack_from("<HHIQ", d, 0x10) + struct.unpack_from("<I", d, 0x30)}
    for k, s in enumerate(secs):
        name = cstr(s[0], names[4]) if names else str(k)
        data = d[s[4]:s[4] + s[5]] if s[1] != 8 else b""
        key = name
        n = 2
        while key in out["sections"]:
            key = "%s#%d" % (name, n)
            n += 1
        out["sections"][key] = {"type": s[1], "flags": s[2], "size": s[5], "data": data, "index": k}
    for k, s in enumerate(secs):
        if s[1] in (2, 11) and s[9]:  # SYMTAB, DYNSYM
            strtab = secs[s[6]]
            tab = {}
            for off in range(0, s[5], 24):
                nm, info, other, shndx, value, size = struct.unpack_from("<IBBHQQ", d, s[4] + off)
                name = cstr(nm, strtab[4]) if nm else ""
                if not name:
                    continue
                tab.setdefault(name, []).append((info >> 4, info & 15, other & 3, shndx, size))
            out["symbols"]["dynsym" if s[1] == 11 else "symtab"] = tab
    for k in range(phnum):
        out["phdrs"].append(struct.unpack_from("<IIQQQQQQ", d, phoff + k * phentsize)[:2])
    return out


def norm_name(n):
    return re.sub(r"\d+", "N", n)


def classify(wd, kinds, res):
    """A list of findings (strings) and a class key (str) for grouping."""
    findings = list(kinds)
    key = []
    s, t = res["stock"], res["tf"]
    if "output bytes differ" in kinds:
        a, b = read_elf(os.path.join(wd, "stock.out")), read_elf(os.path.join(wd, "tf.out"))
        if a and b:
            if a["ident"] != b["ident"]:
                diffs = ["e_ident[%d] %d/%d" % (k, a["ident"][k], b["ident"][k]) for k in range(16)
                         if a["ident"][k] != b["ident"][k]]
                findings.append("ELF identification differs (stock/thinfarm): " + ", ".join(diffs)
                                + (" (EI_OSABI)" if a["ident"][7] != b["ident"][7] else ""))
                key.append("ident:" + ",".join(str(k) for k in range(16) if a["ident"][k] != b["ident"][k]))
            if a["header"] != b["header"]:
                findings.append("ELF header (type, machine, version, entry, flags) differs: %s / %s"
                                % (a["header"], b["header"]))
                key.append("ehdr")
            sa, sb = a["sections"], b["sections"]
            only_a = [n for n in sa if n not in sb]
            only_b = [n for n in sb if n not in sa]
            for n in only_a:
                findings.append("section only in stock: " + n)
                key.append("-sec:" + norm_name(n))
            for n in only_b:
                findings.append("section only in thinfarm: " + n)
                key.append("+sec:" + norm_name(n))
            for which in ("symtab", "dynsym"):
                ta, tb = a["symbols"].get(which, {}), b["symbols"].get(which, {})
                oa = sorted(n for n in ta if n not in tb)
                ob = sorted(n for n in tb if n not in ta)
                if oa:
                    findings.append("%s symbols only in stock: %s" % (which, " ".join(oa[:12])))
                    key += ["-%s:%s" % (which, norm_name(n)) for n in oa[:4]]
                if ob:
                    findings.append("%s symbols only in thinfarm: %s" % (which, " ".join(ob[:12])))
                    key += ["+%s:%s" % (which, norm_name(n)) for n in ob[:4]]
                attr = sorted(n for n in ta if n in tb and
                              [x[:3] for x in ta[n]] != [x[:3] for x in tb[n]])
                if attr:
                    findings.append("%s symbols with other binding/type/visibility: %s" % (which, " ".join(attr[:12])))
                    key += ["~%s:%s" % (which, norm_name(n)) for n in attr[:4]]
            sized = [n for n in sa if n in sb and sa[n]["size"] != sb[n]["size"]]
            content = [n for n in sa if n in sb and sa[n]["size"] == sb[n]["size"] and sa[n]["data"] != sb[n]["data"]]
            if sized:
                findings.append("sections of other size: " + " ".join(
                    "%s(%d/%d)" % (n, sa[n]["size"], sb[n]["size"]) for n in sized[:16]))
            if content:
                findings.append("sections of other content: " + " ".join(content[:16]))
            if a["phdrs"] != b["phdrs"]:
                findings.append("program headers differ: %d/%d" % (len(a["phdrs"]), len(b["phdrs"])))
            # Sizes and contents name the class only when nothing structural (a section or a
            # symbol only on one side) does; the ELF identification is independent of both.
            if not [k for k in key if not k.startswith(("ident:", "ehdr"))]:
                key += ["size:" + norm_name(n) for n in sized[:3]]
                if not sized:
                    key += ["content:" + norm_name(n) for n in content
                            if n not in (".note.gnu.build-id", ".symtab")][:3]
        else:
            key.append("not-elf")
    if any(k.startswith("exit status") for k in kinds):
        tl = norm_text(t["stderr"]).strip().split("\n")
        first = next((l for l in tl if "error" in l), tl[0] if tl else "")
        key.append("exit:%s/%s:%s" % (res["stock"]["rc"], res["tf"]["rc"],
                                      re.sub(r"[\w./-]*\.o\b|\d+", "X", first)[:80]))
    elif "stderr differs" in kinds:
        sl = norm_text(s["stderr"]).split("\n")
        tl = norm_text(t["stderr"]).split("\n")
        missing, extra = [], []
        for op in difflib.ndiff(sl, tl):
            if op.startswith("- "):
                missing.append(op[2:])
            elif op.startswith("+ "):
                extra.append(op[2:])
        missing, extra = missing[:4], extra[:4]
        for l in missing:
            findings.append("stderr line only in stock: " + l)
        for l in extra:
            findings.append("stderr line only in thinfarm: " + l)
        key.append("stderr:" + re.sub(r"[\w./-]*\.o\b|\d+", "X", (missing + extra + [""])[0])[:80])
    if "stdout differs" in kinds:
        sl = norm_text(s["stdout"]).split("\n")
        tl = norm_text(t["stdout"]).split("\n")
        for op in list(difflib.ndiff(sl, tl)):
            if op[:2] in ("- ", "+ "):
                findings.append("stdout line only in %s: %s" % ("stock" if op[0] == "-" else "thinfarm", op[2:]))
        key.append("stdout")
    return findings, " ".join(sorted(set(key))) or "unclassified"


# ----------------------------------------------------------------------------
# Repro directories


def write_repro(out, name, wd, prog, archives, args, res, tfld, findings, ckey, meta):
    rd = os.path.join(out, name)
    if os.path.exists(rd):
        shutil.rmtree(rd)
    shutil.copytree(wd, rd, ignore=shutil.ignore_patterns(".tfcache", "log.jsonl", "*.ll.tmp"))
    for who in ("stock", "tf"):
        open(os.path.join(rd, who + ".stdout"), "wb").write(res[who]["stdout"])
    lines = ["#!/bin/sh",
             "# Reproduces a difference between ld.lld-19 and thinfarm-ld (seed %s)." % meta["seed"],
             "# TFLD=path/to/thinfarm-ld sh run.sh ; exit status 0: outputs identical, 1: they differ",
             'cd "$(dirname "$0")"',
             "TFLD=${TFLD:-%s}" % shlex.quote(tfld),
             "rm -f stock.out tf.out out log.jsonl",
] + link_lines(args) + [
             "cat log.jsonl 2> /dev/null",
             "diff stock.err tf.err > /dev/null || echo 'stderr differs'",
             "cmp stock.out tf.out"]
    open(os.path.join(rd, "run.sh"), "w").write("\n".join(lines) + "\n")
    os.chmod(os.path.join(rd, "run.sh"), 0o755)
    # How the inputs were made.
    open(os.path.join(rd, "build.sh"), "w").write(
        "#!/bin/sh\n# The commands that generated and compiled the inputs (for the record).\nset -e\n" +
        "\n".join(" ".join(map(shlex.quote, c)) for c in prog.build) + "\n")
    manifest = {"seed": meta["seed"], "link": meta["link"], "generator": prog.gen, "program": prog.desc,
                "mode": meta["mode"], "inputs": meta["how"], "args": args, "modules": prog.modules,
                "archives": archives, "findings": findings, "class": ckey,
                "stock_rc": res["stock"]["rc"], "tf_rc": res["tf"]["rc"], "log": res["log"]}
    json.dump(manifest, open(os.path.join(rd, "repro.json"), "w"), indent=1)
    readelf_diff(rd)
    open(os.path.join(rd, "summary.txt"), "w").write(
        "seed %s link %s: %s, %s, inputs as %s\nargs: %s\nclass: %s\n%s\n" % (
            meta["seed"], meta["link"], prog.gen, meta["mode"], meta["how"], " ".join(args), ckey,
            "\n".join("  " + f for f in findings)))
    return rd


def link_lines(args):
    a = " ".join(map(shlex.quote, args))
    return ["%s %s -o out 2> stock.err; echo \"ld.lld-19: exit $?\"; mv out stock.out 2> /dev/null" % (LLD, a),
            "THINFARM_COORDINATOR=off THINFARM_LOG=$PWD/log.jsonl THINFARM_JOBS=1 \"$TFLD\" %s -o out 2> tf.err;"
            " echo \"thinfarm-ld: exit $?\"; mv out tf.out 2> /dev/null" % a]


def readelf_diff(rd):
    outs = []
    for f in ("stock.out", "tf.out"):
        p = os.path.join(rd, f)
        if os.path.exists(p):
            r = subprocess.run(["llvm-readelf-19", "-a", "-W", f], cwd=rd, capture_output=True)
            outs.append(norm_text(r.stdout).replace("File: " + f, "File: out"))
        else:
            outs.append("(no %s)\n" % f)
    for f, t in zip(("stock.readelf", "tf.readelf"), outs):
        open(os.path.join(rd, f), "w").write(t)
    d = subprocess.run(["diff", "-u", "stock.readelf", "tf.readelf"], cwd=rd, capture_output=True)
    open(os.path.join(rd, "readelf.diff"), "wb").write(d.stdout)


# ----------------------------------------------------------------------------
# Reduction


def rebuild_archives(d, archives):
    for name, a in archives.items():
        p = os.path.join(d, name)
        if os.path.exists(p):
            os.unlink(p)
        members = [m for m in a["members"] if os.path.exists(os.path.join(d, m))]
        if members:
            subprocess.run(["llvm-ar-19", "rcsT" if a["thin"] else "rcs", name] + members, cwd=d,
                           capture_output=True)


# Not special-globals: llvm-reduce-19 drops llvm.used and llvm.compiler.used in that pass
# without asking the test.
DELTA_PASSES = ",".join([
    "strip-debug-info", "functions", "function-bodies", "aliases", "ifuncs",
    "global-values", "global-objects", "global-initializers", "global-variables", "basic-blocks",
    "instructions", "named-metadata", "metadata", "attributes", "module-data"])


class Reducer:
    def __init__(self, rd, tfld, log):
        self.rd = rd
        self.tfld = tfld
        self.log = log
        self.m = json.load(open(os.path.join(rd, "repro.json")))
        self.cls = self.m["class"]

    def interesting(self, d, args):
        """The difference persists in d with args, and is of the same class."""
        rebuild_archives(d, self.m["archives"])
        res = link_both(d, args, self.tfld, timeout=60)
        status, kinds = verdict(d, res)
        if status != "fail":
            return False
        if "output bytes differ" in self.m["findings"] and not (
                res["stock"]["rc"] == 0 and res["tf"]["rc"] == 0):
            return False
        _, key = classify(d, kinds, res)
        return key == self.cls

    def reduce(self):
        red = os.path.join(self.rd, "reduced")
        if os.path.exists(red):
            shutil.rmtree(red)
        shutil.copytree(self.rd, red, ignore=shutil.ignore_patterns("reduced", "stock.*", "tf.*"))
        args = list(self.m["args"])
        # The class as this version of the tester names it, in the copy.
        rebuild_archives(red, self.m["archives"])
        res = link_both(red, args, self.tfld)
        status, kinds = verdict(red, res)
        if status != "fail":
            self.log("reduce: the difference does not reproduce in a copy; not reduced")
            return None
        self.m["findings"], self.cls = classify(red, kinds, res)
        self.m["class"] = self.cls
        # 1. Options and inputs, one group at a time, until nothing more goes; an archive
        # is also tried as its members given as objects.
        changed = True
        while changed:
            changed = False
            groups = group_args(args)
            i = 0
            while i < len(groups):
                cand = groups[:i] + groups[i + 1:]
                if cand and self.interesting(red, flatten(cand)):
                    groups = cand
                    changed = True
                else:
                    i += 1
            args = flatten(groups)
            for name in list(self.m["archives"]):
                if name not in args:
                    continue
                at = args.index(name)
                cand = args[:at] + self.m["archives"][name]["members"] + args[at + 1:]
                cand = [a for a in cand if a not in ("--whole-archive", "--no-whole-archive",
                                                     "--start-group", "--end-group")]
                saved = self.m["archives"].pop(name)
                if self.interesting(red, cand):
                    args = cand
                    changed = True
                    os.unlink(os.path.join(red, name))
                else:
                    self.m["archives"][name] = saved
            # 2. Archive members.
            for name, a in self.m["archives"].items():
                j = 0
                while j < len(a["members"]):
                    keep = a["members"][j]
                    a["members"].pop(j)
                    if a["members"] and self.interesting(red, args):
                        changed = True
                        continue
                    a["members"].insert(j, keep)
                    j += 1
        self.m["args"] = args
        # Unused inputs go; the interestingness test reads the manifest.
        used = set(args) | {m for a in self.m["archives"].values() for m in a["members"]}
        for obj in os.listdir(red):
            if obj.endswith(".o") and obj not in used:
                os.unlink(os.path.join(red, obj))
                for ext in (".c", ".cc"):
                    if os.path.exists(os.path.join(red, obj[:-2] + ext)):
                        os.unlink(os.path.join(red, obj[:-2] + ext))
        json.dump(self.m, open(os.path.join(red, "repro.json"), "w"), indent=1)
        # 3. Every bitcode module still used: llvm-reduce-19.
        test = os.path.join(red, "interesting.sh")
        for mod in self.m["modules"]:
            if mod not in used or not os.path.exists(os.path.join(red, mod)):
                continue
            self.write_test(test, red, mod, args)
            shutil.copy(os.path.join(red, mod), os.path.join(red, mod + ".orig"))
            self.log("reduce: llvm-reduce-19 on %s" % mod)
            # Textual IR in and out: llvm-reduce-19's final bitcode of a ThinLTO module is not
            # always the module its test accepted.
            inp = os.path.join(red, mod + ".input.ll")
            outp = os.path.join(red, mod + ".reduced.ll")
            dis = subprocess.run(["llvm-dis-19", os.path.join(red, mod), "-o", "-"], check=True,
                                 capture_output=True).stdout.decode()
            # Without the summary (opt-19 -module-summary makes it again; the IR parser does
            # not read every kind of summary entry llvm-dis-19 prints).
            open(inp, "w").write("".join(l for l in dis.splitlines(True) if not l.startswith("^")))
            try:
                subprocess.run(["llvm-reduce-19", "-j", "1", "--max-pass-iterations=2",
                                "--delta-passes=" + DELTA_PASSES, "--test=" + test, inp, "-o", outp],
                               cwd=red, capture_output=True, timeout=self.timeout)
            except subprocess.TimeoutExpired:
                self.log("reduce: llvm-reduce-19 on %s timed out" % mod)
            os.unlink(inp)
            if os.path.exists(outp):
                subprocess.run(["opt-19", "-module-summary", outp, "-o", os.path.join(red, mod)], cwd=red)
                if not self.interesting(red, args):  # should not happen; keep the original then
                    self.log("reduce: reduced %s no longer reproduces; keeping the original" % mod)
                    shutil.copy(os.path.join(red, mod + ".orig"), os.path.join(red, mod))
                    os.unlink(outp)
                else:
                    os.rename(outp, os.path.join(red, mod + ".ll"))
            os.unlink(os.path.join(red, mod + ".orig"))
        rebuild_archives(red, self.m["archives"])
        res = link_both(red, args, self.tfld)
        status, kinds = verdict(red, res)
        findings, key = classify(red, kinds, res)
        self.m.update({"args": args, "findings": findings, "class": key, "reduced": True})
        json.dump(self.m, open(os.path.join(red, "repro.json"), "w"), indent=1)
        with open(os.path.join(red, "run.sh")) as f:
            old = f.read().split("\n")
        new = [l for l in old if not l.startswith((LLD + " ", "THINFARM_COORDINATOR"))]
        at = new.index("cat log.jsonl 2> /dev/null")
        new[at:at] = link_lines(args)
        open(os.path.join(red, "run.sh"), "w").write("\n".join(new))
        readelf_diff(red)
        self.log("reduce: %s -> %s (%s)" % (self.rd, red, " ".join(args)))
        return red

    timeout = 1800

    def write_test(self, test, red, mod, args):
        me = os.path.abspath(__file__)
        text = ("#!/bin/sh\n# llvm-reduce-19 interestingness test: $1 replaces %s in a scratch copy\n"
                "exec %s %s --check-candidate %s --module %s --candidate \"$1\" --ld %s\n" % (
                    mod, shlex.quote(sys.executable), shlex.quote(me), shlex.quote(red), shlex.quote(mod),
                    shlex.quote(self.tfld)))
        open(test, "w").write(text)
        os.chmod(test, 0o755)


def group_args(args):
    """Splits a link command into removable groups: an option with its value, an input."""
    takes_value = {"-e", "-u", "--require-defined", "-y", "-z", "-T", "-soname", "-Map", "--wrap", "-o", "-plugin-opt", "-mllvm"}
    groups, i = [], 0
    while i < len(args):
        a = args[i]
        if a in takes_value and i + 1 < len(args):
            groups.append(args[i:i + 2])
            i += 2
        elif a == "--start-lib":
            j = args.index("--end-lib", i)
            groups.append([a])
            groups += [[x] for x in args[i + 1:j]]
            groups.append(["--end-lib"])
            i = j + 1
        else:
            groups.append([a])
            i += 1
    return groups


def flatten(groups):
    return [x for g in groups for x in g]


def check_candidate(ns):
    """Interestingness test for llvm-reduce-19: 0 if the candidate still shows the difference."""
    red = ns.check_candidate
    m = json.load(open(os.path.join(red, "repro.json")))
    with tempfile.TemporaryDirectory(prefix="tfdiff-cand-") as d:
        for f in os.listdir(red):
            p = os.path.join(red, f)
            if os.path.isfile(p) and not f.endswith((".readelf", ".diff", ".out", ".ll", ".orig")):
                shutil.copy(p, os.path.join(d, f))
            elif os.path.isdir(p):
                shutil.copytree(p, os.path.join(d, f))
        r = subprocess.run(["opt-19", "-module-summary", ns.candidate, "-o", os.path.join(d, ns.module)],
                           capture_output=True)
        if r.returncode != 0:
            return 1
        red_obj = Reducer.__new__(Reducer)
        red_obj.rd, red_obj.tfld, red_obj.log, red_obj.m = red, ns.ld, lambda s: None, m
        red_obj.cls = m["class"]
        return 0 if red_obj.interesting(d, m["args"]) else 1


# ----------------------------------------------------------------------------
# One seed


def one_seed(seed, ns):
    rng = random.Random(seed * 7919 + 17)
    gen = ns.gen or generator_for(seed)
    wd = os.path.join(ns.out, "work", str(seed))
    if os.path.exists(wd):
        shutil.rmtree(wd)
    os.makedirs(wd)
    results = []
    mode = choose_mode(rng)
    try:
        if gen == "tmpl":
            prog = gen_tmpl(rng, wd, mode)
        elif gen == "csmith":
            prog = gen_csmith(rng, wd, mode, seed)
        else:
            prog = gen_stress(rng, wd, mode, seed)
    except GenError as e:
        results.append({"seed": seed, "link": 0, "status": "genfail", "detail": [str(e)[:300]]})
        if not ns.keep:
            shutil.rmtree(wd, ignore_errors=True)
        return results
    # One or two links of the same program (a second with another kind the objects allow).
    modes = [mode]
    if rng.random() < 0.5:
        allowed = ["r", "exe"] + (["pie", "shared"] if prog.pic else [])
        modes.append(rng.choice([m for m in allowed if m != mode] or allowed))
    for li, m in enumerate(modes):
        try:
            args, archives, how = arrange_inputs(rng, prog, wd, m)
            args = choose_options(rng, prog, wd, m) + args if rng.random() < 0.7 else args + choose_options(rng, prog, wd, m)
        except GenError as e:
            results.append({"seed": seed, "link": li, "status": "genfail", "detail": [str(e)[:300]]})
            continue
        res = link_both(wd, args, ns.ld)
        status, kinds = verdict(wd, res)
        r = {"seed": seed, "link": li, "status": status, "gen": gen, "mode": m, "how": how,
             "program": prog.desc, "args": args, "detail": kinds,
             "secs": round(res["stock"]["secs"] + res["tf"]["secs"], 2),
             "modules": (res["log"] or {}).get("modules")}
        if status == "fail":
            findings, ckey = classify(wd, kinds, res)
            log = res["log"]
            findings.append("thinfarm-ld: " + ("split into %s modules" % log.get("modules") if log and "modules" in log
                                               else "fell back: " + log["fallback"] if log and "fallback" in log
                                               else "no THINFARM_LOG line"))
            name = "repro-%d" % seed if li == 0 else "repro-%d.%d" % (seed, li)
            rd = write_repro(ns.out, name, wd, prog, archives, args, res, ns.ld, findings, ckey,
                             {"seed": seed, "link": li, "mode": m, "how": how})
            r.update({"detail": findings, "class": ckey, "repro": rd})
        results.append(r)
    if not ns.keep:
        shutil.rmtree(wd, ignore_errors=True)
    return results


def parse_seeds(s):
    """'A-B' (B may be left out: no end), 'A', or a comma list of those."""
    for part in s.split(","):
        if "-" in part:
            a, b = part.split("-", 1)
            yield from range(int(a), (int(b) if b else 10 ** 9) + 1)
        else:
            yield int(part)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="1-20", help="A-B, A- (no end), A, or a comma list of those")
    ap.add_argument("--out", default=None)
    ap.add_argument("--ld", default=None, help="thinfarm-ld (default: build/bin/thinfarm-ld)")
    ap.add_argument("--jobs", type=int, default=1, help="seeds run at once (default 1)")
    ap.add_argument("--reduce", action="store_true", help="reduce every difference found")
    ap.add_argument("--reduce-timeout", type=int, default=1800, help="seconds per llvm-reduce-19 run")
    ap.add_argument("--keep", action="store_true", help="keep every work directory")
    ap.add_argument("--time-limit", type=float, default=0, help="stop starting seeds after SECONDS")
    ap.add_argument("--gen", choices=sorted(GENERATORS), help="only this generator")
    ap.add_argument("--quiet", action="store_true", help="print only differences and the summary")
    ap.add_argument("--json", help="append one JSON line per link to this file")
    ap.add_argument("--reduce-only", metavar="REPRO_DIR", help="reduce one saved repro directory")
    ap.add_argument("--check-candidate", help=argparse.SUPPRESS)
    ap.add_argument("--module", help=argparse.SUPPRESS)
    ap.add_argument("--candidate", help=argparse.SUPPRESS)
    ns = ap.parse_args()
    if ns.check_candidate:
        sys.exit(check_candidate(ns))
    if ns.ld is None:
        ns.ld = os.path.join(HERE, "..", "..", "build", "bin", "thinfarm-ld")
    ns.ld = os.path.abspath(ns.ld)
    if not os.access(ns.ld, os.X_OK):
        sys.exit("difftest: no thinfarm-ld at %s" % ns.ld)
    if ns.reduce_only:
        Reducer.timeout = ns.reduce_timeout
        red = Reducer(os.path.abspath(ns.reduce_only), ns.ld, lambda s: print(s, flush=True)).reduce()
        sys.exit(0 if red else 1)
    if ns.out is None:
        ns.out = tempfile.mkdtemp(prefix="thinfarm-differential-")
    ns.out = os.path.abspath(ns.out)
    os.makedirs(ns.out, exist_ok=True)
    for old in os.listdir(ns.out):  # a previous run's differences are not this run's
        if old.startswith("repro-") or old == "work":
            shutil.rmtree(os.path.join(ns.out, old), ignore_errors=True)
    for tool in (CLANG, LLD, "opt-19", "llvm-split-19", "llvm-stress-19", "llvm-ar-19", "llvm-readelf-19"):
        if shutil.which(tool) is None:
            sys.exit("difftest: %s is not installed" % tool)
    if not HAVE_CSMITH:
        print("difftest: note: csmith is not installed; its seeds use the template generator", flush=True)
    seeds = parse_seeds(ns.seeds)
    start = time.time()
    counts = {k: 0 for k in ("pass", "fail", "fallback", "notsplit", "bothfail", "stockcrash", "genfail")}
    classes = {}
    modules_split = 0
    jf = open(ns.json, "a") if ns.json else None

    def report(results):
        nonlocal modules_split
        for r in results:
            counts[r["status"]] += 1
            if r["status"] == "pass":
                modules_split += r.get("modules") or 0
            if r["status"] == "fail":
                classes.setdefault(r["class"], []).append(r["repro"])
            if jf:
                jf.write(json.dumps({k: v for k, v in r.items()}) + "\n")
                jf.flush()
            if ns.quiet and r["status"] in ("pass", "fallback", "notsplit", "bothfail"):
                continue
            head = "seed %d.%d %-10s %s %s %s" % (r["seed"], r["link"], r["status"].upper(), r.get("gen", "-"),
                                                  r.get("mode", "-"), r.get("how", "-"))
            if r["status"] == "pass":
                print("%s: %d modules, %.1fs" % (head, r.get("modules") or 0, r.get("secs", 0)), flush=True)
            elif r["status"] == "fail":
                print("%s: %s\n    args: %s\n    program: %s\n    %s\n    repro: %s" % (
                    head, r["class"], " ".join(r["args"]), " ".join(r["program"]),
                    "\n    ".join(r["detail"][:8]), r["repro"]), flush=True)
            else:
                print("%s: %s" % (head, "; ".join(r["detail"])[:300]), flush=True)

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, ns.jobs)) as ex:
        pending = {}

        def submit():
            if ns.time_limit and time.time() - start > ns.time_limit:
                return False
            s = next(seeds, None)
            if s is None:
                return False
            pending[ex.submit(one_seed, s, ns)] = s
            return True

        for _ in range(max(1, ns.jobs)):
            submit()
        while pending:
            done, _ = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
            for f in sorted(done, key=lambda f: pending[f]):
                pending_seed = pending.pop(f)
                try:
                    report(f.result())
                except Exception:  # a bug in the tester itself
                    counts["genfail"] += 1
                    print("seed %d: tester error: %s" % (pending_seed, traceback.format_exc()), flush=True)
                submit()
    if not ns.keep:
        shutil.rmtree(os.path.join(ns.out, "work"), ignore_errors=True)
    if ns.reduce and classes:
        Reducer.timeout = ns.reduce_timeout
        for cls, repros in sorted(classes.items()):
            print("reducing class %s: %s" % (cls, repros[0]), flush=True)
            Reducer(repros[0], ns.ld, lambda s: print("  " + s, flush=True)).reduce()
    wall = time.time() - start
    links = sum(counts.values()) - counts["genfail"]
    print("difference classes: %d" % len(classes))
    for cls, repros in sorted(classes.items(), key=lambda kv: -len(kv[1])):
        print("  %3d x %s  (e.g. %s)" % (len(repros), cls, repros[0]))
    print("links: %d in %.0fs; split and identical: %d (%d modules); differences: %d; fell back (not compared): %d; "
          "not split: %d; both failed alike: %d; stock crashed: %d; generator failures: %d" % (
              links, wall, counts["pass"], modules_split, counts["fail"], counts["fallback"], counts["notsplit"],
              counts["bothfail"], counts["stockcrash"], counts["genfail"]))
    print("differential: %d passed, %d failed" % (counts["pass"], counts["fail"]))
    ok = counts["fail"] == 0 and counts["pass"] > 0 and counts["genfail"] <= max(2, links // 10)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
