#!/usr/bin/env python3
"""Holds the workspace to its declared layering (Cargo.toml, [workspace.metadata.layers]).

Reads `cargo metadata` and fails when a crate depends on a workspace crate of its own or a
higher level, when a crate of the workspace is missing from the declared order, when a
binary-only dependency (clap, anyhow, ...) appears outside the binary, or when a library
crate other than those allowed does not forbid unsafe code.
"""
import json
import pathlib
import subprocess
import sys

meta = json.loads(subprocess.run(
    ["cargo", "metadata", "--format-version", "1", "--no-deps", "--locked"],
    check=True, capture_output=True, text=True).stdout)
layers = meta["metadata"]["layers"]
level = {name: i for i, group in enumerate(layers["order"]) for name in group}
problems = []
for pkg in meta["packages"]:
    name = pkg["name"]
    if name not in level:
        problems.append(f"{name}: not in [workspace.metadata.layers] order")
        continue
    for dep in pkg["dependencies"]:
        if dep["kind"] == "dev":
            continue
        d = dep["name"]
        if d in level and level[d] >= level[name]:
            problems.append(f"{name} (level {level[name]}) depends on {d} (level {level[d]})")
        if d in layers["binary-only"] and name != layers["binary"]:
            problems.append(f"{name} depends on {d}, which only the binary may use")
    if name not in layers["unsafe-allowed"]:
        for target in pkg["targets"]:
            if "lib" in target["kind"]:
                src = pathlib.Path(target["src_path"]).read_text()
                if "#![forbid(unsafe_code)]" not in src:
                    problems.append(f"{name}: {target['src_path']} lacks #![forbid(unsafe_code)]")
for p in problems:
    print("layering:", p)
print(f"layering: {len(meta['packages'])} crates checked, {len(problems)} problems")
sys.exit(1 if problems else 0)
