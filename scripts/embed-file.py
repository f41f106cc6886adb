#!/usr/bin/env python3
"""Writes a C++ source that defines `std::string_view NAME()` returning a file's bytes.

    embed-file.py INPUT OUTPUT NAME

Used by the build to compile docs/openapi.json into the binary (GET /v1/openapi.json).
"""
import sys

src, out, name = sys.argv[1:4]
data = open(src, "rb").read()
chunks = []
# Plain hex escapes keep any byte safe in the literal; 4 KiB string pieces stay under
# compilers' literal length limits.
for i in range(0, len(data), 4096):
    piece = data[i:i + 4096]
    chunks.append('"' + "".join("\\x%02x" % b for b in piece) + '"')
with open(out, "w") as f:
    f.write("// Generated from %s by scripts/embed-file.py. Do not edit.\n" % src.split("/")[-1])
    f.write("#include <string_view>\n\nnamespace shardd {\n\n")
    f.write("static const char %s_bytes[] =\n%s;\n\n" % (name, "\n".join(chunks) if chunks else '""'))
    f.write("std::string_view %s() { return {%s_bytes, sizeof %s_bytes - 1}; }\n\n}  // namespace shardd\n" % (name, name, name))
